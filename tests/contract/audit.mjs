// Runs graphql-http's GraphQL-over-HTTP audit (auditServer, the working draft's own audit
// suite) against a server, with `Authorization: Bearer TOKEN` on every request:
//   node audit.mjs URL TOKEN
// Prints one line per audit: its status (ok, notice, warn, error), id, name and, unless ok,
// why; then `audit: N ok, N notices, N warnings, N errors`. Exits 0 only when no audit is an
// error (a MUST) or a warning (a SHOULD); notices (MAYs) are reported, not failed.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node audit.mjs URL TOKEN");
  process.exit(2);
}

const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  const why = result.status === "ok" ? "" : `: ${result.reason}`;
  console.log(`${result.status} ${result.id} ${result.name}${why}`);
}
console.log(
  `audit: ${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`,
);
process.exit(counts.warn + counts.error === 0 ? 0 : 1);
