-- MySQL 8.0 / MariaDB 10.11. Every number that can grow past 2^31 over a restaurant's life is
-- BIGINT; timestamps are BIGINT milliseconds since the epoch (UTC), the one representation of
-- all three schemas (PostgreSQL, SQLite, this one), so the store's code reads them alike.
--
-- InnoDB (row locks, transactions), utf8mb4 throughout. Ids and keys are compared exactly:
-- ids are ASCII (`RestaurantId::parse` allows at most 64 of [A-Za-z0-9_-]) in utf8mb4_bin
-- columns, which compare case-sensitively. utf8mb4_bin still ignores trailing spaces (a PAD
-- SPACE collation on both servers), which ids cannot have but idempotency keys can: the key
-- is therefore VARBINARY, compared byte for byte. A key holds at most 128 characters of
-- 8 code points of 4 bytes (actors/src/domain/order.rs, text.rs), 4,096 bytes, more than an
-- InnoDB index may hold (3,072 bytes): the unique key is on its SHA-256 instead.

CREATE TABLE restaurants (
    id                 VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    name               TEXT NOT NULL,
    currency           VARCHAR(16) NOT NULL,
    -- The restaurant's clock: an IANA zone name (at most 64 bytes, checked by the domain) and
    -- the local time its business day starts, in minutes after midnight (240 is 04:00).
    time_zone          VARCHAR(64) NOT NULL DEFAULT 'UTC',
    business_day_start_minutes BIGINT NOT NULL DEFAULT 240
        CHECK (business_day_start_minutes BETWEEN 0 AND 1439),
    -- Counters locked and advanced by every command of the restaurant.
    last_seq           BIGINT NOT NULL DEFAULT 0,
    ticket_day         BIGINT NOT NULL DEFAULT 0,
    last_ticket        BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE restaurant_tables (
    id            VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    restaurant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    FOREIGN KEY (restaurant_id) REFERENCES restaurants (id),
    INDEX restaurant_tables_by_restaurant (restaurant_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE menu_items (
    id            VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    restaurant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    name          TEXT NOT NULL,
    price         BIGINT NOT NULL CHECK (price >= 0),
    available     BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    FOREIGN KEY (restaurant_id) REFERENCES restaurants (id),
    INDEX menu_items_by_restaurant (restaurant_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE orders (
    id                  VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    restaurant_id       VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    table_id            VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    number              BIGINT NOT NULL,
    status              VARCHAR(32) NOT NULL,
    total               BIGINT NOT NULL,
    currency            VARCHAR(16) NOT NULL,
    note                TEXT,
    cancel_reason       TEXT,
    placed_at           BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    idempotency_key     VARBINARY(4096) NOT NULL,
    -- What the unique key holds of the idempotency key; looked up by the same expression.
    idempotency_key_sha256 BINARY(32) AS (UNHEX(SHA2(idempotency_key, 256))) STORED,
    request_fingerprint TEXT NOT NULL,
    FOREIGN KEY (restaurant_id) REFERENCES restaurants (id),
    FOREIGN KEY (table_id) REFERENCES restaurant_tables (id),
    -- Backs idempotency even if two writers ever got past the restaurant lock.
    UNIQUE KEY orders_idempotency (restaurant_id, idempotency_key_sha256),
    INDEX orders_newest_first (restaurant_id, placed_at DESC, id DESC)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE order_items (
    order_id     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    line         BIGINT NOT NULL,
    menu_item_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    name         TEXT NOT NULL,
    unit_price   BIGINT NOT NULL,
    quantity     BIGINT NOT NULL,
    note         TEXT,
    PRIMARY KEY (order_id, line),
    FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE staff_calls (
    id            VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    restaurant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    table_id      VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    message       TEXT,
    at            BIGINT NOT NULL,
    FOREIGN KEY (restaurant_id) REFERENCES restaurants (id),
    FOREIGN KEY (table_id) REFERENCES restaurant_tables (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The source of every subscription's history: `after` replays from here.
CREATE TABLE events (
    restaurant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    seq           BIGINT NOT NULL,
    kind          VARCHAR(64) NOT NULL,
    payload       MEDIUMTEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (restaurant_id, seq),
    FOREIGN KEY (restaurant_id) REFERENCES restaurants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- `key` is a reserved word in MySQL: the store quotes it with backticks.
CREATE TABLE settings (
    `key` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- With a replica, every node writes the database's clock here every 250 ms; on the replica,
-- the age of the newest beat it applied is its lag (`orderhub_db_replica_lag_seconds`), also
-- while it holds back commits on purpose (MASTER_DELAY).
CREATE TABLE heartbeat (
    id      TINYINT NOT NULL PRIMARY KEY,
    beat_at BIGINT NOT NULL
) ENGINE = InnoDB;
INSERT INTO heartbeat (id, beat_at)
    VALUES (1, CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED));
