-- SQLite INTEGER is 64-bit; timestamps are
-- milliseconds since the epoch (UTC), the same representation as the PostgreSQL schema.

CREATE TABLE restaurants (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    currency           TEXT NOT NULL,
    utc_offset_minutes INTEGER NOT NULL DEFAULT 0,
    -- Counters locked and advanced by every command of the restaurant.
    last_seq           INTEGER NOT NULL DEFAULT 0,
    ticket_day         INTEGER NOT NULL DEFAULT 0,
    last_ticket        INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL
);

CREATE TABLE restaurant_tables (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX restaurant_tables_by_restaurant ON restaurant_tables (restaurant_id, created_at);

CREATE TABLE menu_items (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    name          TEXT NOT NULL,
    price         INTEGER NOT NULL CHECK (price >= 0),
    available     BOOLEAN NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX menu_items_by_restaurant ON menu_items (restaurant_id, created_at);

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    restaurant_id       TEXT NOT NULL REFERENCES restaurants (id),
    table_id            TEXT NOT NULL REFERENCES restaurant_tables (id),
    number              INTEGER NOT NULL,
    status              TEXT NOT NULL,
    total               INTEGER NOT NULL,
    currency            TEXT NOT NULL,
    note                TEXT,
    cancel_reason       TEXT,
    placed_at           INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    idempotency_key     TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    -- Backs idempotency even if two writers ever got past the restaurant lock.
    UNIQUE (restaurant_id, idempotency_key)
);
CREATE INDEX orders_newest_first ON orders (restaurant_id, placed_at DESC, id DESC);

CREATE TABLE order_items (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    line         INTEGER NOT NULL,
    menu_item_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    unit_price   INTEGER NOT NULL,
    quantity     INTEGER NOT NULL,
    note         TEXT,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE staff_calls (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    table_id      TEXT NOT NULL REFERENCES restaurant_tables (id),
    message       TEXT,
    at            INTEGER NOT NULL
);

-- The source of every subscription's history: `after` replays from here.
CREATE TABLE events (
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (restaurant_id, seq)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
