//! The sqlx store: PostgreSQL in production, SQLite as the embedded default.

mod backend;
mod sql;

use orderhub_actors::ports::Store;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
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
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How long a request waits for a pooled connection before failing with UNAVAILABLE: a
/// database outage must fail requests fast, not queue them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the database named by `url` and brings its schema up to date.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, ConnectError> {
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
        Ok(Arc::new(postgres::PgStore::new(pool)))
    } else if url.starts_with("sqlite:") {
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
        Ok(Arc::new(sqlite::SqliteStore::new(pool)))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(ConnectError::Scheme(format!("{scheme}:")))
    }
}
