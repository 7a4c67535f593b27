// A guest on a phone, its browser in English, orders a ramen with firm noodles and two toppings
// (a third is sold out, a fourth is past the group's maximum), twice, and a beer, to take away.
// The kitchen ticket shows the options; the order's taxes on the customer page are those
// computed by hand. The kitchen's menu follows option availability through MenuItemChanged.
// Then the page in Japanese. Screenshots of both pages.

import { api, check, env, eventually, open, run, screenshot } from "./lib.mjs";

const LANDSCAPE = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

await run(async (context) => {
  const base = env("BASE");
  const { restaurant } = await api(env("STAFF_TOKEN"), `query($r: ID!) { restaurant(id: $r) {
    menu { id name price { amount } optionGroups { options { id name priceDelta { amount } } } } } }`,
  { r: env("RESTAURANT") });
  const ramen = restaurant.menu.find((item) => item.name === "醤油ラーメン");
  const beer = restaurant.menu.find((item) => item.name === "Beer");
  const option = (name) => ramen.optionGroups.flatMap((g) => g.options).find((o) => o.name === name);
  const [egg, chashu, nori, menma] = ["味玉", "チャーシュー", "のり", "メンマ"].map(option);
  const setOption = (o, available) => api(env("STAFF_TOKEN"),
    "mutation($o: ID!, $a: Boolean!) { setOptionAvailability(optionId: $o, available: $a) { version } }",
    { o: o.id, a: available });

  // The kitchen's menu follows option availability: the first change shows the events flow,
  // the second can only reach the board as an event.
  const kitchen = await open(context, `${base}/kitchen#token=${env("STAFF_TOKEN")}`, LANDSCAPE);
  await kitchen.waitForSelector('#connection[data-state="live"]');
  const applied = () => kitchen.$eval("#board", (b) => Number(b.dataset.applied ?? 0));
  const chip = (o, state) => kitchen.locator(`#menu-items [data-option-id="${o.id}"].${state}`);
  await setOption(nori, false);
  await eventually("the board applies the first change", async () => await applied() === 1);
  await setOption(nori, true);
  await eventually("nori is back on the kitchen's menu", async () =>
    await applied() === 2 && await chip(nori, "available").count() === 1);
  await setOption(nori, false);
  await eventually("nori is sold out on the kitchen's menu", async () =>
    await applied() === 3 && await chip(nori, "sold-out").count() === 1);

  // The menu in the browser's language, with allergens and prices as the restaurant shows them.
  const customer = await open(context, `${base}/order#token=${env("CUSTOMER_TOKEN")}`, PHONE);
  await customer.waitForSelector("#menu .dish");
  check(await customer.getAttribute("html", "lang") === "en", "the page speaks English");
  check(await customer.inputValue("#locale") === "en", "the menu starts in en, for en-US");
  const locales = await customer.$$eval("#locale option", (o) => o.map((e) => e.value));
  check(JSON.stringify(locales) === JSON.stringify(["ja", "en", "zh-Hans"]),
    `the restaurant's own language and its translations: ${locales}`);
  const dish = customer.locator(`#menu .dish[data-id="${ramen.id}"]`);
  const dishText = await dish.innerText();
  for (const expected of ["Shoyu ramen", "Chicken and soy", "¥950", "tax incl.", "Egg", "Wheat", "Soy"]) {
    check(dishText.includes(expected), `the dish shows ${expected}: ${dishText}`);
  }
  check(await dish.locator('.allergen[data-allergen="EGG"] .icon').innerText() === "🥚", "an icon beside the word");

  // The options: nothing chosen yet, so the rule is shown and the button waits.
  await customer.click('#menu [aria-label="Add Shoyu ramen"]');
  const dialog = customer.locator("#options-dialog");
  await dialog.waitFor();
  check(await customer.isDisabled("#chooser-add"), "the add button waits for the noodles");
  const rule = await customer.innerText("#chooser-rule");
  check(rule.includes("Noodles: Choose 1"), `the rule is shown: ${rule}`);
  check(await dialog.locator('input[type="radio"]').count() === 2, "one of two: radio buttons");
  check(await dialog.locator('input[type="checkbox"]').count() === 4, "up to two of four: checkboxes");
  check(await dialog.locator(`input[value="${nori.id}"]`).isDisabled(), "sold-out nori cannot be chosen");
  await dialog.getByLabel("Firm").check();
  await dialog.getByLabel("Egg").check();
  await dialog.getByLabel("Chashu").check();
  check(await dialog.locator(`input[value="${menma.id}"]`).isDisabled(), "a third topping is past the maximum");
  check(!(await customer.isDisabled("#chooser-add")), "the rules are met");
  const unit = ramen.price.amount + egg.priceDelta.amount + chashu.priceDelta.amount;
  const yen = (amount) => `¥${amount.toLocaleString("en-US")}`;
  const button = await customer.innerText("#chooser-add");
  check(button.includes(yen(unit)), `the price with the options: ${button}`);
  await screenshot(customer, "options-chooser", PHONE);
  await customer.click("#chooser-add");
  await dialog.waitFor({ state: "hidden" });

  // The cart line: its options and its price with their deltas; two of them; a beer; takeout.
  const line = customer.locator(`#cart-lines li[data-key^="${ramen.id}|"]`);
  const lineText = await line.innerText();
  for (const expected of ["Shoyu ramen", "Firm", "Egg", "Chashu", yen(unit)]) {
    check(lineText.includes(expected), `the cart line shows ${expected}: ${lineText}`);
  }
  await line.locator('[aria-label="One more Shoyu ramen"]').click();
  await eventually("two ramen", async () => (await line.innerText()).includes(yen(2 * unit)));
  await customer.click('#menu [aria-label="Add Beer"]');
  await customer.check("#takeout");
  const total = await customer.textContent("#total");
  check(total === yen(2 * unit + beer.price.amount), `the cart's total: ${total}`);
  await customer.click("#place");

  // The kitchen sees what to make, and that it is to take away.
  const ticket = kitchen.locator('.column[data-status="PLACED"] .ticket');
  await ticket.waitFor({ timeout: 5000 });
  const options = ticket.locator(".items .options").first();
  const optionsText = await options.innerText();
  for (const expected of ["かため", "味玉", "チャーシュー"]) {
    check(optionsText.includes(expected), `the ticket shows ${expected}: ${optionsText}`);
  }
  check(Number(await options.evaluate((e) => getComputedStyle(e).fontWeight)) >= 700, "the options are bold");
  check(await options.evaluate((e) => getComputedStyle(e).display) === "block", "on their own line");
  check((await ticket.locator(".mode").innerText()).toLowerCase() === "takeout", "the ticket says takeout");

  // The guest's taxes, by hand: prices include tax, rounded down once per rate. Food to take
  // away is 8 %: 2 × (950 + 150 + 250) = 2,700, of which 2,700 × 8/108 = 200; alcohol is 10 %:
  // 600 × 10/110 = 54.54…, 54.
  const food = 2 * unit;
  const card = customer.locator('.my-order[data-status="PLACED"]');
  await card.waitFor();
  const expected = [
    `8 % on ${yen(food)}: ${yen(Math.floor((food * 800) / 10800))}`,
    `10 % on ${yen(beer.price.amount)}: ${yen(Math.floor((beer.price.amount * 1000) / 11000))}`,
  ];
  check(expected[0] === "8 % on ¥2,700: ¥200" && expected[1] === "10 % on ¥600: ¥54", `by hand: ${expected}`);
  const shown = await card.locator(".tax-line").allInnerTexts();
  check(JSON.stringify(shown) === JSON.stringify(expected), `the taxes shown: ${shown}`);
  const cardText = await card.innerText();
  for (const text of ["Takeout", "2× Shoyu ramen", "Firm · Egg · Chashu", "Tax included", `Total ${yen(food + 600)}`]) {
    check(cardText.includes(text), `the order shows ${text}: ${cardText}`);
  }

  await screenshot(kitchen, "options-kitchen", LANDSCAPE);
  await card.scrollIntoViewIfNeeded();
  await screenshot(customer, "options-customer", PHONE);

  // A switch to Japanese: the menu's words, the page's own and the allergens follow.
  await customer.selectOption("#locale", "ja");
  await eventually("the menu in Japanese", async () => (await dish.innerText()).includes("醤油ラーメン"));
  const japanese = await dish.innerText();
  for (const text of ["鶏ガラ醤油", "卵", "小麦", "税込"]) check(japanese.includes(text), `${text}: ${japanese}`);
  check(await customer.getAttribute("html", "lang") === "ja", "the page speaks Japanese");
  check(await customer.innerText("#place") === "注文する", "the page's own words in Japanese");
  const taxJa = await card.locator(".tax-line").first().innerText();
  check(taxJa.startsWith("8%対象"), `the tax line in Japanese: ${taxJa}`);
  kitchen.checkClean();
  customer.checkClean();
}, { locale: "en-US" });
