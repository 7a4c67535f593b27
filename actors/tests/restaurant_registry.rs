//! The RestaurantRegistry around its actors, in paused time: the bounded command queue, call
//! timeouts, actors that fail or die between commands and their supervisor's restarts,
//! shutdown, and the idle sweeper's end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, let_pass, RestaurantFixture as Fixture};
use orderhub_actors::domain::{Order, PlaceOrderRequest, Principal, RestaurantId};
use orderhub_actors::faults::{panic_next, Target};
use orderhub_actors::ports::{Freshness, Lookup, RestaurantTx, Store};
use orderhub_actors::restaurant::{RegistryConfig, RestaurantMsg, RestaurantRegistry};
use orderhub_actors::supervisor::{MAX_RESTARTS, RESTART_PERIOD};
use orderhub_actors::CommandError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

impl Fixture {
    /// Takes the restaurant's write lock, as a command on another node would: this node's
    /// actor then waits in `begin` with its command, and the rest queue behind it.
    async fn hold_the_restaurant(&self) -> Box<dyn RestaurantTx> {
        self.store
            .begin(self.id(), Lookup::NOTHING)
            .await
            .expect("begin")
            .expect("the restaurant exists")
    }

    /// Places an order from a task of its own, so the test can go on while it waits.
    fn place_in_background(&self, key: &str) -> JoinHandle<Result<Order, CommandError>> {
        let registry = self.registry.clone();
        let restaurant = self.id().clone();
        let by = self.customer();
        let request = self.request(key, 1);
        tokio::spawn(async move { place(&registry, &by, &request, &restaurant).await })
    }
}

async fn place(
    registry: &RestaurantRegistry,
    by: &Principal,
    request: &PlaceOrderRequest,
    restaurant: &RestaurantId,
) -> Result<Order, CommandError> {
    registry
        .call(restaurant, |reply| RestaurantMsg::PlaceOrder {
            by: by.clone(),
            request: request.clone(),
            reply,
        })
        .await
}

async fn joined<T>(task: JoinHandle<T>) -> T {
    task.await.expect("the task ran to its end")
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_the_queue_drains_when_the_store_frees() {
    let f = Fixture::new(RegistryConfig {
        command_queue: 2,
        ..RegistryConfig::default()
    })
    .await;
    let held = f.hold_the_restaurant().await;
    let running = f.place_in_background("key-1");
    let waiting = f.place_in_background("key-2");
    eventually("both commands hold a place", || f.registry.queued() == 2).await;

    let started = Instant::now();
    let refused = f.place(f.request("key-3", 1)).await;
    assert!(
        matches!(
            refused,
            Err(CommandError::QueueFull { retry_after }) if retry_after == Duration::from_secs(1)
        ),
        "{refused:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "the refusal waited");
    assert_eq!(f.registry.refused(), 1);
    assert_eq!(f.registry.queued(), 2);

    drop(held);
    let mut numbers = [
        joined(running).await.expect("the first command").number,
        joined(waiting).await.expect("the queued command").number,
    ];
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(f.registry.queued(), 0, "a handled command kept its place");
    let next = f.place(f.request("key-3", 1)).await.expect("room again");
    assert_eq!(next.number, 3);
    assert_eq!(f.registry.refused(), 1);
}

#[tokio::test(start_paused = true)]
async fn each_command_starts_the_idle_time_again() {
    const IDLE_AFTER: Duration = Duration::from_secs(60);
    let f = Fixture::new(RegistryConfig {
        idle_after: IDLE_AFTER,
        ..RegistryConfig::default()
    })
    .await;
    f.place(f.request("key-1", 1)).await.expect("place");
    let_pass(Duration::from_secs(40)).await;
    f.place(f.request("key-2", 1)).await.expect("place again");

    // The sweeper looks every 30 s: idle since 40 s, the actor is idle long enough from 100 s,
    // and is found so at 120 s.
    let_pass(Duration::from_secs(80) - Duration::from_millis(1)).await;
    assert_eq!(f.registry.active(), 1, "stopped while in use");
    let_pass(Duration::from_millis(1)).await;
    eventually("the idle actor stops", || f.registry.active() == 0).await;
    // A normal stop is not a failure, and nothing restarts it.
    let_pass(Duration::from_secs(1)).await;
    assert_eq!(f.registry.active(), 0);
    assert_eq!((f.registry.failures(), f.registry.restarts()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_command_that_times_out_is_reported_and_may_still_run() {
    const CALL_TIMEOUT: Duration = Duration::from_secs(2);
    let f = Fixture::new(RegistryConfig {
        call_timeout: CALL_TIMEOUT,
        ..RegistryConfig::default()
    })
    .await;
    let held = f.hold_the_restaurant().await;

    let started = Instant::now();
    let timed_out = f.place(f.request("key-1", 1)).await;
    assert!(
        matches!(timed_out, Err(CommandError::Timeout(after)) if after == CALL_TIMEOUT),
        "{timed_out:?}"
    );
    assert_eq!(started.elapsed(), CALL_TIMEOUT);
    assert!(f.orders().await.is_empty());

    // The actor still has the command: it runs once the store lets it.
    drop(held);
    eventually("the timed-out command commits", || {
        f.store.last_seq(f.id()) == Some(1)
    })
    .await;
    // Which is why a client retries with the same idempotency key.
    let retried = f.place(f.request("key-1", 1)).await.expect("retry");
    assert_eq!(f.orders().await, [retried]);
    assert_eq!(f.published_seqs(), [1]);
}

/// Lets the other tasks run for a while without moving time: whatever they were about to do
/// is done.
async fn settle() {
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
}

fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, CommandError>) -> bool {
    matches!(result, Err(CommandError::ActorUnavailable(_)))
}

/// The actor fails in the middle of a command, after its writes and before commit: the command
/// is answered UNAVAILABLE, nothing of it is in the store, and the supervisor has put a fresh
/// actor in the registry before any next command, which that actor handles.
#[tokio::test(start_paused = true)]
async fn an_actor_that_fails_during_a_command_is_counted_and_replaced_at_once() {
    let f = Fixture::new(RegistryConfig::default()).await;
    // The actor's state holds the store: its count of holders tells how many actors live.
    let without_actor = Arc::strong_count(&f.store);
    panic_next(Target::Restaurant, f.id());
    let failed = f.place(f.request("key-1", 1)).await;
    assert!(is_unavailable(&failed), "{failed:?}");

    eventually("the supervisor replaces the actor", || {
        f.registry.restarts() == 1
    })
    .await;
    assert_eq!(f.registry.failures(), 1);
    assert!(
        f.registry.has_actor(f.id()),
        "no actor waits for the next command"
    );
    eventually("the failed actor is gone, its successor runs", || {
        Arc::strong_count(&f.store) == without_actor + 1
    })
    .await;
    assert!(
        f.orders().await.is_empty(),
        "half of the command was written"
    );
    assert!(f.event_seqs().await.is_empty());
    assert!(f.published_seqs().is_empty());

    // The same key again: the failed attempt left no trace, and no ticket was used.
    let order = f.place(f.request("key-1", 1)).await.expect("the new actor");
    assert_eq!(order.number, 1);
    assert_eq!(f.event_seqs().await, [1]);
    assert_eq!(f.registry.active(), 1);
    assert_eq!(Arc::strong_count(&f.store), without_actor + 1);
    assert_eq!((f.registry.failures(), f.registry.restarts()), (1, 1));
}

/// An actor that fails with nobody waiting for it (its caller timed out) is replaced too, and
/// the next command goes to its successor.
#[tokio::test(start_paused = true)]
async fn an_actor_that_dies_with_nobody_waiting_is_replaced_before_the_next_command() {
    let f = Fixture::new(RegistryConfig {
        call_timeout: Duration::from_secs(1),
        ..RegistryConfig::default()
    })
    .await;
    let held = f.hold_the_restaurant().await;
    let timed_out = f.place(f.request("key-1", 1)).await;
    assert!(
        matches!(timed_out, Err(CommandError::Timeout(_))),
        "{timed_out:?}"
    );

    // The actor fails on its own, when the store lets its command run.
    f.clock.trip();
    drop(held);
    eventually("the supervisor replaces the actor", || {
        f.registry.restarts() == 1
    })
    .await;
    assert_eq!(
        f.registry.failures(),
        1,
        "a failure with no caller is counted"
    );
    assert_eq!(f.registry.active(), 1);

    let order = f
        .place(f.request("key-2", 1))
        .await
        .expect("handled by the successor");
    assert_eq!(order.number, 1, "the failed command was not rolled back");
    assert_eq!(f.registry.active(), 1);
    assert_eq!(f.event_seqs().await, [1]);
}

/// Restarts are bounded as OTP bounds them: at most `MAX_RESTARTS` of one restaurant's actor
/// within `RESTART_PERIOD`. The failure past them leaves the restaurant without an actor, and
/// its next command spawns one, as a first command does; once the period has passed, a failure
/// is restarted again.
#[tokio::test(start_paused = true)]
async fn restarts_stop_past_the_intensity_bound_and_resume_after_the_period() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let started = Instant::now();
    let max = MAX_RESTARTS as u64;
    for restarted in 1..=max {
        f.clock.trip();
        let failed = f.place(f.request(&format!("key-{restarted}"), 1)).await;
        assert!(is_unavailable(&failed), "{failed:?}");
        eventually("the supervisor restarts the actor", || {
            f.registry.restarts() == restarted
        })
        .await;
        assert!(f.registry.has_actor(f.id()));
    }

    f.clock.trip();
    let failed = f.place(f.request("key-past-the-bound", 1)).await;
    assert!(is_unavailable(&failed), "{failed:?}");
    eventually("the failure is counted", || {
        f.registry.failures() == max + 1
    })
    .await;
    settle().await;
    assert!(!f.registry.has_actor(f.id()), "restarted past the bound");
    assert_eq!(f.registry.restarts(), max);
    assert_eq!(f.registry.active(), 0);

    let order = f
        .place(f.request("key-next", 1))
        .await
        .expect("spawned on the way, as for a first command");
    assert_eq!(order.number, 1, "a failed command left a trace");
    assert_eq!(f.registry.active(), 1);
    assert!(started.elapsed() < RESTART_PERIOD);

    let_pass(RESTART_PERIOD).await;
    f.clock.trip();
    let failed = f.place(f.request("key-later", 1)).await;
    assert!(is_unavailable(&failed), "{failed:?}");
    eventually("restarted again after the period", || {
        f.registry.restarts() == max + 1
    })
    .await;
    assert!(f.registry.has_actor(f.id()));
    assert_eq!(f.registry.failures(), max + 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_queued_commands_finish_and_stops_every_actor() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let without_actor = Arc::strong_count(&f.store);
    let held = f.hold_the_restaurant().await;
    let running = f.place_in_background("key-1");
    let waiting = f.place_in_background("key-2");
    eventually("both commands are queued", || f.registry.queued() == 2).await;

    let registry = f.registry.clone();
    let shutdown = tokio::spawn(async move { registry.shutdown(Duration::from_secs(5)).await });
    eventually("the actor is taken out", || f.registry.active() == 0).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the queue"
    );

    drop(held);
    let started = Instant::now();
    joined(shutdown).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    joined(running).await.expect("the first command");
    joined(waiting).await.expect("the queued command");
    assert_eq!(f.event_seqs().await, [1, 2]);
    assert_eq!(f.published_seqs(), [1, 2]);
    assert_eq!(Arc::strong_count(&f.store), without_actor);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_no_longer_than_its_deadline() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let held = f.hold_the_restaurant().await;
    let stuck = f.place_in_background("key-1");
    eventually("the command is queued", || f.registry.queued() == 1).await;

    let started = Instant::now();
    f.registry.shutdown(Duration::from_secs(3)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(f.registry.active(), 0);

    // The stuck command still ends once the store lets it.
    drop(held);
    let order = joined(stuck).await.expect("the stuck command");
    assert_eq!(f.orders().await, [order]);
}

/// When the node finishes, the supervisor stops, and kills the actor still busy past the
/// shutdown's deadline: its caller hears UNAVAILABLE, its transaction is rolled back, and no
/// task is left.
#[tokio::test(start_paused = true)]
async fn the_node_finishing_kills_the_actors_still_busy() {
    let mut f = Fixture::new(RegistryConfig::default()).await;
    let without_actor = Arc::strong_count(&f.store);
    let held = f.hold_the_restaurant().await;
    let stuck = f.place_in_background("key-1");
    eventually("the command is queued", || f.registry.queued() == 1).await;
    f.registry.shutdown(Duration::from_secs(1)).await;

    let signal = std::mem::take(&mut f.shutdown);
    let started = Instant::now();
    assert!(
        signal.finish(started + Duration::from_secs(5)).await,
        "a task outlived the node"
    );
    let killed = joined(stuck).await;
    assert!(is_unavailable(&killed), "{killed:?}");
    assert_eq!(
        Arc::strong_count(&f.store),
        without_actor,
        "an actor outlived the node"
    );
    drop(held);
    settle().await;
    assert!(f.orders().await.is_empty(), "the killed command ran");
    assert_eq!(f.store.last_seq(f.id()), Some(0));
}

#[tokio::test(start_paused = true)]
async fn the_idle_sweeper_ends_when_the_node_finishes() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    assert!(
        f.shutdown.finish(deadline).await,
        "the sweeper kept running"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_idle_sweeper_of_a_dropped_registry_ends_by_itself() {
    const IDLE_AFTER: Duration = Duration::from_secs(60);
    let f = Fixture::new(RegistryConfig {
        idle_after: IDLE_AFTER,
        ..RegistryConfig::default()
    })
    .await;
    let Fixture {
        registry, shutdown, ..
    } = f;
    drop(registry);
    // The sweeper looks every idle_after / 2 and finds no registry.
    let_pass(IDLE_AFTER / 2 + Duration::from_millis(1)).await;
    // A deadline already reached: true only if no task is left to wait for.
    assert!(
        shutdown.finish(Instant::now()).await,
        "the sweeper outlived its registry"
    );
}

#[tokio::test(start_paused = true)]
async fn the_ports_the_registry_lends_are_those_its_actors_use() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let order = f.place(f.request("key-1", 1)).await.expect("place");
    let deps = f.registry.deps();
    assert_eq!(
        deps.store
            .order(&order.id, Freshness::Recent)
            .await
            .expect("read the order"),
        Some(order.clone())
    );
    assert_eq!(deps.clock.now(), order.placed_at);
}
