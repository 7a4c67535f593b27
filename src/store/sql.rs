//! SQL shared by every backend, written once with `$1`-style placeholders. PostgreSQL and
//! SQLite run it as it is; MySQL, which has only `?`, runs it through `dialect::mysql::sql`,
//! which is why every statement here numbers its placeholders in the order they appear and uses
//! each once (a test checks). What differs per backend is in `dialect`.

use std::fmt::Write;

// JSON text columns (lists read and written whole with their row): restaurants.tax_rules,
// menu_items.{translations, allergens, option_groups}, orders.taxes, order_items.options.

/// An order's columns (alias `o`), each as `o_<column>`, as `order_from` reads them.
pub const ORDER_COLUMNS: &str = "o.id AS o_id, o.restaurant_id AS o_restaurant_id, \
     o.table_id AS o_table_id, o.number AS o_number, o.status AS o_status, o.total AS o_total, \
     o.currency AS o_currency, o.note AS o_note, o.cancel_reason AS o_cancel_reason, \
     o.placed_at AS o_placed_at, o.updated_at AS o_updated_at, o.version AS o_version, \
     o.service_mode AS o_service_mode, o.taxes AS o_taxes, \
     o.prices_include_tax AS o_prices_include_tax, o.tax_rounding AS o_tax_rounding";

/// A restaurant's settings, as `restaurant_from` reads them.
macro_rules! restaurant_columns {
    () => {
        "id, name, currency, time_zone, business_day_start_minutes, prices_include_tax, \
         tax_rules, tax_rounding"
    };
}

pub const SELECT_RESTAURANT: &str = concat!(
    "SELECT ",
    restaurant_columns!(),
    " FROM restaurants WHERE id = $1"
);
pub const INSERT_RESTAURANT: &str = concat!(
    "INSERT INTO restaurants (",
    restaurant_columns!(),
    ", created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
/// A command transaction's one write of its restaurant's row, at commit: the settings
/// (`updateRestaurant`'s, the tax settings), and the counters (seq, ticket day and number) as
/// the transaction leaves them.
pub const UPDATE_RESTAURANT: &str = "UPDATE restaurants SET name = $1, time_zone = $2, \
     business_day_start_minutes = $3, prices_include_tax = $4, tax_rules = $5, \
     tax_rounding = $6, last_seq = $7, ticket_day = $8, last_ticket = $9 WHERE id = $10";
/// The same for a transaction that changed the counters alone (seq, ticket day and number).
pub const UPDATE_COUNTERS: &str =
    "UPDATE restaurants SET last_seq = $1, ticket_day = $2, last_ticket = $3 WHERE id = $4";
pub const COUNT_RESTAURANTS: &str = "SELECT COUNT(*) FROM restaurants";

/// A menu item's columns (alias `m`), each as `m_<column>`, as `menu_item_from` reads them
/// with the restaurant's `currency`.
macro_rules! menu_item_columns {
    () => {
        "m.id AS m_id, m.restaurant_id AS m_restaurant_id, m.name AS m_name, \
         m.price AS m_price, m.available AS m_available, m.description AS m_description, \
         m.translations AS m_translations, m.allergens AS m_allergens, \
         m.tax_category AS m_tax_category, m.prep_seconds AS m_prep_seconds, \
         m.option_groups AS m_option_groups, m.version AS m_version, \
         m.archived AS m_archived, m.menu_position AS m_menu_position"
    };
}

/// The menu: the items not archived, in display order.
pub const SELECT_MENU: &str = concat!(
    "SELECT r.currency, ",
    menu_item_columns!(),
    " FROM menu_items m JOIN restaurants r ON r.id = m.restaurant_id \
     WHERE m.restaurant_id = $1 AND m.archived = FALSE \
     ORDER BY m.menu_position, m.created_at, m.id"
);
pub const INSERT_MENU_ITEM: &str = "INSERT INTO menu_items (id, restaurant_id, name, price, \
     available, description, translations, allergens, tax_category, prep_seconds, \
     option_groups, version, archived, menu_position, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
/// Every field but the id and the restaurant.
pub const UPDATE_MENU_ITEM: &str = "UPDATE menu_items SET name = $1, price = $2, \
     available = $3, description = $4, translations = $5, allergens = $6, tax_category = $7, \
     prep_seconds = $8, option_groups = $9, version = $10, archived = $11, menu_position = $12 \
     WHERE id = $13 AND restaurant_id = $14";

pub const SELECT_TABLES: &str = "SELECT id, restaurant_id, name FROM restaurant_tables \
     WHERE restaurant_id = $1 ORDER BY created_at, id";
pub const INSERT_TABLE: &str = "INSERT INTO restaurant_tables \
     (id, restaurant_id, name, created_at) VALUES ($1, $2, $3, $4)";

pub const OWNER_OF_ORDER: &str = "SELECT restaurant_id FROM orders WHERE id = $1";
pub const OWNER_OF_TABLE: &str = "SELECT restaurant_id FROM restaurant_tables WHERE id = $1";
pub const OWNER_OF_MENU_ITEM: &str = "SELECT restaurant_id FROM menu_items WHERE id = $1";

pub const INSERT_ORDER: &str = "INSERT INTO orders (id, restaurant_id, table_id, number, \
     status, total, currency, note, cancel_reason, placed_at, updated_at, version, \
     service_mode, taxes, prices_include_tax, tax_rounding, idempotency_key, \
     request_fingerprint) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
pub const UPDATE_ORDER: &str = "UPDATE orders SET status = $1, version = $2, updated_at = $3, \
     cancel_reason = $4 WHERE id = $5";

pub const INSERT_STAFF_CALL: &str = "INSERT INTO staff_calls \
     (id, restaurant_id, table_id, message, at) VALUES ($1, $2, $3, $4, $5)";

pub const INSERT_EVENT: &str = "INSERT INTO events (restaurant_id, seq, kind, payload, at) \
     VALUES ($1, $2, $3, $4, $5)";
pub const SELECT_EVENTS: &str = "SELECT seq, at, payload FROM events \
     WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

pub const SELECT_HISTORY: &str = "SELECT r.last_seq, \
     (SELECT MIN(e.seq) FROM events e WHERE e.restaurant_id = r.id) AS first_retained \
     FROM restaurants r WHERE r.id = $1";
pub const PRUNE_EVENTS: &str = "DELETE FROM events WHERE at < $1";

pub const PING: &str = "SELECT 1";

/// `$first, $first+1, …` for `count` values, for `IN (…)` lists and multi-row inserts.
pub fn placeholders(first: usize, count: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "${}", first + i);
    }
    out
}

pub fn select_order(in_restaurant: bool) -> String {
    let scope = if in_restaurant {
        " AND o.restaurant_id = $2"
    } else {
        ""
    };
    format!("SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1{scope}")
}

/// An order line's columns (alias `oi`), each as `oi_<column>`, as `line_from` reads them.
pub const LINE_COLUMNS: &str = "oi.order_id AS oi_order_id, oi.line AS oi_line, \
     oi.menu_item_id AS oi_menu_item_id, oi.name AS oi_name, oi.unit_price AS oi_unit_price, \
     oi.quantity AS oi_quantity, oi.note AS oi_note, oi.options AS oi_options, \
     oi.tax_basis_points AS oi_tax_basis_points";

pub fn select_items(orders: usize) -> String {
    format!(
        "SELECT {LINE_COLUMNS} FROM order_items oi WHERE oi.order_id IN ({}) \
         ORDER BY oi.order_id, oi.line",
        placeholders(1, orders)
    )
}

/// What a command transaction's first statement reads besides its restaurant's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupShape {
    pub key: bool,
    pub table: bool,
    pub menu_items: usize,
    /// Every item not archived, instead of `menu_items`.
    pub whole_menu: bool,
    pub order: bool,
    /// Also read the restaurant's `last_seq` as the statement's snapshot has it
    /// (`snapshot_seq`), unlocked: see `dialect::postgres::SNAPSHOT_SEQ`.
    pub snapshot_seq: bool,
}

/// The first statement of every command transaction: the restaurant's row (its settings and
/// counters), locked by the dialect's `lock` suffix, with what the command needs to read
/// joined to it, so that one round trip takes the lock and reads. Values: the idempotency key
/// (compared by the dialect's `key_is`), the table, the menu items, the order, then the
/// restaurant. One row per (menu item × order line) found, at least one; no row when there
/// is no such restaurant. Joined columns are prefixed by their table's alias (`k_`, `t_`,
/// `m_`, `o_`, `oi_`), so they never clash with the restaurant's.
pub fn lock_and_look_up(shape: LookupShape, key_is: fn(&str) -> String, lock: &str) -> String {
    let mut columns = vec![
        "r.id, r.name, r.currency, r.time_zone, r.business_day_start_minutes, \
         r.prices_include_tax, r.tax_rules, r.tax_rounding, r.last_seq, r.ticket_day, \
         r.last_ticket"
            .to_owned(),
    ];
    let mut joins = String::new();
    let mut next = 1;
    if shape.snapshot_seq {
        columns.push("r0.last_seq AS snapshot_seq".into());
        joins.push_str(" JOIN restaurants r0 ON r0.id = r.id");
    }
    if shape.key {
        columns.push("k.id AS k_id, k.request_fingerprint AS k_fingerprint".into());
        let _ = write!(
            joins,
            " LEFT JOIN orders k ON k.restaurant_id = r.id AND {}",
            key_is(&format!("${next}"))
        );
        next += 1;
    }
    if shape.table {
        columns.push("t.id AS t_id, t.name AS t_name".into());
        let _ = write!(
            joins,
            " LEFT JOIN restaurant_tables t ON t.restaurant_id = r.id AND t.id = ${next}"
        );
        next += 1;
    }
    if shape.whole_menu {
        columns.push(menu_item_columns!().into());
        joins.push_str(" LEFT JOIN menu_items m ON m.restaurant_id = r.id AND m.archived = FALSE");
    } else if shape.menu_items > 0 {
        columns.push(menu_item_columns!().into());
        let _ = write!(
            joins,
            " LEFT JOIN menu_items m ON m.restaurant_id = r.id AND m.id IN ({})",
            placeholders(next, shape.menu_items)
        );
        next += shape.menu_items;
    }
    if shape.order {
        columns.push(ORDER_COLUMNS.into());
        columns.push(LINE_COLUMNS.into());
        let _ = write!(
            joins,
            " LEFT JOIN orders o ON o.restaurant_id = r.id AND o.id = ${next} \
             LEFT JOIN order_items oi ON oi.order_id = o.id"
        );
        next += 1;
    }
    format!(
        "SELECT {} FROM restaurants r{joins} WHERE r.id = ${next}{lock}",
        columns.join(", ")
    )
}

/// The statement with each `$n` made `$(n + by)`: a staged write's own numbering, moved
/// behind the values of the writes sent before it in the same statement.
pub fn shifted(statement: &str, by: usize) -> String {
    let mut out = String::with_capacity(statement.len() + 16);
    let mut rest = statement;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => {
                let _ = write!(out, "${}", n + by);
            }
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// The values of one row of [`insert_items`].
pub const ITEM_VALUES: usize = 9;

/// `(order_id, line, menu_item_id, name, unit_price, quantity, note, options,
/// tax_basis_points)` for `lines` rows.
pub fn insert_items(lines: usize) -> String {
    let rows: Vec<String> = (0..lines)
        .map(|i| format!("({})", placeholders(1 + i * ITEM_VALUES, ITEM_VALUES)))
        .collect();
    format!(
        "INSERT INTO order_items (order_id, line, menu_item_id, name, unit_price, quantity, \
         note, options, tax_basis_points) VALUES {}",
        rows.join(", ")
    )
}

/// Newest first; `$1` restaurant, then the statuses, then the keyset position (its time twice,
/// then its id), then the limit. The page is read joined to its restaurant's row, in one
/// statement and so one snapshot on every backend: each row carries the `last_seq`
/// (`page_seq`) that the page reflects, and a page without orders is one row of the restaurant
/// with null order columns. The restaurant comes first, as a derived table, so that the
/// placeholders appear in order (see `dialect::mysql::sql`).
pub fn select_orders(statuses: usize, after_cursor: bool) -> String {
    let mut sql = format!(
        "SELECT r.last_seq AS page_seq, {ORDER_COLUMNS} \
         FROM (SELECT id, last_seq FROM restaurants WHERE id = $1) r \
         LEFT JOIN orders o ON o.restaurant_id = r.id"
    );
    let mut next = 2;
    if statuses > 0 {
        let _ = write!(sql, " AND o.status IN ({})", placeholders(next, statuses));
        next += statuses;
    }
    if after_cursor {
        let (before, at, id) = (next, next + 1, next + 2);
        let _ = write!(
            sql,
            " AND (o.placed_at < ${before} OR (o.placed_at = ${at} AND o.id < ${id}))"
        );
        next += 3;
    }
    let _ = write!(sql, " ORDER BY o.placed_at DESC, o.id DESC LIMIT ${next}");
    sql
}

/// The `last_seq` of `count` restaurants (`$1…`), for causal reads on a replica.
pub fn select_last_seqs(count: usize) -> String {
    format!(
        "SELECT id, last_seq FROM restaurants WHERE id IN ({})",
        placeholders(1, count)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_from_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn order_pages_number_their_parameters_in_order() {
        assert!(select_orders(0, false).ends_with(
            "WHERE id = $1) r LEFT JOIN orders o ON o.restaurant_id = r.id \
             ORDER BY o.placed_at DESC, o.id DESC LIMIT $2"
        ));
        let sql = select_orders(2, true);
        assert!(sql.contains("o.status IN ($2, $3)"), "{sql}");
        assert!(
            sql.contains("o.placed_at < $4 OR (o.placed_at = $5 AND o.id < $6)"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $7"), "{sql}");
    }

    /// The `$n` of a statement, in the order they appear.
    fn numbers(statement: &str) -> Vec<usize> {
        statement
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// What lets MySQL run them with `?`: `$1`, `$2`, … in the order they appear, each once.
    #[test]
    fn every_statement_numbers_its_placeholders_in_order() {
        let constants = [
            SELECT_RESTAURANT,
            INSERT_RESTAURANT,
            UPDATE_RESTAURANT,
            UPDATE_COUNTERS,
            COUNT_RESTAURANTS,
            SELECT_MENU,
            INSERT_MENU_ITEM,
            UPDATE_MENU_ITEM,
            SELECT_TABLES,
            INSERT_TABLE,
            OWNER_OF_ORDER,
            OWNER_OF_TABLE,
            OWNER_OF_MENU_ITEM,
            INSERT_ORDER,
            UPDATE_ORDER,
            INSERT_STAFF_CALL,
            INSERT_EVENT,
            SELECT_EVENTS,
            SELECT_HISTORY,
            PRUNE_EVENTS,
            PING,
        ];
        let built = [
            select_order(false),
            select_order(true),
            select_items(3),
            lock_and_look_up(LookupShape::default(), |p| format!("k = {p}"), ""),
            lock_and_look_up(
                LookupShape {
                    key: true,
                    table: true,
                    menu_items: 3,
                    order: true,
                    snapshot_seq: true,
                    whole_menu: false,
                },
                |p| format!("k = {p}"),
                " FOR UPDATE",
            ),
            insert_items(3),
            select_orders(0, false),
            select_orders(3, true),
            select_last_seqs(2),
        ];
        let statements = constants
            .iter()
            .map(|s| s.to_string())
            .chain(built)
            .collect::<Vec<_>>();
        for statement in &statements {
            let numbers = numbers(statement);
            let expected: Vec<usize> = (1..=numbers.len()).collect();
            assert_eq!(numbers, expected, "{statement}");
        }
    }

    #[test]
    fn shifting_moves_every_placeholder_and_nothing_else() {
        assert_eq!(
            shifted("a = $1 AND b IN ($2, $10) AND c = '$'", 4),
            "a = $5 AND b IN ($6, $14) AND c = '$'"
        );
        assert_eq!(shifted("SELECT 1", 3), "SELECT 1");
    }

    #[test]
    fn the_lock_reads_only_what_is_asked_for() {
        let bare = lock_and_look_up(LookupShape::default(), |p| format!("k = {p}"), " LOCK");
        assert!(
            bare.ends_with("FROM restaurants r WHERE r.id = $1 LOCK"),
            "{bare}"
        );
        let items = lock_and_look_up(
            LookupShape {
                menu_items: 2,
                ..LookupShape::default()
            },
            |p| format!("k = {p}"),
            "",
        );
        assert!(
            items.contains("m.id IN ($1, $2) WHERE r.id = $3"),
            "{items}"
        );
        assert!(!items.contains("orders"), "{items}");
    }

    #[test]
    fn item_rows_take_nine_parameters_each() {
        assert!(insert_items(2).ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
    }
}
