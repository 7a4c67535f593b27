//! A replica 1 s behind: reads scale onto it, and nobody sees their own write go missing.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::harness::wait_until;
use crate::support::{
    eventually, lagging_replica, postgres_server, replica, replicated_urls, TestServer, PLACE,
};

#[test]
fn the_test_replica_really_lags() {
    let primary = postgres_server();
    let replica = lagging_replica();
    let (_, _) = replicated_urls("orderhub_lag_probe");
    primary.psql(
        "orderhub_lag_probe",
        "CREATE TABLE IF NOT EXISTS probe (n int)",
    );
    let marker = std::process::id().to_string();
    primary.psql(
        "orderhub_lag_probe",
        &format!("INSERT INTO probe VALUES ({marker})"),
    );
    let written = Instant::now();
    let count = || {
        replica.psql(
            "orderhub_lag_probe",
            &format!("SELECT count(*) FROM probe WHERE n = {marker}"),
        )
    };
    // Nothing may show within 200 ms: an absence is checked after a duration.
    std::thread::sleep(Duration::from_millis(200).saturating_sub(written.elapsed()));
    // The table itself may not have reached the replica yet either.
    let table_there = || {
        replica.psql(
            "orderhub_lag_probe",
            "SELECT to_regclass('probe') IS NOT NULL",
        ) == "t"
    };
    let early = if table_there() {
        count()
    } else {
        "0".to_owned()
    };
    assert_eq!(early, "0", "visible on the replica 200 ms after the write");
    wait_until(
        "the write is visible on the replica, 1.5 s after it at the latest",
        Duration::from_millis(1500).saturating_sub(written.elapsed()),
        || table_there() && count() == "1",
    );
}

/// A client that places an order and reads it back at once sees it, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_always_reads_its_own_writes() {
    let server = replica();
    let f = server.fixture().await;
    for attempt in 0..200 {
        let input = f.order_input(&format!("ryw-{attempt}"), &[(0, 1)]);
        let placed = server.gql(Some(&f.staff), PLACE, json!({"i": input})).await;
        let order = placed.ok().str("placeOrder.id");
        let read = server
            .gql(
                Some(&f.staff),
                "query($o: ID!, $r: ID!) { order(id: $o) { id } orders(restaurantId: $r, first: 1) { edges { node { id } } } }",
                json!({"o": order, "r": f.restaurant}),
            )
            .await;
        assert_eq!(
            read.ok().str("order.id"),
            order,
            "attempt {attempt}: order(id)"
        );
        assert_eq!(
            read.str("orders.edges.0.node.id"),
            order,
            "attempt {attempt}: orders"
        );
    }
}

fn replica_reads(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|line| line.starts_with("orderhub_db_reads_total{pool=\"replica\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Reads by clients that did not just write go to the replica; they may be up to its lag old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_read_from_the_replica() {
    let server: &TestServer = replica();
    let f = server.fixture().await;
    let reader = server.token_for(
        "menu-board",
        orderhub_actors::domain::Role::Staff,
        Some(&f.restaurant),
        None,
    );
    // The new restaurant reaches the replica a second after it was written (and, on a fresh
    // database, the schema too).
    let db = server.database_url.rsplit('/').next().expect("a database");
    let table_there = "SELECT to_regclass('menu_items') IS NOT NULL";
    let menu_there = format!(
        "SELECT count(*) FROM menu_items WHERE restaurant_id = '{}'",
        f.restaurant
    );
    eventually(
        "the replica has the new restaurant's menu",
        Duration::from_secs(10),
        async || {
            let replica = lagging_replica();
            replica.psql(db, table_there) == "t" && replica.psql(db, &menu_there) == "3"
        },
    )
    .await;
    let metrics = || async {
        server
            .http()
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = replica_reads(&metrics().await);
    let menu = server
        .gql(
            Some(&reader),
            "query($r: ID!) { restaurant(id: $r) { menu { name } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(
        menu.ok().at("restaurant.menu").as_array().map(Vec::len),
        Some(3)
    );
    let after = replica_reads(&metrics().await);
    assert!(
        after >= before + 2,
        "the restaurant and its menu were read from the replica ({before} -> {after})"
    );
    assert!(metrics().await.contains("orderhub_db_replica_lag_seconds"));
}
