//! Which pool a read goes to, decided here and nowhere else.
//!
//! With a replica (`DATABASE_READ_URL`), reads that may be a little stale go to it: restaurants,
//! menus, tables, orders and order lists. Everything inside a command, idempotency checks,
//! seq and version reads, subscription history and every read outside an HTTP request go to
//! the writer. A client (a token's `sub`) that wrote is read-your-writes: its reads go to the
//! writer until the replica has replayed the WAL position recorded right after its last commit
//! (sampled from the replica every 100 ms, so deciding costs no round trip). Nobody waits for
//! the replica; its lag only moves reads to the writer for a while.
//!
//! Causal reads (`atLeastSeq`): a read that must reflect event N of a restaurant goes to the
//! replica once the replica's copy of the restaurant's `last_seq` is at least N, else to the
//! writer. The replica's `last_seq` of each restaurant asked about in the last minute is
//! sampled with the replay position, in one query per sample: a read never costs a round trip
//! to decide. A replica applies whole transactions, so a `last_seq` of N there means every
//! change up to event N is there too.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::{Freshness, ReadRouter};

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

/// How long a restaurant's seq on the replica is sampled after the last causal read asked.
const WATCH_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ReadRouting {
    /// Zero until the replica has been sampled.
    replica_replayed: AtomicU64,
    /// The highest position recorded after any commit of this node.
    last_commit: AtomicU64,
    /// Clients whose last write the replica may not have replayed yet.
    writers: Mutex<HashMap<String, Lsn>>,
    /// Set once a replica is sampled: without one every read is from the writer.
    has_replica: AtomicBool,
    /// Restaurants whose seq on the replica causal reads ask about.
    watched: Mutex<HashMap<RestaurantId, Watched>>,
}

struct Watched {
    /// The replica's `last_seq` of the restaurant at the last sample; -1 before the first.
    applied: i64,
    asked: Instant,
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

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Watched>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The restaurants whose seq on the replica to sample now; forgets those nobody asked
    /// about for a minute.
    pub fn watched_restaurants(&self) -> Vec<RestaurantId> {
        self.has_replica.store(true, Ordering::Relaxed);
        let mut watched = self.watched();
        watched.retain(|_, w| w.asked.elapsed() < WATCH_FOR);
        watched.keys().cloned().collect()
    }

    /// A sample: the replica's `last_seq` of `restaurant`.
    pub fn replica_applied(&self, restaurant: &RestaurantId, seq: i64) {
        if let Some(watched) = self.watched().get_mut(restaurant) {
            watched.applied = watched.applied.max(seq);
        }
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

impl ReadRouter for ReadRouting {
    /// Called when `client`'s command has returned: everything it wrote is at or before the
    /// node's last recorded commit position.
    fn client_wrote(&self, client: &str) {
        let lsn = self.last_commit.load(Ordering::Relaxed);
        if lsn > self.replica_replayed.load(Ordering::Relaxed) {
            self.lock().insert(client.to_owned(), lsn);
        }
    }

    fn freshness_for(&self, restaurant: &RestaurantId, seq: i64) -> Freshness {
        if !self.has_replica.load(Ordering::Relaxed) {
            return Freshness::Current;
        }
        let mut watched = self.watched();
        let entry = watched.entry(restaurant.clone()).or_insert(Watched {
            applied: -1,
            asked: Instant::now(),
        });
        entry.asked = Instant::now();
        if entry.applied >= seq {
            Freshness::Recent
        } else {
            Freshness::Current
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

    #[test]
    fn a_causal_read_uses_the_replica_once_it_has_the_seq() {
        let routing = ReadRouting::new();
        let r = RestaurantId::from_trusted("r".to_owned());
        assert_eq!(
            routing.freshness_for(&r, 0),
            Freshness::Current,
            "no replica: the writer"
        );
        assert!(routing.watched_restaurants().is_empty());
        assert_eq!(
            routing.freshness_for(&r, 5),
            Freshness::Current,
            "not sampled yet"
        );
        assert_eq!(routing.watched_restaurants(), std::slice::from_ref(&r));
        routing.replica_applied(&r, 4);
        assert_eq!(routing.freshness_for(&r, 5), Freshness::Current);
        assert_eq!(routing.freshness_for(&r, 4), Freshness::Recent);
        routing.replica_applied(&r, 7);
        assert_eq!(routing.freshness_for(&r, 7), Freshness::Recent);
        routing.replica_applied(&r, 6);
        assert_eq!(
            routing.freshness_for(&r, 7),
            Freshness::Recent,
            "a late sample never moves it back"
        );
        let other = RestaurantId::from_trusted("other".to_owned());
        routing.replica_applied(&other, 9);
        assert_eq!(
            routing.freshness_for(&other, 1),
            Freshness::Current,
            "a restaurant nobody asked about is not sampled"
        );
    }
}
