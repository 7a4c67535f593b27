// The contract check, with graphql-js (the reference implementation):
//   node check.mjs compat CONTRACT.graphql SERVED.graphql
//       prints every breaking and dangerous change from CONTRACT to SERVED; exit 1 if serving
//       SERVED would break a client written against CONTRACT, 0 if not, 2 if a schema is unusable
//   node check.mjs introspection-query
//       prints graphql-js's full introspection query, to test the server's limits with it
import { readFileSync } from "node:fs";
import {
  buildSchema,
  findBreakingChanges,
  findDangerousChanges,
  getIntrospectionQuery,
} from "graphql";

const [command, ...args] = process.argv.slice(2);

function load(path) {
  try {
    return buildSchema(readFileSync(path, "utf8"));
  } catch (error) {
    console.error(`${path}: not a usable GraphQL schema: ${error.message}`);
    process.exit(2);
  }
}

if (command === "compat" && args.length === 2) {
  const [contract, served] = args.map(load);
  const breaking = findBreakingChanges(contract, served);
  for (const change of breaking) console.log(`BREAKING ${change.type}: ${change.description}`);
  for (const change of findDangerousChanges(contract, served)) {
    console.log(`DANGEROUS ${change.type}: ${change.description}`);
  }
  if (breaking.length > 0) process.exit(1);
  console.log("compatible: no breaking changes");
} else if (command === "introspection-query" && args.length === 0) {
  process.stdout.write(
    getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    }),
  );
} else {
  console.error("usage: check.mjs compat CONTRACT.graphql SERVED.graphql | check.mjs introspection-query");
  process.exit(2);
}
