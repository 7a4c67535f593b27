//! The supervisors of the restaurant and channel actors: each registry starts one when it is
//! made, and every actor the registry spawns is linked under it, so that it has a parent.
//!
//! A supervisor acts on its children's failures (panics). A failure is counted, the child is
//! taken out of its registry (if it is still there), and restarted at once, the OTP way but one
//! restaurant at a time: a fresh actor for the same restaurant goes into the registry, ready for
//! the next command or join. Restarts are bounded by [`MAX_RESTARTS`] within [`RESTART_PERIOD`]
//! per restaurant (and kind); past that bound the supervisor leaves the restaurant without an
//! actor, and its next use spawns one as if it were the first. A normal stop (idle, drained, the
//! last subscriber gone) is never restarted; a child killed, or whose runtime shut down, is only
//! taken out of its registry.
//!
//! The supervisor stops with the node (its [`Shutdown`]) or when its registry is dropped, and
//! kills its children as it stops.

use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, ActorRuntime, SpawnErr, SupervisionEvent,
};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Duration;
// Tokio's clock, which tests can pause and move; the same as std's otherwise.
use tokio::time::Instant;

use crate::domain::RestaurantId;
use crate::shutdown::Shutdown;
use crate::CommandError;

/// Restarts of one restaurant's actor (of one kind) allowed within [`RESTART_PERIOD`]. A
/// failure past them is not restarted: the actor is forgotten and the next use spawns one.
pub const MAX_RESTARTS: usize = 3;

/// The window [`MAX_RESTARTS`] counts in.
pub const RESTART_PERIOD: Duration = Duration::from_secs(30);

/// How long a stopping supervisor waits for its killed children, and a stopping node for the
/// supervisor.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// What a supervisor needs from the registry whose actors it supervises.
pub(crate) trait Supervised: Send + Sync + Sized + 'static {
    /// The children's kind, for logs.
    const KIND: &'static str;

    /// `child` failed: counts the failure, and takes the child out of the registry if the
    /// registry still uses it. Returns its restaurant if it did: only such a child is restarted.
    fn failed(&self, child: ActorId) -> Option<RestaurantId>;

    /// `child` was killed, or its task cancelled (its runtime shut down): out of the registry,
    /// if it is still there.
    fn killed(&self, child: ActorId);

    /// The supervisor stopped and killed every child: the registry holds none any more.
    fn clear(&self);

    /// Spawns a fresh actor for `restaurant`, linked under the supervisor, and puts it in the
    /// registry, unless one was put there meanwhile.
    fn restart(
        self: Arc<Self>,
        restaurant: RestaurantId,
    ) -> impl Future<Output = Result<(), CommandError>> + Send;
}

/// Starts the supervisor of `registry`'s actors at once (without awaiting, so that registries
/// are made in sync code; it must run inside a Tokio runtime), and a task that stops it when
/// the node stops. The registry stops it when dropped.
pub(crate) fn start<R: Supervised>(registry: Weak<R>, shutdown: Shutdown) -> ActorRef<()> {
    let (supervisor, started) = ActorRuntime::spawn_instant(None, Supervisor::<R>::new(), registry)
        .expect("an actor without a name always spawns");
    tokio::spawn(stop_with_the_node(supervisor.clone(), started, shutdown));
    supervisor
}

/// Holds the node's `Shutdown` for the supervisor: returns when the supervisor has ended, and
/// when the node stops, stops it first (which kills its children).
async fn stop_with_the_node(
    supervisor: ActorRef<()>,
    started: JoinHandle<Result<JoinHandle<()>, SpawnErr>>,
    mut shutdown: Shutdown,
) {
    let ended = async move {
        if let Ok(Ok(running)) = started.await {
            let _ = running.await;
        }
    };
    tokio::select! {
        () = ended => {}
        () = shutdown.stopped() => {
            if supervisor.stop_and_wait(None, Some(2 * STOP_WAIT)).await.is_err() {
                supervisor.kill();
            }
        }
    }
}

/// A registry's supervisor. Its only messages are its children's supervision events.
pub(crate) struct Supervisor<R>(PhantomData<fn() -> R>);

impl<R> Supervisor<R> {
    fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct SupervisorState<R> {
    /// Weak: the registry's handles own it, and it stops the supervisor when dropped.
    registry: Weak<R>,
    intensity: Intensity,
}

impl<R: Supervised> Actor for Supervisor<R> {
    type Msg = ();
    type State = SupervisorState<R>;
    type Arguments = Weak<R>;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        registry: Weak<R>,
    ) -> Result<SupervisorState<R>, ActorProcessingErr> {
        Ok(SupervisorState {
            registry,
            intensity: Intensity::default(),
        })
    }

    // Never returns an error: that would stop the supervisor, and ractor would kill every child.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState<R>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(registry) = state.registry.upgrade() else {
            return Ok(());
        };
        let (child, error) = match event {
            SupervisionEvent::ActorFailed(child, error) => (child, error),
            // Killed or cancelled: ractor kept no state, as it ran no `post_stop`.
            SupervisionEvent::ActorTerminated(child, None, _) => {
                registry.killed(child.get_id());
                return Ok(());
            }
            // A child that stopped normally is out of its registry already: a channel takes
            // itself out before it stops, a restaurant actor is taken out before it is drained.
            _ => return Ok(()),
        };
        let Some(restaurant) = registry.failed(child.get_id()) else {
            // Its registry no longer used it: it was draining (idle, or the node stopping), or
            // a caller had already replaced it.
            tracing::warn!(kind = R::KIND, %error, "an actor failed; not restarted, as it was replaced or retiring");
            return Ok(());
        };
        let kind = R::KIND;
        if !state.intensity.allow(&restaurant, Instant::now()) {
            tracing::error!(
                kind,
                %restaurant,
                %error,
                "an actor failed again: restarts exhausted, the next use starts a fresh one"
            );
            return Ok(());
        }
        tracing::warn!(kind, %restaurant, %error, "an actor failed; restarting it");
        if let Err(error) = registry.restart(restaurant.clone()).await {
            tracing::warn!(kind, %restaurant, %error, "the restart failed; the next use retries");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<()>,
        state: &mut SupervisorState<R>,
    ) -> Result<(), ActorProcessingErr> {
        // Killed, not stopped: a restaurant actor may be stuck in the store past the node's
        // deadline, and the restaurant registry drained the others already.
        let children = myself.get_children();
        for child in &children {
            child.kill();
        }
        if let Some(registry) = state.registry.upgrade() {
            registry.clear();
        }
        let until = Instant::now() + STOP_WAIT;
        for child in children {
            let _ = child
                .wait(Some(until.saturating_duration_since(Instant::now())))
                .await;
        }
        Ok(())
    }
}

/// Restart intensity: when each restaurant's actor was restarted within the last
/// [`RESTART_PERIOD`].
#[derive(Debug, Default)]
struct Intensity {
    restarts: HashMap<RestaurantId, VecDeque<Instant>>,
}

impl Intensity {
    /// Records a restart of the restaurant's actor at `now`, unless it had [`MAX_RESTARTS`]
    /// within the [`RESTART_PERIOD`] before.
    fn allow(&mut self, restaurant: &RestaurantId, now: Instant) -> bool {
        self.restarts.retain(|_, at| {
            while at
                .front()
                .is_some_and(|first| now.saturating_duration_since(*first) >= RESTART_PERIOD)
            {
                at.pop_front();
            }
            !at.is_empty()
        });
        let at = self.restarts.entry(restaurant.clone()).or_default();
        if at.len() >= MAX_RESTARTS {
            return false;
        }
        at.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_bounded_per_restaurant_within_the_period() {
        let mut intensity = Intensity::default();
        let (first, other) = (RestaurantId::generate(), RestaurantId::generate());
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        for second in 0..MAX_RESTARTS as u64 {
            assert!(intensity.allow(&first, at(second)));
        }
        assert!(!intensity.allow(&first, at(10)), "past the bound");
        assert!(
            intensity.allow(&other, at(10)),
            "another restaurant has its own"
        );
        // The first restart leaves the window: one more is allowed, and then none again.
        assert!(intensity.allow(&first, at(30)));
        assert!(!intensity.allow(&first, at(30)));
        // A quiet period forgets the restaurant altogether.
        assert!(intensity.allow(&first, at(100)));
        assert_eq!(intensity.restarts.len(), 1, "{:?}", intensity.restarts);
    }
}
