//! The RestaurantRegistry and its RestaurantActors against in-memory ports: idempotent
//! orders, gap-free seqs published after commit, versions, store failures, idle stops.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually_real, seed, Seeded};
use orderhub_actors::domain::{
    DomainError, Event, LineRequest, Order, OrderId, OrderStatus, PlaceOrderRequest, Principal,
    Role, Timestamp,
};
use orderhub_actors::ports::{Bus, BusSignal, OrderQuery, Store};
use orderhub_actors::restaurant::{Deps, RegistryConfig, RestaurantMsg, RestaurantRegistry};
use orderhub_actors::shutdown::ShutdownSignal;
use orderhub_actors::testing::{FailOn, ManualClock, MemoryBus, MemoryStore};
use orderhub_actors::{CommandError, StoreError};

const DAY: Duration = Duration::from_secs(86_400);
/// Noon UTC, well inside a business day (they turn at 04:00 local).
const NOON: Timestamp = Timestamp(20_000 * 86_400_000 + 12 * 3_600_000);

struct Fixture {
    store: Arc<MemoryStore>,
    bus: Arc<MemoryBus>,
    clock: Arc<ManualClock>,
    registry: RestaurantRegistry,
    seeded: Seeded,
    /// Keeps the registry's idle sweeper running for the test's length.
    _shutdown: ShutdownSignal,
}

impl Fixture {
    async fn new(config: RegistryConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let bus = Arc::new(MemoryBus::new());
        let clock = Arc::new(ManualClock::new(NOON));
        let seeded = seed(&store).await;
        let deps = Deps {
            store: store.clone(),
            sink: bus.clone(),
            clock: clock.clone(),
        };
        let shutdown = ShutdownSignal::new();
        let registry = RestaurantRegistry::new(deps, config, shutdown.shutdown());
        Self {
            store,
            bus,
            clock,
            registry,
            seeded,
            _shutdown: shutdown,
        }
    }

    fn customer(&self) -> Principal {
        Principal::new(
            "guest".into(),
            Role::Customer,
            Some(self.seeded.id().clone()),
            Some(self.seeded.table.id.clone()),
        )
        .expect("a customer principal")
    }

    fn staff(&self) -> Principal {
        Principal::new(
            "kitchen".into(),
            Role::Staff,
            Some(self.seeded.id().clone()),
            None,
        )
        .expect("a staff principal")
    }

    fn request(&self, key: &str, quantity: i64) -> PlaceOrderRequest {
        PlaceOrderRequest {
            restaurant_id: self.seeded.id().clone(),
            table_id: self.seeded.table.id.clone(),
            items: vec![LineRequest {
                menu_item_id: self.seeded.item.id.clone(),
                quantity,
                note: None,
            }],
            note: None,
            idempotency_key: key.into(),
        }
    }

    async fn place(&self, request: PlaceOrderRequest) -> Result<Order, CommandError> {
        let by = self.customer();
        self.registry
            .call(self.seeded.id(), |reply| RestaurantMsg::PlaceOrder {
                by: by.clone(),
                request: request.clone(),
                reply,
            })
            .await
    }

    async fn advance(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        expected_version: Option<i64>,
    ) -> Result<Order, CommandError> {
        let by = self.staff();
        self.registry
            .call(self.seeded.id(), |reply| RestaurantMsg::AdvanceOrder {
                by: by.clone(),
                order_id: order_id.clone(),
                to,
                expected_version,
                reply,
            })
            .await
    }

    /// Committed orders, newest first.
    async fn orders(&self) -> Vec<Order> {
        let query = OrderQuery {
            restaurant_id: self.seeded.id().clone(),
            statuses: Vec::new(),
            limit: 100,
            before: None,
        };
        self.store.orders(&query).await.expect("read the orders")
    }

    async fn event_seqs(&self) -> Vec<i64> {
        let events = self
            .store
            .events(self.seeded.id(), 0, 100)
            .await
            .expect("read the events");
        seqs(&events)
    }

    fn published_seqs(&self) -> Vec<i64> {
        seqs(&self.bus.published())
    }
}

/// An event's seq, and the restaurant's committed last seq when the event was published.
type Published = (i64, Option<i64>);

fn seqs(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

fn is_conflict(result: &Result<Order, CommandError>) -> bool {
    matches!(result, Err(CommandError::Domain(DomainError::Conflict(_))))
}

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
async fn ticket_numbers_start_again_each_business_day() {
    let f = Fixture::new(RegistryConfig::default()).await;
    let a = f.place(f.request("a", 1)).await.expect("place a");
    let b = f.place(f.request("b", 1)).await.expect("place b");
    f.clock.advance(DAY);
    let c = f.place(f.request("c", 1)).await.expect("place c");

    assert_eq!([a.number, b.number, c.number], [1, 2, 1]);
    assert_eq!(f.event_seqs().await, [1, 2, 3], "seq must not restart");
}

#[tokio::test]
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

    // Once the store is back (after the actor's fail-fast pause, kept on std time) the same
    // request goes through, with the seq and ticket the failed attempt did not use up.
    f.store.heal();
    let mut retried = f.place(f.request("key-2", 1)).await;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while matches!(
        retried,
        Err(CommandError::Store(StoreError::Unavailable(_)))
    ) && std::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        retried = f.place(f.request("key-2", 1)).await;
    }
    let second = retried.expect("the store is back");
    assert_eq!(second.number, 2);
    assert_eq!(f.event_seqs().await, [1, 2]);
    assert_eq!(f.published_seqs(), [1, 2]);
}

#[tokio::test]
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

#[tokio::test]
async fn an_idle_actor_stops_after_idle_after_and_a_new_one_takes_over() {
    // Real time: the registry measures idleness with std::time::Instant, which paused tokio
    // time does not move.
    const IDLE_AFTER: Duration = Duration::from_millis(100);
    let f = Fixture::new(RegistryConfig {
        idle_after: IDLE_AFTER,
        ..RegistryConfig::default()
    })
    .await;
    // The actor's state holds the store: its count of holders tells whether the actor lives.
    let without_actor = Arc::strong_count(&f.store);

    let sent = std::time::Instant::now();
    f.place(f.request("key-1", 1)).await.expect("place");
    assert_eq!(f.registry.active(), 1);
    assert_eq!(Arc::strong_count(&f.store), without_actor + 1);

    eventually_real("the idle actor stops", Duration::from_secs(5), || {
        f.registry.active() == 0 && Arc::strong_count(&f.store) == without_actor
    })
    .await;
    assert!(sent.elapsed() >= IDLE_AFTER, "stopped before idle_after");

    let next = f.place(f.request("key-2", 1)).await.expect("a fresh actor");
    assert_eq!(next.number, 2);
    assert_eq!(f.registry.active(), 1);
}
