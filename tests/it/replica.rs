//! A replica 1 s behind, on PostgreSQL and on MariaDB: reads scale onto it, and nobody sees
//! their own write go missing.

use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::wait_until;
use crate::support::{
    eventually, lagging_mariadb_replica, lagging_replica, mariadb_replica, mariadb_replicated_urls,
    mariadb_server, postgres_server, replica, replicated_urls, TestServer, PLACE,
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

/// MariaDB applies each transaction a second after the primary committed it
/// (`MASTER_DELAY=1`); the delay counts from the commit's second, so the write is made just
/// after a second began.
#[test]
fn the_test_mariadb_replica_really_lags() {
    let db = "orderhub_lag_probe";
    let primary = mariadb_server();
    let replica = lagging_mariadb_replica();
    let (_, _) = mariadb_replicated_urls(db);
    primary.sql(db, "CREATE TABLE IF NOT EXISTS probe (n BIGINT)");
    let table_there = || {
        replica.sql(
            "",
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'orderhub_lag_probe' AND TABLE_NAME = 'probe'",
        ) == "1"
    };
    wait_until(
        "the probe table is on the replica",
        Duration::from_secs(10),
        table_there,
    );
    wait_until("a second has just begun", Duration::from_secs(2), || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|t| t.subsec_millis() < 50)
    });
    let marker = std::process::id().to_string();
    primary.sql(db, &format!("INSERT INTO probe VALUES ({marker})"));
    let written = Instant::now();
    let count = || {
        replica.sql(
            db,
            &format!("SELECT COUNT(*) FROM probe WHERE n = {marker}"),
        )
    };
    // Nothing may show within 500 ms: an absence is checked after a duration.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(written.elapsed()));
    assert_eq!(
        count(),
        "0",
        "visible on the replica 500 ms after the write"
    );
    wait_until(
        "the write is visible on the replica, 2 s after it at the latest",
        Duration::from_millis(2000).saturating_sub(written.elapsed()),
        || count() == "1",
    );
}

/// A client that places an order and reads it back at once sees it, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_always_reads_its_own_writes() {
    let server = replica();
    let db = database(server);
    let table_there =
        || lagging_replica().psql(&db, "SELECT to_regclass('orders') IS NOT NULL") == "t";
    wait_until(
        "the schema is on the replica",
        Duration::from_secs(10),
        table_there,
    );
    reads_its_own_writes(server, move |order| {
        lagging_replica().psql(
            &db,
            &format!("SELECT count(*) FROM orders WHERE id = '{order}'"),
        ) == "1"
    })
    .await;
}

/// The same on MariaDB, with GTIDs instead of WAL positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_always_reads_its_own_writes_on_mariadb() {
    let server = mariadb_replica();
    let db = database(server);
    let tables = format!(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'orders'"
    );
    let table_there = || lagging_mariadb_replica().sql("", &tables) == "1";
    wait_until(
        "the schema is on the replica",
        Duration::from_secs(10),
        table_there,
    );
    reads_its_own_writes(server, move |order| {
        lagging_mariadb_replica().sql(
            &db,
            &format!("SELECT COUNT(*) FROM orders WHERE id = '{order}'"),
        ) == "1"
    })
    .await;
}

fn database(server: &TestServer) -> String {
    server
        .database_url
        .rsplit('/')
        .next()
        .expect("a database")
        .to_owned()
}

/// 200 rounds of placing an order and reading it back at once: through orderhub, which routes
/// the read, it is there every time; straight from the replica (`on_replica`: whether the
/// order is there), it is missing at least once, or the test would prove nothing.
async fn reads_its_own_writes(
    server: &'static TestServer,
    on_replica: impl Fn(&str) -> bool + Send + Sync + 'static,
) {
    let on_replica = std::sync::Arc::new(on_replica);
    let f = server.fixture().await;
    let mut missed_on_replica = 0;
    for attempt in 0..200 {
        let input = f.order_input(&format!("ryw-{attempt}"), &[(0, 1)]);
        let placed = server.gql(Some(&f.staff), PLACE, json!({"i": input})).await;
        let order = placed.ok().str("placeOrder.id");
        let direct = {
            let (on_replica, order) = (on_replica.clone(), order.clone());
            tokio::task::spawn_blocking(move || on_replica(&order))
        };
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
        if !direct.await.expect("the replica was read") {
            missed_on_replica += 1;
        }
    }
    assert!(
        missed_on_replica > 0,
        "reading the replica directly never missed a fresh write: it does not lag"
    );
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
    let db = database(server);
    other_clients_read_from(server, move |restaurant| {
        let replica = lagging_replica();
        let table_there = "SELECT to_regclass('menu_items') IS NOT NULL";
        let menu_there =
            format!("SELECT count(*) FROM menu_items WHERE restaurant_id = '{restaurant}'");
        replica.psql(&db, table_there) == "t" && replica.psql(&db, &menu_there) == "3"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_read_from_the_mariadb_replica() {
    let server: &TestServer = mariadb_replica();
    let db = database(server);
    other_clients_read_from(server, move |restaurant| {
        let replica = lagging_mariadb_replica();
        let table_there = format!(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'menu_items'"
        );
        let menu_there =
            format!("SELECT COUNT(*) FROM menu_items WHERE restaurant_id = '{restaurant}'");
        replica.sql("", &table_there) == "1" && replica.sql(&db, &menu_there) == "3"
    })
    .await;
    // The replica holds every transaction back for a second: the lag shows it.
    eventually(
        "the lag gauge shows the replica's delay",
        Duration::from_secs(10),
        async || {
            let metrics = server.metrics().await;
            crate::support::metric_value(&metrics, "orderhub_db_replica_lag_seconds")
                .is_some_and(|lag| lag >= 0.5)
        },
    )
    .await;
}

/// `menu_on_replica(restaurant)`: whether the replica has that restaurant's menu.
async fn other_clients_read_from(
    server: &'static TestServer,
    menu_on_replica: impl Fn(&str) -> bool + Send + Sync + 'static,
) {
    let menu_on_replica = std::sync::Arc::new(menu_on_replica);
    let f = server.fixture().await;
    let reader = server.token_for(
        "menu-board",
        orderhub_actors::domain::Role::Staff,
        Some(&f.restaurant),
        None,
    );
    // The new restaurant reaches the replica a second after it was written (and, on a fresh
    // database, the schema too).
    eventually(
        "the replica has the new restaurant's menu",
        Duration::from_secs(10),
        async || {
            let (check, restaurant) = (menu_on_replica.clone(), f.restaurant.clone());
            tokio::task::spawn_blocking(move || check(&restaurant))
                .await
                .expect("the replica was read")
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
