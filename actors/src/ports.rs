//! What the core needs from the outside world. Adapters implement these traits.

use async_trait::async_trait;
use std::sync::Arc;

use crate::domain::{
    BusinessDay, Event, EventKind, MenuItem, MenuItemId, Order, OrderId, OrderStatus, Restaurant,
    RestaurantId, StaffCall, Table, TableId, Timestamp,
};
use crate::StoreError;

/// One page of a restaurant's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    pub restaurant_id: RestaurantId,
    /// Empty: every status.
    pub statuses: Vec<OrderStatus>,
    pub limit: usize,
    /// Keyset position: orders strictly older than this (placed_at, id).
    pub before: Option<(Timestamp, OrderId)>,
}

/// A page of orders and the newest event of the restaurant it reflects, read together in one
/// statement: subscribing with `after: seq` then delivers exactly what the page lacks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// The restaurant's `last_seq` as the page's snapshot saw it; 0 for no such restaurant.
    pub seq: i64,
}

/// How fresh a read must be. Only reads that may be a little stale take this; everything else
/// goes to the writer anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// A replica may serve it, within the client's read-your-writes rule.
    #[default]
    Recent,
    /// From the writer: it reflects every committed change.
    Current,
}

/// Something that belongs to one restaurant, to find out which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned<'a> {
    Order(&'a OrderId),
    Table(&'a TableId),
    MenuItem(&'a MenuItemId),
}

/// The durable state of every restaurant.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Starts a transaction that holds the restaurant's write lock until it commits or is
    /// dropped, so that commands of one restaurant are serialized across every node, and reads
    /// what `lookup` asks for ([`RestaurantTx::found`]) as it is once the lock is held: what
    /// a command that held it before committed is in it. `None` when there is no such
    /// restaurant.
    async fn begin(
        &self,
        restaurant: &RestaurantId,
        lookup: Lookup<'_>,
    ) -> Result<Option<Box<dyn RestaurantTx>>, StoreError>;

    async fn create_restaurant(&self, restaurant: &Restaurant) -> Result<(), StoreError>;
    async fn count_restaurants(&self) -> Result<i64, StoreError>;

    async fn restaurant(
        &self,
        id: &RestaurantId,
        freshness: Freshness,
    ) -> Result<Option<Restaurant>, StoreError>;
    /// The items not archived, in display order (by position).
    async fn menu(
        &self,
        restaurant: &RestaurantId,
        freshness: Freshness,
    ) -> Result<Vec<MenuItem>, StoreError>;
    async fn tables(
        &self,
        restaurant: &RestaurantId,
        freshness: Freshness,
    ) -> Result<Vec<Table>, StoreError>;
    async fn order(&self, id: &OrderId, freshness: Freshness) -> Result<Option<Order>, StoreError>;
    async fn orders(
        &self,
        query: &OrderQuery,
        freshness: Freshness,
    ) -> Result<OrderPage, StoreError>;
    async fn owner(&self, thing: Owned<'_>) -> Result<Option<RestaurantId>, StoreError>;
    /// Events with seq > `after`, in seq order, at most `limit`.
    async fn events(
        &self,
        restaurant: &RestaurantId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// The restaurant's history: the oldest retained seq (none when nothing is retained) and
    /// the last seq ever assigned. `None` when there is no such restaurant. Read from the
    /// writer, never a replica: a lagging replica's `last_seq` would be older than events a
    /// client has already been sent, and [`History::covers`] would refuse that client.
    async fn history(&self, restaurant: &RestaurantId) -> Result<Option<History>, StoreError>;
    /// Deletes events older than `before`; returns how many.
    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Settings kept in the database (e.g. a generated token secret), shared by every node.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores `value` unless the key already has one; returns the value that won.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub first_retained: Option<i64>,
    pub last_seq: i64,
}

impl History {
    /// What a restaurant whose newest event is `last_seq` has had, retention aside.
    pub fn up_to(last_seq: i64) -> Self {
        Self {
            first_retained: None,
            last_seq,
        }
    }

    /// Whether event `seq` exists or existed (0 stands for "before the first event"), the
    /// bound of a causal read's `atLeastSeq`.
    pub fn has_had(&self, seq: i64) -> bool {
        (0..=self.last_seq).contains(&seq)
    }

    /// Whether a subscriber that has seen every event up to `after` can resume from there:
    /// `after` is not past the newest event (a client ahead of the store, say after a restore
    /// from a backup, would otherwise ignore every event up to its own seq, silently) and every
    /// event after it is still retained.
    pub fn covers(&self, after: i64) -> bool {
        after == self.last_seq
            || (after < self.last_seq
                && self.first_retained.is_some_and(|first| first <= after + 1))
    }
}

/// The restaurant's counters as locked at the start of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub last_seq: i64,
    pub ticket_day: BusinessDay,
    pub last_ticket: i64,
}

/// What a command reads under its restaurant's lock. The store reads it in the statement that
/// takes the lock, so a command costs one round trip to read and one to write (besides the
/// transaction's begin and commit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// An earlier order with this idempotency key.
    pub idempotency_key: Option<&'a str>,
    pub table: Option<&'a TableId>,
    pub menu_items: &'a [MenuItemId],
    /// Every item on the menu (not archived), instead of `menu_items`.
    pub whole_menu: bool,
    /// An order of the restaurant, with its items.
    pub order: Option<&'a OrderId>,
}

impl Lookup<'_> {
    /// The lock alone.
    pub const NOTHING: Lookup<'static> = Lookup {
        idempotency_key: None,
        table: None,
        menu_items: &[],
        whole_menu: false,
        order: None,
    };

    /// The lock and the menu.
    pub const WHOLE_MENU: Lookup<'static> = Lookup {
        whole_menu: true,
        ..Lookup::NOTHING
    };
}

/// What a [`Lookup`] found in the restaurant (anything of another restaurant is not found).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The order placed earlier with the idempotency key: that request's fingerprint and the
    /// order's id.
    pub by_key: Option<(String, OrderId)>,
    pub table: Option<Table>,
    /// Those of the asked-for items that exist (archived too), or the whole menu; in no
    /// particular order.
    pub menu_items: Vec<MenuItem>,
    pub order: Option<Order>,
}

/// A transaction on one restaurant, holding its lock. Dropping it without `commit` rolls back.
///
/// Writes may be staged and sent together at `commit` (one statement where the backend
/// allows), so a write's failure, such as a unique key's `Conflict`, may surface there. The
/// restaurant's counters are written once, at commit, from what the transaction did.
#[async_trait]
pub trait RestaurantTx: Send {
    fn restaurant(&self) -> &Restaurant;
    fn counters(&self) -> &Counters;
    /// What `begin`'s lookup found.
    fn found(&self) -> &Found;

    /// An order of the restaurant, as this transaction sees it: a round trip of its own, for
    /// what the lookup did not know to ask for (the order of an idempotent retry).
    async fn order(&mut self, id: &OrderId) -> Result<Option<Order>, StoreError>;

    async fn insert_order(
        &mut self,
        order: &Order,
        key: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError>;
    async fn set_ticket(&mut self, day: BusinessDay, number: i64) -> Result<(), StoreError>;
    /// Writes the restaurant's settings: name, time zone and business-day start.
    async fn update_restaurant(&mut self, restaurant: &Restaurant) -> Result<(), StoreError>;
    /// Writes status, version, updated_at and cancel reason.
    async fn update_order(&mut self, order: &Order) -> Result<(), StoreError>;
    async fn insert_table(&mut self, table: &Table) -> Result<(), StoreError>;
    async fn insert_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError>;
    /// Writes every field of the item but its id and restaurant.
    async fn update_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError>;
    async fn insert_staff_call(&mut self, call: &StaffCall) -> Result<(), StoreError>;
    /// Appends the event with the restaurant's next seq.
    async fn append_event(&mut self, kind: EventKind, at: Timestamp) -> Result<Event, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Where committed events go to reach subscribers (Redis or in-process).
pub trait EventSink: Send + Sync + 'static {
    /// Must not block: delivery is best effort, the store is the source of truth.
    fn publish(&self, event: &Event);
}

/// What the bus tells a channel's listener.
#[derive(Debug, Clone)]
pub enum BusSignal {
    Event(Arc<Event>),
    /// Messages may have been lost (the bus reconnected): catch up from the store.
    Resync,
}

pub type Listener = Arc<dyn Fn(BusSignal) + Send + Sync>;

/// Stops listening when dropped.
pub struct Listening(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Listening {
    pub fn new(stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(stop)))
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop();
        }
    }
}

/// Carries events between nodes: publish after commit, listen per restaurant channel.
pub trait Bus: EventSink {
    /// Calls `listener` with the channel's events until the returned guard is dropped. A
    /// channel may have several listeners at once (a stopping channel actor and its
    /// successor); each gets every event, and dropping one guard leaves the others listening.
    /// The listener must not block.
    fn listen(&self, restaurant: &RestaurantId, listener: Listener) -> Listening;

    /// Whether events currently travel between nodes (false while Redis is away).
    fn connected(&self) -> bool {
        true
    }
}

/// Consistent reads across a lagging replica, decided without a round trip.
pub trait ReadRouter: Send + Sync + 'static {
    /// Read-your-writes: `client` (a token's `sub`) has written, or may have (a command that
    /// timed out counts), so its next reads go where they see the write.
    fn client_wrote(&self, client: &str);

    /// Causal reads: how fresh a read must be to reflect event `seq` of `restaurant`, the
    /// contract's `atLeastSeq`. `Recent` once the replica is known to have applied that event,
    /// else `Current`. Never waits.
    fn freshness_for(&self, restaurant: &RestaurantId, seq: i64) -> Freshness;
}

/// The time, so tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
