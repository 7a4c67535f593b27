//! `ORDERHUB_CATCH_UP_INTERVAL`: how soon a channel finds an event whose publication it never
//! got. Two nodes share one database but not a bus, so an order placed on the writer is never
//! published to the watcher: only the watcher's own look at the store can bring it.

use serde_json::Value;
use std::time::{Duration, Instant};

use crate::support::{sqlite_url, Fixture, TestServer};
use crate::ws_client::{Incoming, WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

/// A kitchen on `watcher` whose subscription is proven live: it has received an event placed
/// on its own node. Returns the client and that event's seq.
async fn live_kitchen(watcher: &TestServer, f: &Fixture) -> (WsClient, i64) {
    let mut kitchen = WsClient::ready(watcher, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe(
            "k",
            RESTAURANT_EVENTS,
            serde_json::json!({"r": f.restaurant}),
        )
        .await;
    // The subscription has no `after`, so an order placed before it joined is not sent: place
    // warm-up orders until one arrives.
    for attempt in 0..40 {
        f.place(watcher, &format!("warm-up-{attempt}")).await;
        if let Some(message) = kitchen.recv_within(Duration::from_millis(500)).await {
            return (kitchen, seq(message));
        }
    }
    panic!("the kitchen never saw a warm-up order");
}

fn seq(message: Incoming) -> i64 {
    let message: Value = message.json();
    message["payload"]["data"]["restaurantEvents"]["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("an event with a seq: {message}"))
}

/// Two nodes on one SQLite file, each with its own in-process bus; the watcher checks the store
/// every `interval`.
fn nodes(name: &str, interval: &str) -> (TestServer, TestServer) {
    let url = sqlite_url(name);
    let writer = TestServer::start(&url, &[]);
    let watcher = TestServer::start(&url, &["--catch-up-interval", interval]);
    (writer, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_minute_a_lost_publication_waits_for_the_next_live_event() {
    let (writer, watcher) = nodes("catch-up-minute", "60s");
    let f = watcher.fixture().await;
    let (mut kitchen, first) = live_kitchen(&watcher, &f).await;

    f.place(&writer, "lost").await;
    // Four times the 2 s default: with the interval ignored, the order would be here by now.
    let early = kitchen.recv_within(Duration::from_secs(8)).await;
    assert!(
        early.is_none(),
        "the lost event was filled before the minute was up: {early:?}"
    );

    // The next event on the watcher's own bus shows the gap, which is filled at once.
    f.place(&watcher, "live").await;
    let next = seq(kitchen.recv().await);
    let after = seq(kitchen.recv().await);
    assert_eq!((next, after), (first + 1, first + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_200_ms_a_lost_publication_arrives_within_a_second() {
    let (writer, watcher) = nodes("catch-up-fast", "200ms");
    let f = watcher.fixture().await;
    let (mut kitchen, first) = live_kitchen(&watcher, &f).await;

    f.place(&writer, "lost").await;
    let placed = Instant::now();
    let message = kitchen
        .recv_within(Duration::from_secs(5))
        .await
        .expect("the lost event arrives");
    let waited = placed.elapsed();
    assert_eq!(seq(message), first + 1);
    assert!(
        waited < Duration::from_millis(1500),
        "the lost event took {waited:?} at a 200 ms catch-up interval"
    );
}
