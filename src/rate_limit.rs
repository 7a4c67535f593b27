//! Per-client rate limiting: a token bucket per client, shared by HTTP requests and
//! WebSocket subscribe messages, so one runaway script cannot starve a restaurant's node.

use orderhub_actors::domain::Principal;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whose bucket an operation takes from: never the text of a credential, which has many
/// spellings (`Bearer`, `bearer`, extra spaces; RFC 7235 §2.1) and may be re-issued.
#[derive(Debug, Clone, Copy)]
pub enum Client<'a> {
    /// A verified token: its subject with its role and scope (restaurant, table). Every token
    /// for the same subject, role and scope shares one bucket, over HTTP and WebSocket alike.
    Token(&'a Principal),
    /// A request without a valid token: its peer's IP address.
    Peer(IpAddr),
}

impl Hash for Client<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Client::Token(principal) => (
                0u8,
                &principal.subject,
                principal.role.as_str(),
                principal.restaurant_id().map(|r| r.as_str()),
                principal.table_id().map(|t| t.as_str()),
            )
                .hash(state),
            // An IPv4 peer seen through an IPv6 socket is the same peer.
            Client::Peer(address) => (1u8, address.to_canonical()).hash(state),
        }
    }
}

/// `rate` operations per second sustained, `burst` at once. Keys are hashed with a per-process
/// random seed: identities are not kept in memory, and colliding keys cannot be chosen.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    hasher: std::collections::hash_map::RandomState,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_key: HashMap<u64, Bucket>,
    /// The map is swept of full buckets when it grows past this.
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

const MIN_SWEEP: usize = 1024;

impl RateLimiter {
    /// `None` when `rate` is 0: no limit.
    pub fn new(rate: u32, burst: u32) -> Option<RateLimiter> {
        (rate > 0).then(|| RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            hasher: Default::default(),
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        })
    }

    /// Takes one operation from `client`'s bucket, or says how long until one is available.
    pub fn check(&self, client: Client<'_>) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, key: impl Hash, now: Instant) -> Result<(), Duration> {
        let key = self.hasher.hash_one(key);
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.by_key.len() >= buckets.sweep_at {
            let (rate, burst) = (self.rate, self.burst);
            buckets
                .by_key
                .retain(|_, bucket| refill(bucket, now, rate, burst) < burst);
            buckets.sweep_at = (buckets.by_key.len() * 2).max(MIN_SWEEP);
        }
        let bucket = buckets.by_key.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = refill(bucket, now, self.rate, self.burst);
        *bucket = Bucket {
            tokens,
            updated: now,
        };
        if tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

fn refill(bucket: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(10, 3).expect("a limit");
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", start), Ok(()));
        }
        let wait = limiter.check_at("a", start).expect_err("limited");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        // Other tokens have buckets of their own.
        assert_eq!(limiter.check_at("b", start), Ok(()));
        // A tenth of a second later one more operation is allowed, and only one.
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.check_at("a", later), Ok(()));
        assert!(limiter.check_at("a", later).is_err());
    }

    #[test]
    fn a_client_is_its_identity_not_its_credential() {
        use orderhub_actors::domain::{RestaurantId, Role, TableId};
        let limiter = RateLimiter::new(1, 1).expect("a limit");
        let now = Instant::now();
        let (r, t) = (RestaurantId::generate(), TableId::generate());
        let customer = |table: &TableId| {
            Principal::new(
                "phone".into(),
                Role::Customer,
                Some(r.clone()),
                Some(table.clone()),
            )
            .expect("scope")
        };
        let (first, again) = (customer(&t), customer(&t));
        assert_eq!(limiter.check_at(Client::Token(&first), now), Ok(()));
        // Another token for the same subject, role and scope: the same bucket.
        assert!(limiter.check_at(Client::Token(&again), now).is_err());
        // Another table is another client, and so is another role.
        let other_table = customer(&TableId::generate());
        assert_eq!(limiter.check_at(Client::Token(&other_table), now), Ok(()));
        let staff =
            Principal::new("phone".into(), Role::Staff, Some(r.clone()), None).expect("scope");
        assert_eq!(limiter.check_at(Client::Token(&staff), now), Ok(()));
        // A peer over IPv4 and as an IPv4-mapped IPv6 address is one peer.
        let v4: IpAddr = "192.0.2.7".parse().expect("address");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("address");
        assert_eq!(limiter.check_at(Client::Peer(v4), now), Ok(()));
        assert!(limiter.check_at(Client::Peer(mapped), now).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(RateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn full_buckets_are_swept() {
        let limiter = RateLimiter::new(1000, 1).expect("a limit");
        let start = Instant::now();
        for i in 0..MIN_SWEEP {
            limiter.check_at(i.to_string(), start).expect("first use");
        }
        // Every bucket has refilled a second later: the sweep empties the map.
        limiter
            .check_at("new", start + Duration::from_secs(1))
            .expect("first use");
        let buckets = limiter.buckets.lock().expect("lock");
        assert_eq!(buckets.by_key.len(), 1);
    }
}
