//! What the actor tests share: a seeded restaurant in a [`MemoryStore`], committed events, and
//! waiting for a condition instead of for a guessed time.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::time::Duration;

use orderhub_actors::channel::Subscription;
use orderhub_actors::domain::{
    Currency, Event, EventKind, MenuItem, MenuItemId, Money, Restaurant, RestaurantId, StaffCall,
    Table, TableId, Timestamp,
};
use orderhub_actors::ports::{EventSink, Store};
use orderhub_actors::testing::{MemoryBus, MemoryStore};

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
        utc_offset_minutes: 0,
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
    let item = MenuItem {
        id: MenuItemId::generate(),
        restaurant_id: restaurant.id.clone(),
        name: "Ramen".into(),
        price: Money::new(900, restaurant.currency.clone()),
        available: true,
    };
    let mut tx = store
        .begin(&restaurant.id)
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
        .begin(seeded.id())
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

/// As [`eventually`], in real time, for the parts of the actors that read `std::time`.
pub async fn eventually_real(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(done(), "not within {within:?}: {what}");
}
