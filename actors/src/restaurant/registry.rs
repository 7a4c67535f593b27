use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef, MessagingErr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::actor::{Queued, Reply, RestaurantActor, RestaurantMsg};
use crate::domain::RestaurantId;
use crate::ports::{Clock, EventSink, Store};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::supervisor::{self, Supervised};
use crate::CommandError;

/// What a restaurant actor needs from the outside.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// An actor that handled nothing for this long is stopped.
    pub idle_after: Duration,
    /// How long a caller waits for a command's answer.
    pub call_timeout: Duration,
    /// Commands of one restaurant queued or running on this node at once; past it a command is
    /// refused at once with `CommandError::QueueFull` rather than left to wait out the timeout.
    pub command_queue: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_after: Duration::from_secs(300),
            call_timeout: Duration::from_secs(10),
            command_queue: 256,
        }
    }
}

/// When a caller refused for a full queue is told to try again: a queue drains in well under
/// a second unless the store is stuck, and then the retry meets the store's own error.
const QUEUE_FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Finds or spawns the actor of a restaurant on this node, and stops actors that sit idle. Its
/// actors are linked under its supervisor (`crate::supervisor`), which restarts one that fails.
#[derive(Clone)]
pub struct RestaurantRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    config: RegistryConfig,
    /// Each actor with its command queue's places.
    actors: Slots<Queued, Arc<Semaphore>>,
    /// Commands refused because their restaurant's queue was full.
    refused: AtomicU64,
    /// Actors that failed (panicked), counted by the supervisor.
    failed: AtomicU64,
    /// Failed actors the supervisor replaced.
    restarted: AtomicU64,
    /// The parent of every actor here.
    supervisor: ActorRef<()>,
}

/// The registry is gone: its supervisor stops, and its actors with it.
impl Drop for Inner {
    fn drop(&mut self) {
        self.supervisor.stop(None);
    }
}

impl Supervised for Inner {
    const KIND: &'static str = "restaurant";

    fn failed(&self, child: ActorId) -> Option<RestaurantId> {
        let restaurant = self.actors.forget_actor(child);
        // After the slot is cleared: whoever sees the count sees the slot empty or replaced.
        self.failed.fetch_add(1, Ordering::Relaxed);
        restaurant
    }

    fn killed(&self, child: ActorId) {
        self.actors.forget_actor(child);
    }

    fn clear(&self) {
        self.actors.take_all();
    }

    async fn restart(self: Arc<Self>, restaurant: RestaurantId) -> Result<(), CommandError> {
        let registry = RestaurantRegistry { inner: self };
        registry.actor_for(&restaurant).await?;
        registry.inner.restarted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl RestaurantRegistry {
    /// Must be called inside a Tokio runtime: it starts the supervisor and the idle sweeper,
    /// which end when `shutdown` says so or once the registry is dropped.
    pub fn new(deps: Deps, config: RegistryConfig, shutdown: Shutdown) -> Self {
        let inner = Arc::new_cyclic(|registry| Inner {
            deps,
            config,
            actors: Slots::new(),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            restarted: AtomicU64::new(0),
            supervisor: supervisor::start(registry.clone(), shutdown.clone()),
        });
        tokio::spawn(sweep_idle(
            Arc::downgrade(&inner),
            config.idle_after,
            shutdown,
        ));
        Self { inner }
    }

    pub fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    /// Sends a command to the restaurant's actor and waits (bounded) for its answer.
    ///
    /// A command that could not be delivered, because the actor stopped between lookup and
    /// send, never ran, so it is sent again to a fresh actor. One that timed out may have run,
    /// so it is reported, not retried. A command that finds the restaurant's queue full is
    /// refused at once (`CommandError::QueueFull`) and never runs.
    pub async fn call<T, F>(&self, restaurant: &RestaurantId, message: F) -> Result<T, CommandError>
    where
        T: Send + 'static,
        F: Fn(Reply<T>) -> RestaurantMsg,
    {
        let timeout = self.inner.config.call_timeout;
        let mut last_error = String::new();
        for _ in 0..3 {
            let (actor, queue) = self.actor_for(restaurant).await?;
            let Ok(place) = queue.try_acquire_owned() else {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                return Err(CommandError::QueueFull {
                    retry_after: QUEUE_FULL_RETRY_AFTER,
                });
            };
            let span = tracing::debug_span!("actor.call", actor = "restaurant");
            let queued = |reply| Queued::new(message(reply), place);
            match actor.call(queued, Some(timeout)).instrument(span).await {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => return Err(CommandError::Timeout(timeout)),
                // The actor failed with the command: its transaction was rolled back, and its
                // supervisor counts the failure and puts a fresh actor in its place.
                Ok(CallResult::SenderError) => {
                    return Err(CommandError::ActorUnavailable(
                        "the restaurant actor stopped while handling the command".into(),
                    ));
                }
                Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => {
                    self.inner.actors.forget(restaurant, actor.get_id());
                    last_error = "the restaurant actor had stopped".into();
                }
                Err(error) => return Err(CommandError::ActorUnavailable(error.to_string())),
            }
        }
        Err(CommandError::ActorUnavailable(last_error))
    }

    /// Commands queued or running in this node's restaurant actors.
    pub fn queued(&self) -> usize {
        let capacity = self.inner.config.command_queue;
        self.inner
            .actors
            .extras()
            .iter()
            .map(|queue| capacity.saturating_sub(queue.available_permits()))
            .sum()
    }

    /// Restaurant actors that failed (panicked) so far, with a command or without.
    pub fn failures(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// Failed restaurant actors that their supervisor replaced at once, so far.
    pub fn restarts(&self) -> u64 {
        self.inner.restarted.load(Ordering::Relaxed)
    }

    /// Whether an actor of the restaurant runs on this node (asking does not count as a use).
    pub fn has_actor(&self, restaurant: &RestaurantId) -> bool {
        self.inner.actors.contains(restaurant)
    }

    /// Commands refused so far because their restaurant's queue was full.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// How many restaurant actors run on this node.
    pub fn active(&self) -> usize {
        self.inner.actors.len()
    }

    /// Stops every actor after it has finished the commands already queued (and published
    /// their events), waiting at most `deadline` for all of them. One still busy then goes on
    /// until the node's `Shutdown` stops the supervisor, which kills it.
    pub async fn shutdown(&self, deadline: Duration) {
        let actors = self.inner.actors.take_all();
        for actor in &actors {
            let _ = actor.drain();
        }
        let until = tokio::time::Instant::now() + deadline;
        for actor in actors {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if actor.wait(Some(left)).await.is_err() {
                tracing::warn!("a restaurant actor did not finish its queue in time");
            }
        }
    }

    async fn actor_for(
        &self,
        restaurant: &RestaurantId,
    ) -> Result<(ActorRef<Queued>, Arc<Semaphore>), CommandError> {
        if let Some(found) = self.inner.actors.lookup(restaurant) {
            return Ok(found);
        }
        let (spawned, _) = Actor::spawn_linked(
            None,
            RestaurantActor,
            (restaurant.clone(), self.inner.deps.clone()),
            self.inner.supervisor.get_cell(),
        )
        .await
        .map_err(|e| CommandError::ActorUnavailable(e.to_string()))?;
        let queue = Arc::new(Semaphore::new(self.inner.config.command_queue));
        Ok(self
            .inner
            .actors
            .insert_or_existing(restaurant, spawned, queue))
    }
}

async fn sweep_idle(registry: Weak<Inner>, idle_after: Duration, mut shutdown: Shutdown) {
    let period = (idle_after / 2).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.stopped() => return,
        }
        let Some(inner) = registry.upgrade() else {
            return;
        };
        for actor in inner.actors.take_idle(idle_after) {
            // Finishes what is queued, then stops; later senders get a fresh actor.
            let _ = actor.drain();
        }
    }
}
