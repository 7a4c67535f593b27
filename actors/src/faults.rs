//! Panics on demand, for the supervision tests: compiled only with the non-default
//! `fault-injection` feature, so no production build can carry it.
//!
//! A test arms one panic for one actor kind and restaurant; the next time such an actor of
//! that restaurant reaches its hook, it panics once.

use std::sync::Mutex;

use crate::domain::RestaurantId;

/// Which actor's hook panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A restaurant actor, inside a command's transaction, after its writes and before commit.
    Restaurant,
    /// A channel actor, on the next event from the bus.
    Channel,
    /// A subscription actor, on the next event it is to deliver.
    Subscription,
    /// The node's bus connection actor (in the adapter crate), on the next message from the
    /// bus for the restaurant.
    BusConnection,
}

static ARMED: Mutex<Vec<(Target, RestaurantId)>> = Mutex::new(Vec::new());

/// The next time an actor of `target`'s kind for `restaurant` reaches its hook, it panics.
pub fn panic_next(target: Target, restaurant: &RestaurantId) {
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    armed.push((target, restaurant.clone()));
}

/// The hook: panics once if armed for this actor. Public for the adapters' actors, which call
/// it behind a feature of their own that turns this one on.
pub fn hook(target: Target, restaurant: &RestaurantId) {
    let fire = {
        let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
        let found = armed
            .iter()
            .position(|(t, r)| *t == target && r == restaurant);
        found.map(|at| armed.remove(at)).is_some()
    };
    if fire {
        panic!("injected fault: {target:?} actor of restaurant {restaurant}");
    }
}
