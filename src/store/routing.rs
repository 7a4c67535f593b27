//! Which pool a read goes to, decided here and nowhere else.
//!
//! With a replica (`DATABASE_READ_URL`), reads that may be a little stale go to it: restaurants,
//! menus, tables, orders and order lists. Everything inside a command, idempotency checks,
//! seq and version reads, subscription history and every read outside an HTTP request go to
//! the writer. A client (a token's `sub`) that wrote is read-your-writes: its reads go to the
//! writer until the replica has replayed the WAL position recorded right after its last commit
//! (sampled from the replica every 100 ms, so deciding costs no round trip). Nobody waits for
//! the replica; its lag only moves reads to the writer for a while.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use orderhub_actors::ports::WriteTracker;

/// A PostgreSQL WAL position ("16/B374D848") as a number.
pub type Lsn = u64;

pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

tokio::task_local! {
    /// The WAL position this request's reads must see, set per HTTP request.
    static READ_AFTER: Option<Lsn>;
}

/// How often the replica's replay position and lag are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct ReadRouting {
    /// Zero until the replica has been sampled.
    replica_replayed: AtomicU64,
    /// The highest position recorded after any commit of this node.
    last_commit: AtomicU64,
    /// Clients whose last write the replica may not have replayed yet.
    writers: Mutex<HashMap<String, Lsn>>,
}

impl ReadRouting {
    pub fn new() -> Self {
        Self::default()
    }

    /// After a commit: the WAL insert position then, which is past the commit record.
    pub fn committed_up_to(&self, lsn: Lsn) {
        self.last_commit.fetch_max(lsn, Ordering::Relaxed);
    }

    pub fn replica_replayed(&self, lsn: Lsn) {
        self.replica_replayed.store(lsn, Ordering::Relaxed);
        // Clients the replica has caught up with read from it again.
        self.lock().retain(|_, wrote| *wrote > lsn);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lsn>> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one request of `client` (None: anonymous) with its read requirement in scope.
    pub async fn scope<F: Future>(&self, client: Option<&str>, request: F) -> F::Output {
        let after = client
            .and_then(|c| self.lock().get(c).copied())
            .unwrap_or(0);
        READ_AFTER.scope(Some(after), request).await
    }

    /// Whether a read that tolerates staleness may use the replica now.
    pub fn replica_ok(&self) -> bool {
        let replayed = self.replica_replayed.load(Ordering::Relaxed);
        // Outside a request scope (commands, subscriptions, background work): the writer.
        READ_AFTER
            .try_with(|after| after.is_some_and(|after| replayed > 0 && replayed >= after))
            .unwrap_or(false)
    }
}

impl WriteTracker for ReadRouting {
    /// Called when `client`'s command has returned: everything it wrote is at or before the
    /// node's last recorded commit position.
    fn client_wrote(&self, client: &str) {
        let lsn = self.last_commit.load(Ordering::Relaxed);
        if lsn > self.replica_replayed.load(Ordering::Relaxed) {
            self.lock().insert(client.to_owned(), lsn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_postgres_prints_them() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert!(parse_lsn("16/B374D847") < parse_lsn("16/B374D848"));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[tokio::test]
    async fn a_client_reads_the_writer_until_the_replica_caught_up() {
        let routing = ReadRouting::new();
        assert!(!routing.replica_ok(), "outside a request: writer");
        routing.replica_replayed(100);
        assert!(
            routing
                .scope(Some("a"), async { routing.replica_ok() })
                .await
        );
        routing.committed_up_to(150);
        routing.client_wrote("a");
        assert!(
            !routing
                .scope(Some("a"), async { routing.replica_ok() })
                .await
        );
        assert!(
            routing
                .scope(Some("b"), async { routing.replica_ok() })
                .await,
            "others still read the replica"
        );
        routing.replica_replayed(150);
        assert!(
            routing
                .scope(Some("a"), async { routing.replica_ok() })
                .await
        );
    }
}
