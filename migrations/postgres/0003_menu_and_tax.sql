-- Menus and tax (the menu's options, allergens and translations; a restaurant's tax
-- settings; what an order was placed with). Lists are JSON text, read and written whole with
-- their row: an item's option groups, say, are never queried apart from the item.
--
-- Existing rows keep behaving as they did: restaurants get no tax rules (every rate 0 %, prices
-- as entered) until a manager sets them; orders were eat-in, untaxed, with no options.

ALTER TABLE restaurants ADD COLUMN prices_include_tax BOOLEAN NOT NULL DEFAULT TRUE;
-- [{"category": "FOOD", "service_mode": "EAT_IN", "basis_points": 1000}, …]
ALTER TABLE restaurants ADD COLUMN tax_rules TEXT NOT NULL DEFAULT '[]';
ALTER TABLE restaurants ADD COLUMN tax_rounding TEXT NOT NULL DEFAULT 'DOWN';

ALTER TABLE menu_items ADD COLUMN description TEXT;
ALTER TABLE menu_items ADD COLUMN translations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE menu_items ADD COLUMN allergens TEXT NOT NULL DEFAULT '[]';
ALTER TABLE menu_items ADD COLUMN tax_category TEXT NOT NULL DEFAULT 'FOOD';
ALTER TABLE menu_items ADD COLUMN prep_seconds BIGINT NOT NULL DEFAULT 300;
ALTER TABLE menu_items ADD COLUMN option_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE menu_items ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE menu_items ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE;
-- The menu is ordered by (menu_position, created_at, id): existing items, all at 0, keep the
-- order they had; new ones go last.
ALTER TABLE menu_items ADD COLUMN menu_position BIGINT NOT NULL DEFAULT 0;

ALTER TABLE orders ADD COLUMN service_mode TEXT NOT NULL DEFAULT 'EAT_IN';
-- [{"basis_points": 800, "base": 1080, "tax": 80}, …], as computed when the order was placed.
ALTER TABLE orders ADD COLUMN taxes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE orders ADD COLUMN prices_include_tax BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE orders ADD COLUMN tax_rounding TEXT NOT NULL DEFAULT 'DOWN';

-- [{"option_id": "…", "group_name": "Noodles", "name": "Firm", "price_delta": 0}, …]
ALTER TABLE order_items ADD COLUMN options TEXT NOT NULL DEFAULT '[]';
ALTER TABLE order_items ADD COLUMN tax_basis_points BIGINT NOT NULL DEFAULT 0;
