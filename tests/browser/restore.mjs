// The kitchen display outlives its database: the Rust test restores the store from a backup
// taken before the board's last events, so the board's seq is past the newest event. The server
// answers its resume with HISTORY_GONE; the board starts over from the store, shows the orders
// placed since, and goes on live.

import { boardIsExact, check, env, eventually, open, run, step, tickets } from "./lib.mjs";

/**
 * The Rust test numbers events from the fixture's last one (its menu items are events too):
 * its seq N is the board's `offset + N`.
 */
let offset = 0;
const lastSeq = async (kitchen) => await kitchen.$eval("#board", (b) => Number(b.dataset.lastSeq)) - offset;

await run(async (context) => {
  const kitchen = await open(context, `${env("BASE")}/kitchen#token=${env("STAFF_TOKEN")}`);
  await kitchen.waitForSelector('#connection[data-state="live"]');
  // Opened after the fixture and the one order of the backup.
  await kitchen.waitForSelector("#board[data-last-seq]", { state: "attached" });
  offset = await lastSeq(kitchen) - 1;

  const before = Number((await step("kitchen-ready")).split(" ")[1]);
  await eventually("the board shows the orders placed while connected", async () =>
    await boardIsExact(kitchen) && await lastSeq(kitchen) === before);
  console.log(`connected: ${(await tickets(kitchen)).length} tickets, seq ${before}`);

  await step("caught-up");
  await eventually("the indicator shows the lost connection", async () =>
    await kitchen.$eval("#connection", (e) => e.dataset.state !== "live"));

  // Back on a store restored from a backup, with orders placed since: fewer events than the
  // board has seen, so its `after` is past the newest event.
  const placed = (await step("restored")).split(" ")[1].split(",");
  await kitchen.waitForSelector('#connection[data-state="live"]', { timeout: 20000 });
  await eventually("the board shows the restored store's open orders and those placed since",
    async () => await boardIsExact(kitchen), 15000);
  const shown = (await tickets(kitchen)).map((t) => t.id);
  for (const id of placed) check(shown.includes(id), `order ${id} is on the board`);
  console.log(`restored: ${shown.length} tickets`);

  // And it is live again, in seq order from the restored store's seqs on.
  const [next, seq] = (await step("live")).split(" ").slice(1);
  await eventually("the next order arrives live", async () =>
    (await tickets(kitchen)).some((t) => t.id === next) && await boardIsExact(kitchen)
      && await lastSeq(kitchen) === Number(seq));
  kitchen.checkClean();
});
