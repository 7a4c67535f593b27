//! The SQL that differs between the backends, one module per dialect; `sql_store!` takes one
//! of them and everything else from `sql`, which is written once.
//!
//! Each module has the same items:
//! - `sql(statement)` and `built(statement)`: a shared statement (`$1`-style placeholders), a
//!   constant or one built for its number of values, as this backend spells it;
//! - `BEGIN` and `LOCK`: how a command transaction begins, and the suffix of its first
//!   statement (`sql::lock_and_look_up`), which together take the restaurant's lock until
//!   commit: commands of one restaurant queue there, on every node;
//! - `SNAPSHOT_SEQ`: whether the lock statement may have read the rest in a snapshot from
//!   before its wait, and must say so;
//! - `BATCH`: how a transaction's staged writes travel at commit ([`Batch`]);
//! - `key_is(param)`: the condition that an order (alias `k`) has the idempotency key `param`;
//! - `SELECT_SETTING` and `INIT_SETTING`: the `settings` table, whose `key` column MySQL
//!   reserves as a word;
//! - `DECODE_UNCHECKED`: whether columns are decoded without sqlx's type check.
//!
//! Where they differ, and why:
//! - PostgreSQL locks with `FOR UPDATE OF r` and sends a transaction's writes as one
//!   statement, each a data-modifying `WITH` part;
//! - SQLite has one writer and no `FOR UPDATE`: `BEGIN IMMEDIATE` takes its write lock at
//!   once, and the writes go as one script of statements;
//! - MySQL's placeholders are `?`, taken in the order they appear: `mysql::sql` rewrites `$n`;
//! - MySQL has no `ON CONFLICT`: `ON DUPLICATE KEY UPDATE` with a no-op assignment (not
//!   `INSERT IGNORE`, which would also turn other errors into warnings);
//! - MySQL quotes `key` with backticks;
//! - MySQL's unique key on idempotency keys is on their SHA-256 (see `migrations/mysql`), so
//!   the lookup compares that;
//! - MySQL has neither data-modifying `WITH` nor several statements in one prepared
//!   statement: its writes go one statement each, after one lock-and-read like the others.

/// How a command transaction's staged writes are sent at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// One statement: `WITH w0 AS (write), w1 AS (write) … last write`. PostgreSQL runs
    /// every part (with or without `RETURNING`) and checks foreign keys at the statement's
    /// end, so a line may refer to the order inserted beside it.
    With,
    /// One call of several `;`-separated statements; sqlx runs them in turn, binding `$n` to
    /// the n-th value of the whole call (sqlx-sqlite's `SqliteArguments::bind`).
    Script,
    /// Each write its own statement.
    OneByOne,
}

/// What PostgreSQL and SQLite share: `$1`-style placeholders and `ON CONFLICT`.
pub mod numbered {
    /// The statement as it is.
    pub fn sql(statement: &'static str) -> &'static str {
        statement
    }

    /// The statement as it is.
    pub fn built(statement: String) -> String {
        statement
    }

    pub fn key_is(param: &str) -> String {
        format!("k.idempotency_key = {param}")
    }

    /// sqlx checks each column's type before decoding it.
    pub const DECODE_UNCHECKED: bool = false;

    pub const SELECT_SETTING: &str = "SELECT value FROM settings WHERE key = $1";
    pub const INIT_SETTING: &str =
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
}

/// PostgreSQL 15 and later.
pub mod postgres {
    pub use super::numbered::*;
    use super::Batch;

    pub const BEGIN: Option<&str> = None;
    /// Locks the restaurant's row only; a blocked lock re-reads that row when it gets it
    /// (READ COMMITTED's re-check), so the counters are never stale.
    pub const LOCK: &str = " FOR UPDATE OF r";
    /// The rest of a statement that waited for the lock was read in the snapshot taken when
    /// it started, before the holder committed; READ COMMITTED re-reads only the locked row
    /// (PostgreSQL's manual, 13.2.1). The lock statement therefore also reads the
    /// restaurant's seq as of that snapshot, and the store runs it again, under the lock now
    /// held, when it differs from the locked row's: every command that changes an order or
    /// the menu moves the seq.
    pub const SNAPSHOT_SEQ: bool = true;
    pub const BATCH: Batch = Batch::With;

    /// The WAL insert position, taken right after a commit, is past that
    /// commit's record.
    pub const WRITE_POSITION: &str = "SELECT pg_current_wal_insert_lsn()::text";

    /// A replica: how far it has replayed, and how far behind it is (zero when it
    /// has replayed everything it received).
    pub const REPLICA_STATE: &str = "SELECT pg_last_wal_replay_lsn()::text AS replayed, \
         (CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
         ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END)::float8 AS lag";
}

/// SQLite 3.35 and later (the bundled one is newer).
pub mod sqlite {
    pub use super::numbered::*;
    use super::Batch;

    /// Takes the database's write lock at once: a deferred transaction would take it at its
    /// first write, after reading.
    pub const BEGIN: Option<&str> = Some("BEGIN IMMEDIATE");
    pub const LOCK: &str = "";
    /// One writer at a time: nothing commits while the lock statement runs.
    pub const SNAPSHOT_SEQ: bool = false;
    pub const BATCH: Batch = Batch::Script;
}

/// MySQL 8.0 and MariaDB 10.11 (the SQL both accept).
pub mod mysql {
    use super::Batch;
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

    pub const BEGIN: Option<&str> = None;
    /// Under READ COMMITTED a locking read sees the newest committed rows and keeps them
    /// locked until commit. MariaDB has no `FOR UPDATE OF`, so the joined rows (the command's
    /// table, menu items or order) are locked too; only commands of the same restaurant,
    /// queued on its row anyway, want them.
    pub const LOCK: &str = " FOR UPDATE";
    /// A locking read reads the newest committed rows, after the wait.
    pub const SNAPSHOT_SEQ: bool = false;
    pub const BATCH: Batch = Batch::OneByOne;

    /// By the key's SHA-256, which the unique key holds (a key may be longer than an index).
    pub fn key_is(param: &str) -> String {
        format!("k.idempotency_key_sha256 = UNHEX(SHA2({param}, 256))")
    }

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
            mysql::built(sql::insert_items(1)),
            "INSERT INTO order_items (order_id, line, menu_item_id, name, unit_price, quantity, \
             note, options, tax_basis_points) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
    fn only_mysql_quotes_the_reserved_word() {
        assert!(mysql::SELECT_SETTING.contains("`key`") && mysql::INIT_SETTING.contains("`key`"));
        assert!(!numbered::SELECT_SETTING.contains('`'));
        assert!(!mysql::INIT_SETTING.contains('$'));
    }

    #[test]
    fn each_dialect_locks_the_restaurant_in_its_own_way() {
        let shape = sql::LookupShape {
            key: true,
            ..sql::LookupShape::default()
        };
        let pg = sql::lock_and_look_up(shape, postgres::key_is, postgres::LOCK);
        assert!(pg.ends_with("WHERE r.id = $2 FOR UPDATE OF r"), "{pg}");
        let my = mysql::built(sql::lock_and_look_up(shape, mysql::key_is, mysql::LOCK));
        assert!(my.contains("UNHEX(SHA2(?, 256))"), "{my}");
        assert!(my.ends_with("WHERE r.id = ? FOR UPDATE"), "{my}");
        let lite = sql::lock_and_look_up(shape, sqlite::key_is, sqlite::LOCK);
        assert!(lite.ends_with("WHERE r.id = $2"), "{lite}");
        assert_eq!(sqlite::BEGIN, Some("BEGIN IMMEDIATE"));
        assert_eq!((postgres::BEGIN, mysql::BEGIN), (None, None));
    }
}
