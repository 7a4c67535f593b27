//! The in-memory store keeps the SQL store's transaction rules; the actor tests rely on them.

mod common;

use std::time::Duration;

use common::{seed, Seeded};
use orderhub_actors::domain::{
    EventKind, Money, Order, OrderId, OrderStatus, StaffCall, Timestamp,
};
use orderhub_actors::ports::{Lookup, RestaurantTx, Store};
use orderhub_actors::testing::MemoryStore;
use orderhub_actors::StoreError;

async fn begin(store: &MemoryStore, seeded: &Seeded) -> Box<dyn RestaurantTx> {
    store
        .begin(seeded.id(), Lookup::NOTHING)
        .await
        .expect("begin")
        .expect("the restaurant exists")
}

fn staff_called(seeded: &Seeded) -> EventKind {
    let call = StaffCall::new(&seeded.table, None, Timestamp(0)).expect("a valid staff call");
    EventKind::StaffCalled { call }
}

#[tokio::test(start_paused = true)]
async fn writes_show_on_commit_only_and_a_dropped_transaction_leaves_no_seq_gap() {
    let store = MemoryStore::new();
    let seeded = seed(&store).await;

    let mut tx = begin(&store, &seeded).await;
    let event = tx
        .append_event(staff_called(&seeded), Timestamp(0))
        .await
        .expect("append");
    assert_eq!(event.seq, 1);
    assert_eq!(
        store.last_seq(seeded.id()),
        Some(0),
        "visible before commit"
    );
    drop(tx);

    let mut tx = begin(&store, &seeded).await;
    assert_eq!(tx.counters().last_seq, 0);
    let event = tx
        .append_event(staff_called(&seeded), Timestamp(0))
        .await
        .expect("append");
    assert_eq!(event.seq, 1, "a rolled-back seq was used up");
    tx.commit().await.expect("commit");
    let events = store.events(seeded.id(), 0, 10).await.expect("events");
    assert_eq!(events, [event]);
}

#[tokio::test(start_paused = true)]
async fn a_second_transaction_waits_for_the_first() {
    let store = MemoryStore::new();
    let seeded = seed(&store).await;
    let first = begin(&store, &seeded).await;
    let second = tokio::time::timeout(Duration::from_secs(1), begin(&store, &seeded)).await;
    assert!(second.is_err(), "two transactions held one restaurant");
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(1), begin(&store, &seeded)).await;
    assert!(second.is_ok(), "the lock outlived its transaction");
}

#[tokio::test(start_paused = true)]
async fn an_idempotency_key_is_unique_and_a_version_moves_by_one() {
    let store = MemoryStore::new();
    let seeded = seed(&store).await;
    let order = Order {
        id: OrderId::generate(),
        restaurant_id: seeded.id().clone(),
        table_id: seeded.table.id.clone(),
        number: 1,
        status: OrderStatus::Placed,
        items: Vec::new(),
        total: Money::new(0, seeded.restaurant.currency.clone()),
        note: None,
        cancel_reason: None,
        placed_at: Timestamp(0),
        updated_at: Timestamp(0),
        version: 1,
        service_mode: Default::default(),
        taxes: Vec::new(),
        prices_include_tax: true,
        tax_rounding: Default::default(),
    };
    let mut tx = begin(&store, &seeded).await;
    tx.insert_order(&order, "key", "fingerprint")
        .await
        .expect("insert");
    let again = tx.insert_order(&order, "key", "fingerprint").await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let skipped = Order {
        version: 3,
        ..order.clone()
    };
    assert!(tx.update_order(&skipped).await.is_err());
    let next = Order {
        version: 2,
        ..order
    };
    tx.update_order(&next).await.expect("one version up");
}
