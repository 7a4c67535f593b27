//! What the actor tests share: a seeded restaurant in a [`MemoryStore`], committed events, a
//! restaurant registry over in-memory ports, and waiting for a condition instead of for a
//! guessed time.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orderhub_actors::channel::{ChannelConfig, ChannelRegistry, Filter, Subscription};
use orderhub_actors::domain::{
    validate_menu_item, BusinessDayStart, Currency, Event, EventKind, LineRequest, MenuItem,
    NewMenuItem, Order, OrderId, OrderStatus, PlaceOrderRequest, Principal, Restaurant,
    RestaurantId, Role, StaffCall, Table, TableId, TimeZone, Timestamp,
};
use orderhub_actors::ports::{Clock, EventSink, Freshness, Lookup, OrderQuery, Store};
use orderhub_actors::restaurant::{Deps, RegistryConfig, Reply, RestaurantMsg, RestaurantRegistry};
use orderhub_actors::shutdown::ShutdownSignal;
use orderhub_actors::testing::{ManualClock, MemoryBus, MemoryStore};
use orderhub_actors::CommandError;

/// A restaurant with one table and one menu item, committed.
pub struct Seeded {
    pub restaurant: Restaurant,
    pub table: Table,
    pub item: MenuItem,
}

impl Seeded {
    pub fn id(&self) -> &RestaurantId {
        &self.restaurant.id
    }
}

pub async fn seed(store: &MemoryStore) -> Seeded {
    let restaurant = Restaurant {
        id: RestaurantId::generate(),
        name: "Bistro".into(),
        currency: Currency::parse("JPY").expect("JPY is a currency"),
        time_zone: TimeZone::utc(),
        day_starts_at: BusinessDayStart::DEFAULT,
        tax: Default::default(),
    };
    store
        .create_restaurant(&restaurant)
        .await
        .expect("create the restaurant");
    let table = Table {
        id: TableId::generate(),
        restaurant_id: restaurant.id.clone(),
        name: "T1".into(),
    };
    let ramen = NewMenuItem {
        name: "Ramen".into(),
        price: 900,
        ..NewMenuItem::default()
    };
    let item = validate_menu_item(&restaurant, ramen, 0).expect("a valid item");
    let mut tx = store
        .begin(&restaurant.id, Lookup::NOTHING)
        .await
        .expect("begin")
        .expect("the restaurant exists");
    tx.insert_table(&table).await.expect("insert the table");
    tx.insert_menu_item(&item).await.expect("insert the item");
    tx.commit().await.expect("commit the seed");
    Seeded {
        restaurant,
        table,
        item,
    }
}

/// Commits one event (a staff call) and publishes it on the bus, as a restaurant actor does.
pub async fn emit(store: &MemoryStore, bus: &MemoryBus, seeded: &Seeded) -> Event {
    let mut tx = store
        .begin(seeded.id(), Lookup::NOTHING)
        .await
        .expect("begin")
        .expect("the restaurant exists");
    let call = StaffCall::new(&seeded.table, None, Timestamp(0)).expect("a valid staff call");
    let event = tx
        .append_event(EventKind::StaffCalled { call }, Timestamp(0))
        .await
        .expect("append the event");
    tx.commit().await.expect("commit the event");
    bus.publish(&event);
    event
}

/// The next event's seq, failing the test if none arrives within `within`.
pub async fn next_seq(subscription: &mut Subscription, within: Duration) -> i64 {
    match tokio::time::timeout(within, subscription.events.recv()).await {
        Ok(Some(event)) => event.seq,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("no event within {within:?}"),
    }
}

/// Whether an event arrives within `within` (under paused time: before that much time passed).
pub async fn arrives_within(subscription: &mut Subscription, within: Duration) -> Option<i64> {
    tokio::time::timeout(within, subscription.events.recv())
        .await
        .ok()
        .flatten()
        .map(|event| event.seq)
}

/// Lets the other tasks run until `done` holds, without moving time (under paused time a
/// yield is not idleness, so no timer fires meanwhile). Fails the test if it never holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Lets `span` of paused time pass, every timer due on the way firing in order (unlike
/// `tokio::time::advance`, which fires all of them at the end).
pub async fn let_pass(span: Duration) {
    tokio::time::sleep(span).await;
}

/// How long a restaurant actor fails fast after finding the store unavailable (README: 500 ms).
pub const STORE_RETRY_AFTER: Duration = Duration::from_millis(500);

/// Noon UTC, well inside a business day (they turn at 04:00 local).
pub const NOON: Timestamp = Timestamp(20_000 * 86_400_000 + 12 * 3_600_000);

/// What the restaurant actors see as the time: a [`ManualClock`] that can be told to panic at
/// its next reading, to make an actor fail in the middle of a command.
pub struct TripClock {
    pub manual: ManualClock,
    armed: AtomicBool,
}

impl TripClock {
    /// The next reading panics (once).
    pub fn trip(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Clock for TripClock {
    fn now(&self) -> Timestamp {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("the clock was tripped");
        }
        self.manual.now()
    }
}

/// A restaurant registry over in-memory ports, with the seeded restaurant.
pub struct RestaurantFixture {
    pub store: Arc<MemoryStore>,
    pub bus: Arc<MemoryBus>,
    pub clock: Arc<TripClock>,
    pub registry: RestaurantRegistry,
    pub seeded: Seeded,
    /// Keeps the registry's idle sweeper running for the test's length.
    pub shutdown: ShutdownSignal,
}

impl RestaurantFixture {
    pub async fn new(config: RegistryConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let bus = Arc::new(MemoryBus::new());
        let clock = Arc::new(TripClock {
            manual: ManualClock::new(NOON),
            armed: AtomicBool::new(false),
        });
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
            shutdown,
        }
    }

    pub fn id(&self) -> &RestaurantId {
        self.seeded.id()
    }

    /// The customer at the seeded table.
    pub fn customer(&self) -> Principal {
        self.customer_at(&self.seeded.table.id)
    }

    pub fn customer_at(&self, table: &TableId) -> Principal {
        Principal::new(
            "guest".into(),
            Role::Customer,
            Some(self.id().clone()),
            Some(table.clone()),
        )
        .expect("a customer principal")
    }

    pub fn staff(&self) -> Principal {
        staff_of(self.id())
    }

    pub fn admin(&self) -> Principal {
        Principal::admin("operator")
    }

    /// One line of the seeded item, for the seeded table.
    pub fn request(&self, key: &str, quantity: i64) -> PlaceOrderRequest {
        PlaceOrderRequest {
            restaurant_id: self.id().clone(),
            table_id: self.seeded.table.id.clone(),
            items: vec![LineRequest {
                menu_item_id: self.seeded.item.id.clone(),
                quantity,
                note: None,
                option_ids: Vec::new(),
            }],
            note: None,
            idempotency_key: key.into(),
            service_mode: Default::default(),
        }
    }

    /// Sends a command to the seeded restaurant's actor.
    pub async fn call<T: Send + 'static>(
        &self,
        message: impl Fn(Reply<T>) -> RestaurantMsg,
    ) -> Result<T, CommandError> {
        self.registry.call(self.id(), message).await
    }

    /// Places `request` as the seeded table's customer.
    pub async fn place(&self, request: PlaceOrderRequest) -> Result<Order, CommandError> {
        self.place_as(&self.customer(), request).await
    }

    pub async fn place_as(
        &self,
        by: &Principal,
        request: PlaceOrderRequest,
    ) -> Result<Order, CommandError> {
        self.call(|reply| RestaurantMsg::PlaceOrder {
            by: by.clone(),
            request: request.clone(),
            reply,
        })
        .await
    }

    /// Advances an order as the restaurant's staff.
    pub async fn advance(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        expected_version: Option<i64>,
    ) -> Result<Order, CommandError> {
        self.advance_as(&self.staff(), order_id, to, expected_version)
            .await
    }

    pub async fn advance_as(
        &self,
        by: &Principal,
        order_id: &OrderId,
        to: OrderStatus,
        expected_version: Option<i64>,
    ) -> Result<Order, CommandError> {
        self.call(|reply| RestaurantMsg::AdvanceOrder {
            by: by.clone(),
            order_id: order_id.clone(),
            to,
            expected_version,
            reply,
        })
        .await
    }

    pub async fn cancel_as(
        &self,
        by: &Principal,
        order_id: &OrderId,
        reason: &str,
    ) -> Result<Order, CommandError> {
        self.call(|reply| RestaurantMsg::CancelOrder {
            by: by.clone(),
            order_id: order_id.clone(),
            reason: reason.into(),
            reply,
        })
        .await
    }

    /// Committed orders, newest first.
    pub async fn orders(&self) -> Vec<Order> {
        let query = OrderQuery {
            restaurant_id: self.id().clone(),
            statuses: Vec::new(),
            limit: 100,
            before: None,
        };
        self.store
            .orders(&query, Freshness::Recent)
            .await
            .expect("read the orders")
            .orders
    }

    /// Committed events.
    pub async fn events(&self) -> Vec<Event> {
        self.store
            .events(self.id(), 0, 100)
            .await
            .expect("read the events")
    }

    pub async fn event_seqs(&self) -> Vec<i64> {
        seqs(&self.events().await)
    }

    pub fn published_seqs(&self) -> Vec<i64> {
        seqs(&self.bus.published())
    }
}

pub fn staff_of(restaurant: &RestaurantId) -> Principal {
    Principal::new(
        "kitchen".into(),
        Role::Staff,
        Some(restaurant.clone()),
        None,
    )
    .expect("a staff principal")
}

pub fn manager_of(restaurant: &RestaurantId) -> Principal {
    Principal::new(
        "manager".into(),
        Role::Manager,
        Some(restaurant.clone()),
        None,
    )
    .expect("a manager principal")
}

pub fn seqs(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

/// A seeded restaurant and a channel registry, over in-memory ports.
pub struct Channels {
    pub store: Arc<MemoryStore>,
    pub bus: Arc<MemoryBus>,
    pub channels: ChannelRegistry,
    pub seeded: Seeded,
    /// Keeps the registry's supervisor running for the test's length.
    pub shutdown: ShutdownSignal,
}

impl Channels {
    pub async fn new(config: ChannelConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let bus = Arc::new(MemoryBus::new());
        let seeded = seed(&store).await;
        let shutdown = ShutdownSignal::new();
        let channels =
            ChannelRegistry::new(store.clone(), bus.clone(), config, shutdown.shutdown());
        Self {
            store,
            bus,
            channels,
            seeded,
            shutdown,
        }
    }

    /// A subscription to every event, from where the channel is.
    pub async fn join(&self) -> Subscription {
        self.channels
            .join(self.seeded.id(), Filter::All, None)
            .await
            .expect("join the channel")
    }

    /// Commits an event and publishes it; its seq.
    pub async fn emit(&self) -> i64 {
        emit(&self.store, &self.bus, &self.seeded).await.seq
    }

    /// Commits an event whose publication the bus loses.
    pub async fn emit_lost(&self) -> i64 {
        self.bus.lose_next(1);
        self.emit().await
    }
}
