// The customer page: the menu, a cart, placing the order exactly once, then its status live.
//
// Exactly once: the cart carries an idempotency key, made when the cart is first changed and
// kept (in sessionStorage, with the cart) until an order is placed with it. A double tap, a
// retry after a lost answer or a reload in between all send the same key, and the server
// returns the first order instead of placing another.

import {
  Live, claims, clockTime, el, expired, gql, money, readFragment, showConnection, uuid,
} from "./client.js";

const TOKEN_KEY = "orderhub.customer.token";
const MAX_QUANTITY = 99;
const FINAL = new Set(["SERVED", "CANCELLED"]);
const STEPS = ["PLACED", "ACCEPTED", "PREPARING", "READY", "SERVED"];
const STATUS = {
  PLACED: "Sent to the kitchen",
  ACCEPTED: "Accepted",
  PREPARING: "Preparing",
  READY: "Ready",
  SERVED: "Served",
  CANCELLED: "Cancelled",
};
/** Errors in the words a guest understands. */
const PROBLEMS = {
  NETWORK: "No connection. Your order was not confirmed: tap again to retry (it will not be ordered twice).",
  UNAVAILABLE: "The restaurant's system is busy. Tap again to retry (it will not be ordered twice).",
  UNAUTHENTICATED: "This link has expired. Please scan the QR code on your table again.",
  FORBIDDEN: "This link is not valid for this table. Please scan the QR code on your table again.",
  CONFLICT: "This order was already sent with other items. Please ask the staff.",
  RATE_LIMITED: "Too many tries at once. Wait a moment, then tap again.",
};

const MINE = `fragment Mine on Order {
  id number status version note placedAt total { amount currency }
  items { menuItemId name quantity note subtotal { amount currency } }
}`;
const MENU = `query Menu($r: ID!) { restaurant(id: $r) {
  name currency timeZone menu { id name available price { amount currency } }
} }`;
const PLACE = `mutation Place($i: PlaceOrderInput!) { placeOrder(input: $i) { ...Mine } } ${MINE}`;
const FOLLOW = `subscription Follow($o: ID!) { orderUpdated(orderId: $o) { ...Mine } } ${MINE}`;
const CANCEL = `mutation CancelMine($o: ID!, $reason: String!) { cancelOrder(orderId: $o, reason: $reason) { ...Mine } } ${MINE}`;
const CALL_STAFF = `mutation CallStaff($t: ID!) { callStaff(tableId: $t) { id at } }`;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Shop {
  constructor(token, restaurantId, tableId) {
    this.token = token;
    this.restaurantId = restaurantId;
    this.tableId = tableId;
    this.storageKey = `orderhub.order.${tableId}`;
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey) ?? "null");
    this.cart = saved?.cart ?? { key: null, lines: [], note: "" };
    /** Ids of the orders placed from this page, newest first. */
    this.placed = saved?.placed ?? [];
    this.orders = new Map();
    this.menu = new Map();
    this.currency = "JPY";
    this.placing = false;
    this.live = null;
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
    $("place").addEventListener("click", () => this.place());
    $("to-cart").addEventListener("click", () => $("cart").scrollIntoView({ behavior: "smooth" }));
    $("call-staff").addEventListener("click", () => this.callStaff());
    this.renderMenu();
    this.renderCart();
    for (const id of this.placed) this.follow(id);
    // Sold-out items change during service; guests see it when they come back to the page.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.loadMenu().then(() => this.renderAll(), () => {});
    });
  }

  async loadMenu() {
    const { restaurant } = await gql(this.token, MENU, { r: this.restaurantId });
    if (!restaurant) throw new Error("This restaurant does not exist.");
    $("restaurant").textContent = restaurant.name;
    document.title = restaurant.name;
    this.currency = restaurant.currency;
    // Times are shown on the restaurant's clock, wherever the guest's phone is set.
    this.timeZone = restaurant.timeZone;
    this.menu = new Map(restaurant.menu.map((item) => [item.id, item]));
  }

  renderAll() {
    this.renderMenu();
    this.renderCart();
  }

  /** The cart's key is made on its first change and kept until an order is placed with it. */
  touch() {
    this.cart.key ??= uuid();
  }

  quantity(id) {
    return this.cart.lines.find((line) => line.menuItemId === id)?.quantity ?? 0;
  }

  setQuantity(id, quantity) {
    this.touch();
    const line = this.cart.lines.find((l) => l.menuItemId === id);
    const clamped = Math.max(0, Math.min(MAX_QUANTITY, quantity));
    if (line && clamped === 0) this.cart.lines = this.cart.lines.filter((l) => l !== line);
    else if (line) line.quantity = clamped;
    else if (clamped > 0) this.cart.lines.push({ menuItemId: id, quantity: clamped, note: "" });
    this.save();
    this.problem(null);
    this.renderAll();
  }

  stepper(item) {
    const quantity = this.quantity(item.id);
    if (!item.available) return el("span", { class: "badge" }, "Sold out");
    if (quantity === 0) {
      return el("button", {
        type: "button", class: "add", "aria-label": `Add ${item.name}`,
        onclick: () => this.setQuantity(item.id, 1),
      }, "Add");
    }
    return el("div", { class: "stepper" },
      el("button", {
        type: "button", "aria-label": `One less ${item.name}`,
        onclick: () => this.setQuantity(item.id, quantity - 1),
      }, "−"),
      el("output", {}, String(quantity)),
      el("button", {
        type: "button", "aria-label": `One more ${item.name}`, disabled: quantity >= MAX_QUANTITY,
        onclick: () => this.setQuantity(item.id, quantity + 1),
      }, "+"));
  }

  renderMenu() {
    $("menu").replaceChildren(...[...this.menu.values()].map((item) => el("li", {
      class: item.available ? "dish" : "dish sold-out", "data-id": item.id,
    },
    el("div", { class: "dish-text" },
      el("span", { class: "name" }, item.name),
      el("span", { class: "price" }, money(item.price))),
    this.stepper(item))));
  }

  renderCart() {
    const lines = this.cart.lines;
    $("cart-empty").hidden = lines.length > 0;
    $("cart-lines").replaceChildren(...lines.map((line) => {
      const item = this.menu.get(line.menuItemId);
      const note = el("input", {
        class: "line-note", maxlength: "200", placeholder: "Note (optional)", value: line.note,
        "aria-label": `Note for ${item?.name ?? "this item"}`,
      });
      note.addEventListener("input", () => {
        line.note = note.value;
        this.save();
      });
      return el("li", { class: item?.available === false ? "sold-out" : null },
        el("div", { class: "line" },
          el("span", { class: "name" }, item?.name ?? "No longer on the menu"),
          item ? this.stepper(item) : null,
          el("span", { class: "subtotal" },
            item ? money({ amount: item.price.amount * line.quantity, currency: item.price.currency }) : "")),
        note);
    }));
    // For display only: the server prices the order from its menu.
    const total = lines.reduce((sum, line) => sum + (this.menu.get(line.menuItemId)?.price.amount ?? 0) * line.quantity, 0);
    $("total").textContent = money({ amount: total, currency: this.currency });
    const count = lines.reduce((sum, line) => sum + line.quantity, 0);
    $("to-cart").hidden = count === 0;
    $("to-cart").textContent = `Your order: ${count} ${count === 1 ? "item" : "items"} · ${$("total").textContent}`;
    $("place").disabled = this.placing || lines.length === 0;
    $("place").textContent = this.placing ? "Sending…" : "Place order";
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
      })),
      note: this.cart.note.trim() || null,
      idempotencyKey: this.cart.key,
    };
    try {
      const order = await this.send(input);
      this.cart = { key: null, lines: [], note: "" };
      $("order-note").value = "";
      if (!this.placed.includes(order.id)) this.placed.unshift(order.id);
      this.save();
      this.update(order);
      this.follow(order.id);
      this.notice(`Order #${order.number} is with the kitchen.`);
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
      const gone = this.cart.lines
        .map((line) => this.menu.get(line.menuItemId))
        .filter((item) => !item?.available)
        .map((item) => item?.name ?? "an item");
      this.problem(`Sorry, ${gone.join(", ") || "an item"} just sold out. Remove it to place your order.`);
    } else if (error.code === "BAD_USER_INPUT") {
      this.problem(`The order could not be placed: ${error.message}`);
    } else {
      this.problem(PROBLEMS[error.code] ?? `The order could not be placed: ${error.message}`);
    }
  }

  follow(id) {
    this.live ??= new Live(this.token, (state) => {
      $("connection").hidden = false;
      showConnection($("connection"), state);
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

  renderOrders() {
    const orders = this.placed.map((id) => this.orders.get(id)).filter(Boolean);
    $("orders").hidden = orders.length === 0;
    $("order-cards").replaceChildren(...orders.map((order) => {
      const reached = STEPS.indexOf(order.status);
      return el("article", { class: "my-order", "data-id": order.id, "data-status": order.status },
        el("header", {},
          el("strong", {}, `Order #${order.number}`,
            el("time", { class: "placed", datetime: order.placedAt }, ` · ${clockTime(order.placedAt, this.timeZone)}`)),
          el("span", { class: "status" }, STATUS[order.status] ?? order.status)),
        order.status === "CANCELLED" ? null : el("ol", { class: "progress" }, STEPS.map((step, i) =>
          el("li", { class: i <= reached ? "done" : null }, STATUS[step]))),
        el("ul", { class: "items" }, order.items.map((item) =>
          el("li", {}, `${item.quantity}× ${item.name}`, item.note ? el("span", { class: "line-note" }, ` (${item.note})`) : null))),
        el("footer", {},
          el("span", {}, "Total ", el("strong", {}, money(order.total))),
          order.status === "PLACED"
            ? el("button", { type: "button", class: "secondary", onclick: () => this.cancel(order) }, "Cancel")
            : null));
    }));
  }

  async cancel(order) {
    try {
      const { cancelOrder } = await gql(this.token, CANCEL, { o: order.id, reason: "Cancelled by the guest" });
      this.update(cancelOrder);
    } catch (error) {
      this.problem(error.code === "INVALID_TRANSITION" || error.code === "FORBIDDEN"
        ? `Order #${order.number} is already being prepared. Please ask the staff.`
        : PROBLEMS[error.code] ?? error.message);
    }
  }

  async callStaff() {
    const button = $("call-staff");
    button.disabled = true;
    try {
      await gql(this.token, CALL_STAFF, { t: this.tableId });
      this.notice("Staff has been called to your table.");
      setTimeout(() => {
        button.disabled = false;
      }, 20000);
    } catch (error) {
      button.disabled = false;
      this.problem(PROBLEMS[error.code] ?? `Could not call staff: ${error.message}`);
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

const { token } = readFragment(TOKEN_KEY);
const tokenClaims = token ? claims(token) : null;
if (!tokenClaims?.restaurant_id || !tokenClaims?.table_id) {
  stop("Please scan the QR code on your table to order.");
} else if (expired(tokenClaims)) {
  stop(PROBLEMS.UNAUTHENTICATED);
} else {
  const shop = new Shop(token, tokenClaims.restaurant_id, tokenClaims.table_id);
  shop.start().catch((error) => stop(PROBLEMS[error.code] ?? `The menu could not be loaded: ${error.message}`));
}
