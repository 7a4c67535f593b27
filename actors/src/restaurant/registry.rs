use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::actor::{Reply, RestaurantActor, RestaurantMsg};
use crate::domain::RestaurantId;
use crate::ports::{Clock, EventSink, Store};
use crate::CommandError;

/// What a restaurant actor needs from the outside.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    /// An actor that handled nothing for this long is stopped.
    pub idle_after: Duration,
    /// How long a caller waits for a command's answer.
    pub call_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_after: Duration::from_secs(300),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// Finds or spawns the actor of a restaurant on this node, and stops actors that sit idle.
///
/// The map is local to this registry rather than ractor's global name registry, so that
/// several nodes can live in one process (tests) without their names colliding.
#[derive(Clone)]
pub struct RestaurantRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    config: RegistryConfig,
    actors: Mutex<HashMap<RestaurantId, Running>>,
}

struct Running {
    actor: ActorRef<RestaurantMsg>,
    last_used: Instant,
}

impl RestaurantRegistry {
    /// Must be called inside a Tokio runtime: it starts the idle sweeper, which ends by itself
    /// once the registry is dropped.
    pub fn new(deps: Deps, config: RegistryConfig) -> Self {
        let inner = Arc::new(Inner {
            deps,
            config,
            actors: Mutex::new(HashMap::new()),
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&inner), config.idle_after));
        Self { inner }
    }

    pub fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    /// Sends a command to the restaurant's actor and waits (bounded) for its answer.
    ///
    /// A command that could not be delivered, because the actor stopped between lookup and
    /// send, never ran, so it is sent again to a fresh actor. One that timed out may have run,
    /// so it is reported, not retried.
    pub async fn call<T, F>(&self, restaurant: &RestaurantId, message: F) -> Result<T, CommandError>
    where
        T: Send + 'static,
        F: Fn(Reply<T>) -> RestaurantMsg,
    {
        let timeout = self.inner.config.call_timeout;
        let mut last_error = String::new();
        for _ in 0..3 {
            let actor = self.actor_for(restaurant).await?;
            match actor.call(&message, Some(timeout)).await {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => return Err(CommandError::Timeout(timeout)),
                Ok(CallResult::SenderError) => {
                    self.forget(restaurant, &actor);
                    return Err(CommandError::ActorUnavailable(
                        "the restaurant actor stopped while handling the command".into(),
                    ));
                }
                Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => {
                    self.forget(restaurant, &actor);
                    last_error = "the restaurant actor had stopped".into();
                }
                Err(error) => return Err(CommandError::ActorUnavailable(error.to_string())),
            }
        }
        Err(CommandError::ActorUnavailable(last_error))
    }

    /// How many restaurant actors run on this node.
    pub fn active(&self) -> usize {
        self.inner.lock().len()
    }

    /// Stops every actor after it has finished the commands already queued.
    pub fn shutdown(&self) {
        for (_, running) in self.inner.lock().drain() {
            let _ = running.actor.drain();
        }
    }

    fn lookup(&self, restaurant: &RestaurantId) -> Option<ActorRef<RestaurantMsg>> {
        let mut actors = self.inner.lock();
        let running = actors.get_mut(restaurant)?;
        running.last_used = Instant::now();
        Some(running.actor.clone())
    }

    async fn actor_for(
        &self,
        restaurant: &RestaurantId,
    ) -> Result<ActorRef<RestaurantMsg>, CommandError> {
        if let Some(actor) = self.lookup(restaurant) {
            return Ok(actor);
        }
        // Spawned outside the lock; if another caller won the race, ours is stopped again.
        let (spawned, _) = Actor::spawn(
            None,
            RestaurantActor,
            (restaurant.clone(), self.inner.deps.clone()),
        )
        .await
        .map_err(|e| CommandError::ActorUnavailable(e.to_string()))?;
        let mut actors = self.inner.lock();
        match actors.entry(restaurant.clone()) {
            Entry::Occupied(mut existing) => {
                spawned.stop(None);
                existing.get_mut().last_used = Instant::now();
                Ok(existing.get().actor.clone())
            }
            Entry::Vacant(slot) => {
                slot.insert(Running {
                    actor: spawned.clone(),
                    last_used: Instant::now(),
                });
                Ok(spawned)
            }
        }
    }

    fn forget(&self, restaurant: &RestaurantId, dead: &ActorRef<RestaurantMsg>) {
        let mut actors = self.inner.lock();
        if actors
            .get(restaurant)
            .is_some_and(|r| r.actor.get_id() == dead.get_id())
        {
            actors.remove(restaurant);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Running>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.actors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn sweep_idle(registry: Weak<Inner>, idle_after: Duration) {
    let period = (idle_after / 2).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = registry.upgrade() else {
            return;
        };
        let now = Instant::now();
        inner.lock().retain(|_, running| {
            let busy = now.duration_since(running.last_used) < idle_after;
            if !busy {
                // Finishes what is queued, then stops; later senders get a fresh actor.
                let _ = running.actor.drain();
            }
            busy
        });
    }
}
