//! In-memory ports for tests: a store, a bus and a clock that a test can steer and inspect.
//! Compiled only with the `testing` feature; nothing in production uses them.
//!
//! [`MemoryStore`] keeps the rules the SQL store keeps (a transaction holds the restaurant's
//! lock until commit or drop, writes show only after commit, seq gap-free, one order per
//! idempotency key), so that what a test proves of an actor holds against the real store.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::domain::{
    BusinessDay, Event, EventKind, MenuItem, Order, OrderId, Restaurant, RestaurantId, StaffCall,
    Table, Timestamp,
};
use crate::ports::{
    Bus, BusSignal, Clock, Counters, EventSink, Found, Freshness, History, Listener, Listening,
    Lookup, OrderPage, OrderQuery, Owned, RestaurantTx, Store,
};
use crate::StoreError;

/// A std mutex whose data is still usable after a panic elsewhere: a failed assertion in one
/// test thread must not turn every later call into a second, misleading panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which calls an injected failure hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Every call, reads included: the database is gone.
    Everything,
    /// Only `RestaurantTx::commit`: every write of the transaction was made, then lost.
    Commit,
}

/// A [`Store`] held in memory.
#[derive(Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    restaurants: Mutex<HashMap<RestaurantId, Arc<Slot>>>,
    settings: Mutex<HashMap<String, String>>,
    failure: Mutex<Option<(FailOn, StoreError)>>,
    event_reads: AtomicUsize,
    history_reads: AtomicUsize,
}

impl Shared {
    /// The injected failure, if it hits this call; `at_commit` for `RestaurantTx::commit`.
    fn check(&self, at_commit: bool) -> Result<(), StoreError> {
        match &*lock(&self.failure) {
            Some((FailOn::Everything, error)) => Err(error.clone()),
            Some((FailOn::Commit, error)) if at_commit => Err(error.clone()),
            _ => Ok(()),
        }
    }
}

/// One restaurant.
struct Slot {
    /// Held by a transaction from `begin` to commit or drop. A tokio mutex: the holder awaits
    /// while holding it, and a second `begin` must wait, not block the thread.
    write: Arc<tokio::sync::Mutex<()>>,
    /// What committed transactions left; reads outside a transaction see only this.
    committed: Mutex<Data>,
}

#[derive(Clone)]
struct Data {
    restaurant: Restaurant,
    counters: Counters,
    /// Each list in insertion order, which is the SQL store's display order.
    tables: Vec<Table>,
    menu: Vec<MenuItem>,
    orders: Vec<StoredOrder>,
    staff_calls: Vec<StaffCall>,
    /// In seq order.
    events: Vec<Event>,
}

#[derive(Clone)]
struct StoredOrder {
    order: Order,
    key: String,
    fingerprint: String,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on the calls `on` names fail with `error`, until [`MemoryStore::heal`].
    pub fn fail(&self, on: FailOn, error: StoreError) {
        *lock(&self.shared.failure) = Some((on, error));
    }

    pub fn heal(&self) {
        *lock(&self.shared.failure) = None;
    }

    /// How many times `Store::events` was called: the channels' catch-up reads.
    pub fn event_reads(&self) -> usize {
        self.shared.event_reads.load(Ordering::SeqCst)
    }

    /// How many times `Store::history` was called: once by each channel that starts.
    pub fn history_reads(&self) -> usize {
        self.shared.history_reads.load(Ordering::SeqCst)
    }

    /// The restaurant's last committed seq, readable from sync code such as a bus listener
    /// (to check that an event is published only once it is committed).
    pub fn last_seq(&self, restaurant: &RestaurantId) -> Option<i64> {
        let slot = self.slot(restaurant)?;
        let last = lock(&slot.committed).counters.last_seq;
        Some(last)
    }

    fn slot(&self, restaurant: &RestaurantId) -> Option<Arc<Slot>> {
        lock(&self.shared.restaurants).get(restaurant).cloned()
    }

    /// Every restaurant, to look for a thing whose restaurant is not known.
    fn slots(&self) -> Vec<Arc<Slot>> {
        lock(&self.shared.restaurants).values().cloned().collect()
    }

    /// Reads the restaurant's committed data; `None` when there is no such restaurant.
    fn read<T>(&self, restaurant: &RestaurantId, f: impl FnOnce(&Data) -> T) -> Option<T> {
        let slot = self.slot(restaurant)?;
        let data = lock(&slot.committed);
        Some(f(&data))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(
        &self,
        restaurant: &RestaurantId,
        lookup: Lookup<'_>,
    ) -> Result<Option<Box<dyn RestaurantTx>>, StoreError> {
        self.shared.check(false)?;
        let Some(slot) = self.slot(restaurant) else {
            return Ok(None);
        };
        let held = slot.write.clone().lock_owned().await;
        // Snapshot after taking the lock: the previous holder's commit is in it.
        let staged = lock(&slot.committed).clone();
        let found = look_up(&staged, lookup);
        Ok(Some(Box::new(MemoryTx {
            shared: self.shared.clone(),
            counters: staged.counters.clone(),
            staged,
            found,
            slot,
            _held: held,
        })))
    }

    async fn create_restaurant(&self, restaurant: &Restaurant) -> Result<(), StoreError> {
        self.shared.check(false)?;
        let mut restaurants = lock(&self.shared.restaurants);
        if restaurants.contains_key(&restaurant.id) {
            return Err(StoreError::Conflict(format!(
                "restaurant {}",
                restaurant.id
            )));
        }
        let data = Data {
            restaurant: restaurant.clone(),
            // The SQL schema's defaults.
            counters: Counters {
                last_seq: 0,
                ticket_day: BusinessDay(0),
                last_ticket: 0,
            },
            tables: Vec::new(),
            menu: Vec::new(),
            orders: Vec::new(),
            staff_calls: Vec::new(),
            events: Vec::new(),
        };
        let slot = Slot {
            write: Arc::new(tokio::sync::Mutex::new(())),
            committed: Mutex::new(data),
        };
        restaurants.insert(restaurant.id.clone(), Arc::new(slot));
        Ok(())
    }

    async fn count_restaurants(&self) -> Result<i64, StoreError> {
        self.shared.check(false)?;
        let count = lock(&self.shared.restaurants).len();
        i64::try_from(count).map_err(|e| StoreError::Internal(e.to_string()))
    }

    async fn restaurant(
        &self,
        id: &RestaurantId,
        _: Freshness,
    ) -> Result<Option<Restaurant>, StoreError> {
        self.shared.check(false)?;
        Ok(self.read(id, |data| data.restaurant.clone()))
    }

    async fn menu(
        &self,
        restaurant: &RestaurantId,
        _: Freshness,
    ) -> Result<Vec<MenuItem>, StoreError> {
        self.shared.check(false)?;
        Ok(self
            .read(restaurant, |data| {
                // The SQL store's order: on the menu, by position.
                let mut menu: Vec<MenuItem> =
                    data.menu.iter().filter(|m| !m.archived).cloned().collect();
                menu.sort_by_key(|m| m.position);
                menu
            })
            .unwrap_or_default())
    }

    async fn tables(
        &self,
        restaurant: &RestaurantId,
        _: Freshness,
    ) -> Result<Vec<Table>, StoreError> {
        self.shared.check(false)?;
        Ok(self
            .read(restaurant, |data| data.tables.clone())
            .unwrap_or_default())
    }

    async fn order(&self, id: &OrderId, _: Freshness) -> Result<Option<Order>, StoreError> {
        self.shared.check(false)?;
        Ok(self.slots().iter().find_map(|slot| {
            let data = lock(&slot.committed);
            find_order(&data, id).cloned()
        }))
    }

    async fn orders(&self, query: &OrderQuery, _: Freshness) -> Result<OrderPage, StoreError> {
        self.shared.check(false)?;
        let (mut orders, seq) = self
            .read(&query.restaurant_id, |data| {
                let orders: Vec<Order> = data
                    .orders
                    .iter()
                    .map(|stored| &stored.order)
                    .filter(|o| query.statuses.is_empty() || query.statuses.contains(&o.status))
                    .filter(|o| {
                        query
                            .before
                            .as_ref()
                            .is_none_or(|(at, id)| (o.placed_at, &o.id) < (*at, id))
                    })
                    .cloned()
                    .collect();
                (orders, data.counters.last_seq)
            })
            .unwrap_or_default();
        // Newest first, as the SQL store's keyset order (placed_at DESC, id DESC).
        orders.sort_by(|a, b| (b.placed_at, &b.id).cmp(&(a.placed_at, &a.id)));
        orders.truncate(query.limit);
        Ok(OrderPage { orders, seq })
    }

    async fn owner(&self, thing: Owned<'_>) -> Result<Option<RestaurantId>, StoreError> {
        self.shared.check(false)?;
        Ok(self.slots().iter().find_map(|slot| {
            let data = lock(&slot.committed);
            let owns = match thing {
                Owned::Order(id) => find_order(&data, id).is_some(),
                Owned::Table(id) => data.tables.iter().any(|t| &t.id == id),
                Owned::MenuItem(id) => data.menu.iter().any(|m| &m.id == id),
            };
            owns.then(|| data.restaurant.id.clone())
        }))
    }

    async fn events(
        &self,
        restaurant: &RestaurantId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        // Counted before the failure check: a failed read is still a read attempt.
        self.shared.event_reads.fetch_add(1, Ordering::SeqCst);
        self.shared.check(false)?;
        Ok(self
            .read(restaurant, |data| {
                data.events
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn history(&self, restaurant: &RestaurantId) -> Result<Option<History>, StoreError> {
        self.shared.history_reads.fetch_add(1, Ordering::SeqCst);
        self.shared.check(false)?;
        Ok(self.read(restaurant, |data| History {
            first_retained: data.events.first().map(|e| e.seq),
            last_seq: data.counters.last_seq,
        }))
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.shared.check(false)?;
        let mut pruned = 0;
        for slot in self.slots() {
            let mut data = lock(&slot.committed);
            let kept_before = data.events.len();
            data.events.retain(|e| e.at >= before);
            pruned += kept_before - data.events.len();
        }
        u64::try_from(pruned).map_err(|e| StoreError::Internal(e.to_string()))
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.shared.check(false)?;
        Ok(lock(&self.shared.settings).get(key).cloned())
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.shared.check(false)?;
        let mut settings = lock(&self.shared.settings);
        Ok(settings
            .entry(key.to_owned())
            .or_insert_with(|| value.to_owned())
            .clone())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.shared.check(false)
    }
}

fn look_up(data: &Data, lookup: Lookup<'_>) -> Found {
    Found {
        by_key: lookup.idempotency_key.and_then(|key| {
            data.orders
                .iter()
                .find(|stored| stored.key == key)
                .map(|stored| (stored.fingerprint.clone(), stored.order.id.clone()))
        }),
        table: lookup
            .table
            .and_then(|id| data.tables.iter().find(|t| &t.id == id).cloned()),
        menu_items: data
            .menu
            .iter()
            .filter(|m| {
                if lookup.whole_menu {
                    !m.archived
                } else {
                    lookup.menu_items.contains(&m.id)
                }
            })
            .cloned()
            .collect(),
        order: lookup.order.and_then(|id| find_order(data, id).cloned()),
    }
}

fn find_order<'a>(data: &'a Data, id: &OrderId) -> Option<&'a Order> {
    data.orders
        .iter()
        .map(|stored| &stored.order)
        .find(|o| &o.id == id)
}

/// Works on a private copy of the restaurant's data; `commit` makes the copy the committed
/// data, dropping discards it. Holds the restaurant's write lock all along.
struct MemoryTx {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    _held: tokio::sync::OwnedMutexGuard<()>,
    /// As locked at `begin`, like the SQL store's; `staged.counters` moves on.
    counters: Counters,
    staged: Data,
    found: Found,
}

#[async_trait]
impl RestaurantTx for MemoryTx {
    fn restaurant(&self) -> &Restaurant {
        &self.staged.restaurant
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn found(&self) -> &Found {
        &self.found
    }

    async fn order(&mut self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.shared.check(false)?;
        Ok(find_order(&self.staged, id).cloned())
    }

    async fn insert_order(
        &mut self,
        order: &Order,
        key: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        self.shared.check(false)?;
        // The SQL store's UNIQUE (restaurant_id, idempotency_key) and primary key.
        if self
            .staged
            .orders
            .iter()
            .any(|s| s.key == key || s.order.id == order.id)
        {
            return Err(StoreError::Conflict(format!(
                "order {} / key {key}",
                order.id
            )));
        }
        self.staged.orders.push(StoredOrder {
            order: order.clone(),
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
        });
        Ok(())
    }

    async fn set_ticket(&mut self, day: BusinessDay, number: i64) -> Result<(), StoreError> {
        self.shared.check(false)?;
        self.staged.counters.ticket_day = day;
        self.staged.counters.last_ticket = number;
        Ok(())
    }

    async fn update_restaurant(&mut self, restaurant: &Restaurant) -> Result<(), StoreError> {
        self.shared.check(false)?;
        if restaurant.id != self.staged.restaurant.id {
            return Err(StoreError::Internal(format!(
                "restaurant {} written in the transaction of {}",
                restaurant.id, self.staged.restaurant.id
            )));
        }
        self.staged.restaurant = restaurant.clone();
        Ok(())
    }

    async fn update_order(&mut self, order: &Order) -> Result<(), StoreError> {
        self.shared.check(false)?;
        let stored = self
            .staged
            .orders
            .iter_mut()
            .map(|stored| &mut stored.order)
            .find(|o| o.id == order.id)
            .ok_or_else(|| StoreError::Internal(format!("no order {}", order.id)))?;
        // Stricter than SQL, which writes what it is given: every change is one version up,
        // so a test catches an actor that skips or repeats one.
        if order.version != stored.version + 1 {
            return Err(StoreError::Internal(format!(
                "order {} written at version {} over version {}",
                order.id, order.version, stored.version
            )));
        }
        stored.status = order.status;
        stored.version = order.version;
        stored.updated_at = order.updated_at;
        stored.cancel_reason = order.cancel_reason.clone();
        Ok(())
    }

    async fn insert_table(&mut self, table: &Table) -> Result<(), StoreError> {
        self.shared.check(false)?;
        self.staged.tables.push(table.clone());
        Ok(())
    }

    async fn insert_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError> {
        self.shared.check(false)?;
        self.staged.menu.push(item.clone());
        Ok(())
    }

    async fn update_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError> {
        self.shared.check(false)?;
        if let Some(stored) = self.staged.menu.iter_mut().find(|m| m.id == item.id) {
            *stored = item.clone();
        }
        Ok(())
    }

    async fn insert_staff_call(&mut self, call: &StaffCall) -> Result<(), StoreError> {
        self.shared.check(false)?;
        self.staged.staff_calls.push(call.clone());
        Ok(())
    }

    async fn append_event(&mut self, kind: EventKind, at: Timestamp) -> Result<Event, StoreError> {
        self.shared.check(false)?;
        self.staged.counters.last_seq += 1;
        let event = Event {
            restaurant_id: self.staged.restaurant.id.clone(),
            seq: self.staged.counters.last_seq,
            at,
            kind,
        };
        self.staged.events.push(event.clone());
        Ok(event)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.shared.check(true)?;
        let MemoryTx { slot, staged, .. } = *self;
        *lock(&slot.committed) = staged;
        Ok(())
    }
}

/// A [`Bus`] within the process that a test can make lose publications, as Redis does while
/// it is away.
#[derive(Default)]
pub struct MemoryBus {
    state: Arc<Mutex<BusState>>,
}

#[derive(Default)]
struct BusState {
    listeners: HashMap<RestaurantId, Vec<(u64, Listener)>>,
    next_token: u64,
    /// How many of the next publications to lose.
    lose: usize,
    lost: Vec<Event>,
    published: Vec<Event>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `count` publications reach no listener; [`MemoryBus::take_lost`] has them.
    pub fn lose_next(&self, count: usize) {
        lock(&self.state).lose = count;
    }

    /// The publications lost so far, oldest first; publishing one again delivers it late.
    pub fn take_lost(&self) -> Vec<Event> {
        std::mem::take(&mut lock(&self.state).lost)
    }

    /// Every event handed to `publish`, lost or not, in order.
    pub fn published(&self) -> Vec<Event> {
        lock(&self.state).published.clone()
    }

    /// How many listeners the restaurant's channel has on this bus.
    pub fn listeners(&self, restaurant: &RestaurantId) -> usize {
        lock(&self.state)
            .listeners
            .get(restaurant)
            .map_or(0, Vec::len)
    }

    /// Tells the restaurant's listeners that messages may have been lost, as a reconnect does.
    pub fn resync(&self, restaurant: &RestaurantId) {
        for listener in self.listeners_of(restaurant) {
            listener(BusSignal::Resync);
        }
    }

    /// Copied out so that listeners run without the lock held.
    fn listeners_of(&self, restaurant: &RestaurantId) -> Vec<Listener> {
        lock(&self.state)
            .listeners
            .get(restaurant)
            .map(|all| all.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }
}

impl EventSink for MemoryBus {
    fn publish(&self, event: &Event) {
        {
            let mut state = lock(&self.state);
            state.published.push(event.clone());
            if state.lose > 0 {
                state.lose -= 1;
                state.lost.push(event.clone());
                return;
            }
        }
        let event = Arc::new(event.clone());
        for listener in self.listeners_of(&event.restaurant_id) {
            listener(BusSignal::Event(event.clone()));
        }
    }
}

impl Bus for MemoryBus {
    fn listen(&self, restaurant: &RestaurantId, listener: Listener) -> Listening {
        let token = {
            let mut state = lock(&self.state);
            let token = state.next_token;
            state.next_token += 1;
            state
                .listeners
                .entry(restaurant.clone())
                .or_default()
                .push((token, listener));
            token
        };
        let state = self.state.clone();
        let restaurant = restaurant.clone();
        Listening::new(move || {
            let mut state = lock(&state);
            if let Some(all) = state.listeners.get_mut(&restaurant) {
                all.retain(|(t, _)| *t != token);
                if all.is_empty() {
                    state.listeners.remove(&restaurant);
                }
            }
        })
    }
}

/// A [`Clock`] that moves only when the test moves it.
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self {
            millis: AtomicI64::new(at.millis()),
        }
    }

    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.millis(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}
