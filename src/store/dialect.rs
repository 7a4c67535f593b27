//! The SQL that differs between the backends, one module per dialect; `sql_store!` takes one
//! of them and everything else from `sql`, which is written once.
//!
//! Each module has the same items:
//! - `sql(statement)` and `built(statement)`: a shared statement (`$1`-style placeholders), a
//!   constant or one built for its number of values, as this backend spells it;
//! - `LOCK_RESTAURANT`: the first statement of every command transaction, which takes the
//!   restaurant's row lock and reads its counters;
//! - `NEXT_SEQ` and `NEXT_SEQ_RETURNS`: advance the restaurant's seq, and whether the statement
//!   returns the new value (`last_seq`) or the store counts it itself under the lock;
//! - `ORDER_BY_KEY`: an order by its idempotency key (`$1` restaurant, `$2` key);
//! - `SELECT_SETTING` and `INIT_SETTING`: the `settings` table, whose `key` column MySQL
//!   reserves as a word;
//! - `DECODE_UNCHECKED`: whether columns are decoded without sqlx's type check.
//!
//! Where MySQL differs from the other two, and why:
//! - placeholders are `?`, taken in the order they appear: `mysql::sql` rewrites `$n`;
//! - there is no `UPDATE … RETURNING`: the lock is `SELECT … FOR UPDATE`, and the next seq is
//!   `last_seq + 1` of the counters read under that lock, counted by the store;
//! - there is no `ON CONFLICT`: `ON DUPLICATE KEY UPDATE` with a no-op assignment (not
//!   `INSERT IGNORE`, which would also turn other errors into warnings);
//! - `key` is quoted with backticks;
//! - the unique key on idempotency keys is on their SHA-256 (see `migrations/mysql`), so the
//!   lookup compares that.

/// PostgreSQL and SQLite: both take `$1`-style placeholders, `RETURNING` and `ON CONFLICT`.
pub mod numbered {
    /// The statement as it is.
    pub fn sql(statement: &'static str) -> &'static str {
        statement
    }

    /// The statement as it is.
    pub fn built(statement: String) -> String {
        statement
    }

    /// A write, so that it takes the restaurant's lock at once (a PostgreSQL row lock;
    /// SQLite's single write lock) and holds it until commit. Concurrent commands on other
    /// nodes wait here, never on stale counters.
    pub const LOCK_RESTAURANT: &str = "UPDATE restaurants SET last_seq = last_seq WHERE id = $1 \
         RETURNING id, name, currency, time_zone, business_day_start_minutes, \
         last_seq, ticket_day, last_ticket";

    pub const NEXT_SEQ: &str =
        "UPDATE restaurants SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";
    pub const NEXT_SEQ_RETURNS: bool = true;

    pub const ORDER_BY_KEY: &str = "SELECT request_fingerprint, id FROM orders \
         WHERE restaurant_id = $1 AND idempotency_key = $2";

    /// sqlx checks each column's type before decoding it.
    pub const DECODE_UNCHECKED: bool = false;

    pub const SELECT_SETTING: &str = "SELECT value FROM settings WHERE key = $1";
    pub const INIT_SETTING: &str =
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

    /// PostgreSQL: the WAL insert position, taken right after a commit, is past that
    /// commit's record.
    pub const WRITE_POSITION: &str = "SELECT pg_current_wal_insert_lsn()::text";

    /// PostgreSQL replica: how far it has replayed, and how far behind it is (zero when it
    /// has replayed everything it received).
    pub const REPLICA_STATE: &str = "SELECT pg_last_wal_replay_lsn()::text AS replayed, \
         (CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
         ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END)::float8 AS lag";
}

/// MySQL 8.0 and MariaDB 10.11 (the SQL both accept).
pub mod mysql {
    use std::collections::HashMap;
    use std::sync::{PoisonError, RwLock};
    use std::time::Duration;

    /// How often a node with a replica writes the heartbeat: the lag it shows is at most this
    /// much too high, never too low.
    pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

    /// The statement with each `$n` turned into `?`. Shared statements number their
    /// placeholders in the order they appear, each used once (`sql`'s tests check), so the
    /// binds keep their order. Rewritten once and kept: only constant statements come here.
    pub fn sql(text: &'static str) -> &'static str {
        static DONE: RwLock<Option<HashMap<usize, &'static str>>> = RwLock::new(None);
        // Keyed by address: only the program's constant statements come here, a bounded set.
        let key = text.as_ptr() as usize;
        if let Some(done) = DONE
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|done| done.get(&key))
        {
            return done;
        }
        let mut done = DONE.write().unwrap_or_else(PoisonError::into_inner);
        done.get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert_with(|| Box::leak(question_marks(text).into_boxed_str()))
    }

    /// [`sql`] for a statement built for its number of values.
    pub fn built(statement: String) -> String {
        question_marks(&statement)
    }

    /// `$1`, `$23`… become `?`; nothing else changes.
    pub fn question_marks(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Under READ COMMITTED a locking read sees the newest committed row and keeps it locked
    /// until commit: concurrent commands of the restaurant, on any node, queue here.
    pub const LOCK_RESTAURANT: &str = "SELECT id, name, currency, time_zone, \
         business_day_start_minutes, last_seq, ticket_day, last_ticket \
         FROM restaurants WHERE id = ? FOR UPDATE";

    /// No `RETURNING`: the new value is the locked `last_seq` plus one, which the store counts.
    pub const NEXT_SEQ: &str = "UPDATE restaurants SET last_seq = last_seq + 1 WHERE id = ?";
    pub const NEXT_SEQ_RETURNS: bool = false;

    /// By the key's SHA-256, which the unique key holds (a key may be longer than an index).
    pub const ORDER_BY_KEY: &str = "SELECT request_fingerprint, id FROM orders \
         WHERE restaurant_id = ? AND idempotency_key_sha256 = UNHEX(SHA2(?, 256))";

    /// Columns are decoded without sqlx's type check: sqlx 0.8 takes a text column with a
    /// binary collation (the ids' `utf8mb4_bin`) for VARBINARY and refuses it as a `String`.
    /// The decoders still check what they decode (UTF-8, NULL, integer width).
    pub const DECODE_UNCHECKED: bool = true;

    pub const SELECT_SETTING: &str = "SELECT value FROM settings WHERE `key` = ?";
    pub const INIT_SETTING: &str = "INSERT INTO settings (`key`, value) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE `key` = `key`";

    /// Keeps the session at READ COMMITTED, run on every new connection: see `store::mysql`.
    pub const SESSION_SETUP: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

    /// Makes replica sessions read-only, as PostgreSQL's `default_transaction_read_only`.
    pub const READ_ONLY_SESSION: &str = "SET SESSION TRANSACTION READ ONLY";

    // System variables are cast to text: some come back as binary strings otherwise.

    /// MariaDB: the GTID of this session's last transaction, read right after its commit.
    pub const LAST_GTID_MARIADB: &str = "SELECT CAST(@@last_gtid AS CHAR)";
    /// MySQL 8: every GTID the server has executed; right after a commit, it includes it.
    pub const LAST_GTID_MYSQL: &str = "SELECT CAST(@@global.gtid_executed AS CHAR)";

    /// Which server the primary is (`gtid::is_mariadb`).
    pub const VERSION: &str = "SELECT VERSION()";
    /// The primary's MariaDB replication domain.
    pub const MARIADB_DOMAIN: &str = "SELECT CAST(@@gtid_domain_id AS SIGNED)";
    /// The primary's MySQL server UUID.
    pub const MYSQL_SERVER_UUID: &str = "SELECT CAST(@@server_uuid AS CHAR)";

    /// The replica's applied GTIDs.
    pub const APPLIED_MARIADB: &str = "SELECT CAST(@@gtid_slave_pos AS CHAR)";
    pub const APPLIED_MYSQL: &str = "SELECT CAST(@@global.gtid_executed AS CHAR)";

    /// Written on the primary every [`HEARTBEAT_EVERY`] in the database's clock (milliseconds
    /// since the epoch), replicated like any write.
    pub const HEARTBEAT: &str = "UPDATE heartbeat \
         SET beat_at = CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED) WHERE id = 1";
    /// On the replica: how long ago (ms, the replica's clock) the newest heartbeat it applied
    /// was written.
    pub const HEARTBEAT_AGE: &str =
        "SELECT CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED) \
         - beat_at AS age FROM heartbeat WHERE id = 1";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql;

    /// The same statement in each dialect.
    fn both(statement: &'static str) -> (&'static str, &'static str) {
        (numbered::sql(statement), mysql::sql(statement))
    }

    #[test]
    fn mysql_takes_question_marks_in_order() {
        assert_eq!(
            mysql::sql(sql::UPDATE_ORDER),
            "UPDATE orders SET status = ?, version = ?, updated_at = ?, cancel_reason = ? \
             WHERE id = ?"
        );
        assert_eq!(
            mysql::built(sql::insert_items(2)),
            "INSERT INTO order_items (order_id, line, menu_item_id, name, unit_price, quantity, \
             note) VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)"
        );
        assert_eq!(
            mysql::question_marks("a = $12 AND b = '$x'"),
            "a = ? AND b = '$x'"
        );
    }

    #[test]
    fn constant_statements_are_rewritten_once() {
        let first = mysql::sql(sql::SELECT_EVENTS);
        let again = mysql::sql(sql::SELECT_EVENTS);
        assert_eq!(first.as_ptr(), again.as_ptr());
        assert!(!first.contains('$'), "{first}");
    }

    #[test]
    fn postgres_and_sqlite_run_the_shared_text_unchanged() {
        let (numbered, mysql) = both(sql::SELECT_HISTORY);
        assert_eq!(numbered, sql::SELECT_HISTORY);
        assert!(
            !mysql.contains('$') && mysql.contains("r.id = ?"),
            "{mysql}"
        );
    }

    #[test]
    fn only_mysql_quotes_the_reserved_word_and_locks_with_select() {
        assert!(mysql::SELECT_SETTING.contains("`key`") && mysql::INIT_SETTING.contains("`key`"));
        assert!(!numbered::SELECT_SETTING.contains('`'));
        assert!(mysql::LOCK_RESTAURANT.ends_with("FOR UPDATE"));
        assert!(numbered::LOCK_RESTAURANT.contains("RETURNING"));
        assert!(!mysql::NEXT_SEQ.contains("RETURNING") && !mysql::NEXT_SEQ_RETURNS);
        assert!(numbered::NEXT_SEQ.ends_with("RETURNING last_seq") && numbered::NEXT_SEQ_RETURNS);
        for statement in [
            mysql::LOCK_RESTAURANT,
            mysql::ORDER_BY_KEY,
            mysql::INIT_SETTING,
        ] {
            assert!(!statement.contains('$'), "{statement}");
        }
    }

    #[test]
    fn both_dialects_read_the_same_columns_of_the_lock() {
        let columns = |statement: &str| {
            let start = statement.find("RETURNING").map_or_else(
                || statement.find("SELECT").map(|at| at + "SELECT".len()),
                |at| Some(at + "RETURNING".len()),
            );
            let rest = &statement[start.unwrap_or(0)..];
            let end = rest.find(" FROM").unwrap_or(rest.len());
            rest[..end]
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            columns(numbered::LOCK_RESTAURANT),
            columns(mysql::LOCK_RESTAURANT)
        );
    }
}
