//! The sqlx store: PostgreSQL or MySQL/MariaDB in production, SQLite as the embedded default.
//!
//! MySQL/MariaDB (`mysql://` or `mariadb://`) runs every session at READ COMMITTED. Every
//! command transaction begins with `SELECT … FOR UPDATE` on its restaurant's row, so commands
//! of one restaurant run one at a time on every node; what they read after it is either theirs
//! or committed before they got the lock. REPEATABLE READ would add nothing to that but gap
//! locks and a snapshot older than the lock; the reads outside commands want the newest
//! committed state anyway. (READ COMMITTED needs `binlog_format` ROW or MIXED, the default of
//! both servers.)
//!
//! With a MySQL replica (`DATABASE_READ_URL`), read-your-writes compares GTIDs (see `gtid`),
//! and `orderhub_db_replica_lag_seconds` is the age of the newest heartbeat the replica has
//! applied: every node writes the primary's clock into `heartbeat` every 250 ms. The replica's
//! own `Seconds_Behind_Master` is no measure under `MASTER_DELAY`: MariaDB shows 0 while it
//! holds back a transaction for the delay, and whole seconds only. The heartbeat shows the
//! delay and at most 250 ms more.

mod backend;
mod dialect;
mod gtid;
pub mod routing;
mod sql;

use backend::{Positions, Replica};
use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::Store;
use orderhub_actors::shutdown::Shutdown;
use routing::ReadRouting;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Row};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub mod postgres {
    super::backend::sql_store!(PgStore, PgTx, sqlx::Postgres, postgres);
}

pub mod sqlite {
    super::backend::sql_store!(SqliteStore, SqliteTx, sqlx::Sqlite, sqlite);
}

/// MySQL 8.0 and MariaDB 10.11.
pub mod mysql {
    super::backend::sql_store!(MySqlStore, MySqlTx, sqlx::MySql, mysql);
}

/// Why the store could not be opened; each says what to fix in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with postgres://, mysql:// or sqlite://, got {0:?}")]
    Scheme(String),
    #[error("DATABASE_URL is not a valid URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("DATABASE_READ_URL is not a valid URL: {0}")]
    ReplicaUrl(sqlx::Error),
    #[error("cannot connect to the read replica (DATABASE_READ_URL): {0}")]
    ConnectReplica(sqlx::Error),
    #[error("DATABASE_READ_URL needs a PostgreSQL or MySQL DATABASE_URL: SQLite has no replicas")]
    ReplicaNeedsPostgres,
    #[error("DATABASE_READ_URL must be of the same kind as DATABASE_URL ({0})")]
    ReplicaScheme(&'static str),
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How long a request waits for a pooled connection before failing with UNAVAILABLE: a
/// database outage must fail requests fast, not queue them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the database named by `url` and brings its schema up to date. With `replica`, reads
/// that may be a little stale go to that read replica when `routing` allows. The pools'
/// samplers run until `shutdown` says the node stops.
pub async fn connect(
    url: &str,
    replica: Option<(&str, Arc<ReadRouting>)>,
    shutdown: Shutdown,
) -> Result<Arc<dyn Store>, ConnectError> {
    if is_postgres(url) {
        let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(ConnectError::Url)?;
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(ConnectError::Connect)?;
        // Takes an advisory lock: nodes starting together migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        tokio::spawn(sample_pool("writer", pool.clone(), shutdown.clone()));
        let store = postgres::PgStore::new(pool);
        Ok(match replica {
            Some((url, _)) if !is_postgres(url) => {
                return Err(ConnectError::ReplicaScheme("postgres://"))
            }
            Some((url, routing)) => {
                Arc::new(store.with_replica(connect_replica(url, routing, shutdown).await?))
            }
            None => Arc::new(store),
        })
    } else if is_mysql(url) {
        let options = MySqlConnectOptions::from_str(url).map_err(ConnectError::Url)?;
        let pool = mysql_pool(options, dialect::mysql::SESSION_SETUP)
            .await
            .map_err(ConnectError::Connect)?;
        // Takes a named lock (GET_LOCK): nodes starting together migrate once.
        sqlx::migrate!("./migrations/mysql").run(&pool).await?;
        tokio::spawn(sample_pool("writer", pool.clone(), shutdown.clone()));
        let store = mysql::MySqlStore::new(pool.clone());
        Ok(match replica {
            Some((url, _)) if !is_mysql(url) => {
                return Err(ConnectError::ReplicaScheme("mysql://"))
            }
            Some((url, routing)) => {
                let primary = gtid_primary(&pool).await.map_err(ConnectError::Connect)?;
                let replica =
                    connect_mysql_replica(url, routing, primary, shutdown.clone()).await?;
                tokio::spawn(heartbeat(pool, shutdown));
                Arc::new(store.with_replica(replica))
            }
            None => Arc::new(store),
        })
    } else if url.starts_with("sqlite:") {
        if replica.is_some() {
            return Err(ConnectError::ReplicaNeedsPostgres);
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(ConnectError::Url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(ConnectError::Connect)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        // SQLite has one writer. Command transactions queue for one connection of their own,
        // first come first served, instead of for the file's write lock, whose busy handler
        // sleeps up to 100 ms between tries.
        let commands = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(ConnectError::Connect)?;
        tokio::spawn(sample_pool("writer", pool.clone(), shutdown.clone()));
        tokio::spawn(sample_pool("commands", commands.clone(), shutdown));
        Ok(Arc::new(
            sqlite::SqliteStore::new(pool).with_command_pool(commands),
        ))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(ConnectError::Scheme(format!("{scheme}:")))
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// sqlx's MySQL driver speaks to both servers; `mariadb://` names the same protocol.
fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// A MySQL pool whose every connection first runs `setup`.
async fn mysql_pool(
    options: MySqlConnectOptions,
    setup: &'static str,
) -> Result<sqlx::MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(setup).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// How the primary names its transactions in GTIDs: MariaDB by replication domain, MySQL by
/// server UUID.
async fn gtid_primary(pool: &sqlx::MySqlPool) -> Result<gtid::Primary, sqlx::Error> {
    let version: String = sqlx::query_scalar(dialect::mysql::VERSION)
        .fetch_one(pool)
        .await?;
    if gtid::is_mariadb(&version) {
        let domain: i64 = sqlx::query_scalar(dialect::mysql::MARIADB_DOMAIN)
            .fetch_one(pool)
            .await?;
        let domain = u32::try_from(domain)
            .map_err(|_| sqlx::Error::Protocol(format!("gtid_domain_id {domain}")))?;
        Ok(gtid::Primary::MariaDb { domain })
    } else {
        let server_uuid: String = sqlx::query_scalar(dialect::mysql::MYSQL_SERVER_UUID)
            .fetch_one(pool)
            .await?;
        Ok(gtid::Primary::MySql { server_uuid })
    }
}

/// A read-only pool on a MySQL/MariaDB replica, and the task that keeps its applied position
/// and lag current.
async fn connect_mysql_replica(
    url: &str,
    routing: Arc<ReadRouting>,
    primary: gtid::Primary,
    shutdown: Shutdown,
) -> Result<Replica<sqlx::MySql>, ConnectError> {
    let options = MySqlConnectOptions::from_str(url).map_err(ConnectError::ReplicaUrl)?;
    let pool = mysql_pool(options, dialect::mysql::READ_ONLY_SESSION)
        .await
        .map_err(ConnectError::ConnectReplica)?;
    tokio::spawn(sample_pool("replica", pool.clone(), shutdown.clone()));
    tokio::spawn(sample_mysql_replica(
        pool.clone(),
        Arc::downgrade(&routing),
        primary.clone(),
        shutdown,
    ));
    Ok(Replica {
        pool,
        routing,
        positions: Positions::Gtid(primary),
    })
}

async fn sample_mysql_replica(
    pool: sqlx::MySqlPool,
    routing: Weak<ReadRouting>,
    primary: gtid::Primary,
    mut shutdown: Shutdown,
) {
    while let Some(routing) = next_sample(&routing, &mut shutdown).await {
        let applied = sqlx::query_scalar::<_, Option<String>>(primary.applied_query())
            .fetch_one(&pool)
            .await;
        match applied {
            Ok(text) => {
                if let Some(position) = text.as_deref().and_then(|t| primary.applied(t)) {
                    routing.replica_replayed(position);
                }
            }
            Err(error) => tracing::debug!(%error, "cannot sample the replica"),
        }
        // Absent until the schema has reached the replica.
        let age = sqlx::query_scalar::<_, i64>(dialect::mysql::HEARTBEAT_AGE)
            .fetch_optional(&pool)
            .await;
        match age {
            Ok(Some(ms)) => {
                metrics::gauge!(crate::metrics::REPLICA_LAG).set(ms.max(0) as f64 / 1000.0);
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot read the replica's heartbeat"),
        }
        sample_replica_seqs(&pool, &routing, dialect::mysql::built).await;
    }
}

/// Writes the primary's clock into `heartbeat` every `HEARTBEAT_EVERY`, for the replica's lag.
async fn heartbeat(pool: sqlx::MySqlPool, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(dialect::mysql::HEARTBEAT_EVERY) => {}
            () = shutdown.stopped() => return,
        }
        if let Err(error) = sqlx::query(dialect::mysql::HEARTBEAT).execute(&pool).await {
            tracing::debug!(%error, "cannot write the heartbeat");
        }
    }
}

/// A read-only pool on the replica, and the task that keeps its replay position current.
async fn connect_replica(
    url: &str,
    routing: Arc<ReadRouting>,
    shutdown: Shutdown,
) -> Result<Replica<sqlx::Postgres>, ConnectError> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(ConnectError::ReplicaUrl)?
        .options([("default_transaction_read_only", "on")]);
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(ConnectError::ConnectReplica)?;
    tokio::spawn(sample_pool("replica", pool.clone(), shutdown.clone()));
    tokio::spawn(sample_replica(
        pool.clone(),
        Arc::downgrade(&routing),
        shutdown,
    ));
    Ok(Replica {
        pool,
        routing,
        positions: Positions::Wal,
    })
}

async fn sample_replica(pool: sqlx::PgPool, routing: Weak<ReadRouting>, mut shutdown: Shutdown) {
    while let Some(routing) = next_sample(&routing, &mut shutdown).await {
        match sqlx::query(dialect::postgres::REPLICA_STATE)
            .fetch_one(&pool)
            .await
        {
            Ok(row) => {
                let replayed: Option<String> = row.try_get("replayed").unwrap_or_default();
                if let Some(lsn) = replayed.as_deref().and_then(routing::parse_lsn) {
                    routing.replica_replayed(lsn);
                }
                let lag: f64 = row.try_get("lag").unwrap_or_default();
                metrics::gauge!(crate::metrics::REPLICA_LAG).set(lag);
            }
            Err(error) => tracing::debug!(%error, "cannot sample the replica"),
        }
        sample_replica_seqs(&pool, &routing, dialect::postgres::built).await;
    }
}

/// The replica's `last_seq` of the restaurants causal reads ask about, a bounded number of
/// them per query; `built` spells the statement for the backend.
async fn sample_replica_seqs<DB>(
    pool: &sqlx::Pool<DB>,
    routing: &ReadRouting,
    built: fn(String) -> String,
) where
    DB: sqlx::Database,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB>,
    for<'r> i64: sqlx::Decode<'r, DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    const PER_QUERY: usize = 500;
    for restaurants in routing.watched_restaurants().chunks(PER_QUERY) {
        let statement = built(sql::select_last_seqs(restaurants.len()));
        let mut query = sqlx::query::<DB>(&statement);
        for restaurant in restaurants {
            query = query.bind(restaurant.as_str());
        }
        match query.fetch_all(pool).await {
            Ok(rows) => {
                for row in rows {
                    // Unchecked: MySQL reports `utf8mb4_bin` ids as binary (see `dialect`).
                    let (Ok(id), Ok(seq)) = (
                        row.try_get_unchecked::<String, _>("id"),
                        row.try_get_unchecked::<i64, _>("last_seq"),
                    ) else {
                        continue;
                    };
                    routing.replica_applied(&RestaurantId::from_trusted(id), seq);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "cannot sample the replica's seqs");
                return;
            }
        }
    }
}

/// Waits until a replica sampler's next turn: the routing it feeds, or `None` once the node
/// stops or nothing reads through that routing any more.
async fn next_sample(
    routing: &Weak<ReadRouting>,
    shutdown: &mut Shutdown,
) -> Option<Arc<ReadRouting>> {
    tokio::select! {
        () = tokio::time::sleep(routing::SAMPLE_EVERY) => routing.upgrade(),
        () = shutdown.stopped() => None,
    }
}

/// Open and idle connections of a pool, for the dashboards, every few seconds.
async fn sample_pool<DB: sqlx::Database>(
    name: &'static str,
    pool: sqlx::Pool<DB>,
    mut shutdown: Shutdown,
) {
    while !pool.is_closed() {
        metrics::gauge!(crate::metrics::POOL_CONNECTIONS, "pool" => name, "state" => "open")
            .set(pool.size() as f64);
        metrics::gauge!(crate::metrics::POOL_CONNECTIONS, "pool" => name, "state" => "idle")
            .set(pool.num_idle() as f64);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.stopped() => return,
        }
    }
}
