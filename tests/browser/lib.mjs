// Shared by the browser scenarios: Chromium from the Debian package, driven by playwright-core;
// a watchdog so that no scenario ever hangs; steps agreed with the Rust test over stdin/stdout.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const LIMIT_MS = Number(process.env.SCENARIO_TIMEOUT_MS ?? 90000);
setTimeout(() => {
  console.error(`the scenario did not finish within ${LIMIT_MS} ms`);
  process.exit(3);
}, LIMIT_MS).unref();

export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a truthy value; fails with `what` after `ms`. */
export async function eventually(what, probe, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

/**
 * Runs a scenario with a fresh Chromium profile, removed afterwards; exits with its outcome.
 * `options.locale` (e.g. "en-US") sets the browser's language, as navigator.languages reports it.
 */
export async function run(scenario, options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "orderhub-chromium-"));
  let context;
  let status = 0;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      headless: true,
      timeout: 30000,
      viewport: { width: 1280, height: 800 },
      locale: options.locale,
      args: [
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic",
      ],
    });
    context.setDefaultTimeout(10000);
    await scenario(context);
    console.log("scenario passed");
  } catch (error) {
    console.error(error);
    status = 1;
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(status);
}

/**
 * Opens a page; an uncaught exception or a Content-Security-Policy violation on it fails the
 * scenario when `page.checkClean()` is called.
 */
export async function open(context, url, viewport = { width: 1280, height: 800 }) {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      problems.push(`CSP: ${message.text()}`);
    }
  });
  page.checkClean = () => check(problems.length === 0, `${url.split("#")[0]}: ${problems.join("; ")}`);
  await page.setViewportSize(viewport);
  await page.goto(url);
  check(!page.url().includes("token"), "the token is cleared from the address bar");
  return page;
}

/** A GraphQL request to the server under test. */
export async function api(token, query, variables = {}) {
  const response = await fetch(`${env("BASE")}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** The open orders of the restaurant, as the API has them: `[{id, number, status}]`. */
export async function openOrders() {
  const { orders } = await api(env("STAFF_TOKEN"),
    `query($r: ID!) { orders(restaurantId: $r, statuses: [PLACED, ACCEPTED, PREPARING, READY], first: 100) {
      edges { node { id number status } } } }`, { r: env("RESTAURANT") });
  return orders.edges.map(({ node }) => node);
}

/** The tickets on the kitchen board: `[{id, number, status, column}]`. */
export function tickets(kitchen) {
  // Playwright finds the elements, then evaluates this: a ticket the board removed in between
  // is detached by then, and no longer on the board.
  return kitchen.$$eval(".column .ticket", (elements) => elements.filter((e) => e.isConnected).map((e) => ({
    id: e.dataset.id,
    number: Number(e.dataset.number),
    status: e.dataset.status,
    column: e.closest(".column").dataset.status,
  })));
}

/** The board matches the API: the same open orders, each once, each in its column. */
export async function boardIsExact(kitchen) {
  const shown = await tickets(kitchen);
  const ids = shown.map((t) => t.id);
  check(new Set(ids).size === ids.length, `an order is on the board twice: ${JSON.stringify(shown)}`);
  check(shown.every((t) => t.status === t.column), `a ticket is in the wrong column: ${JSON.stringify(shown)}`);
  const expected = (await openOrders()).map((o) => `${o.id}:${o.status}`).sort();
  const actual = shown.map((t) => `${t.id}:${t.status}`).sort();
  return JSON.stringify(expected) === JSON.stringify(actual);
}

const stdin = createInterface({ input: process.stdin });
const lines = [];
let waiting = null;
stdin.on("line", (line) => {
  if (waiting) {
    waiting(line);
    waiting = null;
  } else {
    lines.push(line);
  }
});

/** Tells the Rust test that `name` is reached and waits for its answer line. */
export async function step(name) {
  console.log(`STEP ${name}`);
  const line = lines.shift() ?? await new Promise((resolve) => {
    waiting = resolve;
  });
  return line;
}

/** Saves a screenshot of what is on the screen, animations finished. */
export async function screenshot(page, name, viewport) {
  await page.setViewportSize(viewport);
  await sleep(300);
  const path = join(env("SCREENSHOTS"), `${name}-${viewport.width}x${viewport.height}.png`);
  await page.screenshot({ path, animations: "disabled" });
  console.log(`saved ${path}`);
}
