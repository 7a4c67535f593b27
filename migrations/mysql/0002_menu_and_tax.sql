-- Menus and tax (the menu's options, allergens and translations; a restaurant's tax
-- settings; what an order was placed with). Lists are JSON text, read and written whole with
-- their row: an item's option groups, say, are never queried apart from the item. TEXT
-- columns take their default as an expression, which MySQL 8.0.13 and MariaDB 10.2 accept.
--
-- Existing rows keep behaving as they did: restaurants get no tax rules (every rate 0 %, prices
-- as entered) until a manager sets them; orders were eat-in, untaxed, with no options.

ALTER TABLE restaurants
    ADD COLUMN prices_include_tax BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN tax_rules MEDIUMTEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN tax_rounding VARCHAR(16) NOT NULL DEFAULT 'DOWN';

ALTER TABLE menu_items
    ADD COLUMN description TEXT,
    ADD COLUMN translations MEDIUMTEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN allergens TEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN tax_category VARCHAR(16) NOT NULL DEFAULT 'FOOD',
    ADD COLUMN prep_seconds BIGINT NOT NULL DEFAULT 300,
    ADD COLUMN option_groups MEDIUMTEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE,
    -- The menu is ordered by (menu_position, created_at, id): existing items, all at 0, keep
    -- the order they had; new ones go last.
    ADD COLUMN menu_position BIGINT NOT NULL DEFAULT 0;

ALTER TABLE orders
    ADD COLUMN service_mode VARCHAR(16) NOT NULL DEFAULT 'EAT_IN',
    ADD COLUMN taxes TEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN prices_include_tax BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN tax_rounding VARCHAR(16) NOT NULL DEFAULT 'DOWN';

ALTER TABLE order_items
    ADD COLUMN options MEDIUMTEXT NOT NULL DEFAULT ('[]'),
    ADD COLUMN tax_basis_points BIGINT NOT NULL DEFAULT 0;
