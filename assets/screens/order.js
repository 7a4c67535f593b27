// The customer page: the menu in the guest's language, options chosen per dish, a cart, eat-in
// or takeout, placing the order exactly once, then its status and taxes live.
//
// Exactly once: the cart carries an idempotency key, made when the cart is first changed and
// kept (in sessionStorage, with the cart) until an order is placed with it. A double tap, a
// retry after a lost answer or a reload in between all send the same key, and the server
// returns the first order instead of placing another.
//
// Languages: the menu is offered in the restaurant's own language and in every locale its
// items are translated into; the page starts in the browser's language (navigator.languages:
// the exact tag, then the language), else in the menu's own words. The page's own words come
// from WORDS below, in the chosen language when WORDS has it, else the browser's, else English.

import {
  Live, claims, clockTime, el, expired, gql, languageName, matchLocale, money, readFragment,
  showConnection, uuid,
} from "./client.js";

const TOKEN_KEY = "orderhub.customer.token";
const LOCALE_KEY = "orderhub.customer.locale";
const MAX_QUANTITY = 99;
const FINAL = new Set(["SERVED", "CANCELLED"]);
const STEPS = ["PLACED", "ACCEPTED", "PREPARING", "READY", "SERVED"];

/** The icon of each allergen of the contract: an emoji, so that no image is loaded. */
const ALLERGEN_ICONS = {
  EGG: "🥚", MILK: "🥛", WHEAT: "🌾", BUCKWHEAT: "🍜", PEANUT: "🥜", SHRIMP: "🦐", CRAB: "🦀",
  WALNUT: "🌰", TREE_NUTS: "🌰", SOY: "🫘", SESAME: "🌱", FISH: "🐟", MOLLUSCS: "🦑",
  CELERY: "🥬", MUSTARD: "🌭", SULPHITES: "🍷", LUPIN: "🌼", GLUTEN: "🍞",
};

/**
 * The page's own words. Japanese allergen names follow the Consumer Affairs Agency's labelling
 * list (特定原材料); English ones the EU's Regulation 1169/2011, Annex II.
 */
const WORDS = {
  en: {
    menu: "Menu",
    yourOrder: "Your order",
    cartEmpty: "Nothing yet: add something from the menu.",
    serviceMode: "Eat here or take away?",
    eatIn: "Eat in",
    takeout: "Takeout",
    orderNote: "Note for the kitchen",
    orderNotePlaceholder: "Allergies, timing… (optional)",
    total: "Total",
    place: "Place order",
    sending: "Sending…",
    yourOrders: "Your orders",
    callStaff: "Call staff",
    back: "Back",
    language: "Language",
    ownWords: "Original",
    add: "Add",
    addLabel: (name) => `Add ${name}`,
    less: (name) => `One less ${name}`,
    more: (name) => `One more ${name}`,
    soldOut: "Sold out",
    lineNote: "Note (optional)",
    lineNoteLabel: (name) => `Note for ${name}`,
    thisItem: "this item",
    gone: "No longer on the menu",
    inCart: (count) => `${count} in your order`,
    toCart: (count, total) => `Your order: ${count} ${count === 1 ? "item" : "items"} · ${total}`,
    taxIncluded: "tax incl.",
    plusTax: "+ tax",
    pricesIncludeTax: "Prices include tax.",
    pricesExcludeTax: "Prices exclude tax: it is added to your order.",
    allergens: "Allergens",
    chooseExactly: (n) => `Choose ${n}`,
    chooseBetween: (min, max) => `Choose ${min} to ${max}`,
    upTo: (max) => `Optional, up to ${max}`,
    none: "None",
    groupRule: (group, rule) => `${group}: ${rule}`,
    addToOrder: (price) => `Add to order · ${price}`,
    orderNumber: (number) => `Order #${number}`,
    sentNotice: (number) => `Order #${number} is with the kitchen.`,
    cancel: "Cancel",
    taxLine: (rate, base, tax) => `${rate} % on ${base}: ${tax}`,
    taxesIncluded: "Tax included",
    taxesAdded: "Tax",
    grandTotal: "Total",
    status: {
      PLACED: "Sent to the kitchen", ACCEPTED: "Accepted", PREPARING: "Preparing", READY: "Ready",
      SERVED: "Served", CANCELLED: "Cancelled",
    },
    modes: { EAT_IN: "Eat in", TAKEOUT: "Takeout" },
    allergen: {
      EGG: "Egg", MILK: "Milk", WHEAT: "Wheat", BUCKWHEAT: "Buckwheat", PEANUT: "Peanut",
      SHRIMP: "Shrimp", CRAB: "Crab", WALNUT: "Walnut", TREE_NUTS: "Tree nuts", SOY: "Soy",
      SESAME: "Sesame", FISH: "Fish", MOLLUSCS: "Molluscs", CELERY: "Celery", MUSTARD: "Mustard",
      SULPHITES: "Sulphites", LUPIN: "Lupin", GLUTEN: "Gluten",
    },
    problems: {
      NETWORK: "No connection. Your order was not confirmed: tap again to retry (it will not be ordered twice).",
      UNAVAILABLE: "The restaurant's system is busy. Tap again to retry (it will not be ordered twice).",
      UNAUTHENTICATED: "This link has expired. Please scan the QR code on your table again.",
      FORBIDDEN: "This link is not valid for this table. Please scan the QR code on your table again.",
      CONFLICT: "This order was already sent with other items. Please ask the staff.",
      RATE_LIMITED: "Too many tries at once. Wait a moment, then tap again.",
      ORDERING_PAUSED: "The restaurant is not taking orders right now. Please ask the staff.",
    },
    anItem: "an item",
    soldOutNow: (names) => `Sorry, ${names} just sold out. Remove it to place your order.`,
    notPlaced: (message) => `The order could not be placed: ${message}`,
    alreadyPreparing: (number) => `Order #${number} is already being prepared. Please ask the staff.`,
    staffCalled: "Staff has been called to your table.",
    callFailed: (message) => `Could not call staff: ${message}`,
    scanQr: "Please scan the QR code on your table to order.",
    noRestaurant: "This restaurant does not exist.",
    menuFailed: (message) => `The menu could not be loaded: ${message}`,
    connection: { connecting: "Connecting…", live: "Live", offline: "Reconnecting…", unauthorized: "Signed out" },
  },
  ja: {
    menu: "メニュー",
    yourOrder: "ご注文",
    cartEmpty: "まだ何もありません。メニューから追加してください。",
    serviceMode: "店内でお召し上がりですか、お持ち帰りですか?",
    eatIn: "店内",
    takeout: "お持ち帰り",
    orderNote: "キッチンへのご要望",
    orderNotePlaceholder: "アレルギー、提供のタイミングなど(任意)",
    total: "合計",
    place: "注文する",
    sending: "送信中…",
    yourOrders: "ご注文履歴",
    callStaff: "店員を呼ぶ",
    back: "戻る",
    language: "言語",
    ownWords: "原文",
    add: "追加",
    addLabel: (name) => `${name}を追加`,
    less: (name) => `${name}を1つ減らす`,
    more: (name) => `${name}を1つ増やす`,
    soldOut: "売り切れ",
    lineNote: "ご要望(任意)",
    lineNoteLabel: (name) => `${name}へのご要望`,
    thisItem: "この品",
    gone: "メニューにありません",
    inCart: (count) => `${count}点 注文に入っています`,
    toCart: (count, total) => `ご注文: ${count}点 · ${total}`,
    taxIncluded: "税込",
    plusTax: "税別",
    pricesIncludeTax: "表示価格は税込です。",
    pricesExcludeTax: "表示価格は税別です。消費税はご注文時に加算されます。",
    allergens: "アレルゲン",
    chooseExactly: (n) => `${n}つお選びください`,
    chooseBetween: (min, max) => `${min}〜${max}つお選びください`,
    upTo: (max) => `任意・${max}つまで`,
    none: "なし",
    groupRule: (group, rule) => `${group}: ${rule}`,
    addToOrder: (price) => `注文に追加 · ${price}`,
    orderNumber: (number) => `ご注文 #${number}`,
    sentNotice: (number) => `ご注文 #${number} をキッチンにお送りしました。`,
    cancel: "取り消す",
    taxLine: (rate, base, tax) => `${rate}%対象 ${base}: ${tax}`,
    taxesIncluded: "内消費税",
    taxesAdded: "消費税",
    grandTotal: "お支払い合計",
    status: {
      PLACED: "キッチンに送信済み", ACCEPTED: "受付済み", PREPARING: "調理中", READY: "できあがり",
      SERVED: "お届け済み", CANCELLED: "取り消し",
    },
    modes: { EAT_IN: "店内", TAKEOUT: "お持ち帰り" },
    allergen: {
      EGG: "卵", MILK: "乳", WHEAT: "小麦", BUCKWHEAT: "そば", PEANUT: "落花生", SHRIMP: "えび",
      CRAB: "かに", WALNUT: "くるみ", TREE_NUTS: "ナッツ類", SOY: "大豆", SESAME: "ごま", FISH: "魚",
      MOLLUSCS: "軟体動物", CELERY: "セロリ", MUSTARD: "マスタード", SULPHITES: "亜硫酸塩",
      LUPIN: "ルピナス", GLUTEN: "グルテン",
    },
    problems: {
      NETWORK: "接続できません。ご注文はまだ確定していません。もう一度タップしてください(二重には注文されません)。",
      UNAVAILABLE: "ただいま混み合っています。もう一度タップしてください(二重には注文されません)。",
      UNAUTHENTICATED: "このリンクは期限切れです。テーブルのQRコードをもう一度読み取ってください。",
      FORBIDDEN: "このリンクはこのテーブルでは使えません。テーブルのQRコードをもう一度読み取ってください。",
      CONFLICT: "このご注文は別の内容で送信済みです。店員にお声がけください。",
      RATE_LIMITED: "操作が集中しています。少し待ってからもう一度タップしてください。",
      ORDERING_PAUSED: "ただいまご注文を受け付けていません。店員にお声がけください。",
    },
    anItem: "一部の品",
    soldOutNow: (names) => `申し訳ありません。${names}が売り切れになりました。削除してからご注文ください。`,
    notPlaced: (message) => `ご注文できませんでした: ${message}`,
    alreadyPreparing: (number) => `ご注文 #${number} はすでに調理中です。店員にお声がけください。`,
    staffCalled: "店員を呼びました。",
    callFailed: (message) => `店員を呼べませんでした: ${message}`,
    scanQr: "ご注文にはテーブルのQRコードを読み取ってください。",
    noRestaurant: "この店舗は存在しません。",
    menuFailed: (message) => `メニューを読み込めませんでした: ${message}`,
    connection: { connecting: "接続中…", live: "接続中", offline: "再接続中…", unauthorized: "ログアウト" },
  },
};

/**
 * The language a restaurant's menu is written in: the API has no field for it, so it is taken
 * from the restaurant's time zone, else its currency; null when neither tells.
 */
const ZONE_LANGUAGES = {
  "Asia/Tokyo": "ja", "Asia/Seoul": "ko", "Asia/Shanghai": "zh-Hans", "Asia/Taipei": "zh-Hant",
  "Asia/Hong_Kong": "zh-Hant", "Europe/Paris": "fr", "Europe/Berlin": "de", "Europe/Madrid": "es",
  "Europe/Rome": "it", "Europe/Lisbon": "pt", "Europe/Amsterdam": "nl", "Europe/London": "en",
  "Europe/Dublin": "en",
};
const CURRENCY_LANGUAGES = {
  JPY: "ja", KRW: "ko", CNY: "zh-Hans", TWD: "zh-Hant", USD: "en", GBP: "en", AUD: "en", CAD: "en",
  NZD: "en",
};

function ownLanguage(restaurant) {
  return ZONE_LANGUAGES[restaurant.timeZone] ?? CURRENCY_LANGUAGES[restaurant.currency]
    ?? (/^(America|Australia)\//.test(restaurant.timeZone) ? "en" : null);
}

let words = WORDS.en;

/** The page's word `key` in its language (English when that language lacks it). */
function t(key, ...args) {
  const word = words[key] ?? WORDS.en[key];
  return typeof word === "function" ? word(...args) : word;
}

/** Chooses the page's words: `explicit` (a locale the guest picked) first, then the browser's. */
function useWords(explicit) {
  const language = matchLocale([explicit, ...navigator.languages], Object.keys(WORDS)) ?? "en";
  words = WORDS[language];
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll("[data-w]")) node.textContent = t(node.dataset.w);
  const note = document.getElementById("order-note");
  if (note) note.placeholder = t("orderNotePlaceholder");
  document.getElementById("locale")?.setAttribute("aria-label", t("language"));
}

/** A rate in basis points as a percentage: 800 is "8", 825 is "8.25". */
function percent(basisPoints) {
  return String(basisPoints / 100);
}

const MENU_ITEM = `fragment Dish on MenuItem {
  id name(locale: $l) description(locale: $l) available price { amount currency } allergens
  translations { locale }
  optionGroups { id name(locale: $l) minSelected maxSelected
    options { id name(locale: $l) available priceDelta { amount currency } } }
}`;
const MINE = `fragment Mine on Order {
  id number status version note placedAt serviceMode
  total { amount currency } grandTotal { amount currency }
  taxes { basisPoints base { amount currency } tax { amount currency } }
  items { id menuItemId name quantity note subtotal { amount currency }
    options { optionId groupName name priceDelta { amount currency } } }
}`;
const MENU = `query Menu($r: ID!, $l: String) { restaurant(id: $r) {
  name currency timeZone pricesIncludeTax menu { ...Dish }
} } ${MENU_ITEM}`;
const PLACE = `mutation Place($i: PlaceOrderInput!) { placeOrder(input: $i) { ...Mine } } ${MINE}`;
const FOLLOW = `subscription Follow($o: ID!) { orderUpdated(orderId: $o) { ...Mine } } ${MINE}`;
const CANCEL = `mutation CancelMine($o: ID!, $reason: String!) { cancelOrder(orderId: $o, reason: $reason) { ...Mine } } ${MINE}`;
const CALL_STAFF = `mutation CallStaff($t: ID!) { callStaff(tableId: $t) { id at } }`;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Identifies a cart line: the item and its options, in any order. */
function lineKey(menuItemId, optionIds) {
  return `${menuItemId}|${[...optionIds].sort().join(",")}`;
}

/** The rule of an option group in words: "Choose 1", "Choose 1 to 3", "Optional, up to 3". */
function ruleOf(group) {
  if (group.minSelected === group.maxSelected) return t("chooseExactly", group.minSelected);
  if (group.minSelected === 0) return t("upTo", group.maxSelected);
  return t("chooseBetween", group.minSelected, group.maxSelected);
}

/** Allergens as icons with their word, in the page's language. */
function allergenList(allergens, id = null) {
  if (!allergens?.length) return null;
  return el("ul", { class: "allergens", id, "aria-label": t("allergens") }, allergens.map((allergen) =>
    el("li", { class: "allergen", "data-allergen": allergen },
      el("span", { class: "icon", "aria-hidden": "true" }, ALLERGEN_ICONS[allergen] ?? "⚠"),
      t("allergen")?.[allergen] ?? allergen)));
}

class Shop {
  constructor(token, restaurantId, tableId) {
    this.token = token;
    this.restaurantId = restaurantId;
    this.tableId = tableId;
    this.storageKey = `orderhub.order.${tableId}`;
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey) ?? "null");
    this.cart = saved?.cart ?? { key: null, lines: [], note: "" };
    for (const line of this.cart.lines) line.optionIds ??= [];
    this.cart.serviceMode ??= "EAT_IN";
    /** Ids of the orders placed from this page, newest first. */
    this.placed = saved?.placed ?? [];
    this.orders = new Map();
    this.menu = new Map();
    this.currency = "JPY";
    this.pricesIncludeTax = true;
    /** The menu's locale: a translation's tag or the restaurant's own language ("" if unknown). */
    this.locale = null;
    this.locales = [];
    this.placing = false;
    this.live = null;
    this.choosing = null;
  }

  save() {
    sessionStorage.setItem(this.storageKey, JSON.stringify({ cart: this.cart, placed: this.placed }));
  }

  async start() {
    await this.loadMenu();
    $("shop").hidden = false;
    $("call-staff").hidden = false;
    $("order-note").value = this.cart.note;
    $("order-note").addEventListener("input", () => {
      this.touch();
      this.cart.note = $("order-note").value;
      this.save();
    });
    for (const radio of document.querySelectorAll('input[name="service-mode"]')) {
      radio.checked = radio.value === this.cart.serviceMode;
      radio.addEventListener("change", () => {
        if (!radio.checked) return;
        this.touch();
        this.cart.serviceMode = radio.value;
        this.save();
      });
    }
    $("place").addEventListener("click", () => this.place());
    $("to-cart").addEventListener("click", () => $("cart").scrollIntoView({ behavior: "smooth" }));
    $("call-staff").addEventListener("click", () => this.callStaff());
    $("locale").addEventListener("change", () => this.switchLocale($("locale").value));
    $("chooser-back").addEventListener("click", () => $("options-dialog").close());
    $("chooser-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.addChosen();
    });
    $("options-dialog").addEventListener("close", () => {
      this.choosing = null;
    });
    this.renderAll();
    for (const id of this.placed) this.follow(id);
    // Sold-out items change during service; guests see it when they come back to the page.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.loadMenu().then(() => this.renderAll(), () => {});
    });
  }

  /** Loads the menu in the page's locale; on the first load, chooses that locale. */
  async loadMenu() {
    const { restaurant } = await gql(this.token, MENU, { r: this.restaurantId, l: this.locale || null });
    if (!restaurant) throw new Error(t("noRestaurant"));
    $("restaurant").textContent = restaurant.name;
    document.title = restaurant.name;
    this.currency = restaurant.currency;
    this.pricesIncludeTax = restaurant.pricesIncludeTax;
    // Times are shown on the restaurant's clock, wherever the guest's phone is set.
    this.timeZone = restaurant.timeZone;
    this.menu = new Map(restaurant.menu.map((item) => [item.id, item]));
    const own = ownLanguage(restaurant) ?? "";
    const translated = restaurant.menu.flatMap((item) => item.translations.map((tr) => tr.locale));
    this.locales = [...new Set([own, ...translated.sort()])];
    if (this.locale === null) {
      const saved = sessionStorage.getItem(LOCALE_KEY);
      const chosen = saved !== null && this.locales.includes(saved)
        ? saved
        : matchLocale(navigator.languages, this.locales.filter(Boolean)) ?? own;
      this.locale = chosen;
      useWords(chosen === saved ? saved : null);
      // The first load was in the menu's own words: load it again in a translation's.
      if (chosen !== own) return this.loadMenu();
    }
    this.renderLocales();
  }

  renderLocales() {
    const select = $("locale");
    select.hidden = this.locales.length < 2;
    select.replaceChildren(...this.locales.map((tag) =>
      el("option", { value: tag, selected: tag === this.locale }, tag ? languageName(tag) : t("ownWords"))));
    select.value = this.locale;
  }

  async switchLocale(tag) {
    this.locale = tag;
    sessionStorage.setItem(LOCALE_KEY, tag);
    useWords(tag || null);
    try {
      await this.loadMenu();
    } catch (error) {
      this.problem(t("problems")[error.code] ?? t("menuFailed", error.message));
    }
    $("options-dialog").close();
    this.renderAll();
  }

  renderAll() {
    this.renderMenu();
    this.renderCart();
    this.renderOrders();
  }

  /** The cart's key is made on its first change and kept until an order is placed with it. */
  touch() {
    this.cart.key ??= uuid();
  }

  /** A price as the restaurant shows it, with "tax incl." or "+ tax". */
  price(value) {
    return [
      money(value),
      " ",
      el("span", { class: "tax-note" }, this.pricesIncludeTax ? t("taxIncluded") : t("plusTax")),
    ];
  }

  /** The options of a line as on the menu now (those no longer on it are left out). */
  chosenOptions(item, optionIds) {
    const options = (item?.optionGroups ?? []).flatMap((group) => group.options);
    return optionIds.map((id) => options.find((option) => option.id === id)).filter(Boolean);
  }

  /** A line's unit price: the item's price plus its options' deltas; null if not on the menu. */
  unitPrice(line) {
    const item = this.menu.get(line.menuItemId);
    if (!item) return null;
    const deltas = this.chosenOptions(item, line.optionIds).reduce((sum, option) => sum + option.priceDelta.amount, 0);
    return item.price.amount + deltas;
  }

  /** Whether a line can be ordered as it is: its item and each of its options available. */
  orderable(line) {
    const item = this.menu.get(line.menuItemId);
    const options = this.chosenOptions(item, line.optionIds);
    return Boolean(item?.available) && options.length === line.optionIds.length
      && options.every((option) => option.available);
  }

  /** Items without options: the one line of that item without options. */
  plainLine(id) {
    return this.cart.lines.find((line) => line.menuItemId === id && line.optionIds.length === 0);
  }

  setLineQuantity(line, quantity) {
    this.touch();
    const clamped = Math.max(0, Math.min(MAX_QUANTITY, quantity));
    if (clamped === 0) this.cart.lines = this.cart.lines.filter((l) => l !== line);
    else line.quantity = clamped;
    this.save();
    this.problem(null);
    this.renderAll();
  }

  /** Adds one of an item with these options: to the same line if the cart has one. */
  addLine(menuItemId, optionIds) {
    this.touch();
    const key = lineKey(menuItemId, optionIds);
    const line = this.cart.lines.find((l) => lineKey(l.menuItemId, l.optionIds) === key);
    if (line) line.quantity = Math.min(MAX_QUANTITY, line.quantity + 1);
    else this.cart.lines.push({ menuItemId, optionIds, quantity: 1, note: "" });
    this.save();
    this.problem(null);
    this.renderAll();
  }

  /** "−", the quantity, "+", for one line. */
  lineStepper(line, name) {
    return el("div", { class: "stepper" },
      el("button", {
        type: "button", "aria-label": t("less", name), onclick: () => this.setLineQuantity(line, line.quantity - 1),
      }, "−"),
      el("output", {}, String(line.quantity)),
      el("button", {
        type: "button", "aria-label": t("more", name), disabled: line.quantity >= MAX_QUANTITY,
        onclick: () => this.setLineQuantity(line, line.quantity + 1),
      }, "+"));
  }

  /** On the menu: "Add" (with options: it opens the chooser), or the stepper of a plain item. */
  stepper(item) {
    if (!item.available) return el("span", { class: "badge" }, t("soldOut"));
    if (item.optionGroups.length > 0) {
      const count = this.cart.lines.filter((line) => line.menuItemId === item.id)
        .reduce((sum, line) => sum + line.quantity, 0);
      return el("div", { class: "add-with-options" },
        count > 0 ? el("span", { class: "in-cart" }, t("inCart", count)) : null,
        el("button", {
          type: "button", class: "add", "aria-label": t("addLabel", item.name), onclick: () => this.choose(item),
        }, t("add")));
    }
    const line = this.plainLine(item.id);
    if (!line) {
      return el("button", {
        type: "button", class: "add", "aria-label": t("addLabel", item.name),
        onclick: () => this.addLine(item.id, []),
      }, t("add"));
    }
    return this.lineStepper(line, item.name);
  }

  renderMenu() {
    $("price-note").textContent = this.pricesIncludeTax ? t("pricesIncludeTax") : t("pricesExcludeTax");
    $("menu").replaceChildren(...[...this.menu.values()].map((item) => el("li", {
      class: item.available ? "dish" : "dish sold-out", "data-id": item.id,
    },
    el("div", { class: "dish-text" },
      el("span", { class: "name" }, item.name),
      item.description ? el("span", { class: "description" }, item.description) : null,
      el("span", { class: "price" }, this.price(item.price)),
      allergenList(item.allergens)),
    this.stepper(item))));
  }

  /** Opens the chooser of an item's options. */
  choose(item) {
    this.choosing = item;
    $("chooser-name").textContent = item.name;
    $("chooser-description").hidden = !item.description;
    $("chooser-description").textContent = item.description ?? "";
    $("chooser-allergens").replaceWith(allergenList(item.allergens, "chooser-allergens")
      ?? el("ul", { id: "chooser-allergens", class: "allergens", hidden: true }));
    $("chooser-groups").replaceChildren(...item.optionGroups.map((group) => this.groupFieldset(group)));
    this.checkChoice();
    $("options-dialog").showModal();
  }

  /** One group: radio buttons when at most one may be chosen, else checkboxes. */
  groupFieldset(group) {
    const single = group.maxSelected === 1;
    const input = (option, label, price) => el("label", { class: option?.available === false ? "option sold-out" : "option" },
      el("input", {
        type: single ? "radio" : "checkbox", name: `group-${group.id}`, value: option?.id ?? "",
        "data-group": group.id, disabled: option?.available === false,
        checked: option === null,
        onchange: () => this.checkChoice(),
      }),
      el("span", { class: "option-name" }, label),
      price,
      option?.available === false ? el("span", { class: "badge" }, t("soldOut")) : null);
    return el("fieldset", { class: "group", "data-group": group.id },
      el("legend", {}, group.name, " ", el("span", { class: "rule" }, ruleOf(group))),
      // An optional single choice needs a way back to nothing.
      single && group.minSelected === 0 ? input(null, t("none"), null) : null,
      group.options.map((option) => input(option, option.name,
        option.priceDelta.amount > 0 ? el("span", { class: "delta" }, `+${money(option.priceDelta)}`) : null)));
  }

  /** The chooser's options as chosen: enforces each group's maximum, shows the first rule unmet. */
  checkChoice() {
    const item = this.choosing;
    if (!item) return;
    let unmet = null;
    let price = item.price.amount;
    for (const group of item.optionGroups) {
      const inputs = [...$("chooser-groups").querySelectorAll(`input[data-group="${group.id}"]`)];
      const chosen = inputs.filter((input) => input.checked && input.value);
      const options = new Map(group.options.map((option) => [option.id, option]));
      price += chosen.reduce((sum, input) => sum + (options.get(input.value)?.priceDelta.amount ?? 0), 0);
      if (group.maxSelected > 1) {
        for (const input of inputs) {
          input.disabled = options.get(input.value)?.available === false || (!input.checked && chosen.length >= group.maxSelected);
        }
      }
      const ok = chosen.length >= group.minSelected && chosen.length <= group.maxSelected;
      $("chooser-groups").querySelector(`fieldset[data-group="${group.id}"]`).classList.toggle("unmet", !ok);
      if (!ok) unmet ??= t("groupRule", group.name, ruleOf(group));
    }
    $("chooser-rule").textContent = unmet ?? "";
    $("chooser-rule").hidden = !unmet;
    $("chooser-add").disabled = Boolean(unmet);
    $("chooser-add").textContent = t("addToOrder", money({ amount: price, currency: item.price.currency }));
  }

  /** Puts the chooser's item with its options in the cart, the options in the menu's order. */
  addChosen() {
    const item = this.choosing;
    if (!item || $("chooser-add").disabled) return;
    const checked = new Set([...$("chooser-groups").querySelectorAll("input:checked")].map((input) => input.value));
    const optionIds = item.optionGroups.flatMap((group) => group.options)
      .map((option) => option.id)
      .filter((id) => checked.has(id));
    $("options-dialog").close();
    this.addLine(item.id, optionIds);
  }

  renderCart() {
    const lines = this.cart.lines;
    $("cart-empty").hidden = lines.length > 0;
    $("cart-lines").replaceChildren(...lines.map((line) => {
      const item = this.menu.get(line.menuItemId);
      const name = item?.name ?? t("gone");
      const note = el("input", {
        class: "line-note", maxlength: "200", placeholder: t("lineNote"), value: line.note,
        "aria-label": t("lineNoteLabel", item?.name ?? t("thisItem")),
      });
      note.addEventListener("input", () => {
        line.note = note.value;
        this.save();
      });
      const unit = this.unitPrice(line);
      const options = this.chosenOptions(item, line.optionIds);
      return el("li", { class: this.orderable(line) ? null : "sold-out", "data-key": lineKey(line.menuItemId, line.optionIds) },
        el("div", { class: "line" },
          el("span", { class: "name" }, name),
          this.lineStepper(line, name),
          el("span", { class: "subtotal" },
            unit === null ? "" : money({ amount: unit * line.quantity, currency: item.price.currency }))),
        options.length ? el("ul", { class: "line-options" }, options.map((option) => el("li", {
          class: option.available ? null : "sold-out",
        }, option.name, option.priceDelta.amount > 0 ? ` +${money(option.priceDelta)}` : null))) : null,
        note);
    }));
    // For display only: the server prices the order from its menu.
    const total = lines.reduce((sum, line) => sum + (this.unitPrice(line) ?? 0) * line.quantity, 0);
    $("total").textContent = money({ amount: total, currency: this.currency });
    $("total-tax").textContent = this.pricesIncludeTax ? t("taxIncluded") : t("plusTax");
    const count = lines.reduce((sum, line) => sum + line.quantity, 0);
    $("to-cart").hidden = count === 0;
    $("to-cart").textContent = t("toCart", count, $("total").textContent);
    $("place").disabled = this.placing || lines.length === 0;
    $("place").textContent = this.placing ? t("sending") : t("place");
  }

  async place() {
    if (this.placing || this.cart.lines.length === 0) return;
    this.touch();
    this.placing = true;
    this.renderCart();
    const input = {
      restaurantId: this.restaurantId,
      tableId: this.tableId,
      items: this.cart.lines.map((line) => ({
        menuItemId: line.menuItemId, quantity: line.quantity, note: line.note.trim() || null,
        optionIds: line.optionIds,
      })),
      note: this.cart.note.trim() || null,
      serviceMode: this.cart.serviceMode,
      idempotencyKey: this.cart.key,
    };
    try {
      const order = await this.send(input);
      this.cart = { key: null, lines: [], note: "", serviceMode: this.cart.serviceMode };
      $("order-note").value = "";
      if (!this.placed.includes(order.id)) this.placed.unshift(order.id);
      this.save();
      this.update(order);
      this.follow(order.id);
      this.notice(t("sentNotice", order.number));
      this.problem(null);
    } catch (error) {
      await this.explain(error);
    } finally {
      this.placing = false;
      this.renderAll();
    }
  }

  /** Retries a lost answer a few times, with the same key: the server places the order once. */
  async send(input) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return (await gql(this.token, PLACE, { i: input })).placeOrder;
      } catch (error) {
        const transient = error.code === "NETWORK" || error.code === "UNAVAILABLE";
        if (!transient || attempt >= 3) throw error;
        await sleep(400 * 2 ** attempt);
      }
    }
  }

  async explain(error) {
    if (error.code === "SOLD_OUT") {
      await this.loadMenu().catch(() => {});
      const gone = this.cart.lines.filter((line) => !this.orderable(line)).map((line) => {
        const item = this.menu.get(line.menuItemId);
        if (!item?.available) return item?.name ?? t("anItem");
        const options = item.optionGroups.flatMap((group) => group.options);
        const out = line.optionIds.map((id) => options.find((option) => option.id === id))
          .filter((option) => !option?.available).map((option) => option?.name ?? t("anItem"));
        return `${item.name} (${out.join(", ")})`;
      });
      this.problem(t("soldOutNow", gone.join(", ") || t("anItem")));
    } else if (error.code === "BAD_USER_INPUT") {
      this.problem(t("notPlaced", error.message));
    } else {
      this.problem(t("problems")[error.code] ?? t("notPlaced", error.message));
    }
  }

  follow(id) {
    this.live ??= new Live(this.token, (state) => {
      $("connection").hidden = false;
      showConnection($("connection"), state);
      $("connection").textContent = t("connection")[state] ?? state;
    });
    const subscription = this.live.subscribe(FOLLOW, () => ({ o: id }), {
      next: ({ orderUpdated }) => {
        this.update(orderUpdated);
        if (FINAL.has(orderUpdated.status)) subscription.stop();
      },
      error: (error) => {
        if (error.code === "NOT_FOUND" || error.code === "FORBIDDEN") {
          this.placed = this.placed.filter((placed) => placed !== id);
          this.save();
          subscription.stop();
        } else {
          subscription.restart(2000);
        }
      },
      complete: () => {
        if (!FINAL.has(this.orders.get(id)?.status)) subscription.restart(2000);
      },
    });
  }

  update(order) {
    const known = this.orders.get(order.id);
    if (known && known.version > order.version) return;
    this.orders.set(order.id, order);
    this.renderOrders();
  }

  /** An ordered line's words: the menu's name in the page's locale, else its name at order time. */
  orderedLine(line) {
    const item = this.menu.get(line.menuItemId);
    const options = (item?.optionGroups ?? []).flatMap((group) => group.options);
    const optionName = (chosen) => options.find((option) => option.id === chosen.optionId)?.name ?? chosen.name;
    return el("li", {}, `${line.quantity}× ${item?.name ?? line.name}`,
      line.note ? el("span", { class: "line-note" }, ` (${line.note})`) : null,
      line.options.length ? el("span", { class: "ordered-options" }, line.options.map(optionName).join(" · ")) : null);
  }

  renderOrders() {
    const orders = this.placed.map((id) => this.orders.get(id)).filter(Boolean);
    $("orders").hidden = orders.length === 0;
    $("order-cards").replaceChildren(...orders.map((order) => {
      const reached = STEPS.indexOf(order.status);
      return el("article", { class: "my-order", "data-id": order.id, "data-status": order.status },
        el("header", {},
          el("strong", {}, t("orderNumber", order.number),
            el("time", { class: "placed", datetime: order.placedAt }, ` · ${clockTime(order.placedAt, this.timeZone)}`)),
          el("span", { class: "status" }, t("status")[order.status] ?? order.status)),
        order.status === "CANCELLED" ? null : el("ol", { class: "progress" }, STEPS.map((step, i) =>
          el("li", { class: i <= reached ? "done" : null }, t("status")[step]))),
        el("p", { class: "service-mode", "data-mode": order.serviceMode }, t("modes")[order.serviceMode] ?? order.serviceMode),
        el("ul", { class: "items" }, order.items.map((line) => this.orderedLine(line))),
        order.taxes.length ? el("div", { class: "taxes" },
          el("span", { class: "taxes-heading" }, this.pricesIncludeTax ? t("taxesIncluded") : t("taxesAdded")),
          el("ul", {}, order.taxes.map((line) => el("li", { class: "tax-line", "data-basis-points": line.basisPoints },
            t("taxLine", percent(line.basisPoints), money(line.base), money(line.tax)))))) : null,
        el("footer", {},
          el("span", { class: "grand-total" }, t("grandTotal"), " ", el("strong", {}, money(order.grandTotal))),
          order.status === "PLACED"
            ? el("button", { type: "button", class: "secondary", onclick: () => this.cancel(order) }, t("cancel"))
            : null));
    }));
  }

  async cancel(order) {
    try {
      const { cancelOrder } = await gql(this.token, CANCEL, { o: order.id, reason: "Cancelled by the guest" });
      this.update(cancelOrder);
    } catch (error) {
      this.problem(error.code === "INVALID_TRANSITION" || error.code === "FORBIDDEN"
        ? t("alreadyPreparing", order.number)
        : t("problems")[error.code] ?? error.message);
    }
  }

  async callStaff() {
    const button = $("call-staff");
    button.disabled = true;
    try {
      await gql(this.token, CALL_STAFF, { t: this.tableId });
      this.notice(t("staffCalled"));
      setTimeout(() => {
        button.disabled = false;
      }, 20000);
    } catch (error) {
      button.disabled = false;
      this.problem(t("problems")[error.code] ?? t("callFailed", error.message));
    }
  }

  notice(message) {
    $("notice").hidden = false;
    $("notice").textContent = message;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      $("notice").hidden = true;
    }, 8000);
  }

  problem(message) {
    $("cart-problem").hidden = !message;
    $("cart-problem").textContent = message ?? "";
  }
}

function stop(message) {
  $("problem").hidden = false;
  $("problem").textContent = message;
}

useWords(sessionStorage.getItem(LOCALE_KEY));
const { token } = readFragment(TOKEN_KEY);
const tokenClaims = token ? claims(token) : null;
if (!tokenClaims?.restaurant_id || !tokenClaims?.table_id) {
  stop(t("scanQr"));
} else if (expired(tokenClaims)) {
  stop(t("problems").UNAUTHENTICATED);
} else {
  const shop = new Shop(token, tokenClaims.restaurant_id, tokenClaims.table_id);
  shop.start().catch((error) => stop(t("problems")[error.code] ?? t("menuFailed", error.message)));
}
