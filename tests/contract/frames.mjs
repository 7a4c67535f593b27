// Speaks graphql-transport-ws on a plain socket and checks every message the server sends with
// graphql-ws's own validateMessage, the check its client applies to all it receives:
//   node frames.mjs WS_URL TOKEN MESSAGE...
// Sends connection_init with the token, then each MESSAGE (JSON text), then a ping of its own.
// Prints "valid: N messages" and exits 0 once that ping is answered and every subscribe sent
// has ended (complete or error); on a message the reference client would reject, or a close,
// prints why and exits 1 (also after 10 s).
import WebSocket from "ws";
import { validateMessage, GRAPHQL_TRANSPORT_WS_PROTOCOL } from "graphql-ws";

const [url, token, ...messages] = process.argv.slice(2);
const fail = (why) => {
  console.log(`error: ${why}`);
  process.exit(1);
};
setTimeout(() => fail("timeout"), 10_000).unref();

const pending = new Set(
  messages.map((text) => JSON.parse(text)).filter((m) => m.type === "subscribe").map((m) => m.id),
);
let received = 0;
let answered = false;
const socket = new WebSocket(url, GRAPHQL_TRANSPORT_WS_PROTOCOL);
socket.on("open", () => {
  socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
});
socket.on("message", (data) => {
  let message;
  try {
    message = validateMessage(JSON.parse(String(data)));
  } catch (error) {
    fail(`${String(data)}: ${error.message}`);
  }
  received += 1;
  if (message.type === "connection_ack") {
    for (const text of messages) socket.send(text);
    socket.send(JSON.stringify({ type: "ping", payload: { last: true } }));
  } else if (message.type === "ping") {
    socket.send(JSON.stringify({ type: "pong" }));
  } else if (message.type === "pong" && message.payload?.last) {
    answered = true;
  } else if (message.type === "complete" || message.type === "error") {
    pending.delete(message.id);
  }
  if (answered && pending.size === 0) {
    console.log(`valid: ${received} messages`);
    process.exit(0);
  }
});
socket.on("close", (code, reason) => fail(`closed ${code} ${reason}`));
