// N stock graphql-ws clients subscribe at the same moment, as screens that start together do,
// with a named operation and the restaurant in `variables` (and no operationName, as the
// client sends it):
//   node concurrent.mjs WS_URL TOKEN RESTAURANT_ID N
// It prints "subscribed" once every client's connection is acknowledged, then "CLIENT SEQ"
// for each event a client receives. It runs until it is killed (or for 60 s).
import WebSocket from "ws";
import { createClient } from "graphql-ws";

const [url, token, restaurantId, n] = process.argv.slice(2);
const query = `subscription Lg($restaurantId: ID!) {
  restaurantEvents(restaurantId: $restaurantId) { seq ... on OrderPlaced { order { note } } }
}`;
const fail = (why) => {
  console.error(`error: ${JSON.stringify(why)}`);
  process.exit(1);
};
setTimeout(() => process.exit(0), 60_000).unref();
let connected = 0;
const clients = Array.from({ length: Number(n) }, () =>
  createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: false,
    connectionParams: { authorization: `Bearer ${token}` },
    on: {
      connected: () => {
        if (++connected === Number(n)) console.log("subscribed");
      },
    },
  }),
);
// One tick: every subscribe is sent as soon as its connection is acknowledged.
clients.forEach((client, i) =>
  client.subscribe(
    { query, variables: { restaurantId } },
    {
      next: (result) => {
        if (result.errors) fail(result.errors);
        console.log(`${i} ${result.data.restaurantEvents.seq}`);
      },
      error: fail,
      complete: () => {},
    },
  ),
);
