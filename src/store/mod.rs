//! The sqlx store: PostgreSQL in production, SQLite as the embedded default.

mod backend;
pub mod routing;
mod sql;

use backend::Replica;
use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::Store;
use orderhub_actors::shutdown::Shutdown;
use routing::ReadRouting;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub mod postgres {
    super::backend::sql_store!(PgStore, PgTx, sqlx::Postgres);
}

pub mod sqlite {
    super::backend::sql_store!(SqliteStore, SqliteTx, sqlx::Sqlite);
}

/// Why the store could not be opened; each says what to fix in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with postgres:// or sqlite://, got {0:?}")]
    Scheme(String),
    #[error("DATABASE_URL is not a valid URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("DATABASE_READ_URL is not a valid URL: {0}")]
    ReplicaUrl(sqlx::Error),
    #[error("cannot connect to the read replica (DATABASE_READ_URL): {0}")]
    ConnectReplica(sqlx::Error),
    #[error("DATABASE_READ_URL needs a PostgreSQL DATABASE_URL: SQLite has no replicas")]
    ReplicaNeedsPostgres,
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
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
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
            Some((url, routing)) => {
                Arc::new(store.with_replica(connect_replica(url, routing, shutdown).await?))
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
            .connect_with(options)
            .await
            .map_err(ConnectError::Connect)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        tokio::spawn(sample_pool("writer", pool.clone(), shutdown));
        Ok(Arc::new(sqlite::SqliteStore::new(pool)))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(ConnectError::Scheme(format!("{scheme}:")))
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
    Ok(Replica { pool, routing })
}

async fn sample_replica(pool: sqlx::PgPool, routing: Weak<ReadRouting>, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(routing::SAMPLE_EVERY) => {}
            () = shutdown.stopped() => return,
        }
        let Some(routing) = routing.upgrade() else {
            return;
        };
        match sqlx::query(sql::REPLICA_STATE).fetch_one(&pool).await {
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
        sample_replica_seqs(&pool, &routing).await;
    }
}

/// The replica's `last_seq` of the restaurants causal reads ask about, a bounded number of
/// them per query.
async fn sample_replica_seqs(pool: &sqlx::PgPool, routing: &ReadRouting) {
    const PER_QUERY: usize = 500;
    for restaurants in routing.watched_restaurants().chunks(PER_QUERY) {
        let statement = sql::select_last_seqs(restaurants.len());
        let mut query = sqlx::query(&statement);
        for restaurant in restaurants {
            query = query.bind(restaurant.as_str());
        }
        match query.fetch_all(pool).await {
            Ok(rows) => {
                for row in rows {
                    let (Ok(id), Ok(seq)) =
                        (row.try_get::<String, _>("id"), row.try_get("last_seq"))
                    else {
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
