// The kitchen display loses its server (the Rust test restarts orderhub on the same port), then
// its network, while orders are placed and moved through the API: each time, once back, the
// board shows exactly the open orders, each once, and has applied every event once.

import { boardIsExact, check, env, eventually, open, run, sleep, step, tickets } from "./lib.mjs";

/**
 * The Rust test numbers events from the fixture's last one (its menu items are events too):
 * event `lastSeq` is `offset + lastSeq`, and the board, opened after the fixture, has applied
 * `lastSeq` of them.
 */
let offset = 0;

async function appliedEveryEventOnce(kitchen, lastSeq) {
  const { applied, seq } = await kitchen.$eval("#board", (b) => ({
    applied: Number(b.dataset.applied ?? 0), seq: Number(b.dataset.lastSeq),
  }));
  return seq === offset + lastSeq && applied === lastSeq;
}

await run(async (context) => {
  const kitchen = await open(context, `${env("BASE")}/kitchen#token=${env("STAFF_TOKEN")}`);
  await kitchen.waitForSelector('#connection[data-state="live"]');
  await kitchen.waitForSelector("#board[data-last-seq]", { state: "attached" });
  offset = await kitchen.$eval("#board", (b) => Number(b.dataset.lastSeq));

  let lastSeq = Number((await step("kitchen-ready")).split(" ")[1]);
  await eventually("the board shows the orders placed while connected", async () =>
    await boardIsExact(kitchen) && await appliedEveryEventOnce(kitchen, lastSeq));
  console.log(`connected: ${(await tickets(kitchen)).length} tickets, seq ${lastSeq}`);

  await step("caught-up");
  await eventually("the indicator shows the lost connection", async () =>
    await kitchen.$eval("#connection", (e) => e.dataset.state !== "live"));

  // The browser stays offline until every change is made, so the board can only learn of them
  // by resuming with `after`.
  await context.setOffline(true);
  lastSeq = Number((await step("offline-seen")).split(" ")[1]);
  await sleep(1000);
  check(await kitchen.$eval("#connection", (e) => e.dataset.state !== "live"), "the board stayed offline");
  check((await tickets(kitchen)).length === 3, "the board has not seen the changes yet");
  await context.setOffline(false);
  await kitchen.waitForSelector('#connection[data-state="live"]', { timeout: 20000 });
  await eventually("the board catches up with every order, none twice", async () =>
    await boardIsExact(kitchen) && await appliedEveryEventOnce(kitchen, lastSeq), 15000);
  console.log(`reconnected: ${(await tickets(kitchen)).length} tickets, seq ${lastSeq}`);

  // The network goes away without closing anything (the server stays up): the page notices the
  // silence, and once the network is back it catches up with what happened meanwhile.
  await context.setOffline(true);
  lastSeq = Number((await step("link-down")).split(" ")[1]);
  await eventually("the indicator shows the dead connection", async () =>
    await kitchen.$eval("#connection", (e) => e.dataset.state !== "live"), 20000);
  await context.setOffline(false);
  await kitchen.waitForSelector('#connection[data-state="live"]', { timeout: 20000 });
  await eventually("the board catches up after the network came back", async () =>
    await boardIsExact(kitchen) && await appliedEveryEventOnce(kitchen, lastSeq), 15000);
  console.log(`back online: ${(await tickets(kitchen)).length} tickets, seq ${lastSeq}`);
  kitchen.checkClean();
});
