//! Subscriptions over WebSocket: order, resume, authorization, the protocol's close codes,
//! slow clients.

use async_graphql::futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::Duration;

use crate::support::{
    eventually, metric_value, on_every_backend, sqlite, sqlite_url, Api, Fixture, NodeProcess,
    TestServer, PLACE, SECRET,
};
use crate::ws_client::{
    Incoming, WsClient, LEGACY, ORDER_UPDATED, RESTAURANT_EVENTS, TRANSPORT_WS,
};

on_every_backend!(
    events_arrive_in_seq_order_without_gaps,
    resuming_with_after_misses_nothing,
    resuming_past_the_newest_event_is_history_gone_with_the_newest_seq
);

/// Places `count` orders from 4 concurrent writers.
pub async fn place_orders(server: &Api, f: &Fixture, prefix: &str, count: usize) {
    let writers = (0..4).map(|writer| async move {
        for i in (writer..count).step_by(4) {
            let input = f.order_input(&format!("{prefix}-{i}"), &[(0, 1)]);
            server
                .gql(Some(&f.customer), PLACE, json!({"i": input}))
                .await
                .ok();
        }
    });
    join_all(writers).await;
}

/// Places `count` orders at a steady 250 a second (more than a busy evening), rather than as
/// fast as the machine allows: for tests about subscribers, not about saturation.
pub async fn place_orders_steadily(api: &Api, f: &Fixture, prefix: &str, count: usize) {
    let mut pace = tokio::time::interval(Duration::from_millis(4));
    let mut placing = Vec::with_capacity(count);
    for i in 0..count {
        pace.tick().await;
        let input = f.order_input(&format!("{prefix}-{i}"), &[(0, 1)]);
        let token = f.customer.clone();
        let api = Api::at(&api.base);
        placing.push(tokio::spawn(async move {
            api.gql(Some(&token), PLACE, json!({"i": input}))
                .await
                .ok()
                .clone()
        }));
    }
    for placed in placing {
        placed.await.expect("placed");
    }
}

/// Subscriptions without `after` are live once their channel has joined: places warm-up orders
/// on `server` until every client has had one, however busy the machine is (at most 40, each
/// given half a second per client). Returns how many were placed and the seq of the warm-up
/// each client had last; later events follow it.
pub async fn warm_up(server: &Api, f: &Fixture, clients: &mut [WsClient]) -> (i64, Vec<i64>) {
    for placed in 1..=40 {
        f.place(server, &format!("warm-up-{placed}")).await;
        let mut firsts = Vec::new();
        for client in clients.iter_mut() {
            if let Some(Incoming::Json(message)) =
                client.recv_within(Duration::from_millis(500)).await
            {
                let seq = message["payload"]["data"]["restaurantEvents"]["seq"].as_i64();
                firsts.push(seq.unwrap_or_else(|| panic!("not an event: {message}")));
            }
        }
        if firsts.len() == clients.len() {
            return (placed, firsts);
        }
    }
    panic!("not every subscriber had one of 40 warm-up orders");
}

/// Reads `count` events of subscription `id` and returns their seqs.
pub async fn seqs(client: &mut WsClient, id: &str, count: usize) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(count);
    for _ in 0..count {
        let payload = client.next_result(id).await;
        assert!(payload.get("errors").is_none(), "{payload}");
        seqs.push(
            payload["data"]["restaurantEvents"]["seq"]
                .as_i64()
                .expect("seq"),
        );
    }
    seqs
}

async fn events_arrive_in_seq_order_without_gaps(server: &'static TestServer) {
    let f = server.fixture().await;
    let mut kitchen = Vec::new();
    for protocol in [TRANSPORT_WS, TRANSPORT_WS, LEGACY] {
        let mut client = WsClient::ready(server, protocol, &f.staff).await;
        client
            .subscribe("k", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
            .await;
        kitchen.push(client);
    }
    let (warm_ups, first) = warm_up(server, &f, &mut kitchen).await;
    // Each client then gets every later event, from its first one on.
    let last = f.seq + warm_ups + 40;
    place_orders(server, &f, "order", 40).await;
    for (client, first) in kitchen.iter_mut().zip(first) {
        let expected: Vec<i64> = (first + 1..=last).collect();
        assert_eq!(seqs(client, "k", expected.len()).await, expected);
    }
    // The payload carries what the subscriber selected.
    let order = f.place(server, "order-last").await;
    for client in &mut kitchen {
        let payload = client.next_result("k").await;
        assert_eq!(
            payload["data"]["restaurantEvents"]["__typename"],
            "OrderPlaced"
        );
        assert_eq!(
            payload["data"]["restaurantEvents"]["order"]["id"],
            order.as_str()
        );
    }
}

async fn resuming_with_after_misses_nothing(server: &'static TestServer) {
    let f = server.fixture().await;
    let mut client = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    // From the start: the first orders reach it whether its channel has joined yet or not.
    // The n-th event after the fixture's menu.
    let nth = |n: i64| f.seq + n;
    client
        .subscribe(
            "a",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": nth(0)}),
        )
        .await;
    place_orders(server, &f, "before", 5).await;
    assert_eq!(
        seqs(&mut client, "a", 5).await,
        (1..=5).map(nth).collect::<Vec<_>>()
    );
    client.close().await;

    place_orders(server, &f, "while-away", 6).await;
    let mut resumed = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    resumed
        .subscribe(
            "b",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": nth(5)}),
        )
        .await;
    assert_eq!(
        seqs(&mut resumed, "b", 6).await,
        (6..=11).map(nth).collect::<Vec<_>>()
    );
    place_orders(server, &f, "after-resume", 2).await;
    assert_eq!(seqs(&mut resumed, "b", 2).await, [nth(12), nth(13)]);

    // From the beginning (the menu's events first), and from the very end.
    let mut replay = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    replay
        .subscribe(
            "c",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 0}),
        )
        .await;
    replay
        .subscribe(
            "d",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": nth(13)}),
        )
        .await;
    let all: Vec<i64> = (1..=nth(13)).collect();
    assert_eq!(seqs(&mut replay, "c", all.len()).await, all);
    f.place(server, "one-more").await;
    let mut got = vec![];
    for _ in 0..2 {
        let message = replay.recv().await.json();
        got.push((
            message["id"].as_str().unwrap_or_default().to_owned(),
            message["payload"]["data"]["restaurantEvents"]["seq"].clone(),
        ));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("c".to_owned(), json!(nth(14))),
            ("d".to_owned(), json!(nth(14)))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updated_starts_with_the_current_state() {
    let server = sqlite();
    let f = server.fixture().await;
    let order = f.place(server, "watched").await;
    let mut phone = WsClient::ready(server, TRANSPORT_WS, &f.customer).await;
    phone
        .subscribe("o", ORDER_UPDATED, json!({"o": order}))
        .await;
    let first = phone.next_result("o").await;
    assert_eq!(
        first["data"]["orderUpdated"],
        json!({"id": order, "status": "PLACED", "version": 1})
    );
    f.place(server, "unrelated").await;
    f.advance(server, &order, "ACCEPTED").await;
    let second = phone.next_result("o").await;
    assert_eq!(
        second["data"]["orderUpdated"],
        json!({"id": order, "status": "ACCEPTED", "version": 2})
    );

    let mut neighbour = WsClient::ready(server, TRANSPORT_WS, &f.other_customer).await;
    neighbour
        .subscribe("o", ORDER_UPDATED, json!({"o": order}))
        .await;
    let refused = neighbour.recv().await.json();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_authorized() {
    let server = sqlite();
    let f = server.fixture().await;
    let other = server.fixture().await;
    let cases = [
        (&f.customer, f.restaurant.clone(), "FORBIDDEN"),
        (&other.staff, f.restaurant.clone(), "FORBIDDEN"),
        (
            &f.staff,
            "00000000-0000-7000-8000-000000000000".to_owned(),
            "FORBIDDEN",
        ),
        (
            &f.admin,
            "00000000-0000-7000-8000-000000000000".to_owned(),
            "NOT_FOUND",
        ),
    ];
    for (token, restaurant, code) in cases {
        let mut client = WsClient::ready(server, TRANSPORT_WS, token).await;
        client
            .subscribe("x", RESTAURANT_EVENTS, json!({"r": restaurant}))
            .await;
        let refused = client.recv().await.json();
        assert_eq!(
            (
                refused["type"].as_str(),
                refused["payload"][0]["extensions"]["code"].as_str()
            ),
            (Some("error"), Some(code)),
            "{refused}"
        );
    }
    // A socket without a token is refused at connection_init: it could run nothing
    // (`authorization::a_websocket_without_a_credential_is_refused` has both subprotocols).
    let mut anonymous = WsClient::connect(server, TRANSPORT_WS).await;
    anonymous.send(json!({"type": "connection_init"})).await;
    anonymous.expect_close(4403).await;

    let mut gone = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    gone.subscribe(
        "g",
        RESTAURANT_EVENTS,
        json!({"r": f.restaurant, "after": -1}),
    )
    .await;
    assert_eq!(
        gone.recv().await.json()["payload"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_end_when_the_token_expires() {
    let server = sqlite();
    let f = server.fixture().await;
    let short = server.token_with_ttl(
        orderhub_actors::domain::Role::Staff,
        Some(&f.restaurant),
        None,
        Duration::from_secs(2),
    );
    let mut client = WsClient::ready(server, TRANSPORT_WS, &short).await;
    client
        .subscribe("e", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    let ended = client
        .recv_within(Duration::from_secs(6))
        .await
        .expect("the subscription ends")
        .json();
    assert_eq!(
        (ended["type"].as_str(), ended["id"].as_str()),
        (Some("error"), Some("e")),
        "{ended}"
    );
    assert_eq!(ended["payload"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_the_spec_codes() {
    let server = TestServer::start(&sqlite_url("ws-protocol"), &["--ws-init-timeout", "300ms"]);
    let f = server.fixture().await;

    let mut silent = WsClient::connect(&server, TRANSPORT_WS).await;
    silent.expect_close(4408).await;

    let mut forged = WsClient::connect(&server, TRANSPORT_WS).await;
    forged
        .send(
            json!({"type": "connection_init", "payload": {"authorization": "Bearer not.a.token"}}),
        )
        .await;
    forged.expect_close(4403).await;

    let mut early = WsClient::connect(&server, TRANSPORT_WS).await;
    early
        .subscribe("1", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    early.expect_close(4401).await;

    let mut twice = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    twice.send(json!({"type": "connection_init"})).await;
    twice.expect_close(4429).await;

    let mut duplicate = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    duplicate
        .subscribe("same", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    duplicate
        .subscribe("same", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    duplicate.expect_close(4409).await;

    for garbage in [
        "{",
        r#"{"type":"subscribe","id":"1"}"#,
        r#"{"type":"nonsense"}"#,
    ] {
        let mut invalid = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
        invalid.send_raw(garbage).await;
        invalid.expect_close(4400).await;
    }

    let mut pinger = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    pinger.send(json!({"type": "ping"})).await;
    assert_eq!(pinger.recv().await.json()["type"], "pong");

    // Queries and mutations run over the socket too, then complete.
    pinger
        .subscribe(
            "q",
            "query($r: ID!) { restaurant(id: $r) { name } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(
        pinger.next_result("q").await["data"]["restaurant"]["name"],
        "Test Kitchen"
    );
    assert_eq!(
        pinger.recv().await.json(),
        json!({"type": "complete", "id": "q"})
    );
}

/// Events committed on a node whose bus does not reach this one (as when a node dies between
/// commit and publish) still arrive, from the channel's periodic check of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_were_never_published_still_arrive() {
    let url = sqlite_url("unpublished");
    let reader = TestServer::start(&url, &[]);
    let writer = TestServer::start(&url, &[]);
    let f = writer.fixture().await;
    let mut kitchen = WsClient::ready(&reader, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe("k", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    // Live once its actor has joined the reader's channel (the reader serves only this test).
    eventually(
        "the subscription is live on the reader",
        Duration::from_secs(10),
        async || reader.channels.subscribers_alive() == 1,
    )
    .await;
    place_orders(&writer, &f, "elsewhere", 3).await;
    let expected: Vec<i64> = (f.seq + 1..=f.seq + 3).collect();
    assert_eq!(seqs(&mut kitchen, "k", 3).await, expected);
}

/// `healthy` subscribers read `events` events placed by 4 writers; returns every delivery's
/// latency in milliseconds, from the event's commit time to its arrival at the client. The
/// orders start once the node's subscriptions, these and `others` more, are all live.
async fn flood(
    server: &TestServer,
    f: &Fixture,
    healthy: usize,
    events: usize,
    others: u64,
) -> Vec<i64> {
    let mut clients = Vec::new();
    for _ in 0..healthy {
        let mut client = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
        client
            .subscribe("h", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
            .await;
        clients.push(client);
    }
    let subscriptions = healthy as u64 + others;
    eventually(
        &format!("{subscriptions} subscriptions are live"),
        Duration::from_secs(20),
        async || server.channels.subscribers_alive() == subscriptions,
    )
    .await;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(events);
                let mut latencies = Vec::with_capacity(events);
                for _ in 0..events {
                    let payload = client.next_result("h").await;
                    let event = &payload["data"]["restaurantEvents"];
                    let at = chrono::DateTime::parse_from_rfc3339(
                        event["at"].as_str().unwrap_or_default(),
                    )
                    .expect("an RFC 3339 timestamp");
                    latencies.push(chrono::Utc::now().timestamp_millis() - at.timestamp_millis());
                    seqs.push(event["seq"].as_i64().expect("seq"));
                }
                client.close().await;
                (seqs, latencies)
            })
        })
        .collect();
    place_orders_steadily(&Api::at(&server.base), f, "flood", events).await;
    let mut all = Vec::new();
    for reader in readers {
        let (seqs, latencies) = reader.await.expect("reader");
        let start = seqs[0];
        let expected: Vec<i64> = (start..start + events as i64).collect();
        assert_eq!(seqs, expected, "every event, in order");
        all.extend(latencies);
    }
    all
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One client stops reading while 20 others keep up and 2,000 events flow: only it is cut,
/// with SLOW_CONSUMER and lastSeq, and it can resume from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_cut_alone_and_resumes() {
    let _alone = crate::support::load_test().await;
    let server = TestServer::start(
        &sqlite_url("slow-client"),
        // A buffer that absorbs the stalls a busy two-core CI machine gives healthy readers;
        // the stalled client still overflows it, after its socket buffers have filled.
        &[
            "--slow-consumer-timeout",
            "1s",
            "--subscription-buffer",
            "1024",
        ],
    );
    const HEALTHY: usize = 20;
    const EVENTS: usize = 2_000;
    let calm = server.fixture().await;
    let mut without = flood(&server, &calm, HEALTHY, EVENTS, 0).await;
    // The node's subscriptions are counted: the first flood's must be gone first.
    eventually(
        "the first flood's subscriptions have ended",
        Duration::from_secs(10),
        async || server.channels.subscribers_alive() == 0,
    )
    .await;

    let f = server.fixture().await;
    let mut stalled = WsClient::connect_small(&server, TRANSPORT_WS).await;
    stalled.init(&f.staff).await;
    stalled
        .subscribe("s", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    let mut with = flood(&server, &f, HEALTHY, EVENTS, 1).await;
    without.sort_unstable();
    with.sort_unstable();
    // Reported, not asserted: tests check correctness; BENCHMARKS.md holds the figures.
    eprintln!(
        "delivery latency to {HEALTHY} subscribers, {EVENTS} events: p50 {} ms, p99 {} ms without a stalled client; \
         p50 {} ms, p99 {} ms with one",
        percentile(&without, 0.5),
        percentile(&without, 0.99),
        percentile(&with, 0.5),
        percentile(&with, 0.99),
    );

    // The stalled client now reads what reached it: events in order, then the cut.
    let mut last_seq = f.seq;
    let cut = loop {
        match stalled.recv().await {
            Incoming::Json(message) if message["type"] == "next" => {
                let seq = message["payload"]["data"]["restaurantEvents"]["seq"]
                    .as_i64()
                    .expect("seq");
                assert_eq!(seq, last_seq + 1, "in order, no gap");
                last_seq = seq;
            }
            other => break other,
        }
    };
    match &cut {
        Incoming::Json(message) => {
            assert_eq!(message["type"], "error", "{message}");
            assert_eq!(message["payload"][0]["extensions"]["code"], "SLOW_CONSUMER");
            assert_eq!(message["payload"][0]["extensions"]["lastSeq"], last_seq);
        }
        Incoming::Closed(code, _) => assert!(matches!(code, Some(4508) | None), "{cut:?}"),
    }
    assert!(
        last_seq < f.seq + EVENTS as i64,
        "the stalled client was cut before the end"
    );
    let mut resumed = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    resumed
        .subscribe(
            "r",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": last_seq}),
        )
        .await;
    let rest: Vec<i64> = ((last_seq + 1)..=f.seq + EVENTS as i64).collect();
    assert_eq!(seqs(&mut resumed, "r", rest.len()).await, rest);
}

/// The graphql-ws library (graphql-transport-ws) and subscriptions-transport-ws (graphql-ws),
/// as browsers and Apollo clients use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_the_shelf_clients_of_both_subprotocols_work() {
    // A node of its own: the script's subscription is the only one it counts.
    let server = &TestServer::start(&sqlite_url("off-the-shelf"), &[]);
    let alive = async |n: u64| {
        let what = format!("the node has {n} live subscriptions");
        let alive = async || server.channels.subscribers_alive() == n;
        eventually(&what, Duration::from_secs(10), alive).await;
    };
    for protocol in [TRANSPORT_WS, LEGACY] {
        // The previous script's subscription ended with it.
        alive(0).await;
        let f = server.fixture().await;
        let url = server.base.replace("http://", "ws://") + "/graphql";
        let args = [protocol, &url, &f.staff, &f.restaurant, "5"];
        let (mut child, lines_rx) = crate::support::node_script("subscribe.mjs", &args);
        let first = lines_rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(first.as_deref(), Ok("subscribed"), "{protocol}");
        alive(1).await;
        place_orders(server, &f, protocol, 5).await;
        let seqs: Vec<String> = (0..5)
            .map(|_| {
                lines_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("an event")
            })
            .collect();
        let expected: Vec<String> = (f.seq + 1..=f.seq + 5).map(|s| s.to_string()).collect();
        assert_eq!(seqs, expected, "{protocol}");
        assert!(child.wait().expect("node exits").success(), "{protocol}");
    }
}

/// The one error of a subscription refused at once: `error`'s payload is the list of errors
/// on graphql-transport-ws and the error itself on the legacy protocol.
async fn refusal(client: &mut WsClient, id: &str) -> Value {
    let message = client.recv().await.json();
    assert_eq!(
        (message["type"].as_str(), message["id"].as_str()),
        (Some("error"), Some(id)),
        "{message}"
    );
    match client.protocol {
        LEGACY => message["payload"].clone(),
        _ => {
            let errors = message["payload"].as_array().expect("a list of errors");
            assert_eq!(errors.len(), 1, "{message}");
            errors[0].clone()
        }
    }
}

/// A display ahead of the store (restored from a backup, or a client bug) would ignore every
/// new event up to its own seq, and hear nothing, forever. It is told `HISTORY_GONE` with the
/// newest seq instead, and resuming from that seq misses nothing: on both subprotocols, in a
/// cohort (`after` a variable) and on its own (`after` written in the document), on every
/// backend. With a replica 1 s behind, the newest seq is the writer's: resuming from the seq
/// of an event just written is accepted.
async fn resuming_past_the_newest_event_is_history_gone_with_the_newest_seq(
    server: &'static TestServer,
) {
    let f = server.fixture().await;
    place_orders(server, &f, "before", 3).await;
    let mut newest = f.seq + 3;
    for protocol in [TRANSPORT_WS, LEGACY] {
        for (form, in_cohort) in [("cohort", true), ("own", false)] {
            let request = |after: i64| match in_cohort {
                true => (
                    RESTAURANT_EVENTS.to_owned(),
                    json!({"r": f.restaurant, "after": after}),
                ),
                false => (
                    RESTAURANT_EVENTS
                        .replace(", $after: Int", "")
                        .replace("after: $after", &format!("after: {after}")),
                    json!({"r": f.restaurant}),
                ),
            };
            let mut client = WsClient::ready(server, protocol, &f.staff).await;
            for ahead in [newest + 1, 1000] {
                let id = format!("after-{ahead}");
                let (query, variables) = request(ahead);
                client.subscribe(&id, &query, variables).await;
                let error = refusal(&mut client, &id).await;
                let context = format!("{protocol}, {form}, after {ahead}: {error}");
                assert_eq!(error["extensions"]["code"], "HISTORY_GONE", "{context}");
                assert_eq!(error["extensions"]["lastSeq"], newest, "{context}");
            }
            // Resuming from the seq it was told: the next event is the next seq.
            let (query, variables) = request(newest);
            client.subscribe("resumed", &query, variables).await;
            f.place(server, &format!("{protocol}-{form}")).await;
            newest += 1;
            assert_eq!(
                seqs(&mut client, "resumed", 1).await,
                [newest],
                "{protocol}, {form}"
            );
            client.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_before_the_retained_history_is_history_gone() {
    history_gone_after_retention(&sqlite_url("retention")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_before_the_retained_history_is_history_gone_on_mariadb() {
    history_gone_after_retention(&crate::support::mariadb_url("orderhub_retention")).await;
}

/// On a node of its own on `url`, with one second of retention.
async fn history_gone_after_retention(url: &str) {
    let server = TestServer::start(url, &["--event-retention", "1s"]);
    let f = server.fixture().await;
    place_orders(&server, &f, "old", 3).await;
    // The retention window has to pass (and the pruner, every 100 ms, to run): a duration.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut client = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    client
        .subscribe(
            "gone",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 1}),
        )
        .await;
    let refused = client.recv().await.json();
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "HISTORY_GONE",
        "{refused}"
    );
    // The newest seq, to resume from once the state is reloaded.
    let newest = f.seq + 3;
    assert_eq!(
        refused["payload"][0]["extensions"]["lastSeq"], newest,
        "{refused}"
    );
    // Up to date needs no history, and goes on live: the next order comes once it is. The node
    // is this test's own: once no actor is left from the refused one, the next is this one's.
    let alive = async |n: u64| {
        let what = format!("{n} subscriptions are live");
        let alive = async || server.channels.subscribers_alive() == n;
        eventually(&what, Duration::from_secs(10), alive).await;
    };
    alive(0).await;
    client
        .subscribe(
            "live",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": newest}),
        )
        .await;
    alive(1).await;
    f.place(&server, "new").await;
    assert_eq!(seqs(&mut client, "live", 1).await, [newest + 1]);
}

/// Kitchens of one restaurant that sent the same document share one execution (a cohort):
/// every event is resolved and encoded once for all of them. Members that resume with
/// `after` while orders stream in catch up on their own and join without gap or duplicate;
/// a different document runs apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_the_same_events_share_one_execution() {
    // A process of its own: in-process nodes share one metrics registry.
    let dir = crate::harness::temp_dir("cohorts");
    let database = format!("sqlite://{}/cohorts.db", dir.display());
    let node = NodeProcess::start(
        &dir,
        &[
            ("DATABASE_URL", database.as_str()),
            ("ORDERHUB_JWT_SECRET", SECRET),
            ("ORDERHUB_NO_DEMO", "true"),
        ],
    );
    let server = node.api();
    let f = server.fixture().await;
    const ORDERS: i64 = 30;
    let mut live = Vec::new();
    for _ in 0..4 {
        let mut client = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
        client
            .subscribe("k", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
            .await;
        live.push(client);
    }
    let mut other = WsClient::ready(&server, LEGACY, &f.staff).await;
    let just_seqs = "subscription($r: ID!) { restaurantEvents(restaurantId: $r) { seq } }";
    other
        .subscribe("s", just_seqs, json!({"r": f.restaurant}))
        .await;
    // Live once each has its actor and both executions theirs (sampled every 2 s).
    eventually(
        "the five subscriptions and both cohorts' feeds are live",
        Duration::from_secs(10),
        async || {
            let exposition = server.metrics().await;
            let actors = metric_value(&exposition, r#"orderhub_actors{kind="subscription"}"#);
            let feeds = metric_value(&exposition, r#"orderhub_actors{kind="cohort"}"#);
            actors == Some(5.0) && feeds == Some(2.0)
        },
    )
    .await;
    let placing = tokio::spawn({
        let api = Api::at(&server.base);
        let f = f.clone();
        async move { place_orders_steadily(&api, &f, "cohort", ORDERS as usize).await }
    });
    // Resuming while events stream in: the seam between replay and the cohort moves.
    let mut resumed = Vec::new();
    for after in [0, 3, 7] {
        // Each joins a little further into the stream, once its resume point exists (one
        // past the newest event is HISTORY_GONE).
        eventually(
            &format!("event {after} is written"),
            Duration::from_secs(10),
            async || {
                let page = server
                    .gql(
                        Some(&f.staff),
                        "query($r: ID!) { orders(restaurantId: $r, first: 100) { edges { node { id } } } }",
                        json!({"r": f.restaurant}),
                    )
                    .await;
                page.at("orders.edges").as_array().map_or(0, Vec::len) >= after as usize
            },
        )
        .await;
        let mut client = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
        let variables = json!({"r": f.restaurant, "after": f.seq + after});
        client.subscribe("k", RESTAURANT_EVENTS, variables).await;
        resumed.push((after, client));
    }
    placing.await.expect("placed");
    let all: Vec<i64> = (f.seq + 1..=f.seq + ORDERS).collect();
    for client in &mut live {
        assert_eq!(seqs(client, "k", ORDERS as usize).await, all);
    }
    for (after, client) in &mut resumed {
        let expected: Vec<i64> = (f.seq + *after + 1..=f.seq + ORDERS).collect();
        assert_eq!(seqs(client, "k", expected.len()).await, expected);
    }
    let mut others = Vec::new();
    for _ in 0..ORDERS {
        let payload = other.next_result("s").await;
        others.push(
            payload["data"]["restaurantEvents"]["seq"]
                .as_i64()
                .expect("seq"),
        );
    }
    assert_eq!(others, all);
    // Eight subscriptions, each an actor; two executions, each fed by an actor of its own
    // (sampled every 2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = server.metrics().await;
        let cohorts = metric_value(&exposition, "orderhub_subscription_cohorts");
        let actors = metric_value(&exposition, r#"orderhub_actors{kind="subscription"}"#);
        let feeds = metric_value(&exposition, r#"orderhub_actors{kind="cohort"}"#);
        if cohorts == Some(2.0) && actors == Some(8.0) && feeds == Some(2.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cohorts {cohorts:?}, subscription actors {actors:?}, cohort feeds {feeds:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
