//! The small parts of the ports that adapters rely on: which history covers a resume point,
//! which events a causal read may ask for,
//! a listener's guard, and the defaults a bus and a clock get.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orderhub_actors::domain::Timestamp;
use orderhub_actors::ports::{Bus, Clock, History, Listening, SystemClock};
use orderhub_actors::testing::MemoryBus;

#[test]
fn a_history_covers_a_resume_point_only_if_nothing_after_it_was_pruned() {
    let retained = |first, last_seq| History {
        first_retained: Some(first),
        last_seq,
    };
    // Events 5..=10 retained: resuming after 4 (next is 5) works, after 3 would miss 4.
    assert!(retained(5, 10).covers(4));
    assert!(retained(5, 10).covers(7));
    assert!(!retained(5, 10).covers(3));
    assert!(!retained(5, 10).covers(0));
    // Caught up: nothing to replay, whatever was pruned.
    assert!(retained(5, 10).covers(10));
    let pruned_all = History {
        first_retained: None,
        last_seq: 10,
    };
    assert!(pruned_all.covers(10));
    assert!(!pruned_all.covers(9));
    let fresh = History {
        first_retained: None,
        last_seq: 0,
    };
    assert!(fresh.covers(0));
}

#[test]
fn a_causal_read_may_ask_for_any_event_up_to_the_newest() {
    let history = History::up_to(10);
    assert!(history.has_had(0), "before the first event");
    assert!(history.has_had(10));
    assert!(!history.has_had(11));
    assert!(!history.has_had(-1));
    assert!(History::up_to(0).has_had(0));
    assert!(!History::up_to(0).has_had(1));
}

#[test]
fn a_history_covers_no_resume_point_past_its_newest_event() {
    // Seen up to 11 of a history that ends at 10 (a store restored from a backup): events 11
    // and on would be ignored as already seen.
    let retained = History {
        first_retained: Some(5),
        last_seq: 10,
    };
    assert!(!retained.covers(11));
    assert!(!retained.covers(1000));
    let pruned_all = History {
        first_retained: None,
        last_seq: 10,
    };
    assert!(!pruned_all.covers(11));
    let fresh = History {
        first_retained: None,
        last_seq: 0,
    };
    assert!(!fresh.covers(1));
}

#[test]
fn a_listening_guard_stops_once_when_dropped_and_not_before() {
    let stops = Arc::new(AtomicUsize::new(0));
    let guard = {
        let stops = stops.clone();
        Listening::new(move || {
            stops.fetch_add(1, Ordering::SeqCst);
        })
    };
    assert_eq!(stops.load(Ordering::SeqCst), 0);
    drop(guard);
    assert_eq!(stops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_bus_counts_as_connected_unless_it_says_otherwise() {
    // MemoryBus keeps the trait's default.
    assert!(MemoryBus::new().connected());
}

#[test]
fn the_system_clock_reads_the_system_time() {
    let before = Timestamp::now();
    let now = SystemClock.now();
    let after = Timestamp::now();
    assert!(
        before <= now && now <= after,
        "{before:?} {now:?} {after:?}"
    );
}
