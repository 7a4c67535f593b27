//! The ChannelActor and its subscriptions against in-memory ports, in paused time: the hold
//! for a gap, the catch-ups from the store, the slow-consumer cut, and the channel's lifetime.

mod common;

use std::time::Duration;

use common::{arrives_within, eventually, next_seq, Channels};
use orderhub_actors::channel::{ChannelConfig, EndReason};
use orderhub_actors::ports::EventSink;
use orderhub_actors::testing::FailOn;
use orderhub_actors::StoreError;
use tokio::time::Instant;

const HOLD_GAP: Duration = Duration::from_millis(100);
const CATCH_UP_EVERY: Duration = Duration::from_secs(2);
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
