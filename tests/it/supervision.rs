//! What a failing actor costs: panics injected into a restaurant, channel or subscription actor
//! (`orderhub_actors::faults`, compiled into test builds only) end exactly what they must, with
//! what the client needs to carry on, and the next use of the restaurant gets a fresh actor.

use orderhub_actors::domain::RestaurantId;
use orderhub_actors::faults::{panic_next, Target};
use serde_json::{json, Value};

use crate::support::{sqlite_url, Fixture, TestServer, PLACE};
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

/// The command in flight is answered UNAVAILABLE and its transaction rolled back; the next
/// command of the restaurant runs on a fresh actor, with the next seq and ticket number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_restaurant_actor_fails_its_command_and_nothing_is_half_written() {
    let server = node();
    let f = server.fixture().await;
    let failures = server.registry.failures();
    panic_next(Target::Restaurant, &restaurant(&f));
    let input = f.order_input("panics", &[(0, 1)]);
    server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await
        .expect_code("UNAVAILABLE");
    assert_eq!(server.registry.failures(), failures + 1);

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
}

/// One subscription's actor fails: that subscription ends with UNAVAILABLE and its lastSeq,
/// and resumes from there; another subscription of the same restaurant does not notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_subscription_actor_ends_that_subscription_alone() {
    let server = node();
    let f = server.fixture().await;
    let failed_before = server.channels.failed_subscribers();
    let mut kitchen = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    let variables = json!({"r": f.restaurant, "after": 0});
    // "a" and "b" share a cohort (one execution, two subscription actors); "c" runs apart.
    kitchen.subscribe("a", SEQS, variables.clone()).await;
    kitchen.subscribe("b", SEQS, variables.clone()).await;
    kitchen.subscribe("c", RESTAURANT_EVENTS, variables).await;
    f.place(server, "first").await;
    for _ in 0..3 {
        let message = kitchen.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["payload"]["data"]["restaurantEvents"]["seq"], 1);
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
                assert_eq!(message["payload"]["data"]["restaurantEvents"]["seq"], 2);
                survived.push(id);
            }
            _ => {
                assert_ended_with_last_seq(&message, 1);
                ended.push(id);
            }
        }
    }
    assert_eq!(ended.len(), 1, "one ended: {ended:?}, {survived:?}");
    assert_eq!(server.channels.failed_subscribers(), failed_before + 1);
    kitchen
        .subscribe("resumed", SEQS, json!({"r": f.restaurant, "after": 1}))
        .await;
    assert_eq!(next(&mut kitchen, "resumed").await, Ok(2));
    f.place(server, "third").await;
    let mut thirds = Vec::new();
    for _ in 0..3 {
        let message = kitchen.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["payload"]["data"]["restaurantEvents"]["seq"], 3);
        thirds.push(message["id"].as_str().expect("id").to_owned());
    }
    thirds.sort();
    let mut expected = survived;
    expected.push("resumed".to_owned());
    expected.sort();
    assert_eq!(thirds, expected);
}

/// The restaurant's channel fails: its subscriptions end with UNAVAILABLE and their lastSeq (the
/// channel's state is gone, so they do not continue silently), their clients resume with
/// `after`, and the next subscription starts a fresh channel that hears the bus again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_channel_actor_ends_its_subscriptions_with_last_seq_and_comes_back() {
    let server = node();
    let f = server.fixture().await;
    let mut kitchen = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe("k", SEQS, json!({"r": f.restaurant, "after": 0}))
        .await;
    f.place(server, "first").await;
    assert_eq!(next(&mut kitchen, "k").await, Ok(1));
    panic_next(Target::Channel, &restaurant(&f));
    f.place(server, "second").await;
    let ended = next(&mut kitchen, "k")
        .await
        .expect_err("the subscription ends");
    assert_ended_with_last_seq(&ended, 1);

    kitchen
        .subscribe("again", SEQS, json!({"r": f.restaurant, "after": 1}))
        .await;
    assert_eq!(next(&mut kitchen, "again").await, Ok(2));
    f.place(server, "third").await;
    assert_eq!(next(&mut kitchen, "again").await, Ok(3), "live again");
}
