// A small client of the orderhub public API, shared by the kitchen display and the customer
// page: GraphQL over HTTP, subscriptions over graphql-transport-ws, tokens from the URL
// fragment. Nothing here is specific to a screen; other frontends may copy it.

/** A GraphQL error, with its `extensions.code` (NETWORK when the server was not reached). */
export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

/**
 * The token from `#token=…` (kept in sessionStorage under `key`, so a reload keeps it), and
 * the fragment's other parameters. The fragment never reaches the server or its logs; it is
 * cleared from the address bar so that it is not shared with a screenshot or a bookmark.
 */
export function readFragment(key) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const params = {};
  for (const [name, value] of fragment) {
    if (name !== "token") params[name] = value;
  }
  const token = fragment.get("token");
  if (token) sessionStorage.setItem(key, token);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return { token: sessionStorage.getItem(key), params };
}

/** The claims of a JWT (not verified: the server does that), or null. */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** Whether the token's `exp` has passed. */
export function expired(tokenClaims) {
  return typeof tokenClaims?.exp === "number" && tokenClaims.exp * 1000 <= Date.now();
}

/**
 * A random UUID. `crypto.randomUUID` exists only on https and localhost; a restaurant's
 * tablets often reach the server at a plain http LAN address.
 */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Runs a query or mutation; resolves to `data`, rejects with an ApiError. */
export async function gql(token, query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(15000),
    });
  } catch {
    throw new ApiError("NETWORK", "No connection to the server.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError("NETWORK", `The server answered with HTTP ${response.status}.`);
  }
  const error = body.errors?.[0];
  if (error) throw new ApiError(error.extensions?.code ?? "INTERNAL", error.message, error.extensions);
  return body.data;
}

/** Formats integer minor units in their currency (JPY has no minor unit, USD has two). */
export function money({ amount, currency }) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${currency}`;
  }
}

/** Creates an element: `el("p", {class: "x"}, "text", child)`. Text is never parsed as HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** The connection indicator's text per state of a Live connection. */
export const CONNECTION_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  offline: "Reconnecting…",
  unauthorized: "Signed out",
};

/** Shows a Live connection's state on an element (`data-state` drives its colour). */
export function showConnection(element, state) {
  element.dataset.state = state;
  element.textContent = CONNECTION_LABELS[state] ?? state;
}

const CLOSE_REFUSED = 4403; // the token was refused: retrying will not help

/**
 * One WebSocket speaking graphql-transport-ws, carrying any number of subscriptions. It
 * reconnects with exponential backoff and jitter, and then starts every subscription again
 * with fresh variables (so a subscription can resume with `after`). It pings the server and
 * reconnects when nothing has been heard for a while: a connection that looks open can be dead.
 */
export class Live {
  constructor(token, onState = () => {}) {
    this.token = token;
    this.onState = onState;
    this.operations = new Set();
    this.nextId = 1;
    this.failures = 0;
    this.socket = null;
    this.acknowledged = false;
    this.retryTimer = null;
    this.heartbeat = null;
    this.state = null;
    addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
    this.connect();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState(this.failures === 0 ? "connecting" : "offline");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    this.socket = socket;
    this.acknowledged = false;
    this.lastHeard = Date.now();
    socket.onopen = () => {
      this.send({ type: "connection_init", payload: { authorization: `Bearer ${this.token}` } });
    };
    socket.onmessage = (message) => {
      if (socket === this.socket) this.receive(message.data);
    };
    socket.onclose = (event) => {
      if (socket === this.socket) this.closed(event.code);
    };
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.checkAlive(socket), 4000);
  }

  /**
   * Pings every 4 s; 10 s without a word (or without an ack) means the connection is dead,
   * as on a Wi-Fi that dropped without closing anything.
   */
  checkAlive(socket) {
    if (socket !== this.socket) return;
    if (Date.now() - this.lastHeard > 10000) {
      socket.close(4000, "no answer");
      this.closed(4000);
      return;
    }
    if (this.acknowledged) this.send({ type: "ping" });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  receive(text) {
    this.lastHeard = Date.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    const operation = [...this.operations].find((op) => op.id === message.id);
    switch (message.type) {
      case "connection_ack":
        this.acknowledged = true;
        this.failures = 0;
        this.setState("live");
        for (const op of this.operations) this.start(op);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (!operation) break;
        if (message.payload?.errors?.length) {
          this.fail(operation, message.payload.errors[0]);
        } else {
          operation.handlers.next(message.payload.data);
        }
        break;
      case "error":
        if (operation) this.fail(operation, message.payload?.[0] ?? {});
        break;
      case "complete":
        if (operation) {
          operation.id = null;
          operation.handlers.complete?.();
        }
        break;
    }
  }

  fail(operation, error) {
    if (operation.id) this.send({ type: "complete", id: operation.id });
    operation.id = null;
    const code = error.extensions?.code ?? "INTERNAL";
    operation.handlers.error?.(new ApiError(code, error.message ?? code, error.extensions));
  }

  closed(code) {
    this.socket = null;
    this.acknowledged = false;
    clearInterval(this.heartbeat);
    for (const op of this.operations) op.id = null;
    if (code === CLOSE_REFUSED) {
      this.setState("unauthorized");
      return;
    }
    this.failures += 1;
    this.setState("offline");
    // 0.5 s, 1 s, 2 s … up to 10 s, each between half and all of it, so that a room full of
    // tablets does not reconnect in one burst after a restart.
    const ceiling = Math.min(10000, 500 * 2 ** (this.failures - 1));
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Skips the wait when the network or the screen comes back. */
  reconnectNow() {
    if (this.retryTimer && this.state !== "unauthorized") this.connect();
  }

  start(operation) {
    if (!this.acknowledged || operation.id || !this.operations.has(operation)) return;
    operation.id = String(this.nextId++);
    this.send({
      type: "subscribe",
      id: operation.id,
      payload: { query: operation.query, variables: operation.variables() },
    });
    operation.handlers.started?.();
  }

  /**
   * Starts a subscription: `variables()` is called on every (re)start; handlers are
   * `started()` (sent to the server, on every (re)start), `next(data)`, `error(ApiError)`
   * (the subscription has ended) and `complete()`.
   * Returns `{restart(delay), stop()}`.
   */
  subscribe(query, variables, handlers) {
    const operation = { id: null, query, variables, handlers };
    this.operations.add(operation);
    this.start(operation);
    return {
      restart: (delay = 0) => {
        if (operation.id) this.send({ type: "complete", id: operation.id });
        operation.id = null;
        setTimeout(() => this.start(operation), delay);
      },
      stop: () => {
        if (operation.id) this.send({ type: "complete", id: operation.id });
        operation.id = null;
        this.operations.delete(operation);
      },
    };
  }
}

/** A short beep through WebAudio (no audio file). Browsers allow sound after a first tap. */
export class Beeper {
  constructor() {
    this.context = null;
    const unlock = () => {
      try {
        this.context ??= new AudioContext();
        this.context.resume().catch(() => {});
      } catch {
        // No audio device: the screen works silently.
      }
    };
    addEventListener("pointerdown", unlock);
    addEventListener("keydown", unlock);
  }

  get ready() {
    return this.context?.state === "running";
  }

  beep(frequencies = [880, 1320]) {
    if (!this.ready) return;
    const start = this.context.currentTime;
    frequencies.forEach((frequency, i) => {
      const at = start + i * 0.16;
      const oscillator = this.context.createOscillator();
      const gain = this.context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
      oscillator.connect(gain).connect(this.context.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.16);
    });
  }
}

/**
 * The time of day of an instant (an RFC 3339 string or milliseconds) on the restaurant's clock,
 * `timeZone` being its IANA zone from the API, whatever the device's own zone; the device's if
 * the browser does not know the zone.
 */
export function clockTime(at, timeZone) {
  const date = new Date(at);
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone }).format(date);
  } catch {
    return new Intl.DateTimeFormat(undefined, options).format(date);
  }
}

/** Relative age in words: "now", "4 min", "1 h 05". */
export function age(since, now = Date.now()) {
  const minutes = Math.max(0, Math.floor((now - Date.parse(since)) / 60000));
  if (minutes < 1) return "now";
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")}`;
}

/**
 * The tag of `available` that best suits a reader who prefers `preferred` (BCP 47 tags, most
 * preferred first, as `navigator.languages`): for each preferred tag in turn, an available tag
 * equal to it (case aside), else one of the same language (`en-US` finds `en`); null when none
 * fits. RFC 4647's lookup, with the primary language subtag as the only fallback.
 */
export function matchLocale(preferred, available) {
  const lower = (tag) => String(tag).toLowerCase();
  const language = (tag) => lower(tag).split("-")[0];
  for (const wanted of preferred) {
    if (!wanted) continue;
    const exact = available.find((tag) => tag && lower(tag) === lower(wanted));
    if (exact) return exact;
    const same = available.find((tag) => tag && language(tag) === language(wanted));
    if (same) return same;
  }
  return null;
}

/** A language's name in that language ("日本語", "English"), for a language switch. */
export function languageName(tag) {
  try {
    return new Intl.DisplayNames([tag], { type: "language" }).of(tag) ?? tag;
  } catch {
    return tag;
  }
}
