//! The ChannelActor and its subscriptions against in-memory ports, in paused time: the hold
//! for a gap, the catch-ups from the store, the slow-consumer cut, the channel's lifetime, and
//! its supervisor's restart after a failure.

mod common;

use std::time::Duration;

use common::{arrives_within, emit, eventually, let_pass, next_seq, seed, Channels};
use orderhub_actors::channel::{ChannelConfig, EndReason, Filter, Subscription};
use orderhub_actors::faults::{panic_next, Target};
use orderhub_actors::ports::EventSink;
use orderhub_actors::testing::FailOn;
use orderhub_actors::StoreError;
use tokio::time::Instant;

const HOLD_GAP: Duration = Duration::from_millis(100);
const CATCH_UP_EVERY: Duration = Duration::from_secs(2);
const LINGER: Duration = Duration::from_secs(5);
/// Under paused time a delivery that needs no timer happens without time passing: this is
/// "at once", and far below every timer of the channel.
const AT_ONCE: Duration = Duration::from_millis(1);

type Fixture = Channels;

fn config() -> ChannelConfig {
    ChannelConfig {
        buffer: 16,
        hold_gap: HOLD_GAP,
        catch_up_every: CATCH_UP_EVERY,
        call_timeout: Duration::from_secs(1),
        inflow: 1024,
        linger: LINGER,
    }
}

/// A catch-up period no test reaches, so that only the hold for a gap can read the store.
fn without_periodic_catch_up() -> ChannelConfig {
    ChannelConfig {
        catch_up_every: Duration::from_secs(3600),
        ..config()
    }
}

#[tokio::test(start_paused = true)]
async fn an_event_after_a_gap_waits_hold_gap_then_the_gap_is_read_from_the_store() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let mut sub = f.join().await;
    assert_eq!(sub.live_after, 0);
    assert_eq!(f.emit().await, 1);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 1);

    assert_eq!(f.emit_lost().await, 2);
    assert_eq!(f.emit().await, 3);
    let gap_seen = Instant::now();

    // Event 3 is held, not delivered ahead of 2, and the store is left alone meanwhile.
    assert_eq!(arrives_within(&mut sub, HOLD_GAP - AT_ONCE).await, None);
    assert_eq!(
        f.store.event_reads(),
        0,
        "the store was read before the hold expired"
    );

    assert_eq!(next_seq(&mut sub, HOLD_GAP).await, 2);
    assert!(gap_seen.elapsed() >= HOLD_GAP, "the gap was filled early");
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 3);
    assert!(
        f.store.event_reads() >= 1,
        "the gap was not read from the store"
    );
    assert!(f.channels.events_caught_up() >= 1);
    // Neither the store's copy of 3 nor the held one arrives a second time.
    assert_eq!(arrives_within(&mut sub, 10 * HOLD_GAP).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_gap_the_bus_fills_within_hold_gap_needs_no_store_read() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let mut sub = f.join().await;
    assert_eq!(f.emit().await, 1);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 1);

    f.emit_lost().await;
    f.emit().await;
    let gap_seen = Instant::now();
    assert_eq!(arrives_within(&mut sub, HOLD_GAP / 2).await, None);

    // Event 2 turns up late on the bus, before the hold expires.
    let late = f.bus.take_lost();
    assert_eq!(late.len(), 1);
    f.bus.publish(&late[0]);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 2);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 3);
    assert!(gap_seen.elapsed() < HOLD_GAP);
    assert_eq!(
        f.store.event_reads(),
        0,
        "the store was read for a filled gap"
    );
    assert_eq!(f.channels.events_caught_up(), 0);

    // When the hold expires nothing is delivered twice, and nothing came from the store.
    assert_eq!(arrives_within(&mut sub, 2 * HOLD_GAP).await, None);
    assert_eq!(f.channels.events_caught_up(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lost_publication_arrives_on_the_periodic_catch_up_and_not_before() {
    let f = Fixture::new(config()).await;
    let mut sub = f.join().await;
    // The channel started during the join; its catch-up period counts from then.
    let started = Instant::now();
    assert_eq!(f.emit().await, 1);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 1);

    // Nothing follows the lost event, so there is no gap to notice: only the catch-up helps.
    assert_eq!(f.emit_lost().await, 2);
    let before = tokio::time::timeout_at(
        started + CATCH_UP_EVERY - Duration::from_millis(10),
        sub.events.recv(),
    )
    .await;
    assert!(before.is_err(), "delivered before the periodic catch-up");
    assert_eq!(f.store.event_reads(), 0);

    assert_eq!(
        next_seq(&mut sub, Duration::from_millis(20)).await,
        2,
        "not delivered by the periodic catch-up"
    );
    assert!(started.elapsed() >= CATCH_UP_EVERY);
    assert_eq!(f.channels.events_caught_up(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_catch_up_that_found_the_store_down_is_retried_on_the_next_period() {
    let f = Fixture::new(config()).await;
    let mut sub = f.join().await;
    assert_eq!(f.emit_lost().await, 1);
    f.store
        .fail(FailOn::Everything, StoreError::Unavailable("test".into()));

    assert_eq!(
        arrives_within(&mut sub, CATCH_UP_EVERY + AT_ONCE).await,
        None
    );
    assert_eq!(f.store.event_reads(), 1, "the first catch-up did not try");

    f.store.heal();
    assert_eq!(next_seq(&mut sub, CATCH_UP_EVERY).await, 1);
    assert_eq!(f.store.event_reads(), 2);
    assert_eq!(
        f.channels.subscribers_alive(),
        1,
        "the subscription suffered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resync_from_the_bus_catches_up_at_once() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let mut sub = f.join().await;
    assert_eq!(f.emit_lost().await, 1);
    assert_eq!(f.emit_lost().await, 2);

    f.bus.resync(f.seeded.id());
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 1);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 2);
    assert_eq!(f.channels.events_caught_up(), 2);
}

/// The bus hands a channel ten events faster than it runs (here: before it runs at all). Its
/// mailbox takes `inflow` of them; the rest are dropped and one catch-up reads them from the
/// store, so the subscriber still gets all ten, in order, once each.
#[tokio::test(start_paused = true)]
async fn a_full_inflow_drops_bus_events_and_reads_them_from_the_store() {
    let f = Fixture::new(ChannelConfig {
        inflow: 2,
        ..without_periodic_catch_up()
    })
    .await;
    let mut sub = f.join().await;
    f.bus.lose_next(10);
    for _ in 0..10 {
        f.emit().await;
    }
    // Published again in one go, without yielding: the channel cannot take any meanwhile.
    for event in f.bus.take_lost() {
        f.bus.publish(&event);
    }
    assert_eq!(f.channels.inflow_queued(), 2);
    assert_eq!(f.channels.inflow_refused(), 8);
    for seq in 1..=10 {
        assert_eq!(next_seq(&mut sub, AT_ONCE).await, seq);
    }
    assert_eq!(
        arrives_within(&mut sub, CATCH_UP_EVERY).await,
        None,
        "no duplicate"
    );
    assert_eq!(f.channels.inflow_queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_cuts_that_subscription_only() {
    let f = Fixture::new(ChannelConfig {
        buffer: 2,
        ..config()
    })
    .await;
    let mut slow = f.join().await;
    let mut keeping_up = f.join().await;
    assert_eq!(f.channels.subscribers_alive(), 2);

    for seq in 1..=6 {
        assert_eq!(f.emit().await, seq);
        assert_eq!(next_seq(&mut keeping_up, AT_ONCE).await, seq);
        if seq == 3 {
            // The third event found the slow buffer full.
            eventually("the slow subscription is cut", || slow.ended().is_some()).await;
        }
    }

    assert_eq!(slow.ended(), Some(EndReason::SlowConsumer));
    assert_eq!(keeping_up.ended(), None);
    eventually("the slow subscription's actor is gone", || {
        f.channels.subscribers_alive() == 1
    })
    .await;
    assert_eq!(
        f.channels.active(),
        1,
        "the channel stopped with the slow subscriber"
    );
    assert_eq!(f.channels.failed_subscribers(), 0, "a cut is not a failure");

    // The slow buffer holds what fit before the cut, then ends: nothing was fed after it.
    let mut buffered = Vec::new();
    loop {
        match tokio::time::timeout(AT_ONCE, slow.events.recv()).await {
            Ok(Some(event)) => buffered.push(event.seq),
            Ok(None) => break,
            Err(_) => panic!("the cut subscription's buffer is still open"),
        }
    }
    assert_eq!(buffered, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_channel_outlives_a_leaving_subscriber_and_stops_with_the_last() {
    let f = Fixture::new(config()).await;
    let leaving = f.join().await;
    let mut staying = f.join().await;
    assert_eq!(f.channels.active(), 1, "two joins started two channels");
    assert_eq!(f.bus.listeners(f.seeded.id()), 1);

    drop(leaving);
    eventually("the leaving subscription's actor stops", || {
        f.channels.subscribers_alive() == 1
    })
    .await;
    assert_eq!(
        f.channels.active(),
        1,
        "the channel stopped while one remained"
    );
    assert_eq!(f.bus.listeners(f.seeded.id()), 1);
    assert_eq!(f.emit().await, 1);
    assert_eq!(next_seq(&mut staying, AT_ONCE).await, 1);

    drop(staying);
    eventually("the channel stops and stops listening", || {
        f.channels.active() == 0 && f.bus.listeners(f.seeded.id()) == 0
    })
    .await;
    assert_eq!(f.channels.subscribers_alive(), 0);

    // A later join gets a fresh channel that starts from the store's high-water mark.
    let mut again = f.join().await;
    assert_eq!(again.live_after, 1);
    assert_eq!(f.emit().await, 2);
    assert_eq!(next_seq(&mut again, AT_ONCE).await, 2);
}

impl Fixture {
    /// Makes the restaurant's channel fail on the next event, emits one, and waits until
    /// `sub`, a subscription to it, has ended; returns the event's seq.
    async fn fail_the_channel(&self, sub: &Subscription) -> i64 {
        panic_next(Target::Channel, self.seeded.id());
        let seq = self.emit().await;
        eventually("the subscription ends with its channel", || {
            sub.ended().is_some()
        })
        .await;
        seq
    }
}

/// The channel fails on an event: ractor kills its subscriptions, each ending `Interrupted`
/// with what it had (its client resumes with `after`), and the supervisor starts a fresh
/// channel at once, which listens to the bus and has read the store's high-water mark before
/// anyone joins it. Nobody does: it stops once `linger` has passed, and is not restarted.
#[tokio::test(start_paused = true)]
async fn a_failed_channel_is_restarted_at_once_and_lingers_for_its_subscribers() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let mut sub = f.join().await;
    assert_eq!(f.emit().await, 1);
    assert_eq!(next_seq(&mut sub, AT_ONCE).await, 1);

    assert_eq!(f.fail_the_channel(&sub).await, 2);
    assert_eq!(sub.ended(), Some(EndReason::Interrupted));
    assert!(sub.events.recv().await.is_none(), "the buffer stays open");
    eventually("the supervisor restarts the channel", || {
        f.channels.restarts() == 1
    })
    .await;
    let restarted = Instant::now();
    assert_eq!(f.channels.failed_channels(), 1);
    assert!(f.channels.has_channel(f.seeded.id()));
    assert_eq!(f.channels.active(), 1);
    assert_eq!(
        f.store.history_reads(),
        2,
        "the new channel has no high-water mark"
    );
    eventually("only the new channel listens", || {
        f.bus.listeners(f.seeded.id()) == 1 && f.channels.subscribers_alive() == 0
    })
    .await;
    assert_eq!(
        f.channels.failed_subscribers(),
        0,
        "a killed subscription is no failure"
    );

    let_pass(LINGER - AT_ONCE).await;
    assert!(
        f.channels.has_channel(f.seeded.id()),
        "stopped before its linger"
    );
    let_pass(2 * AT_ONCE).await;
    eventually("the unwatched channel stops and stops listening", || {
        f.channels.active() == 0 && f.bus.listeners(f.seeded.id()) == 0
    })
    .await;
    assert!(restarted.elapsed() < LINGER + 2 * AT_ONCE);
    settle().await;
    assert_eq!(
        f.channels.active(),
        0,
        "the channel came back after lingering out"
    );
    assert_eq!(
        (f.channels.restarts(), f.channels.failed_channels()),
        (1, 1)
    );
}

/// A subscriber that resubscribes once the channel was restarted joins that channel: no other
/// starts, and the events after the failure arrive live. Once joined, the channel outlives its
/// linger.
#[tokio::test(start_paused = true)]
async fn a_join_after_a_failure_reaches_the_restarted_channel() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let sub = f.join().await;
    assert_eq!(f.fail_the_channel(&sub).await, 1);
    eventually("the supervisor restarts the channel", || {
        f.channels.restarts() == 1
    })
    .await;
    let history_reads = f.store.history_reads();

    let mut again = f.join().await;
    assert_eq!(
        again.live_after, 1,
        "resumes after the event the channel failed on"
    );
    assert_eq!(
        f.store.history_reads(),
        history_reads,
        "the join started a channel"
    );
    assert_eq!(f.channels.active(), 1);
    assert_eq!(f.emit().await, 2);
    assert_eq!(next_seq(&mut again, AT_ONCE).await, 2);

    let_pass(2 * LINGER).await;
    assert_eq!(f.emit().await, 3);
    assert_eq!(next_seq(&mut again, AT_ONCE).await, 3);
    assert_eq!(f.channels.active(), 1);
    assert_eq!(f.channels.restarts(), 1);
}

/// A join that comes the moment the subscription ended, before the supervisor may have acted,
/// and the supervisor's restart end with one channel between them, whichever goes first (if
/// the join started it, the supervisor has nothing to restart).
#[tokio::test(start_paused = true)]
async fn a_join_racing_with_the_restart_finds_the_one_new_channel() {
    let f = Fixture::new(without_periodic_catch_up()).await;
    let sub = f.join().await;
    let history_reads = f.store.history_reads();
    assert_eq!(f.fail_the_channel(&sub).await, 1);

    let mut again = f.join().await;
    assert_eq!(again.live_after, 1);
    eventually("the supervisor hears of the failure", || {
        f.channels.failed_channels() == 1
    })
    .await;
    settle().await;
    assert!(f.channels.restarts() <= 1);
    assert_eq!(
        f.store.history_reads(),
        history_reads + 1,
        "two channels started after the failure"
    );
    assert_eq!(f.channels.active(), 1);
    assert_eq!(f.bus.listeners(f.seeded.id()), 1);
    assert_eq!(f.emit().await, 2);
    assert_eq!(next_seq(&mut again, AT_ONCE).await, 2);
}

/// When the node finishes, the supervisor stops and kills every channel, a restarted one still
/// lingering included: subscriptions end `Interrupted`, nothing listens to the bus, the registry
/// holds no channel, and no task is left.
#[tokio::test(start_paused = true)]
async fn the_node_finishing_stops_every_channel() {
    let mut f = Fixture::new(config()).await;
    let watched = f.join().await;
    let other = seed(&f.store).await;
    let failing = f
        .channels
        .join(other.id(), Filter::All, None)
        .await
        .expect("join the other channel");
    panic_next(Target::Channel, other.id());
    emit(&f.store, &f.bus, &other).await;
    eventually("the other channel is restarted", || {
        f.channels.restarts() == 1 && failing.ended().is_some()
    })
    .await;
    assert_eq!(f.channels.active(), 2);

    let signal = std::mem::take(&mut f.shutdown);
    let started = Instant::now();
    assert!(
        signal.finish(started + Duration::from_secs(5)).await,
        "a task outlived the node"
    );
    assert!(started.elapsed() < LINGER, "waited for the linger");
    eventually("the watched subscription ends", || {
        watched.ended().is_some()
    })
    .await;
    assert_eq!(watched.ended(), Some(EndReason::Interrupted));
    assert_eq!(f.channels.active(), 0);
    eventually("nothing listens to the bus", || {
        f.bus.listeners(f.seeded.id()) == 0 && f.bus.listeners(other.id()) == 0
    })
    .await;
    assert_eq!(f.channels.subscribers_alive(), 0);
}

/// A channel runs on the runtime of whoever joined first (the node's WebSocket runtime). When
/// that runtime shuts down, the channel's task is dropped without a failure: the supervisor
/// takes it out of the registry and does not restart it.
#[tokio::test(start_paused = true)]
async fn a_channel_whose_runtime_shuts_down_leaves_the_registry() {
    let f = Fixture::new(config()).await;
    let (channels, restaurant) = (f.channels.clone(), f.seeded.id().clone());
    let subscription = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let joined = runtime.block_on(channels.join(&restaurant, Filter::All, None));
        drop(runtime);
        joined.expect("join the channel")
    })
    .join()
    .expect("the other runtime's thread");
    eventually("the channel leaves the registry", || {
        f.channels.active() == 0
    })
    .await;
    assert_eq!(subscription.ended(), Some(EndReason::Interrupted));
    settle().await;
    assert_eq!(f.channels.active(), 0, "restarted");
    assert_eq!(
        (f.channels.failed_channels(), f.channels.restarts()),
        (0, 0)
    );
}

/// Lets the other tasks run for a while without moving time.
async fn settle() {
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
}
