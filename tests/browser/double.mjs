// One cart, one order: a double tap on "Place order", and a retry after the server's answer
// was lost, each place the order exactly once. And a dish that sells out in the cart.

import { api, check, env, eventually, open, openOrders, run, sleep } from "./lib.mjs";

await run(async (context) => {
  const customer = await open(context, `${env("BASE")}/order#token=${env("CUSTOMER_TOKEN")}`);
  await customer.waitForSelector("#menu .dish");

  await customer.click('#menu [aria-label="Add Ramen"]');
  await customer.dblclick("#place");
  await customer.locator(".my-order").waitFor();
  await sleep(1000);
  check((await openOrders()).length === 1, "a double tap placed exactly one order");
  check(await customer.locator(".my-order").count() === 1, "the guest sees one order");

  // The first answer is lost on its way back: the server placed the order, the page saw a
  // network error and retries with the same key.
  const keys = [];
  await customer.route("**/graphql", async (route) => {
    const body = route.request().postDataJSON();
    if (!body?.query?.includes("placeOrder")) return route.continue();
    keys.push(body.variables.i.idempotencyKey);
    if (keys.length === 1) {
      await route.fetch();
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  await customer.click('#menu [aria-label="Add Gyoza"]');
  await customer.click("#place");
  await eventually("the guest sees the second order", async () =>
    await customer.locator(".my-order").count() === 2);
  check(keys.length === 2 && keys[0] === keys[1], `the retry sent the same key: ${keys}`);
  check((await openOrders()).length === 2, "the lost answer did not place a second order");
  await customer.unroute("**/graphql");

  // A dish sells out while it is in the cart: the guest is told in plain words, nothing is placed.
  await customer.click('#menu [aria-label="Add Gyoza"]');
  const { restaurant } = await api(env("STAFF_TOKEN"),
    "query($r: ID!) { restaurant(id: $r) { menu { id name } } }", { r: env("RESTAURANT") });
  const gyoza = restaurant.menu.find((item) => item.name === "Gyoza").id;
  await api(env("STAFF_TOKEN"),
    "mutation($m: ID!) { setMenuItemAvailability(menuItemId: $m, available: false) { id } }", { m: gyoza });
  await customer.click("#place");
  await customer.locator("#cart-problem", { hasText: "Gyoza just sold out" }).waitFor();
  check(await customer.locator(`.dish.sold-out[data-id="${gyoza}"]`).count() === 1, "Gyoza is greyed now");
  check((await openOrders()).length === 2, "nothing was placed");
  customer.checkClean();
});
