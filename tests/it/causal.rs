//! Causal reads: what a client has seen (an event's seq, a page's seq), its next read reflects,
//! even when that read is served by a replica 1 s behind and someone else wrote.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

use orderhub_actors::domain::Role;

use crate::support::{
    eventually, mariadb_replica, metric_value, on_every_backend, replica, Fixture, TestServer,
    PLACE,
};
use crate::ws_client::{WsClient, TRANSPORT_WS};

on_every_backend!(
    a_page_its_seq_and_the_events_after_it_hold_every_order_exactly_once,
    at_least_seq_past_the_newest_event_is_bad_user_input
);

const PAGE: &str =
    "query($r: ID!, $s: Int) { orders(restaurantId: $r, first: 100, atLeastSeq: $s) \
    { edges { node { id } } seq } }";
const PLACED: &str =
    "subscription($r: ID!, $after: Int) { restaurantEvents(restaurantId: $r, after: $after) \
    { seq ... on OrderPlaced { order { id } } } }";

/// A customer's phone and a hall tablet: two clients, so the tablet's reads are not
/// read-your-writes of the phone's orders.
fn phone_and_tablet(server: &TestServer, f: &Fixture, name: &str) -> (String, String) {
    let phone = server.token_for(
        &format!("phone-{name}"),
        Role::Customer,
        Some(&f.restaurant),
        Some(&f.tables[0]),
    );
    let tablet = server.token_for(
        &format!("tablet-{name}"),
        Role::Staff,
        Some(&f.restaurant),
        None,
    );
    (phone, tablet)
}

async fn place(server: &TestServer, f: &Fixture, phone: &str, key: &str) -> String {
    server
        .gql(
            Some(phone),
            PLACE,
            json!({"i": f.order_input(key, &[(0, 1)])}),
        )
        .await
        .ok()
        .str("placeOrder.id")
}

/// The next `OrderPlaced` on the socket: (seq, order id).
async fn next_placed(ws: &mut WsClient) -> (i64, String) {
    loop {
        let payload: Value = ws.next_result("e").await;
        let event = &payload["data"]["restaurantEvents"];
        if let Some(id) = event["order"]["id"].as_str() {
            return (event["seq"].as_i64().expect("seq"), id.to_owned());
        }
    }
}

/// The kitchen display's start: a page of orders, then the events after the page's seq, while
/// orders keep coming. Together they hold each order once: none missed, none twice.
async fn a_page_its_seq_and_the_events_after_it_hold_every_order_exactly_once(
    server: &'static TestServer,
) {
    let f = server.fixture().await;
    let (phone, tablet) = phone_and_tablet(server, &f, "snapshot");
    let before = place(server, &f, &phone, "snapshot-before").await;
    // With a replica, the page below comes from it, a second behind the writer: let it have
    // the restaurant first, so that the page holds orders and a seq of its own.
    eventually(
        "the tablet's page holds the first order",
        Duration::from_secs(10),
        async || {
            let page = server
                .gql(Some(&tablet), PAGE, json!({"r": f.restaurant}))
                .await;
            page.at("orders.edges.0.node.id").as_str() == Some(before.as_str())
        },
    )
    .await;
    let placing = {
        let (f, phone) = (f.clone(), phone.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..30 {
                ids.push(place(server, &f, &phone, &format!("snapshot-{n}")).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let page = server
        .gql(Some(&tablet), PAGE, json!({"r": f.restaurant}))
        .await;
    let seq = page.ok().int("orders.seq");
    let in_page: Vec<String> = page
        .at("orders.edges")
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["id"].as_str().expect("id").to_owned())
        .collect();
    let mut ws = WsClient::ready(server, TRANSPORT_WS, &tablet).await;
    ws.subscribe("e", PLACED, json!({"r": f.restaurant, "after": seq}))
        .await;
    let placed = placing.await.expect("placing");
    let mut all: HashSet<String> = placed.iter().cloned().collect();
    all.insert(before);
    let mut seen: Vec<String> = in_page.clone();
    let page_ids: HashSet<&String> = in_page.iter().collect();
    while seen.iter().collect::<HashSet<_>>().len() < all.len() {
        let (_, id) = next_placed(&mut ws).await;
        assert!(
            !page_ids.contains(&id),
            "order {id} is in the page (seq {seq}) and among the events after it"
        );
        seen.push(id);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an order came twice");
    assert_eq!(
        unique,
        all.iter().collect::<HashSet<_>>(),
        "the page and the events hold exactly the orders placed"
    );
}

async fn at_least_seq_past_the_newest_event_is_bad_user_input(server: &'static TestServer) {
    let f = server.fixture().await;
    let order = f.place(server, "past-newest").await;
    let newest = server
        .gql(Some(&f.staff), PAGE, json!({"r": f.restaurant}))
        .await
        .ok()
        .int("orders.seq");
    assert!(newest > 0, "placing an order is an event");
    let reads = [
        (
            "order",
            "query($o: ID!, $s: Int) { order(id: $o, atLeastSeq: $s) { id } }",
        ),
        (
            "restaurant",
            "query($r: ID!, $s: Int) { restaurant(id: $r, atLeastSeq: $s) { id } }",
        ),
        ("orders", PAGE),
    ];
    for token in [&f.staff, &f.admin] {
        for (field, query) in reads {
            let vars = |s: i64| json!({"o": order, "r": f.restaurant, "s": s});
            let ok = server.gql(Some(token), query, vars(newest)).await;
            assert!(!ok.ok().at(field).is_null(), "{field} at the newest seq");
            server
                .gql(Some(token), query, vars(newest + 1))
                .await
                .expect_code("BAD_USER_INPUT");
            server
                .gql(Some(token), query, vars(-1))
                .await
                .expect_code("BAD_USER_INPUT");
        }
    }
}

/// A hall tablet sees a customer's `OrderPlaced` and reads the order at once: with the event's
/// seq as `atLeastSeq` it is there every time, though the replica applies it a second late;
/// without, the same read on the replica misses it.
async fn a_client_reads_what_it_has_seen(server: &'static TestServer) {
    let f = server.fixture().await;
    let (phone, tablet) = phone_and_tablet(server, &f, "seen");
    let seq = server
        .gql(Some(&tablet), PAGE, json!({"r": f.restaurant}))
        .await
        .ok()
        .int("orders.seq");
    let mut ws = WsClient::ready(server, TRANSPORT_WS, &tablet).await;
    ws.subscribe("e", PLACED, json!({"r": f.restaurant, "after": seq}))
        .await;
    let mut misses_without = 0;
    for round in 0..200 {
        let placed = place(server, &f, &phone, &format!("seen-{round}")).await;
        let (seq, id) = next_placed(&mut ws).await;
        assert_eq!(
            id, placed,
            "round {round}: the event of the order just placed"
        );
        let read = server
            .gql(
                Some(&tablet),
                "query($o: ID!, $s: Int) { causal: order(id: $o, atLeastSeq: $s) { id } \
                 plain: order(id: $o) { id } }",
                json!({"o": id, "s": seq}),
            )
            .await;
        assert_eq!(
            read.ok().str("causal.id"),
            id,
            "round {round}: with atLeastSeq {seq}"
        );
        if read.at("plain").is_null() {
            misses_without += 1;
        }
    }
    assert!(
        misses_without > 0,
        "without atLeastSeq a read on the 1 s replica misses a fresh order (0 of 200 did)"
    );
    // Once the replica has applied the event, the same causal read is the replica's.
    place(server, &f, &phone, "seen-last").await;
    let (seq, id) = next_placed(&mut ws).await;
    let replica_reads = || async {
        metric_value(
            &server.metrics().await,
            "orderhub_db_reads_total{pool=\"replica\"}",
        )
        .unwrap_or(0.0)
    };
    eventually(
        "a causal read goes to the replica once it has the event",
        Duration::from_secs(10),
        async || {
            let before = replica_reads().await;
            let read = server
                .gql(
                    Some(&tablet),
                    "query($o: ID!, $s: Int) { order(id: $o, atLeastSeq: $s) { id } }",
                    json!({"o": id, "s": seq}),
                )
                .await;
            assert_eq!(read.ok().str("order.id"), id);
            replica_reads().await > before
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_what_it_has_seen_on_a_postgres_replica() {
    a_client_reads_what_it_has_seen(replica()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_what_it_has_seen_on_a_mariadb_replica() {
    a_client_reads_what_it_has_seen(mariadb_replica()).await;
}
