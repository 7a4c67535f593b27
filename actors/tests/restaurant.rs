//! The RestaurantRegistry and its RestaurantActors against in-memory ports, in paused time:
//! idempotent orders, gap-free seqs published after commit, versions, store failures and the
//! fail-fast pause after one, idle stops.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, let_pass, seqs, RestaurantFixture as Fixture, STORE_RETRY_AFTER};
use orderhub_actors::domain::{DomainError, Order, OrderStatus};
use orderhub_actors::ports::{Bus, BusSignal};
use orderhub_actors::restaurant::RegistryConfig;
use orderhub_actors::testing::FailOn;
use orderhub_actors::{CommandError, StoreError};

const DAY: Duration = Duration::from_secs(86_400);

/// An event's seq, and the restaurant's committed last seq when the event was published.
type Published = (i64, Option<i64>);

fn is_conflict(result: &Result<Order, CommandError>) -> bool {
    matches!(result, Err(CommandError::Domain(DomainError::Conflict(_))))
}

fn is_unavailable<T>(result: &Result<T, CommandError>) -> bool {
    matches!(result, Err(CommandError::Store(StoreError::Unavailable(_))))
}

#[tokio::test(start_paused = true)]
async fn a_retried_order_answers_the_first_one_and_writes_nothing() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let first = f.place(f.request("key-1", 2)).await.expect("place");
    let retry = f.place(f.request("key-1", 2)).await.expect("retry");

    assert_eq!(retry, first);
    assert_eq!(f.orders().await.len(), 1);
    assert_eq!(f.event_seqs().await, [1]);
    assert_eq!(f.published_seqs(), [1], "the retry published again");

    // The retry did not take a ticket number either.
    let next = f.place(f.request("key-2", 1)).await.expect("another order");
    assert_eq!((first.number, next.number), (1, 2));
    assert_eq!(f.event_seqs().await, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_key_reused_with_other_content_is_a_conflict() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let first = f.place(f.request("key-1", 1)).await.expect("place");

    let other_quantity = f.place(f.request("key-1", 3)).await;
    assert!(is_conflict(&other_quantity), "{other_quantity:?}");
    let mut other_note = f.request("key-1", 1);
    other_note.note = Some("no onions".into());
    let other_note = f.place(other_note).await;
    assert!(is_conflict(&other_note), "{other_note:?}");

    assert_eq!(f.orders().await, [first]);
    assert_eq!(f.event_seqs().await, [1]);
    assert_eq!(f.published_seqs(), [1]);
}

#[tokio::test(start_paused = true)]
async fn each_change_gets_the_next_seq_and_version_and_is_published_after_commit() {
    let f = Fixture::new(RegistryConfig::default()).await;
    // At each publication, what the store has committed: a published event must be in it.
    let seen: Arc<Mutex<Vec<Published>>> = Arc::default();
    let _listening = {
        let (seen, store, restaurant) = (seen.clone(), f.store.clone(), f.seeded.id().clone());
        f.bus.listen(
            f.seeded.id(),
            Arc::new(move |signal| {
                if let BusSignal::Event(event) = signal {
                    let committed = store.last_seq(&restaurant);
                    seen.lock()
                        .expect("the listener's log")
                        .push((event.seq, committed));
                }
            }),
        )
    };

    let placed = f.place(f.request("key-1", 1)).await.expect("place");
    let accepted = f
        .advance(&placed.id, OrderStatus::Accepted, None)
        .await
        .expect("accept");
    let preparing = f
        .advance(&placed.id, OrderStatus::Preparing, Some(2))
        .await
        .expect("prepare");

    assert_eq!(
        [placed.version, accepted.version, preparing.version],
        [1, 2, 3]
    );
    assert_eq!(f.event_seqs().await, [1, 2, 3]);
    let published = f.bus.published();
    assert_eq!(seqs(&published), [1, 2, 3]);
    let versions: Vec<i64> = published
        .iter()
        .filter_map(|e| e.kind.order().map(|o| o.version))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        *seen.lock().expect("the listener's log"),
        [(1, Some(1)), (2, Some(2)), (3, Some(3))],
        "an event was published before its commit"
    );
    let stored = f.orders().await;
    assert_eq!(
        (stored[0].status, stored[0].version),
        (OrderStatus::Preparing, 3)
    );

    // A stale expected version changes nothing.
    let stale = f.advance(&placed.id, OrderStatus::Ready, Some(2)).await;
    assert!(is_conflict(&stale), "{stale:?}");
    assert_eq!(f.event_seqs().await, [1, 2, 3]);
    assert_eq!(f.orders().await[0].version, 3);
}

#[tokio::test(start_paused = true)]
async fn ticket_numbers_start_again_each_business_day() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let a = f.place(f.request("a", 1)).await.expect("place a");
    let b = f.place(f.request("b", 1)).await.expect("place b");
    f.clock.manual.advance(DAY);
    let c = f.place(f.request("c", 1)).await.expect("place c");

    assert_eq!([a.number, b.number, c.number], [1, 2, 1]);
    assert_eq!(f.event_seqs().await, [1, 2, 3], "seq must not restart");
}

#[tokio::test(start_paused = true)]
async fn a_store_lost_at_commit_is_unavailable_and_leaves_nothing_half_written() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let first = f.place(f.request("key-1", 1)).await.expect("place");
    f.store
        .fail(FailOn::Commit, StoreError::Unavailable("test".into()));

    let failed = f.place(f.request("key-2", 1)).await;
    assert!(
        matches!(failed, Err(CommandError::Store(StoreError::Unavailable(_)))),
        "{failed:?}"
    );
    assert_eq!(f.orders().await, std::slice::from_ref(&first));
    assert_eq!(f.event_seqs().await, [1]);
    assert_eq!(f.published_seqs(), [1], "a rolled-back event was published");
    assert_eq!(f.registry.active(), 1, "the actor died of a store failure");

    // Once the store is back the same request goes through, with the seq and ticket the failed
    // attempt did not use up; not before the actor's fail-fast pause is over.
    f.store.heal();
    let paused = f.place(f.request("key-2", 1)).await;
    assert!(
        matches!(paused, Err(CommandError::Store(StoreError::Unavailable(_)))),
        "{paused:?}"
    );
    let_pass(STORE_RETRY_AFTER).await;
    let second = f
        .place(f.request("key-2", 1))
        .await
        .expect("the store is back");
    assert_eq!(second.number, 2);
    assert_eq!(f.event_seqs().await, [1, 2]);
    assert_eq!(f.published_seqs(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_is_down_refuses_before_any_write() {
    let f = Fixture::new(RegistryConfig::default()).await;
    f.store
        .fail(FailOn::Everything, StoreError::Unavailable("test".into()));
    let failed = f.place(f.request("key-1", 1)).await;
    assert!(
        matches!(failed, Err(CommandError::Store(StoreError::Unavailable(_)))),
        "{failed:?}"
    );
    f.store.heal();
    assert!(f.orders().await.is_empty());
    assert!(f.event_seqs().await.is_empty());
    assert!(f.bus.published().is_empty());
}

#[tokio::test(start_paused = true)]
async fn after_finding_the_store_away_the_actor_fails_fast_for_a_while_then_tries_again() {
    let f = Fixture::new(RegistryConfig::default()).await;
    f.store
        .fail(FailOn::Everything, StoreError::Unavailable("test".into()));
    assert!(is_unavailable(&f.place(f.request("key-1", 1)).await));

    // The store is back, but the actor does not try it again until the pause is over.
    f.store.heal();
    let_pass(STORE_RETRY_AFTER - Duration::from_millis(1)).await;
    assert!(is_unavailable(&f.place(f.request("key-1", 1)).await));
    let_pass(Duration::from_millis(1)).await;
    let order = f.place(f.request("key-1", 1)).await.expect("place");

    // A probe that fails starts the pause again.
    f.store
        .fail(FailOn::Everything, StoreError::Unavailable("test".into()));
    let cancel = f.cancel_as(&f.customer(), &order.id, "gone").await;
    assert!(is_unavailable(&cancel));
    f.store.heal();
    let cancel = f.cancel_as(&f.customer(), &order.id, "gone").await;
    assert!(is_unavailable(&cancel));
    let_pass(STORE_RETRY_AFTER).await;
    f.cancel_as(&f.customer(), &order.id, "gone")
        .await
        .expect("cancel");
}

#[tokio::test(start_paused = true)]
async fn a_command_refused_before_it_reaches_the_store_does_not_end_the_pause() {
    let f = Fixture::new(RegistryConfig::default()).await;
    f.store
        .fail(FailOn::Everything, StoreError::Unavailable("test".into()));
    assert!(is_unavailable(&f.place(f.request("key-1", 1)).await));
    f.store.heal();

    // Refused on its content alone: it says nothing about the store.
    let invalid = f.place(f.request("key-1", 0)).await;
    assert!(
        matches!(invalid, Err(CommandError::Domain(DomainError::BadInput(_)))),
        "{invalid:?}"
    );
    assert!(
        is_unavailable(&f.place(f.request("key-1", 1)).await),
        "the pause ended before STORE_RETRY_AFTER"
    );

    let_pass(STORE_RETRY_AFTER).await;
    f.place(f.request("key-1", 1)).await.expect("place");
}

#[tokio::test(start_paused = true)]
async fn a_store_failure_other_than_unavailable_does_not_pause_the_actor() {
    let f = Fixture::new(RegistryConfig::default()).await;
    f.store
        .fail(FailOn::Commit, StoreError::Internal("test".into()));
    let failed = f.place(f.request("key-1", 1)).await;
    assert!(
        matches!(failed, Err(CommandError::Store(StoreError::Internal(_)))),
        "{failed:?}"
    );
    f.store.heal();
    let order = f.place(f.request("key-1", 1)).await.expect("place at once");
    assert_eq!(order.number, 1);
    assert_eq!(f.event_seqs().await, [1]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_actor_stops_after_idle_after_and_a_new_one_takes_over() {
    const IDLE_AFTER: Duration = Duration::from_secs(60);
    let f = Fixture::new(RegistryConfig {
        idle_after: IDLE_AFTER,
        ..RegistryConfig::default()
    })
    .await;
    // The actor's state holds the store: its count of holders tells whether the actor lives.
    let without_actor = Arc::strong_count(&f.store);

    f.place(f.request("key-1", 1)).await.expect("place");
    assert_eq!(f.registry.active(), 1);
    assert_eq!(Arc::strong_count(&f.store), without_actor + 1);

    // The sweeper looks every idle_after / 2: at 30 s the actor is not idle long enough yet.
    let_pass(IDLE_AFTER - Duration::from_millis(1)).await;
    assert_eq!(f.registry.active(), 1, "stopped before idle_after");
    assert_eq!(Arc::strong_count(&f.store), without_actor + 1);

    // At 60 s it is.
    let_pass(Duration::from_millis(1)).await;
    eventually("the idle actor stops", || {
        f.registry.active() == 0 && Arc::strong_count(&f.store) == without_actor
    })
    .await;

    let next = f.place(f.request("key-2", 1)).await.expect("a fresh actor");
    assert_eq!(next.number, 2);
    assert_eq!(f.registry.active(), 1);
}
