//! SQL shared by every backend, written once with `$1`-style placeholders. PostgreSQL and
//! SQLite run it as it is; MySQL, which has only `?`, runs it through `dialect::mysql::sql`,
//! which is why every statement here numbers its placeholders in the order they appear and uses
//! each once (a test checks). What differs per backend is in `dialect`.

use std::fmt::Write;

pub const ORDER_COLUMNS: &str = "id, restaurant_id, table_id, number, status, total, currency, \
     note, cancel_reason, placed_at, updated_at, version";

pub const SELECT_RESTAURANT: &str = "SELECT id, name, currency, time_zone, \
     business_day_start_minutes FROM restaurants WHERE id = $1";
pub const INSERT_RESTAURANT: &str = "INSERT INTO restaurants \
     (id, name, currency, time_zone, business_day_start_minutes, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// The settings `updateRestaurant` changes; run in the restaurant's command transaction.
pub const UPDATE_RESTAURANT: &str = "UPDATE restaurants SET name = $1, time_zone = $2, \
     business_day_start_minutes = $3 WHERE id = $4";
pub const COUNT_RESTAURANTS: &str = "SELECT COUNT(*) FROM restaurants";

macro_rules! menu_columns {
    () => {
        "m.id, m.restaurant_id, m.name, m.price, m.available, r.currency"
    };
}

/// A menu item's columns, its price's currency taken from the restaurant (alias `r`).
pub const MENU_COLUMNS: &str = menu_columns!();
pub const SELECT_MENU: &str = concat!(
    "SELECT ",
    menu_columns!(),
    " FROM menu_items m JOIN restaurants r ON r.id = m.restaurant_id \
     WHERE m.restaurant_id = $1 ORDER BY m.created_at, m.id"
);
pub const INSERT_MENU_ITEM: &str = "INSERT INTO menu_items \
     (id, restaurant_id, name, price, available, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub const SET_AVAILABILITY: &str =
    "UPDATE menu_items SET available = $1 WHERE id = $2 AND restaurant_id = $3";

pub const SELECT_TABLES: &str = "SELECT id, restaurant_id, name FROM restaurant_tables \
     WHERE restaurant_id = $1 ORDER BY created_at, id";
pub const SELECT_TABLE: &str = "SELECT id, restaurant_id, name FROM restaurant_tables \
     WHERE id = $1 AND restaurant_id = $2";
pub const INSERT_TABLE: &str = "INSERT INTO restaurant_tables \
     (id, restaurant_id, name, created_at) VALUES ($1, $2, $3, $4)";

pub const OWNER_OF_ORDER: &str = "SELECT restaurant_id FROM orders WHERE id = $1";
pub const OWNER_OF_TABLE: &str = "SELECT restaurant_id FROM restaurant_tables WHERE id = $1";
pub const OWNER_OF_MENU_ITEM: &str = "SELECT restaurant_id FROM menu_items WHERE id = $1";

pub const INSERT_ORDER: &str = "INSERT INTO orders (id, restaurant_id, table_id, number, \
     status, total, currency, note, cancel_reason, placed_at, updated_at, version, \
     idempotency_key, request_fingerprint) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub const UPDATE_ORDER: &str = "UPDATE orders SET status = $1, version = $2, updated_at = $3, \
     cancel_reason = $4 WHERE id = $5";
pub const SET_TICKET: &str =
    "UPDATE restaurants SET ticket_day = $1, last_ticket = $2 WHERE id = $3";

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
        " AND restaurant_id = $2"
    } else {
        ""
    };
    format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{scope}")
}

pub fn select_items(orders: usize) -> String {
    format!(
        "SELECT order_id, menu_item_id, name, unit_price, quantity, note FROM order_items \
         WHERE order_id IN ({}) ORDER BY order_id, line",
        placeholders(1, orders)
    )
}

pub fn select_menu_items(ids: usize) -> String {
    format!(
        "SELECT {MENU_COLUMNS} FROM menu_items m JOIN restaurants r ON r.id = m.restaurant_id \
         WHERE m.restaurant_id = $1 AND m.id IN ({})",
        placeholders(2, ids)
    )
}

/// `(order_id, line, menu_item_id, name, unit_price, quantity, note)` for `lines` rows.
pub fn insert_items(lines: usize) -> String {
    let rows: Vec<String> = (0..lines)
        .map(|i| format!("({})", placeholders(1 + i * 7, 7)))
        .collect();
    format!(
        "INSERT INTO order_items (order_id, line, menu_item_id, name, unit_price, quantity, note) \
         VALUES {}",
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
    let columns: Vec<String> = ORDER_COLUMNS
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect();
    let mut sql = format!(
        "SELECT r.last_seq AS page_seq, {} \
         FROM (SELECT id, last_seq FROM restaurants WHERE id = $1) r \
         LEFT JOIN orders o ON o.restaurant_id = r.id",
        columns.join(", ")
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
            COUNT_RESTAURANTS,
            SELECT_MENU,
            INSERT_MENU_ITEM,
            SET_AVAILABILITY,
            SELECT_TABLES,
            SELECT_TABLE,
            INSERT_TABLE,
            OWNER_OF_ORDER,
            OWNER_OF_TABLE,
            OWNER_OF_MENU_ITEM,
            INSERT_ORDER,
            UPDATE_ORDER,
            SET_TICKET,
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
            select_menu_items(2),
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
    fn item_rows_take_seven_parameters_each() {
        assert!(insert_items(2)
            .ends_with("VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)"));
    }
}
