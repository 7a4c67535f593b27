// Subscribes to restaurantEvents with an off-the-shelf client and prints each event's seq:
//   node subscribe.mjs graphql-transport-ws|graphql-ws WS_URL TOKEN RESTAURANT_ID COUNT
// It prints "subscribed" once the server acknowledged the connection, then one seq per line,
// and exits 0 after COUNT events (1 on an error, or after 30 s).
import WebSocket from "ws";
import { createClient } from "graphql-ws";
import pkg from "subscriptions-transport-ws";
const { SubscriptionClient } = pkg;

const [protocol, url, token, restaurantId, count] = process.argv.slice(2);
const query = `subscription($r: ID!) { restaurantEvents(restaurantId: $r) { seq __typename } }`;
const variables = { r: restaurantId };
let seen = 0;
const fail = (why) => {
  console.error(`error: ${JSON.stringify(why)}`);
  process.exit(1);
};
setTimeout(() => fail("timeout"), 30_000).unref();
const onEvent = (result) => {
  if (result.errors) fail(result.errors);
  console.log(result.data.restaurantEvents.seq);
  if (++seen === Number(count)) process.exit(0);
};

if (protocol === "graphql-transport-ws") {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    on: { connected: () => console.log("subscribed") },
  });
  client.subscribe({ query, variables }, { next: onEvent, error: fail, complete: () => {} });
} else if (protocol === "graphql-ws") {
  const client = new SubscriptionClient(
    url,
    { connectionParams: { authorization: `Bearer ${token}` }, reconnect: false },
    WebSocket,
  );
  client.onConnected(() => console.log("subscribed"));
  client.request({ query, variables }).subscribe({ next: onEvent, error: fail });
} else {
  fail(`unknown protocol ${protocol}`);
}
