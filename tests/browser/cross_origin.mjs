// An app on another origin (a page on a second loopback port) places an order with fetch and
// opens a graphql-transport-ws WebSocket: against a server that lists its origin in
// ORDERHUB_CORS_ORIGINS both work; against one that does not, the browser blocks the fetch
// (the preflight has no Access-Control-Allow-Origin) and the server refuses the WebSocket.

import { check, env, open, run } from "./lib.mjs";

await run(async (context) => {
  const app = await open(context, env("PAGE"));
  const origin = new URL(env("PAGE")).origin;
  for (const server of ["ALLOWED", "REFUSED"]) {
    check(new URL(env(`${server}_BASE`)).origin !== origin, "the app is on another origin");
    const call = { base: env(`${server}_BASE`), token: env(`${server}_TOKEN`), input: JSON.parse(env(`${server}_INPUT`)) };
    const placed = await app.evaluate(({ base, token, input }) => placeOrder(base, token, input), call);
    const socket = await app.evaluate(({ base, token }) => connect(base, token), call);
    console.log(`${server}: placeOrder ${JSON.stringify(placed)}, WebSocket ${socket}`);
    if (server === "ALLOWED") {
      check(placed.order?.number === 1, `the listed origin places an order: ${JSON.stringify(placed)}`);
      check(socket === "acknowledged", `the listed origin's WebSocket is accepted: ${socket}`);
    } else {
      check(/TypeError/.test(placed.error ?? ""), `the browser blocks the fetch: ${JSON.stringify(placed)}`);
      check(socket !== "acknowledged", `the WebSocket is refused: ${socket}`);
    }
  }
  app.checkClean();
});
