// The manager screen: one restaurant's menu (items with translations, allergens, tax category,
// option groups; order; archive), its tax settings, its tables, and a printable sheet with a
// QR code per table that opens the customer page for that table.
//
// Every change is a mutation and the screen then shows what the server answered, never what
// it sent: the server checks and may refuse. Menu items carry their `version`; an edit sends it
// as expectedVersion, so an edit made from an out-of-date copy (another tablet, the kitchen
// marking something sold out) is refused with CONFLICT and the screen reloads the item.

import { ApiError, claims, el, expired, gql, money, readFragment } from "./client.js";

const TOKEN_KEY = "orderhub.manage.token";
const RESTAURANT_KEY = "orderhub.manage.restaurant";

const ALLERGENS = [
  ["EGG", "Egg"], ["MILK", "Milk"], ["WHEAT", "Wheat"], ["BUCKWHEAT", "Buckwheat"],
  ["PEANUT", "Peanut"], ["SHRIMP", "Shrimp"], ["CRAB", "Crab"], ["WALNUT", "Walnut"],
  ["TREE_NUTS", "Tree nuts"], ["SOY", "Soy"], ["SESAME", "Sesame"], ["FISH", "Fish"],
  ["MOLLUSCS", "Molluscs"], ["CELERY", "Celery"], ["MUSTARD", "Mustard"],
  ["SULPHITES", "Sulphites"], ["LUPIN", "Lupin"], ["GLUTEN", "Gluten (barley, rye, oats)"],
];
const CATEGORIES = [["FOOD", "Food"], ["SOFT_DRINK", "Soft drink"], ["ALCOHOL", "Alcohol"], ["OTHER", "Other"]];
const MODES = [["EAT_IN", "eat in"], ["TAKEOUT", "takeout"]];

const ITEM = `fragment Item on MenuItem {
  id version name description available allergens taxCategory prepSeconds
  price { amount currency }
  translations { locale name description }
  optionGroups { id name minSelected maxSelected options { id name available priceDelta { amount } } }
}`;
const TAX = "pricesIncludeTax taxRounding taxRules { category serviceMode basisPoints }";
const LOAD = `query Manage($r: ID!) { restaurant(id: $r) {
  id name currency ${TAX} tables { id name } menu { ...Item }
} } ${ITEM}`;
const MENU = `query Menu($r: ID!) { restaurant(id: $r) { menu { ...Item } } } ${ITEM}`;
const CREATE_ITEM = `mutation CreateItem($r: ID!, $i: MenuItemInput!) {
  createMenuItem(restaurantId: $r, input: $i) { ...Item }
} ${ITEM}`;
const UPDATE_ITEM = `mutation UpdateItem($m: ID!, $i: MenuItemUpdateInput!, $v: Int) {
  updateMenuItem(menuItemId: $m, input: $i, expectedVersion: $v) { ...Item }
} ${ITEM}`;
const ARCHIVE_ITEM = "mutation Archive($m: ID!) { archiveMenuItem(menuItemId: $m) { id archived } }";
const SET_TAX = `mutation Tax($r: ID!, $i: TaxSettingsInput!) { setTaxSettings(restaurantId: $r, input: $i) { ${TAX} } }`;
const CREATE_TABLE = "mutation Table($r: ID!, $n: String!) { createTable(restaurantId: $r, name: $n) { id name } }";
const TABLE_LINKS = `query Links($r: ID!, $b: String!) { restaurant(id: $r) {
  tableLinks(baseUrl: $b) { table { id name } url qrSvg expiresAt }
} }`;

const $ = (id) => document.getElementById(id);

/** How an API error reads on the screen: its code, then its message. */
function describe(error) {
  return error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
}

/** Base64 of a string's UTF-8 bytes, for a data: URL. */
function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Digits after the decimal point in `currency` (JPY 0, USD 2). */
function minorDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 0;
  }
}

/** Minor units as the decimal a person types: 1250 USD is "12.50", 950 JPY "950". */
function toDecimal(amount, digits) {
  return digits === 0 ? String(amount) : (amount / 10 ** digits).toFixed(digits);
}

/**
 * A typed amount in minor units, or throws: not negative, at most `digits` decimals, within
 * the API's 32-bit Int.
 */
function toMinor(text, digits, what) {
  const trimmed = String(text).trim().replace(",", ".");
  const pattern = digits === 0 ? /^\d+$/ : new RegExp(`^\\d+(\\.\\d{1,${digits}})?$`);
  if (!pattern.test(trimmed)) {
    throw new Error(`${what}: a number of at most ${digits} decimals, not negative`);
  }
  const [whole, fraction = ""] = trimmed.split(".");
  const minor = Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, "0") || 0);
  if (!Number.isSafeInteger(minor) || minor > 2147483647) throw new Error(`${what} is too large`);
  return minor;
}

/** A percent as basis points: "10" is 1000, "7.5" 750; at most two decimals, 0 to 100. */
function toBasisPoints(text, what) {
  const trimmed = String(text).trim().replace(",", ".");
  if (!/^\d+(\.\d{1,2})?$/.test(trimmed)) throw new Error(`${what}: a percent such as 10 or 7.5`);
  const [whole, fraction = ""] = trimmed.split(".");
  const points = Number(whole) * 100 + Number(fraction.padEnd(2, "0"));
  if (points > 10000) throw new Error(`${what}: at most 100 %`);
  return points;
}

class Manager {
  constructor(token, restaurantId) {
    this.token = token;
    this.restaurantId = restaurantId;
    this.restaurant = null;
    this.menu = [];
    this.digits = 0;
    /** The item being edited (null for a new one). */
    this.editing = null;
    /** The option groups as loaded into the editor, to send them only when changed. */
    this.loadedGroups = null;
  }

  api(query, variables = {}) {
    return gql(this.token, query, variables);
  }

  problem(message) {
    $("problem").hidden = !message;
    $("problem").textContent = message ?? "";
    if (message) $("notice").hidden = true;
  }

  notice(message) {
    $("notice").hidden = !message;
    $("notice").textContent = message ?? "";
    if (message) $("problem").hidden = true;
  }

  async start() {
    const { restaurant } = await this.api(LOAD, { r: this.restaurantId });
    if (!restaurant) throw new ApiError("NOT_FOUND", "restaurant not found");
    this.restaurant = restaurant;
    this.digits = minorDigits(restaurant.currency);
    document.title = `Manage ${restaurant.name} — orderhub`;
    $("restaurant").textContent = restaurant.name;
    $("item-currency").textContent = restaurant.currency;
    this.menu = restaurant.menu;
    this.renderMenu();
    this.renderTax(restaurant);
    this.renderTables(restaurant.tables);
    $("tabs").hidden = false;
    $("views").hidden = false;
  }

  show(view) {
    for (const section of document.querySelectorAll(".view")) section.hidden = section.dataset.view !== view;
    for (const tab of document.querySelectorAll("#tabs button")) {
      tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
    }
    document.body.dataset.view = view;
    this.notice(null);
    this.problem(null);
    if (view === "qr") this.loadSheet();
  }

  // ---------- Menu ----------

  async reloadMenu() {
    const { restaurant } = await this.api(MENU, { r: this.restaurantId });
    this.menu = restaurant?.menu ?? [];
    this.renderMenu();
  }

  renderMenu() {
    const list = $("menu-list");
    $("menu-empty").hidden = this.menu.length > 0;
    list.replaceChildren(...this.menu.map((item, index) => {
      const groups = item.optionGroups.map((g) => `${g.name} (${g.options.length})`).join(", ");
      return el("li", { class: "menu-row", "data-id": item.id },
        el("div", { class: "menu-text" },
          el("span", { class: "name" }, item.name),
          el("span", { class: "price" }, money(item.price)),
          el("span", { class: "meta" },
            [CATEGORIES.find(([c]) => c === item.taxCategory)?.[1] ?? item.taxCategory,
              item.allergens.length ? `allergens: ${item.allergens.length}` : null,
              groups || null,
              item.translations.length ? item.translations.map((t) => t.locale).join(" ") : null,
              item.available ? null : "sold out"].filter(Boolean).join(" · "))),
        el("div", { class: "row-actions" },
          el("button", { type: "button", class: "secondary", "aria-label": `Move ${item.name} up`,
            disabled: index === 0, onclick: () => this.move(item, index - 1) }, "↑"),
          el("button", { type: "button", class: "secondary", "aria-label": `Move ${item.name} down`,
            disabled: index === this.menu.length - 1, onclick: () => this.move(item, index + 1) }, "↓"),
          el("button", { type: "button", class: "secondary", "aria-label": `Edit ${item.name}`,
            onclick: () => this.edit(item) }, "Edit"),
          el("button", { type: "button", class: "danger", "aria-label": `Archive ${item.name}`,
            onclick: () => this.archive(item) }, "Archive")));
    }));
  }

  /** A CONFLICT: say so, reload the menu, and put the fresh copy into an open editor. */
  async conflicted(error, itemId) {
    await this.reloadMenu();
    const fresh = this.menu.find((item) => item.id === itemId);
    const message = `Changed elsewhere, reloaded (${describe(error)}). Check and try again.`;
    if ($("item-dialog").open && this.editing?.id === itemId && fresh) {
      this.fillEditor(fresh);
      this.editorProblem(message);
    } else {
      this.problem(message);
    }
  }

  async move(item, position) {
    try {
      await this.api(UPDATE_ITEM, { m: item.id, i: { position }, v: item.version });
      await this.reloadMenu();
      this.notice(`Moved ${item.name}.`);
    } catch (error) {
      if (error.code === "CONFLICT") await this.conflicted(error, item.id);
      else this.problem(describe(error));
    }
  }

  async archive(item) {
    if (!confirm(`Take ${item.name} off the menu? Orders already placed keep it.`)) return;
    try {
      await this.api(ARCHIVE_ITEM, { m: item.id });
      await this.reloadMenu();
      this.notice(`Archived ${item.name}.`);
    } catch (error) {
      this.problem(describe(error));
    }
  }

  // ---------- Item editor ----------

  edit(item) {
    this.editing = item;
    this.fillEditor(item);
    this.editorProblem(null);
    $("item-dialog").showModal();
  }

  editorProblem(message) {
    $("item-problem").hidden = !message;
    $("item-problem").textContent = message ?? "";
  }

  fillEditor(item) {
    this.editing = item;
    $("item-title").textContent = item ? `Edit ${item.name}` : "New item";
    $("item-name").value = item?.name ?? "";
    $("item-price").value = item ? toDecimal(item.price.amount, this.digits) : "";
    $("item-description").value = item?.description ?? "";
    $("item-tax-category").value = item?.taxCategory ?? "FOOD";
    $("item-prep").value = item?.prepSeconds ?? 300;
    const chosen = new Set(item?.allergens ?? []);
    $("item-allergens").replaceChildren(...ALLERGENS.map(([code, label]) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: code, checked: chosen.has(code) }), ` ${label}`)));
    $("item-translations").replaceChildren(...(item?.translations ?? []).map((t) => this.translationRow(t)));
    $("item-groups").replaceChildren(...(item?.optionGroups ?? []).map((g) => this.groupBox(g)));
    this.loadedGroups = item ? JSON.stringify(this.readGroups()) : null;
  }

  translationRow(t = {}) {
    const row = el("div", { class: "row translation" },
      el("input", { class: "locale", "aria-label": "Locale", placeholder: "en", maxlength: 35, value: t.locale ?? "", required: true }),
      el("input", { class: "t-name", "aria-label": "Translated name", placeholder: "Name", maxlength: 200, value: t.name ?? "", required: true }),
      el("input", { class: "t-description", "aria-label": "Translated description", placeholder: "Description (optional)", maxlength: 1000, value: t.description ?? "" }),
      el("button", { type: "button", class: "secondary", "aria-label": "Remove translation", onclick: () => row.remove() }, "✕"));
    return row;
  }

  groupBox(group = {}) {
    const options = el("div", { class: "rows options" });
    const box = el("div", { class: "group" },
      el("div", { class: "row" },
        el("input", { class: "g-name", "aria-label": "Group name", placeholder: "Group, e.g. Size", maxlength: 200, value: group.name ?? "", required: true }),
        el("label", { class: "small" }, "min ", el("input", { class: "g-min", type: "number", min: 0, step: 1, "aria-label": "Minimum choices", value: group.minSelected ?? 0, required: true })),
        el("label", { class: "small" }, "max ", el("input", { class: "g-max", type: "number", min: 1, step: 1, "aria-label": "Maximum choices", value: group.maxSelected ?? 1, required: true })),
        el("button", { type: "button", class: "secondary", "aria-label": "Remove group", onclick: () => box.remove() }, "✕")),
      options,
      el("button", { type: "button", class: "secondary add-option", onclick: () => options.append(this.optionRow()) }, "Add an option"));
    for (const option of group.options ?? []) options.append(this.optionRow(option));
    return box;
  }

  optionRow(option = {}) {
    const delta = option.priceDelta ? toDecimal(option.priceDelta.amount, this.digits) : "0";
    const row = el("div", { class: "row option", "data-available": option.available === undefined ? null : String(option.available) },
      el("input", { class: "o-name", "aria-label": "Option name", placeholder: "Option, e.g. Large", maxlength: 200, value: option.name ?? "", required: true }),
      el("label", { class: "small" }, "+ ", el("input", { class: "o-delta", "aria-label": "Price delta", inputmode: "decimal", value: delta, required: true })),
      el("button", { type: "button", class: "secondary", "aria-label": "Remove option", onclick: () => row.remove() }, "✕"));
    return row;
  }

  /** The option groups in the editor, as OptionGroupInput. */
  readGroups() {
    return [...$("item-groups").querySelectorAll(".group")].map((box) => {
      const name = box.querySelector(".g-name").value.trim();
      return {
        name,
        minSelected: Number(box.querySelector(".g-min").value),
        maxSelected: Number(box.querySelector(".g-max").value),
        options: [...box.querySelectorAll(".option")].map((row) => {
          const option = {
            name: row.querySelector(".o-name").value.trim(),
            priceDelta: toMinor(row.querySelector(".o-delta").value, this.digits, `${name}: price delta`),
          };
          if (row.dataset.available !== undefined) option.available = row.dataset.available === "true";
          return option;
        }),
      };
    });
  }

  /** The editor's fields as a MenuItemInput (a new item) or MenuItemUpdateInput. */
  readEditor() {
    const description = $("item-description").value.trim();
    const prep = $("item-prep").value.trim();
    const input = {
      name: $("item-name").value.trim(),
      price: toMinor($("item-price").value, this.digits, "Price"),
      description: description || null,
      taxCategory: $("item-tax-category").value,
      allergens: [...$("item-allergens").querySelectorAll("input:checked")].map((box) => box.value),
      translations: [...$("item-translations").querySelectorAll(".translation")].map((row) => {
        const t = { locale: row.querySelector(".locale").value.trim(), name: row.querySelector(".t-name").value.trim() };
        const text = row.querySelector(".t-description").value.trim();
        if (text) t.description = text;
        return t;
      }),
    };
    if (prep !== "") input.prepSeconds = Number(prep);
    const groups = this.readGroups();
    // Groups sent replace the item's: only when changed, so that their translations (which
    // this screen does not edit) are kept.
    if (!this.editing || JSON.stringify(groups) !== this.loadedGroups) input.optionGroups = groups;
    return input;
  }

  async save() {
    let input;
    try {
      input = this.readEditor();
    } catch (error) {
      this.editorProblem(error.message);
      return;
    }
    const item = this.editing;
    $("item-save").disabled = true;
    try {
      if (item) {
        await this.api(UPDATE_ITEM, { m: item.id, i: input, v: item.version });
      } else {
        await this.api(CREATE_ITEM, { r: this.restaurantId, i: input });
      }
      $("item-dialog").close();
      await this.reloadMenu();
      this.notice(`Saved ${input.name}.`);
    } catch (error) {
      if (error.code === "CONFLICT" && item) await this.conflicted(error, item.id);
      else this.editorProblem(describe(error));
    } finally {
      $("item-save").disabled = false;
    }
  }

  // ---------- Tax ----------

  renderTax(settings) {
    $("prices-include-tax").checked = settings.pricesIncludeTax;
    $("tax-rounding").value = settings.taxRounding;
    const rate = (category, mode) => settings.taxRules.find((r) => r.category === category && r.serviceMode === mode);
    $("tax-rules").replaceChildren(...CATEGORIES.map(([category, label]) => el("tr", {},
      el("th", { scope: "row" }, label),
      ...MODES.map(([mode, modeLabel]) => {
        const rule = rate(category, mode);
        return el("td", {}, el("input", {
          inputmode: "decimal", "data-category": category, "data-mode": mode,
          "aria-label": `${label} ${modeLabel} %`,
          value: rule ? String(rule.basisPoints / 100) : "",
        }));
      }))));
  }

  async saveTax() {
    let input;
    try {
      const taxRules = [];
      for (const box of $("tax-rules").querySelectorAll("input")) {
        if (box.value.trim() === "") continue;
        taxRules.push({
          category: box.dataset.category,
          serviceMode: box.dataset.mode,
          basisPoints: toBasisPoints(box.value, box.getAttribute("aria-label")),
        });
      }
      input = { pricesIncludeTax: $("prices-include-tax").checked, taxRounding: $("tax-rounding").value, taxRules };
    } catch (error) {
      this.problem(error.message);
      return;
    }
    try {
      const { setTaxSettings } = await this.api(SET_TAX, { r: this.restaurantId, i: input });
      this.renderTax(setTaxSettings);
      this.notice("Tax settings saved. Orders placed from now on use them.");
    } catch (error) {
      this.problem(describe(error));
    }
  }

  // ---------- Tables ----------

  renderTables(tables) {
    this.tables = tables;
    $("table-list").replaceChildren(...tables.map((t) => el("li", { "data-id": t.id }, t.name)));
  }

  async createTable(name) {
    try {
      const { createTable } = await this.api(CREATE_TABLE, { r: this.restaurantId, n: name });
      this.renderTables([...this.tables, createTable]);
      $("table-name").value = "";
      this.notice(`Added table ${createTable.name}.`);
    } catch (error) {
      this.problem(describe(error));
    }
  }

  // ---------- QR sheet ----------

  /** Mints a link per table (each time: the old codes stay valid until they expire). */
  async loadSheet() {
    const sheet = $("qr-sheet");
    sheet.setAttribute("aria-busy", "true");
    try {
      const { restaurant } = await this.api(TABLE_LINKS, { r: this.restaurantId, b: location.origin });
      const links = restaurant?.tableLinks ?? [];
      sheet.replaceChildren(...links.map((link) => el("article", {
        class: "qr-card", "data-table-id": link.table.id, "data-url": link.url,
      },
      el("h3", {}, link.table.name),
      el("img", { src: `data:image/svg+xml;base64,${base64(link.qrSvg)}`, alt: `QR code for table ${link.table.name}`, width: 264, height: 264 }),
      el("p", { class: "qr-restaurant" }, this.restaurant.name),
      el("p", { class: "qr-hint" }, "Scan to see the menu and order"))));
      if (links.length === 0) sheet.append(el("p", { class: "empty" }, "No tables yet: add them under Tables."));
      const until = links[0] ? new Date(links[0].expiresAt).toLocaleDateString() : null;
      $("qr-expiry").textContent = until ? `Valid until ${until}` : "";
    } catch (error) {
      this.problem(describe(error));
    } finally {
      sheet.removeAttribute("aria-busy");
    }
  }
}

function signIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("problem").hidden = !message;
  $("problem").textContent = message ?? "";
  $("views").hidden = true;
  $("tabs").hidden = true;
  $("login").hidden = false;
}

function wire(manager) {
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => manager.show(tab.dataset.view));
  }
  $("new-item").addEventListener("click", () => manager.edit(null));
  $("add-translation").addEventListener("click", () => $("item-translations").append(manager.translationRow()));
  $("add-group").addEventListener("click", () => $("item-groups").append(manager.groupBox()));
  $("item-cancel").addEventListener("click", () => $("item-dialog").close());
  $("item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    manager.save();
  });
  $("tax-form").addEventListener("submit", (event) => {
    event.preventDefault();
    manager.saveTax();
  });
  $("table-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("table-name").value.trim();
    if (name) manager.createTable(name);
  });
  $("qr-refresh").addEventListener("click", () => manager.loadSheet());
  $("qr-print").addEventListener("click", () => print());
  $("problem").addEventListener("click", () => manager.problem(null));
}

async function open(token, restaurantHint) {
  const tokenClaims = claims(token);
  if (!tokenClaims || !["manager", "admin"].includes(tokenClaims.role)) {
    return signIn("That is not a manager token.");
  }
  if (expired(tokenClaims)) return signIn("This token has expired.");
  const restaurantId = tokenClaims.restaurant_id ?? restaurantHint;
  if (!restaurantId) return signIn("An admin token needs #restaurant=… in the address.");
  $("login").hidden = true;
  const manager = new Manager(token, restaurantId);
  wire(manager);
  try {
    await manager.start();
    manager.show("menu");
  } catch (error) {
    if (error.code === "UNAUTHENTICATED" || error.code === "FORBIDDEN") signIn(describe(error));
    else manager.problem(`${describe(error)} Reload the page to try again.`);
  }
}

const { token, params } = readFragment(TOKEN_KEY);
if (params.restaurant) sessionStorage.setItem(RESTAURANT_KEY, params.restaurant);
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("login-token").value.trim());
  location.reload();
});
if (token) open(token, sessionStorage.getItem(RESTAURANT_KEY));
else signIn(null);
