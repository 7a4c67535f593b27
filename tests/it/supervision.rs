//! What a failing actor costs: panics injected into a restaurant, channel or subscription actor
//! (`orderhub_actors::faults`, compiled into test builds only) end exactly what they must, with
//! what the client needs to carry on; a failed restaurant or channel actor is restarted at once
//! by its registry's supervisor, so the next use of the restaurant finds a fresh one ready. The
//! Redis bus's connection actor is restarted by its supervisor, and its channels catch up.

use orderhub_actors::domain::RestaurantId;
use orderhub_actors::faults::{panic_next, Target};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::harness::redis::RedisServer;
use crate::support::{
    eventually, metric_value, sqlite_url, test_settings, Api, Fixture, NodeThread, TestServer,
    PLACE,
};
use crate::ws_client::{WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

const SEQS: &str = "subscription($r: ID!, $after: Int) { \
    restaurantEvents(restaurantId: $r, after: $after) { seq } }";

/// A node that checks the store only once a minute: what these tests see after a failure must
/// come by the live path, not by a periodic catch-up.
fn node() -> &'static TestServer {
    static NODE: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();
    NODE.get_or_init(|| {
        TestServer::start(&sqlite_url("supervision"), &["--catch-up-interval", "60s"])
    })
}

fn restaurant(f: &Fixture) -> RestaurantId {
    RestaurantId::parse(&f.restaurant).expect("restaurant id")
}

/// The next message for `id`: an event's seq, or the error that ended the subscription.
async fn next(client: &mut WsClient, id: &str) -> Result<i64, Value> {
    let message = client.recv().await.json();
    assert_eq!(message["id"], id, "{message}");
    match message["type"].as_str() {
        Some("next") => Ok(message["payload"]["data"]["restaurantEvents"]["seq"]
            .as_i64()
            .expect("seq")),
        _ => Err(message),
    }
}

fn assert_ended_with_last_seq(error: &Value, last: i64) {
    assert_eq!(error["type"], "error", "{error}");
    let extensions = &error["payload"][0]["extensions"];
    assert_eq!(extensions["code"], "UNAVAILABLE", "{error}");
    assert_eq!(extensions["lastSeq"], last, "{error}");
}

/// The command in flight is answered UNAVAILABLE and its transaction rolled back; the actor's
/// supervisor puts a fresh one in its place before any next command, which runs on it, with the
/// next seq and ticket number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_restaurant_actor_fails_its_command_and_nothing_is_half_written() {
    let server = node();
    let f = server.fixture().await;
    // Only this test makes restaurant actors fail on this node.
    let (failures, restarts) = (server.registry.failures(), server.registry.restarts());
    panic_next(Target::Restaurant, &restaurant(&f));
    let input = f.order_input("panics", &[(0, 1)]);
    server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await
        .expect_code("UNAVAILABLE");
    eventually(
        "the supervisor restarts the restaurant actor",
        Duration::from_secs(10),
        async || server.registry.restarts() == restarts + 1,
    )
    .await;
    assert_eq!(server.registry.failures(), failures + 1);
    assert!(
        server.registry.has_actor(&restaurant(&f)),
        "no actor waits for the restaurant's next command"
    );

    let mut kitchen = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    let variables = json!({"r": f.restaurant, "after": 0});
    kitchen.subscribe("k", SEQS, variables).await;
    let placed = server
        .gql(
            Some(&f.customer),
            PLACE,
            json!({"i": f.order_input("after-the-panic", &[(0, 1)])}),
        )
        .await;
    assert_eq!(
        placed.ok().int("placeOrder.number"),
        1,
        "no ticket was used"
    );
    assert_eq!(next(&mut kitchen, "k").await, Ok(1), "no event was written");
    // The same key again: the failed attempt left no trace, so it is placed now.
    let retried = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    assert_eq!(retried.ok().int("placeOrder.number"), 2);
    assert_eq!(server.registry.restarts(), restarts + 1);
}

/// One subscription's actor fails: that subscription ends with UNAVAILABLE and its lastSeq,
/// and resumes from there; another subscription of the same restaurant does not notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_subscription_actor_ends_that_subscription_alone() {
    let server = node();
    let f = server.fixture().await;
    let failed_before = server.channels.failed_subscribers();
    let mut kitchen = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    // The n-th event after the fixture's menu.
    let nth = |n: i64| f.seq + n;
    let variables = json!({"r": f.restaurant, "after": nth(0)});
    // "a" and "b" share a cohort (one execution, two subscription actors); "c" runs apart.
    kitchen.subscribe("a", SEQS, variables.clone()).await;
    kitchen.subscribe("b", SEQS, variables.clone()).await;
    kitchen.subscribe("c", RESTAURANT_EVENTS, variables).await;
    f.place(server, "first").await;
    for _ in 0..3 {
        let message = kitchen.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(
            message["payload"]["data"]["restaurantEvents"]["seq"],
            nth(1)
        );
    }
    panic_next(Target::Subscription, &restaurant(&f));
    f.place(server, "second").await;
    // One ended after seq 1, the two others got seq 2; then a third order reaches the
    // survivors and the resumed one alike.
    let mut ended = Vec::new();
    let mut survived = Vec::new();
    for _ in 0..3 {
        let message = kitchen.recv().await.json();
        let id = message["id"].as_str().expect("id").to_owned();
        match message["type"].as_str() {
            Some("next") => {
                assert_eq!(
                    message["payload"]["data"]["restaurantEvents"]["seq"],
                    nth(2)
                );
                survived.push(id);
            }
            _ => {
                assert_ended_with_last_seq(&message, nth(1));
                ended.push(id);
            }
        }
    }
    assert_eq!(ended.len(), 1, "one ended: {ended:?}, {survived:?}");
    assert_eq!(server.channels.failed_subscribers(), failed_before + 1);
    kitchen
        .subscribe("resumed", SEQS, json!({"r": f.restaurant, "after": nth(1)}))
        .await;
    assert_eq!(next(&mut kitchen, "resumed").await, Ok(nth(2)));
    f.place(server, "third").await;
    let mut thirds = Vec::new();
    for _ in 0..3 {
        let message = kitchen.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(
            message["payload"]["data"]["restaurantEvents"]["seq"],
            nth(3)
        );
        thirds.push(message["id"].as_str().expect("id").to_owned());
    }
    thirds.sort();
    let mut expected = survived;
    expected.push("resumed".to_owned());
    expected.sort();
    assert_eq!(thirds, expected);
}

/// The restaurant's channel fails: its subscriptions end with UNAVAILABLE and their lastSeq (the
/// channel's state is gone, so they do not continue silently), and their clients resume with
/// `after`. The channel's supervisor has started a fresh one meanwhile, which hears the bus:
/// the resumed subscription joins it and is live again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_channel_actor_ends_its_subscriptions_with_last_seq_and_comes_back() {
    let server = node();
    let f = server.fixture().await;
    // Only this test makes channels fail on this node.
    let (failures, restarts) = (
        server.channels.failed_channels(),
        server.channels.restarts(),
    );
    let mut kitchen = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe("k", SEQS, json!({"r": f.restaurant, "after": f.seq}))
        .await;
    f.place(server, "first").await;
    assert_eq!(next(&mut kitchen, "k").await, Ok(f.seq + 1));
    panic_next(Target::Channel, &restaurant(&f));
    f.place(server, "second").await;
    let ended = next(&mut kitchen, "k")
        .await
        .expect_err("the subscription ends");
    assert_ended_with_last_seq(&ended, f.seq + 1);
    eventually(
        "the supervisor restarts the channel",
        Duration::from_secs(10),
        async || server.channels.restarts() == restarts + 1,
    )
    .await;
    assert_eq!(server.channels.failed_channels(), failures + 1);
    assert!(
        server.channels.has_channel(&restaurant(&f)),
        "no channel waits for the resubscription"
    );

    kitchen
        .subscribe(
            "again",
            SEQS,
            json!({"r": f.restaurant, "after": f.seq + 1}),
        )
        .await;
    assert_eq!(next(&mut kitchen, "again").await, Ok(f.seq + 2));
    f.place(server, "third").await;
    assert_eq!(
        next(&mut kitchen, "again").await,
        Ok(f.seq + 3),
        "live again"
    );
    assert_eq!(
        server.channels.restarts(),
        restarts + 1,
        "the channel failed again"
    );
    assert!(server.channels.has_channel(&restaurant(&f)));
}

/// How many connections Redis has subscribed to the restaurant's channel.
async fn bus_subscribers(redis: &RedisServer, restaurant: &str) -> i64 {
    let client = redis::Client::open(redis.url()).expect("Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("orderhub:restaurant:{restaurant}"))
        .query_async(&mut connection)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// Restarts of bus connection actors that failed, in this process (every in-process node
/// records into one registry; only this test makes one fail).
async fn failed_bus_restarts(api: &Api) -> f64 {
    let exposition = api.metrics().await;
    metric_value(
        &exposition,
        "orderhub_bus_restarts_total{reason=\"failure\"}",
    )
    .expect("the bus restart counter")
}

/// Waits (at most 10 s) until `total` failed bus connection actors were restarted, and no more.
async fn wait_for_failed_bus_restarts(api: &Api, total: f64) {
    let what = format!("{total} failed bus connections were restarted");
    eventually(&what, Duration::from_secs(10), async || {
        let restarts = failed_bus_restarts(api).await;
        assert!(restarts <= total, "{restarts} restarts, expected {total}");
        restarts == total
    })
    .await;
}

/// The connection actor of a node's Redis bus panics on an event: its supervisor starts a new
/// one, which subscribes again and tells the channel to catch up. Two nodes share SQLite and
/// Redis; orders go in on one, the kitchen watches the other, whose channels check the store
/// only once a minute: the event the actor died on arrives by that catch-up, the ones placed
/// while it was down or right after by the catch-up or the new connection, each once and in
/// order, and the bus is live again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_bus_connection_is_restarted_and_its_channels_catch_up() {
    let redis = RedisServer::start();
    let (database, redis_url) = (sqlite_url("bus-restart"), redis.url());
    let flags = [
        "--redis-url",
        &redis_url,
        "--catch-up-interval",
        "60s",
        "--shutdown-timeout",
        "5s",
    ];
    let writer = NodeThread::start(test_settings(&database, &flags), || async {});
    let reader = NodeThread::start(test_settings(&database, &flags), || async {});
    let f = writer.api.fixture().await;
    let mut kitchen = WsClient::ready(&reader.api, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe("k", SEQS, json!({"r": f.restaurant, "after": f.seq}))
        .await;
    // The reader's channel is live once Redis has its SUBSCRIBE; once a first event has come
    // through, the catch-up that follows the SUBSCRIBE is behind it too.
    eventually(
        "the reader's channel has subscribed on Redis",
        Duration::from_secs(10),
        async || bus_subscribers(&redis, &f.restaurant).await >= 1,
    )
    .await;
    f.place(&writer.api, "live").await;
    assert_eq!(next(&mut kitchen, "k").await, Ok(f.seq + 1));
    let failures = failed_bus_restarts(&reader.api).await;

    // Alone: nothing but the new connection's catch-up can bring it.
    let started = Instant::now();
    panic_next(Target::BusConnection, &restaurant(&f));
    f.place(&writer.api, "the-actor-dies-on-it").await;
    assert_eq!(next(&mut kitchen, "k").await, Ok(f.seq + 2));
    eprintln!(
        "the event the actor died on arrived after {:?}",
        started.elapsed()
    );
    wait_for_failed_bus_restarts(&reader.api, failures + 1.0).await;

    // Again, with more orders right behind it: some published while no connection listens.
    panic_next(Target::BusConnection, &restaurant(&f));
    for i in 0..4 {
        f.place(&writer.api, &format!("right-after-{i}")).await;
    }
    let mut seqs = Vec::new();
    for _ in 0..4 {
        seqs.push(next(&mut kitchen, "k").await);
    }
    assert_eq!(
        seqs,
        [Ok(f.seq + 3), Ok(f.seq + 4), Ok(f.seq + 5), Ok(f.seq + 6)]
    );
    wait_for_failed_bus_restarts(&reader.api, failures + 2.0).await;

    // Live again, and nothing came twice: the next message is the next event.
    f.place(&writer.api, "live-again").await;
    assert_eq!(next(&mut kitchen, "k").await, Ok(f.seq + 7));
    eprintln!("both restarts and catch-ups took {:?}", started.elapsed());

    kitchen.close().await;
    writer.stop().await;
    reader.stop().await;
}
