//! Several nodes on one database, and the life cycle of restaurant actors.

use async_graphql::futures_util::future::join_all;
use orderhub_actors::shutdown::ShutdownSignal;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{
    eventually, mariadb_url, postgres_url, sqlite_url, TestServer, ADVANCE, PLACE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_never_corrupt_seq_number_or_version() {
    let url = postgres_url("orderhub_two_nodes");
    two_nodes_share_restaurants(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_mariadb_never_corrupt_seq_number_or_version() {
    let url = mariadb_url("orderhub_two_nodes");
    // The second node names the same server `mariadb://`, which is the same protocol.
    let other = url.replacen("mysql://", "mariadb://", 1);
    two_nodes_on(&url, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_sqlite_never_corrupt_seq_number_or_version() {
    let url = sqlite_url("two-nodes");
    two_nodes_share_restaurants(&url).await;
}

/// Each node has its own actor for the restaurant, so only the database can keep their
/// writes in order.
async fn two_nodes_share_restaurants(url: &str) {
    two_nodes_on(url, url).await;
}

/// `two_nodes_share_restaurants`, the nodes reaching the database by `a_url` and `b_url`.
async fn two_nodes_on(a_url: &str, b_url: &str) {
    let a = TestServer::start(a_url, &[]);
    let b = TestServer::start(b_url, &[]);
    let f = a.fixture().await;
    const ORDERS_PER_NODE: usize = 15;
    let places = (0..2 * ORDERS_PER_NODE).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let input = f.order_input(&format!("node-order-{i}"), &[(0, 1)]);
        let token = f.customer.clone();
        async move { node.gql(Some(&token), PLACE, json!({"i": input})).await }
    });
    let placed = join_all(places).await;
    let numbers: BTreeSet<i64> = placed
        .iter()
        .map(|p| p.ok().int("placeOrder.number"))
        .collect();
    let expected: BTreeSet<i64> = (1..=2 * ORDERS_PER_NODE as i64).collect();
    assert_eq!(numbers, expected, "ticket numbers are unique and dense");

    let order = placed[0].str("placeOrder.id");
    let advances = (0..10).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let token = f.staff.clone();
        let order = order.clone();
        async move {
            node.gql(
                Some(&token),
                ADVANCE,
                json!({"o": order, "to": "ACCEPTED", "v": 1}),
            )
            .await
        }
    });
    let results = join_all(advances).await;
    assert_eq!(
        results.iter().filter(|r| r.code().is_none()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| r.code().is_none() || r.code() == Some("CONFLICT")));

    // One key from both nodes at once: the one that waited for the lock must see the order
    // the other committed meanwhile, not the snapshot it started with.
    let input = f.order_input("both-nodes-one-key", &[(0, 2)]);
    let retries = (0..8).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let token = f.customer.clone();
        let input = input.clone();
        async move { node.gql(Some(&token), PLACE, json!({"i": input})).await }
    });
    let ids: BTreeSet<String> = join_all(retries)
        .await
        .iter()
        .map(|r| r.ok().str("placeOrder.id"))
        .collect();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");

    let store = orderhub::store::connect(a_url, None, ShutdownSignal::new().shutdown())
        .await
        .expect("store");
    let restaurant = orderhub_actors::domain::RestaurantId::parse(&f.restaurant).expect("id");
    let seqs: Vec<i64> = store
        .events(&restaurant, 0, 1000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    // The fixture's menu, the orders, one advance, the order of the shared key.
    let expected: Vec<i64> = (1..=f.seq + 2 * ORDERS_PER_NODE as i64 + 2).collect();
    assert_eq!(seqs, expected, "one event per change, seq without gaps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_restaurant_actors_stop_and_come_back() {
    let server = TestServer::start(&sqlite_url("idle"), &["--actor-idle", "200ms"]);
    let f = server.fixture().await;
    f.place(&server, "before-idle").await;
    eventually(
        "the idle actor is stopped",
        Duration::from_secs(10),
        async || server.registry.active() == 0,
    )
    .await;
    let again = server
        .gql(
            Some(&f.customer),
            PLACE,
            json!({"i": f.order_input("after-idle", &[(1, 1)])}),
        )
        .await;
    assert_eq!(again.ok().int("placeOrder.number"), 2);
    assert_eq!(server.registry.active(), 1);
}
