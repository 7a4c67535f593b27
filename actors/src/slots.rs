//! The actors of one kind on this node, one per restaurant: looked up, raced for, forgotten.
//!
//! Kept per registry rather than in ractor's global name registry, so that several nodes can
//! live in one process (tests) without their names colliding.

use ractor::{ActorId, ActorRef, Message};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
// Tokio's clock, which tests can pause and move; the same as std's otherwise.
use tokio::time::Instant;

use crate::domain::RestaurantId;

/// `E` is what callers need beside the actor's address (e.g. its bounded command queue).
pub(crate) struct Slots<M: Message, E: Clone = ()> {
    map: Mutex<HashMap<RestaurantId, Slot<M, E>>>,
}

struct Slot<M: Message, E> {
    actor: ActorRef<M>,
    extra: E,
    last_used: Instant,
}

impl<M: Message, E: Clone> Slots<M, E> {
    pub fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RestaurantId, Slot<M, E>>> {
        // Nothing here can be left half-done by a panic: recover the map.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn lookup(&self, key: &RestaurantId) -> Option<(ActorRef<M>, E)> {
        let mut map = self.lock();
        let slot = map.get_mut(key)?;
        slot.last_used = Instant::now();
        Some((slot.actor.clone(), slot.extra.clone()))
    }

    /// Keeps `spawned` unless another caller won the race, in which case `spawned` is stopped
    /// and the winner returned.
    pub fn insert_or_existing(
        &self,
        key: &RestaurantId,
        spawned: ActorRef<M>,
        extra: E,
    ) -> (ActorRef<M>, E) {
        match self.lock().entry(key.clone()) {
            Entry::Occupied(mut existing) => {
                spawned.stop(None);
                let existing = existing.get_mut();
                existing.last_used = Instant::now();
                (existing.actor.clone(), existing.extra.clone())
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    actor: spawned.clone(),
                    extra: extra.clone(),
                    last_used: Instant::now(),
                });
                (spawned, extra)
            }
        }
    }

    /// What every slot holds beside its actor.
    pub fn extras(&self) -> Vec<E> {
        self.lock()
            .values()
            .map(|slot| slot.extra.clone())
            .collect()
    }

    /// Removes the entry if it still names that actor (a newer one may have replaced it).
    pub fn forget(&self, key: &RestaurantId, actor: ActorId) {
        let mut map = self.lock();
        if map
            .get(key)
            .is_some_and(|slot| slot.actor.get_id() == actor)
        {
            map.remove(key);
        }
    }

    /// Removes the entry that names `actor`, whichever restaurant it serves, and says which
    /// that was; `None` if no entry names it (it was taken out, or replaced, already).
    pub fn forget_actor(&self, actor: ActorId) -> Option<RestaurantId> {
        let mut map = self.lock();
        let key = map
            .iter()
            .find(|(_, slot)| slot.actor.get_id() == actor)
            .map(|(key, _)| key.clone())?;
        map.remove(&key);
        Some(key)
    }

    /// Whether an actor serves the restaurant (without counting as a use of it).
    pub fn contains(&self, key: &RestaurantId) -> bool {
        self.lock().contains_key(key)
    }

    /// Removes and returns the actors unused for `idle_after`.
    pub fn take_idle(&self, idle_after: Duration) -> Vec<ActorRef<M>> {
        let now = Instant::now();
        let mut idle = Vec::new();
        self.lock().retain(|_, slot| {
            let busy = now.duration_since(slot.last_used) < idle_after;
            if !busy {
                idle.push(slot.actor.clone());
            }
            busy
        });
        idle
    }

    pub fn take_all(&self) -> Vec<ActorRef<M>> {
        self.lock().drain().map(|(_, slot)| slot.actor).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    // The slots' other uses are tested through the registries (actors/tests): an actor to put
    // in a slot is spawned only there, in the documented actor tree.
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_panic_while_the_map_is_locked_leaves_the_slots_usable() {
        let slots: Arc<Slots<(), u8>> = Arc::new(Slots::new());
        let poisoner = slots.clone();
        let panicked = std::thread::spawn(move || {
            let _map = poisoner.lock();
            panic!("a panic with the map locked");
        })
        .join();
        assert!(panicked.is_err());
        assert!(slots.map.is_poisoned());

        let key = RestaurantId::generate();
        assert!(slots.lookup(&key).is_none());
        assert_eq!(slots.len(), 0);
        assert!(slots.extras().is_empty());
        assert!(slots.take_idle(Duration::ZERO).is_empty());
        assert!(slots.take_all().is_empty());
        assert!(!slots.contains(&key));
        assert_eq!(slots.forget_actor(ActorId::Local(1)), None);
    }
}
