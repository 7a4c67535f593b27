//! Buses: how committed events reach the channels of every node. In-process for one node,
//! Redis pub/sub for several.

mod local;
mod redis;

pub use self::local::LocalBus;
pub use self::redis::RedisBus;

use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::{BusSignal, Listener};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Each listener with the token its guard removes it by.
type ListenerMap = HashMap<RestaurantId, Vec<(u64, Listener)>>;

/// The listeners of each restaurant's channel on this node. Usually one, the channel's actor;
/// for a moment two, when a channel that is stopping and its successor (or two that raced to
/// start) overlap. Each is called with every event, and each guard removes only its own, so
/// that one stopping never deafens the other.
#[derive(Clone, Default)]
struct Listeners {
    map: Arc<Mutex<ListenerMap>>,
    next_token: Arc<AtomicU64>,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, ListenerMap> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, restaurant: &RestaurantId, listener: Listener) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(restaurant.clone())
            .or_default()
            .push((token, listener));
        token
    }

    /// Removes that listener; true if the restaurant has none left.
    fn remove(&self, restaurant: &RestaurantId, token: u64) -> bool {
        let mut map = self.lock();
        let Some(listeners) = map.get_mut(restaurant) else {
            return true;
        };
        listeners.retain(|(t, _)| *t != token);
        let none_left = listeners.is_empty();
        if none_left {
            map.remove(restaurant);
        }
        none_left
    }

    fn contains(&self, restaurant: &RestaurantId) -> bool {
        self.lock().contains_key(restaurant)
    }

    /// Calls every listener of the restaurant (outside the lock); false if it has none.
    fn signal(&self, restaurant: &RestaurantId, signal: impl Fn() -> BusSignal) -> bool {
        let listeners: Vec<Listener> = match self.lock().get(restaurant) {
            Some(listeners) => listeners.iter().map(|(_, l)| l.clone()).collect(),
            None => return false,
        };
        for listener in listeners {
            listener(signal());
        }
        true
    }

    fn restaurants(&self) -> Vec<RestaurantId> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderhub_actors::domain::{Event, EventKind, StaffCall, StaffCallId, TableId, Timestamp};
    use orderhub_actors::ports::{Bus, EventSink};
    use std::sync::atomic::AtomicI64;

    fn event(restaurant: &RestaurantId, seq: i64) -> Event {
        let call = StaffCall {
            id: StaffCallId::generate(),
            restaurant_id: restaurant.clone(),
            table_id: TableId::generate(),
            message: None,
            at: Timestamp(0),
        };
        Event {
            restaurant_id: restaurant.clone(),
            seq,
            at: Timestamp(0),
            kind: EventKind::StaffCalled { call },
        }
    }

    fn recorder() -> (Listener, Arc<AtomicI64>) {
        let last = Arc::new(AtomicI64::new(0));
        let seen = last.clone();
        let listener: Listener = Arc::new(move |signal| {
            if let BusSignal::Event(event) = signal {
                seen.store(event.seq, Ordering::Relaxed);
            }
        });
        (listener, last)
    }

    /// Two channels that raced to start (or one stopping as its successor starts) each listen;
    /// the one that goes must not take the other's events with it.
    #[test]
    fn a_listener_that_goes_leaves_the_others_listening() {
        let bus = LocalBus::new();
        let restaurant = RestaurantId::generate();
        let (first, first_seen) = recorder();
        let (second, second_seen) = recorder();
        let first_guard = bus.listen(&restaurant, first);
        let second_guard = bus.listen(&restaurant, second);
        bus.publish(&event(&restaurant, 1));
        assert_eq!(first_seen.load(Ordering::Relaxed), 1);
        assert_eq!(second_seen.load(Ordering::Relaxed), 1);

        drop(second_guard); // the newer one goes first
        bus.publish(&event(&restaurant, 2));
        assert_eq!(first_seen.load(Ordering::Relaxed), 2);
        assert_eq!(second_seen.load(Ordering::Relaxed), 1);

        drop(first_guard);
        bus.publish(&event(&restaurant, 3));
        assert_eq!(first_seen.load(Ordering::Relaxed), 2);
    }
}
