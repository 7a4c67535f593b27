// A guest orders on the customer page; the kitchen sees it within a second, moves it twice, and
// the guest sees PREPARING. Then screenshots of both pages, landscape and portrait.

import { api, check, env, eventually, open, run, screenshot, tickets } from "./lib.mjs";

const LANDSCAPE = { width: 1280, height: 800 };
const PORTRAIT = { width: 800, height: 1280 };

await run(async (context) => {
  const base = env("BASE");
  const kitchen = await open(context, `${base}/kitchen#token=${env("STAFF_TOKEN")}`, LANDSCAPE);
  await kitchen.waitForSelector('#connection[data-state="live"]');
  const customer = await open(context, `${base}/order#token=${env("CUSTOMER_TOKEN")}`, PORTRAIT);
  await customer.waitForSelector("#menu .dish");
  check(await customer.locator(".dish.sold-out").count() === 1, "the sold-out item is greyed");
  check(await customer.locator('.dish.sold-out button').count() === 0, "a sold-out item cannot be added");

  await customer.click('#menu [aria-label="Add Ramen"]');
  await customer.click('#menu [aria-label="One more Ramen"]');
  await customer.click('#menu [aria-label="Add Gyoza"]');
  await customer.fill('[aria-label="Note for Gyoza"]', "no garlic");
  await customer.fill("#order-note", "window seat, please");
  const total = await customer.textContent("#total");
  check(total.includes("2,250"), `the cart's total is 2 × 900 + 450 yen: ${total}`);

  const clicked = Date.now();
  await customer.click("#place");
  const ticket = kitchen.locator('.column[data-status="PLACED"] .ticket');
  await ticket.waitFor({ timeout: 5000 });
  const shownAfter = Date.now() - clicked;
  check(await ticket.evaluate((e) => e.classList.contains("fresh")), "a new ticket flashes");
  console.log(`the order was on the kitchen display ${shownAfter} ms after the tap`);
  check(shownAfter <= 1000, `the order reached the kitchen display in ${shownAfter} ms, not within 1 s`);
  const text = await ticket.innerText();
  for (const expected of ["#1", "T1", "2×", "Ramen", "Gyoza", "no garlic", "window seat"]) {
    check(text.includes(expected), `the ticket shows ${expected}: ${text}`);
  }
  const card = customer.locator('.my-order[data-status="PLACED"]');
  await card.waitFor();
  check((await card.innerText()).includes("Order #1"), "the guest sees the ticket number");
  // Its time is on the restaurant's clock (a yen restaurant: Asia/Tokyo, UTC+9, no daylight
  // saving), whatever the browser's own zone.
  const placed = card.locator("time.placed");
  const at = new Date(await placed.getAttribute("datetime"));
  const pad = (n) => String(n).padStart(2, "0");
  const tokyo = `${pad((at.getUTCHours() + 9) % 24)}:${pad(at.getUTCMinutes())}`;
  const shown = await placed.innerText();
  check(shown.includes(tokyo), `the order's time is Tokyo's ${tokyo}: ${shown}`);

  await ticket.click();
  await kitchen.locator('.column[data-status="ACCEPTED"] .ticket[data-number="1"]').waitFor();
  await kitchen.locator('.column[data-status="ACCEPTED"] .ticket[data-number="1"]').click();
  await kitchen.locator('.column[data-status="PREPARING"] .ticket[data-number="1"]').waitFor();
  await customer.locator('.my-order[data-status="PREPARING"]').waitFor({ timeout: 5000 });
  console.log("the guest sees PREPARING");

  // A fuller board for the screenshots: more orders through the API, one of them ready, a
  // staff call, and a cart in progress on the customer page.
  const { restaurant } = await api(env("STAFF_TOKEN"),
    "query($r: ID!) { restaurant(id: $r) { menu { id } tables { id } } }", { r: env("RESTAURANT") });
  const place = (key, lines, note = null) => api(env("CUSTOMER_TOKEN"),
    "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { id } }",
    { i: { restaurantId: env("RESTAURANT"), tableId: restaurant.tables[0].id, idempotencyKey: key, note,
      items: lines.map(([i, quantity, note]) => ({ menuItemId: restaurant.menu[i].id, quantity, note })) } });
  const advance = (id, to) => api(env("STAFF_TOKEN"),
    "mutation($o: ID!, $to: OrderStatus!) { advanceOrder(orderId: $o, to: $to) { id } }", { o: id, to });
  const ready = (await place("screens-2", [[1, 3, null]])).placeOrder.id;
  for (const to of ["ACCEPTED", "PREPARING", "READY"]) await advance(ready, to);
  const accepted = (await place("screens-3", [[0, 1, "extra noodles"], [1, 1, null]])).placeOrder.id;
  await advance(accepted, "ACCEPTED");
  await place("screens-4", [[0, 2, null]], "allergic to sesame");
  const mistaken = (await place("screens-5", [[1, 1, null]])).placeOrder.id;
  await eventually("the kitchen shows the five orders", async () => (await tickets(kitchen)).length === 5);

  // Moved on another screen just before this one's tap: CONFLICT, and the ticket is refreshed.
  let raced = false;
  await kitchen.route("**/graphql", async (route) => {
    if (!raced && route.request().postData()?.includes("advanceOrder")) {
      raced = true;
      await advance(mistaken, "ACCEPTED");
    }
    return route.continue();
  });
  await kitchen.locator(`.ticket[data-id="${mistaken}"]`).click();
  await kitchen.locator("#problem", { hasText: "changed on another screen" }).waitFor();
  await kitchen.locator(`.column[data-status="ACCEPTED"] .ticket[data-id="${mistaken}"][data-version="2"]`).waitFor();
  await kitchen.unroute("**/graphql");
  await kitchen.click("#problem");

  // Cancel, with a reason, through the ticket's dialog.
  await kitchen.locator(`.ticket[data-id="${mistaken}"] .cancel`).click();
  await kitchen.locator('#cancel-dialog [data-reason="Duplicate order"]').click();
  await kitchen.click("#cancel-confirm");
  await eventually("the cancelled order leaves the board", async () => (await tickets(kitchen)).length === 4);
  const { order } = await api(env("STAFF_TOKEN"), "query($o: ID!) { order(id: $o) { status } }", { o: mistaken });
  check(order.status === "CANCELLED", `the order is cancelled: ${order.status}`);

  await customer.click("#call-staff");
  await kitchen.locator(".call").waitFor({ timeout: 5000 });
  check((await kitchen.locator(".call").innerText()).includes("T1"), "the staff call names the table");
  await customer.click('#menu [aria-label="Add Gyoza"]');

  await screenshot(kitchen, "kitchen", LANDSCAPE);
  await screenshot(kitchen, "kitchen", PORTRAIT);
  await screenshot(customer, "customer", LANDSCAPE);
  await screenshot(customer, "customer", PORTRAIT);
  kitchen.checkClean();
  customer.checkClean();
});
