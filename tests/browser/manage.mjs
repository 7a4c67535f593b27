// The manager screen: a manager creates a menu item with option groups (a refused one first,
// shown with its code), edits it, meets a CONFLICT after an edit made elsewhere, moves and
// archives items, sets a tax rate and adds a table; then opens the QR sheet, decodes every QR
// code on it from a screenshot, checks each is its table's customer link, and orders from one.

import { PNG } from "pngjs";
import jsQR from "jsqr";
import { api, check, env, eventually, open, run, screenshot } from "./lib.mjs";

const LANDSCAPE = { width: 1280, height: 800 };
const PORTRAIT = { width: 800, height: 1280 };

const ITEMS = `query($r: ID!) { restaurant(id: $r) {
  pricesIncludeTax taxRules { category serviceMode basisPoints } tables { id name }
  menu { id name version price { amount } allergens taxCategory prepSeconds
    translations { locale name } optionGroups { name minSelected maxSelected options { name priceDelta { amount } } } }
} }`;

/** The claims of a JWT, unverified. */
function claims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

await run(async (context) => {
  const base = env("BASE");
  const manager = env("MANAGER_TOKEN");
  const restaurantId = env("RESTAURANT");
  const state = async () => (await api(manager, ITEMS, { r: restaurantId })).restaurant;
  const rows = (page) => page.$$eval("#menu-list .menu-row .name", (names) => names.map((n) => n.textContent));

  const page = await open(context, `${base}/manage#token=${manager}`, LANDSCAPE);
  await page.waitForSelector("#menu-list .menu-row");
  check(JSON.stringify(await rows(page)) === JSON.stringify(["Ramen", "Gyoza", "Special"]),
    `the menu in display order: ${await rows(page)}`);

  // A new item, with an option group the server refuses (min above max): the code is shown.
  await page.click("#new-item");
  await page.fill("#item-name", "Tonkotsu");
  await page.fill("#item-price", "1100");
  await page.fill("#item-description", "Pork bone broth");
  await page.selectOption("#item-tax-category", "FOOD");
  await page.fill("#item-prep", "420");
  await page.check('#item-allergens input[value="WHEAT"]');
  await page.check('#item-allergens input[value="EGG"]');
  await page.click("#add-translation");
  await page.fill(".translation .locale", "ja");
  await page.fill(".translation .t-name", "豚骨ラーメン");
  await page.click("#add-group");
  const size = page.locator("#item-groups .group").nth(0);
  await size.locator(".g-name").fill("Size");
  await size.locator(".g-min").fill("2");
  await size.locator(".g-max").fill("1");
  await size.locator(".add-option").click();
  await size.locator(".add-option").click();
  await size.locator(".o-name").nth(0).fill("Regular");
  await size.locator(".o-name").nth(1).fill("Large");
  await size.locator(".o-delta").nth(1).fill("200");
  await page.click("#item-save");
  await page.waitForSelector("#item-problem:not([hidden])");
  const refused = await page.textContent("#item-problem");
  check(refused.startsWith("BAD_USER_INPUT"), `the error shows its code: ${refused}`);
  await size.locator(".g-min").fill("1");
  await page.click("#add-group");
  const toppings = page.locator("#item-groups .group").nth(1);
  await toppings.locator(".g-name").fill("Toppings");
  await toppings.locator(".g-min").fill("0");
  await toppings.locator(".g-max").fill("2");
  await toppings.locator(".add-option").click();
  await toppings.locator(".o-name").fill("Egg");
  await toppings.locator(".o-delta").fill("150");
  await page.click("#item-save");
  await page.waitForSelector('#menu-list .menu-row:has-text("Tonkotsu")');
  let tonkotsu = (await state()).menu.find((item) => item.name === "Tonkotsu");
  check(tonkotsu, "the item was created");
  check(tonkotsu.price.amount === 1100 && tonkotsu.prepSeconds === 420 && tonkotsu.taxCategory === "FOOD",
    `price, preparation and tax category: ${JSON.stringify(tonkotsu)}`);
  check(JSON.stringify(tonkotsu.allergens) === JSON.stringify(["EGG", "WHEAT"]), `allergens: ${tonkotsu.allergens}`);
  check(tonkotsu.translations[0]?.name === "豚骨ラーメン", `translation: ${JSON.stringify(tonkotsu.translations)}`);
  const groups = tonkotsu.optionGroups.map((g) =>
    `${g.name} ${g.minSelected}-${g.maxSelected}: ${g.options.map((o) => `${o.name} +${o.priceDelta.amount}`).join(", ")}`);
  check(JSON.stringify(groups) === JSON.stringify(["Size 1-1: Regular +0, Large +200", "Toppings 0-2: Egg +150"]),
    `option groups: ${JSON.stringify(groups)}`);
  console.log("created an item with two option groups");

  // Edited: a new price and one more size.
  await page.click('[aria-label="Edit Tonkotsu"]');
  await page.fill("#item-price", "1150");
  await size.locator(".add-option").click();
  await size.locator(".o-name").nth(2).fill("Extra large");
  await size.locator(".o-delta").nth(2).fill("350");
  await page.click("#item-save");
  await page.waitForSelector("#item-dialog", { state: "hidden" });
  tonkotsu = (await state()).menu.find((item) => item.name === "Tonkotsu");
  check(tonkotsu.price.amount === 1150 && tonkotsu.version === 2, `edited: ${JSON.stringify(tonkotsu)}`);
  check(tonkotsu.optionGroups[0].options.map((o) => o.name).join() === "Regular,Large,Extra large",
    `a third size: ${JSON.stringify(tonkotsu.optionGroups[0])}`);
  console.log("edited it");

  // Changed elsewhere: the screen's copy is out of date, so its move is refused and it reloads.
  await api(manager, `mutation($m: ID!) { updateMenuItem(menuItemId: $m, input: {prepSeconds: 480}) { version } }`,
    { m: tonkotsu.id });
  await page.click('[aria-label="Move Tonkotsu up"]');
  await page.waitForSelector("#problem:not([hidden])");
  const conflict = await page.textContent("#problem");
  check(/changed elsewhere, reloaded/i.test(conflict) && conflict.includes("CONFLICT"), `the conflict is clear: ${conflict}`);
  await page.click('[aria-label="Move Tonkotsu up"]');
  await page.waitForSelector("#notice:not([hidden])");
  check(JSON.stringify(await rows(page)) === JSON.stringify(["Ramen", "Gyoza", "Tonkotsu", "Special"]),
    `moved up after the reload: ${await rows(page)}`);
  page.once("dialog", (dialog) => dialog.accept());
  await page.click('[aria-label="Archive Special"]');
  await eventually("Special is archived", async () => !(await rows(page)).includes("Special"));
  const names = (await state()).menu.map((item) => item.name).join();
  check(names === "Ramen,Gyoza,Tonkotsu", `the menu as the API has it: ${names}`);
  console.log("a conflict was shown and the item reloaded; moved and archived");

  // Tax: food to take away at 7.5 %.
  await page.click('#tabs [data-view="tax"]');
  await page.fill('[aria-label="Food takeout %"]', "7.5");
  await page.click("#tax-save");
  await page.waitForSelector('#notice:has-text("Tax settings saved")');
  const rules = (await state()).taxRules;
  const takeout = rules.find((r) => r.category === "FOOD" && r.serviceMode === "TAKEOUT");
  check(takeout?.basisPoints === 750, `7.5 % is sent as 750 basis points: ${JSON.stringify(rules)}`);
  check(rules.find((r) => r.category === "FOOD" && r.serviceMode === "EAT_IN")?.basisPoints === 1000,
    "the other rates are kept");
  check(await page.inputValue('[aria-label="Food takeout %"]') === "7.5", "shown in percent");

  // A table.
  await page.click('#tabs [data-view="tables"]');
  await page.fill("#table-name", "Terrace 1");
  await page.click('#table-form button[type="submit"]');
  await page.waitForSelector('#table-list li:has-text("Terrace 1")');
  const tables = (await state()).tables;
  check(tables.map((t) => t.name).join() === "T1,T2,Terrace 1", `tables: ${JSON.stringify(tables)}`);

  await page.click('#tabs [data-view="menu"]');
  await screenshot(page, "manager", LANDSCAPE);
  await screenshot(page, "manager", PORTRAIT);

  // The QR sheet: a card per table, each QR code its table's customer link.
  await page.setViewportSize(LANDSCAPE);
  await page.click('#tabs [data-view="qr"]');
  await eventually("a card per table", async () => await page.locator(".qr-card img").count() === tables.length);
  await page.waitForFunction(() => [...document.querySelectorAll(".qr-card img")].every((img) => img.complete && img.naturalWidth > 0));
  const cards = page.locator(".qr-card");
  const decoded = [];
  for (let i = 0; i < tables.length; i += 1) {
    const card = cards.nth(i);
    const png = PNG.sync.read(await card.locator("img").screenshot());
    const code = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
    check(code, `the QR code of card ${i} decodes`);
    const tableId = await card.getAttribute("data-table-id");
    const table = tables.find((t) => t.id === tableId);
    check(table && (await card.locator("h3").textContent()) === table.name, `card ${i} names its table`);
    const prefix = `${base}/order#token=`;
    check(code.data.startsWith(prefix), `a customer link: ${code.data}`);
    check(code.data === await card.getAttribute("data-url"), "the code is the card's link");
    const token = claims(code.data.slice(prefix.length));
    check(token.role === "customer" && token.table_id === table.id && token.restaurant_id === restaurantId,
      `a customer token for ${table.name}: ${JSON.stringify(token)}`);
    decoded.push({ table, url: code.data });
  }
  console.log(`decoded ${decoded.length} QR codes, each its table's customer link`);
  await screenshot(page, "qr-sheet", LANDSCAPE);
  await page.emulateMedia({ media: "print" });
  check(!(await page.locator(".bar").isVisible()), "printing leaves the bar out");
  check(await page.locator(".qr-card").nth(0).isVisible(), "and prints the cards");
  await screenshot(page, "qr-sheet-print", { width: 794, height: 1123 });
  await page.emulateMedia({ media: "screen" });
  page.checkClean();

  // A decoded link is a working customer page: the new table's menu, and an order from it.
  const terrace = decoded.find(({ table }) => table.name === "Terrace 1");
  const customer = await open(context, terrace.url, PORTRAIT);
  await customer.waitForSelector("#menu .dish");
  const menu = await customer.locator("#menu").innerText();
  check(menu.includes("Tonkotsu") && !menu.includes("Special"), `the customer sees the menu: ${menu}`);
  customer.checkClean();
  console.log("a decoded link opens the customer page with the menu");
});
