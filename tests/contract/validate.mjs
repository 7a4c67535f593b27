// graphql-js's validation (the reference implementation of the spec's section 5) over documents:
//   node validate.mjs SERVED.graphql DOCUMENTS.json
//       DOCUMENTS.json is an array of {"name": ..., "query": ...}; prints one JSON line per
//       document: {"name", "refused": true|false, "errors": [messages]}. A document that does
//       not parse counts as refused, with the parser's message. Exit 0, or 2 if an input is
//       unusable.
import { readFileSync } from "node:fs";
import { buildSchema, parse, validate } from "graphql";

const [served, documents] = process.argv.slice(2);
if (!served || !documents) {
  console.error("usage: validate.mjs SERVED.graphql DOCUMENTS.json");
  process.exit(2);
}

let schema;
let cases;
try {
  schema = buildSchema(readFileSync(served, "utf8"));
  cases = JSON.parse(readFileSync(documents, "utf8"));
} catch (error) {
  console.error(`unusable input: ${error.message}`);
  process.exit(2);
}

for (const { name, query } of cases) {
  let errors;
  try {
    errors = validate(schema, parse(query)).map((error) => error.message);
  } catch (error) {
    errors = [`does not parse: ${error.message}`];
  }
  console.log(JSON.stringify({ name, refused: errors.length > 0, errors }));
}
