// The kitchen display: every open order of one restaurant as a ticket in its status column,
// kept exact by applying `restaurantEvents` strictly in seq order.
//
// How the board stays right:
// - Every order it holds carries its `version`; an order (from an event, a snapshot or a
//   mutation's answer) replaces the one on the board only if its version is higher. Applying
//   the same state twice, or an older one, changes nothing.
// - Events are applied in seq order, each once: seq <= the last applied one is skipped. After a
//   disconnect or a SLOW_CONSUMER cut the subscription resumes with `after: lastSeq`, and the
//   server replays everything missed.
// - Without a seq yet (first load, or HISTORY_GONE), it loads the open orders with the `orders`
//   query, whose `seq` is the newest event the page reflects (even from a lagging replica), and
//   then subscribes with `after: seq`: the snapshot plus the events after it hold every order
//   exactly once, so one load is enough. HISTORY_GONE (`after` pruned, or past the newest event
//   after a restore from a backup) first empties the board: what it held may never have
//   happened.
// - A read made because of an event (a table the board does not know yet, an order to refresh)
//   passes `atLeastSeq: lastSeq`, so a replica that has not applied that event yet is not
//   asked.

import {
  ApiError, Beeper, Live, age, claims, clockTime, el, expired, gql, readFragment, showConnection,
} from "./client.js";

const TOKEN_KEY = "orderhub.kitchen.token";
const RESTAURANT_KEY = "orderhub.kitchen.restaurant";
const DISMISSED_KEY = "orderhub.kitchen.dismissed-calls";

const COLUMNS = ["PLACED", "ACCEPTED", "PREPARING", "READY"];
const NEXT = { PLACED: "ACCEPTED", ACCEPTED: "PREPARING", PREPARING: "READY", READY: "SERVED" };
const ACTION = { PLACED: "Accept", ACCEPTED: "Start", PREPARING: "Ready", READY: "Served" };
const CANCELLABLE = new Set(["PLACED", "ACCEPTED", "PREPARING"]);
/** Minutes after which a ticket turns amber, then red. */
const AGE_WARN = 8;
const AGE_LATE = 15;

const ORDER = `fragment Ticket on Order {
  id number status version tableId note placedAt updatedAt serviceMode
  items { menuItemId name quantity note options { optionId groupName name } }
}`;
/** A menu item as the board's menu sheet shows it: sold out or not, and each of its options. */
const STOCK = `fragment Stock on MenuItem {
  id name available price { amount currency }
  optionGroups { id name options { id name available } }
}`;
const RESTAURANT = `query Kitchen($r: ID!, $seq: Int) { restaurant(id: $r, atLeastSeq: $seq) {
  name currency timeZone tables { id name } menu { ...Stock }
} } ${STOCK}`;
const TABLES = `query Tables($r: ID!, $seq: Int) { restaurant(id: $r, atLeastSeq: $seq) { tables { id name } } }`;
const OPEN_ORDERS = `query OpenOrders($r: ID!, $after: String) {
  orders(restaurantId: $r, statuses: [PLACED, ACCEPTED, PREPARING, READY], first: 100, after: $after) {
    edges { node { ...Ticket } }
    pageInfo { hasNextPage endCursor }
    seq
  }
} ${ORDER}`;
const ONE_ORDER = `query OneOrder($o: ID!, $seq: Int) { order(id: $o, atLeastSeq: $seq) { ...Ticket } } ${ORDER}`;
const EVENTS = `subscription Board($r: ID!, $after: Int) {
  restaurantEvents(restaurantId: $r, after: $after) {
    __typename seq at
    ... on OrderPlaced { order { ...Ticket } }
    ... on OrderStatusChanged { from order { ...Ticket } }
    ... on MenuItemAvailabilityChanged { menuItem { ...Stock } }
    ... on MenuItemChanged { archived menuItem { ...Stock } }
    ... on StaffCalled { call { id tableId message at } }
  }
} ${ORDER} ${STOCK}`;
const ADVANCE = `mutation Advance($o: ID!, $to: OrderStatus!, $v: Int) {
  advanceOrder(orderId: $o, to: $to, expectedVersion: $v) { ...Ticket }
} ${ORDER}`;
const CANCEL = `mutation Cancel($o: ID!, $reason: String!) {
  cancelOrder(orderId: $o, reason: $reason) { ...Ticket }
} ${ORDER}`;
const AVAILABILITY = `mutation Availability($m: ID!, $a: Boolean!) {
  setMenuItemAvailability(menuItemId: $m, available: $a) { ...Stock }
} ${STOCK}`;
const OPTION_AVAILABILITY = `mutation OptionAvailability($o: ID!, $a: Boolean!) {
  setOptionAvailability(optionId: $o, available: $a) { ...Stock }
} ${STOCK}`;
/** How the order leaves the kitchen, when the cook must know (eat-in is the usual case). */
const MODES = { TAKEOUT: "Takeout" };

const $ = (id) => document.getElementById(id);

class Board {
  constructor(token, restaurantId) {
    this.token = token;
    this.restaurantId = restaurantId;
    /** The seq of the last event applied; null until the first one. */
    this.lastSeq = null;
    /** How many events were applied: with a board opened before the restaurant's first event, lastSeq. */
    this.applied = 0;
    this.orders = new Map();
    /** The highest version seen per order, also of orders that left the board. */
    this.versions = new Map();
    this.pending = new Set();
    this.fresh = new Set();
    this.tickets = new Map();
    this.tables = new Map();
    this.menu = new Map();
    this.calls = new Map();
    this.dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) ?? "[]"));
    this.beeper = new Beeper();
    this.renderQueued = false;
    this.element = $("board");
  }

  async start() {
    const { name, timeZone } = await this.setUp(null);
    // Times on this screen are the restaurant's, wherever the tablet's clock is set.
    this.timeZone = timeZone;
    $("restaurant").textContent = name;
    document.title = `Kitchen — ${name}`;
    this.element.hidden = false;
    $("menu-button").hidden = false;
    $("connection").hidden = false;
    this.live = new Live(this.token, (state) => this.connection(state));
    setInterval(() => this.tick(), 5000);
    this.tick();
    await this.follow();
  }

  /** Loads the board, then follows the events after what it loaded (see the top of this file). */
  async follow() {
    for (;;) {
      try {
        this.lastSeq = await this.load();
        break;
      } catch (error) {
        this.problem(`Could not load the orders (${error.message}); retrying.`);
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
    }
    this.problem(null);
    this.element.dataset.lastSeq = this.lastSeq;
    // The menu as of the orders loaded at least: the events after them replay what follows.
    await this.setUp(this.lastSeq).catch(() => {});
    if (this.events) {
      this.events.restart();
      return;
    }
    this.events = this.live.subscribe(EVENTS, () => ({ r: this.restaurantId, after: this.lastSeq }), {
      next: (data) => this.event(data.restaurantEvents),
      error: (error) => this.eventsFailed(error),
      complete: () => this.events.restart(1000),
    });
  }

  connection(state) {
    showConnection($("connection"), state);
    if (state === "unauthorized") signIn("The server refused this token. Sign in again.");
  }

  /** Reads the restaurant's tables and menu, reflecting at least event `seq`. */
  async setUp(seq) {
    const { restaurant } = await gql(this.token, RESTAURANT, { r: this.restaurantId, seq });
    if (!restaurant) throw new ApiError("NOT_FOUND", "This restaurant does not exist.");
    for (const table of restaurant.tables) this.tables.set(table.id, table.name);
    for (const item of restaurant.menu) this.menu.set(item.id, item);
    this.render();
    this.renderMenu();
    return restaurant;
  }

  /**
   * Puts the open orders on the board and returns the seq they reflect: the first page's (later
   * pages reflect as much or more; the events after it replay what they add, and versions keep
   * each order's newest state).
   */
  async load() {
    let seq = null;
    let after = null;
    do {
      const { orders } = await gql(this.token, OPEN_ORDERS, { r: this.restaurantId, after });
      seq ??= orders.seq;
      for (const { node } of orders.edges) this.apply(node);
      after = orders.pageInfo.hasNextPage ? orders.pageInfo.endCursor : null;
    } while (after);
    return seq;
  }

  event(event) {
    if (this.lastSeq !== null && event.seq <= this.lastSeq) return; // applied already
    if (this.lastSeq !== null && event.seq !== this.lastSeq + 1) {
      // The server promises no gap; should one appear anyway, replay from what was applied.
      this.events.restart();
      return;
    }
    this.lastSeq = event.seq;
    this.applied += 1;
    this.element.dataset.lastSeq = this.lastSeq;
    this.element.dataset.applied = this.applied;
    switch (event.__typename) {
      case "OrderPlaced":
        if (this.apply(event.order)) {
          this.fresh.add(event.order.id);
          this.beeper.beep();
        }
        break;
      case "OrderStatusChanged":
        this.apply(event.order);
        break;
      case "MenuItemAvailabilityChanged":
        this.menu.set(event.menuItem.id, event.menuItem);
        this.renderMenu();
        break;
      case "MenuItemChanged":
        // Created, changed, archived, or one of its options sold out or back.
        if (event.archived) this.menu.delete(event.menuItem.id);
        else this.menu.set(event.menuItem.id, event.menuItem);
        this.renderMenu();
        break;
      default:
        // Events this board does not show (visits, restaurant settings, newer kinds) still
        // count in seq order above.
        break;
      case "StaffCalled":
        if (!this.dismissed.has(event.call.id)) {
          this.calls.set(event.call.id, event.call);
          this.beeper.beep([660, 660, 990]);
          this.renderCalls();
        }
        break;
    }
  }

  eventsFailed(error) {
    switch (error.code) {
      case "HISTORY_GONE":
        // `after` was pruned, or is past the newest event (a store restored from a backup):
        // what the board holds may never have happened. It starts over from the store's
        // state; restarting without `after` reloads the orders.
        this.lastSeq = null;
        this.orders.clear();
        this.versions.clear();
        this.render();
        this.follow();
        break;
      case "UNAUTHENTICATED":
      case "FORBIDDEN":
        signIn(`${error.message}. Sign in again.`);
        break;
      default:
        // SLOW_CONSUMER, UNAVAILABLE …: resume after the last event applied.
        this.events.restart(error.code === "SLOW_CONSUMER" ? 200 : 2000);
    }
  }

  /** Puts an order on (or off) the board if it is newer than what the board has. */
  apply(order) {
    if (order.version <= (this.versions.get(order.id) ?? 0)) return false;
    this.versions.set(order.id, order.version);
    if (COLUMNS.includes(order.status)) this.orders.set(order.id, order);
    else this.orders.delete(order.id);
    if (!this.tables.has(order.tableId)) this.refreshTables();
    this.render();
    return true;
  }

  async refreshTables() {
    if (this.tablesLoading) return;
    this.tablesLoading = true;
    try {
      const { restaurant } = await gql(this.token, TABLES, { r: this.restaurantId, seq: this.lastSeq });
      for (const table of restaurant?.tables ?? []) this.tables.set(table.id, table.name);
      this.render();
    } catch {
      // The ticket shows "Table ?" until the next try.
    } finally {
      this.tablesLoading = false;
    }
  }

  async advance(id) {
    const order = this.orders.get(id);
    if (!order || this.pending.has(id)) return;
    this.pending.add(id);
    this.render();
    try {
      const to = NEXT[order.status];
      const { advanceOrder } = await gql(this.token, ADVANCE, { o: id, to, v: order.version });
      this.apply(advanceOrder);
      this.problem(null);
    } catch (error) {
      if (error.code === "CONFLICT" || error.code === "INVALID_TRANSITION") {
        this.problem(`Order #${order.number} was changed on another screen; it is up to date now.`, true);
        await this.refresh(id);
      } else {
        this.problem(`Order #${order.number} was not moved: ${error.message}`);
      }
    } finally {
      this.pending.delete(id);
      this.render();
    }
  }

  async refresh(id) {
    try {
      const { order } = await gql(this.token, ONE_ORDER, { o: id, seq: this.lastSeq });
      if (order) this.apply(order);
    } catch {
      // The events bring it anyway.
    }
  }

  async cancel(id, reason) {
    const { cancelOrder } = await gql(this.token, CANCEL, { o: id, reason });
    this.apply(cancelOrder);
  }

  async setOptionAvailable(item, option, available) {
    try {
      const { setOptionAvailability } = await gql(this.token, OPTION_AVAILABILITY, { o: option.id, a: available });
      this.menu.set(item.id, setOptionAvailability);
      this.renderMenu();
    } catch (error) {
      this.problem(`${item.name} — ${option.name}: ${error.message}`);
    }
  }

  async setAvailable(item, available) {
    try {
      const { setMenuItemAvailability } = await gql(this.token, AVAILABILITY, { m: item.id, a: available });
      this.menu.set(item.id, setMenuItemAvailability);
      this.renderMenu();
    } catch (error) {
      this.problem(`${item.name}: ${error.message}`);
    }
  }

  /** Shows a message over the board (tap to dismiss); a `passing` one goes by itself. */
  problem(message, passing = false) {
    clearTimeout(this.problemTimer);
    $("problem").hidden = !message;
    $("problem").textContent = message ?? "";
    if (passing) this.problemTimer = setTimeout(() => this.problem(null), 8000);
  }

  render() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.draw();
    });
  }

  draw() {
    const now = Date.now();
    for (const [id, ticket] of this.tickets) {
      if (!this.orders.has(id)) {
        ticket.element.remove();
        this.tickets.delete(id);
      }
    }
    for (const status of COLUMNS) {
      const column = this.element.querySelector(`[data-status="${status}"]`);
      const orders = [...this.orders.values()]
        .filter((order) => order.status === status)
        .sort((a, b) => a.placedAt.localeCompare(b.placedAt) || a.number - b.number);
      const elements = orders.map((order) => this.ticket(order, now));
      const list = column.querySelector(".tickets");
      const same = elements.length === list.children.length
        && elements.every((element, i) => list.children[i] === element);
      if (!same) list.replaceChildren(...elements);
      column.querySelector(".count").textContent = orders.length;
    }
  }

  /** The ticket's element, rebuilt only when its order or its pending state changed. */
  ticket(order, now) {
    const pending = this.pending.has(order.id);
    let ticket = this.tickets.get(order.id);
    if (ticket && ticket.version === order.version && ticket.pending === pending) return ticket.element;
    const element = ticket?.element ?? el("article", {
      class: "ticket",
      role: "button",
      tabindex: "0",
      onclick: (event) => {
        if (!event.target.closest(".cancel")) this.advance(order.id);
      },
      onkeydown: (event) => {
        if (event.key === "Enter" && event.target === element) this.advance(order.id);
      },
      onanimationend: () => element.classList.remove("fresh"),
    });
    ticket = { element, version: order.version, pending, placedAt: order.placedAt };
    this.tickets.set(order.id, ticket);
    Object.assign(element.dataset, {
      id: order.id, number: order.number, status: order.status, version: order.version,
    });
    element.classList.toggle("pending", pending);
    setAgeClass(element, order.placedAt, now);
    if (this.fresh.delete(order.id)) element.classList.add("fresh");
    element.setAttribute("aria-label", `Order ${order.number}: ${ACTION[order.status]}`);
    element.replaceChildren(...[
      el("header", {},
        el("span", { class: "number" }, `#${order.number}`),
        el("span", { class: "table" }, this.tables.get(order.tableId) ?? "Table ?"),
        el("span", { class: "age", title: `placed ${clockTime(order.placedAt, this.timeZone)}` },
          age(order.placedAt, now))),
      MODES[order.serviceMode] ? el("p", { class: "mode", "data-mode": order.serviceMode }, MODES[order.serviceMode]) : null,
      el("ul", { class: "items" }, order.items.map((item) => el("li", {},
        el("span", { class: "qty" }, `${item.quantity}×`), " ", item.name,
        // The options change what the cook does: on their own line, in bold.
        item.options?.length
          ? el("span", { class: "options" }, item.options.flatMap((option, i) => [
            i > 0 ? " · " : null, el("span", { class: "option", title: option.groupName }, option.name)]))
          : null,
        item.note ? el("span", { class: "line-note" }, item.note) : null))),
      order.note ? el("p", { class: "note" }, order.note) : null,
      el("footer", {},
        CANCELLABLE.has(order.status)
          ? el("button", { class: "cancel", type: "button", onclick: () => askCancel(this, order.id) }, "Cancel")
          : null,
        el("span", { class: "action" }, pending ? "…" : `${ACTION[order.status]} ▸`)),
    ].filter(Boolean));
    return element;
  }

  /** Every few seconds: ages, their colours, the clock, staff calls' ages, the sound hint. */
  tick() {
    const now = Date.now();
    for (const ticket of this.tickets.values()) {
      ticket.element.querySelector(".age").textContent = age(ticket.placedAt, now);
      setAgeClass(ticket.element, ticket.placedAt, now);
    }
    $("clock").textContent = clockTime(now, this.timeZone);
    $("sound").hidden = this.beeper.ready;
    this.renderCalls();
  }

  renderCalls() {
    const calls = [...this.calls.values()].sort((a, b) => a.at.localeCompare(b.at));
    $("calls").replaceChildren(...calls.map((call) => el("div", { class: "call", "data-id": call.id },
      el("span", { class: "badge" }, "Staff call"),
      el("strong", {}, this.tables.get(call.tableId) ?? "A table"),
      " calls staff",
      call.message ? el("span", { class: "message" }, `“${call.message}”`) : null,
      el("span", { class: "age", title: clockTime(call.at, this.timeZone) }, age(call.at)),
      el("button", { type: "button", class: "secondary", onclick: () => this.dismiss(call.id) }, "OK"))));
  }

  /** Staff calls have no acknowledgement in the API: dismissed on this screen only. */
  dismiss(id) {
    this.calls.delete(id);
    this.dismissed.add(id);
    sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...this.dismissed].slice(-200)));
    this.renderCalls();
  }

  renderMenu() {
    $("menu-items").replaceChildren(...[...this.menu.values()].map((item) => el("li", { "data-id": item.id },
      el("button", {
        type: "button",
        class: item.available ? "available" : "sold-out",
        "aria-pressed": String(!item.available),
        onclick: () => this.setAvailable(item, !item.available),
      }, el("span", {}, item.name), el("span", { class: "state" }, item.available ? "Available" : "Sold out")),
      (item.optionGroups ?? []).some((group) => group.options.length)
        ? el("div", { class: "stock-options" }, item.optionGroups.flatMap((group) => group.options).map((option) =>
          el("button", {
            type: "button",
            class: `chip ${option.available ? "available" : "sold-out"}`,
            "data-option-id": option.id,
            "aria-pressed": String(!option.available),
            onclick: () => this.setOptionAvailable(item, option, !option.available),
          }, option.name)))
        : null)));
  }
}

/** Colours a ticket by how long its order has waited. */
function setAgeClass(element, placedAt, now) {
  const minutes = (now - Date.parse(placedAt)) / 60000;
  const late = minutes >= AGE_LATE;
  const warn = !late && minutes >= AGE_WARN;
  element.classList.toggle("age-late", late);
  element.classList.toggle("age-warn", warn);
  element.classList.toggle("age-ok", !late && !warn);
}

function askCancel(board, id) {
  const order = board.orders.get(id);
  if (!order) return;
  const dialog = $("cancel-dialog");
  $("cancel-number").textContent = `#${order.number}`;
  $("cancel-reason").value = "";
  $("cancel-problem").hidden = true;
  dialog.dataset.order = id;
  dialog.showModal();
}

function setUpDialogs(board) {
  const dialog = $("cancel-dialog");
  for (const button of dialog.querySelectorAll("[data-reason]")) {
    button.addEventListener("click", () => {
      $("cancel-reason").value = button.dataset.reason;
    });
  }
  $("cancel-keep").addEventListener("click", () => dialog.close());
  $("cancel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = $("cancel-reason").value.trim();
    if (!reason) {
      $("cancel-problem").hidden = false;
      $("cancel-problem").textContent = "Choose or type a reason.";
      return;
    }
    $("cancel-confirm").disabled = true;
    try {
      await board.cancel(dialog.dataset.order, reason);
      dialog.close();
    } catch (error) {
      $("cancel-problem").hidden = false;
      $("cancel-problem").textContent = error.code === "INVALID_TRANSITION"
        ? "This order can no longer be cancelled."
        : error.message;
      board.refresh(dialog.dataset.order);
    } finally {
      $("cancel-confirm").disabled = false;
    }
  });
  $("menu-button").addEventListener("click", () => {
    board.renderMenu();
    $("menu-dialog").showModal();
  });
  $("menu-close").addEventListener("click", () => $("menu-dialog").close());
  $("problem").addEventListener("click", () => board.problem(null));
  $("sound").addEventListener("click", () => {
    board.beeper.beep();
    setTimeout(() => board.tick(), 100);
  });
}

function signIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  const problem = $("problem");
  problem.hidden = !message;
  problem.textContent = message ?? "";
  $("board").hidden = true;
  $("login").hidden = false;
}

async function open(token, restaurantHint) {
  const tokenClaims = claims(token);
  const restaurantId = tokenClaims?.restaurant_id ?? restaurantHint;
  if (!tokenClaims || !["staff", "manager", "admin"].includes(tokenClaims.role)) {
    return signIn("That is not a staff token.");
  }
  if (expired(tokenClaims)) return signIn("This token has expired.");
  if (!restaurantId) return signIn("An admin token needs #restaurant=… in the address.");
  $("login").hidden = true;
  const board = new Board(token, restaurantId);
  setUpDialogs(board);
  try {
    await board.start();
  } catch (error) {
    if (error.code === "UNAUTHENTICATED" || error.code === "FORBIDDEN") signIn(error.message);
    else board.problem(`${error.message} Reload the page to try again.`);
  }
}

const { token, params } = readFragment(TOKEN_KEY);
if (params.restaurant) sessionStorage.setItem(RESTAURANT_KEY, params.restaurant);
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const entered = $("login-token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, entered);
  location.reload();
});
if (token) open(token, sessionStorage.getItem(RESTAURANT_KEY));
else signIn(null);
