-- Every number that can grow past 2^31 over a restaurant's life is BIGINT; timestamps are
-- milliseconds since the epoch (UTC), the same representation as the SQLite schema.

CREATE TABLE restaurants (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    currency           TEXT NOT NULL,
    utc_offset_minutes BIGINT NOT NULL DEFAULT 0,
    -- Counters locked and advanced by every command of the restaurant.
    last_seq           BIGINT NOT NULL DEFAULT 0,
    ticket_day         BIGINT NOT NULL DEFAULT 0,
    last_ticket        BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
);

CREATE TABLE restaurant_tables (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX restaurant_tables_by_restaurant ON restaurant_tables (restaurant_id, created_at);

CREATE TABLE menu_items (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    name          TEXT NOT NULL,
    price         BIGINT NOT NULL CHECK (price >= 0),
    available     BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX menu_items_by_restaurant ON menu_items (restaurant_id, created_at);

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    restaurant_id       TEXT NOT NULL REFERENCES restaurants (id),
    table_id            TEXT NOT NULL REFERENCES restaurant_tables (id),
    number              BIGINT NOT NULL,
    status              TEXT NOT NULL,
    total               BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    note                TEXT,
    cancel_reason       TEXT,
    placed_at           BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    idempotency_key     TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    -- Backs idempotency even if two writers ever got past the restaurant lock.
    UNIQUE (restaurant_id, idempotency_key)
);
CREATE INDEX orders_newest_first ON orders (restaurant_id, placed_at DESC, id DESC);

CREATE TABLE order_items (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    line         BIGINT NOT NULL,
    menu_item_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    unit_price   BIGINT NOT NULL,
    quantity     BIGINT NOT NULL,
    note         TEXT,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE staff_calls (
    id            TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    table_id      TEXT NOT NULL REFERENCES restaurant_tables (id),
    message       TEXT,
    at            BIGINT NOT NULL
);

-- The source of every subscription's history: `after` replays from here.
CREATE TABLE events (
    restaurant_id TEXT NOT NULL REFERENCES restaurants (id),
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (restaurant_id, seq)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
