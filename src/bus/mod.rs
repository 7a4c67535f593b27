//! Buses: how committed events reach the channels of every node. In-process for one node,
//! Redis pub/sub for several.

mod local;
mod redis;

pub use self::local::LocalBus;
pub use self::redis::RedisBus;

use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::Listener;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The listener of each channel on this node; tokens tell a listener from its replacement.
#[derive(Clone, Default)]
struct Listeners {
    map: Arc<Mutex<HashMap<RestaurantId, (u64, Listener)>>>,
    next_token: Arc<AtomicU64>,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, HashMap<RestaurantId, (u64, Listener)>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, restaurant: &RestaurantId, listener: Listener) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(restaurant.clone(), (token, listener));
        token
    }

    /// Removes the listener unless a newer one replaced it; true if it was removed.
    fn remove(&self, restaurant: &RestaurantId, token: u64) -> bool {
        let mut map = self.lock();
        let current = map.get(restaurant).is_some_and(|(t, _)| *t == token);
        if current {
            map.remove(restaurant);
        }
        current
    }

    fn get(&self, restaurant: &RestaurantId) -> Option<Listener> {
        self.lock()
            .get(restaurant)
            .map(|(_, listener)| listener.clone())
    }

    fn all(&self) -> Vec<(RestaurantId, Listener)> {
        self.lock()
            .iter()
            .map(|(r, (_, l))| (r.clone(), l.clone()))
            .collect()
    }
}
