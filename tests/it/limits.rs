//! Resource bounds: WebSocket connections, subscriptions per connection, the per-token rate
//! limit, the query timeout, and a flood of connections that never say anything.

use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{
    eventually, metric_value, postgres_server, postgres_url, sqlite_url, Api, NodeProcess,
    TestServer, SECRET,
};
use crate::ws_client::{WsClient, LEGACY, RESTAURANT_EVENTS, TRANSPORT_WS};
use orderhub_actors::domain::Role;

const ORDERS: &str =
    "query($r: ID!) { orders(restaurantId: $r, first: 10) { edges { node { id } } } }";

/// A WebSocket upgrade; `Err` carries the HTTP status of a refused one.
async fn upgrade(api: &Api) -> Result<(), u16> {
    let url = api.base.replace("http://", "ws://") + "/graphql";
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        TRANSPORT_WS.parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => {
            drop(socket);
            Ok(())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("upgrade failed: {other}"),
    }
}

/// One subject that reconnects without closing its old sockets keeps its newest ones; its
/// oldest are closed with 4008, and other subjects never find the node full because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_subject_holds_its_share_of_the_websockets() {
    let server = TestServer::start(
        &sqlite_url("max_per_subject"),
        &["--max-websockets", "12", "--ws-max-per-subject", "2"],
    );
    let f = server.fixture().await;
    let device = server.token_for("tablet-7", Role::Staff, Some(&f.restaurant), None);
    // More than the node holds: without the cap the 13th would be refused with 503.
    let mut sockets = Vec::new();
    for _ in 0..16 {
        sockets.push(WsClient::ready(&server, TRANSPORT_WS, &device).await);
    }
    let newest = sockets.split_off(14);
    for mut displaced in sockets {
        displaced.expect_close(4008).await;
    }
    // Other subjects, on either subprotocol, take places as usual.
    let mut others = Vec::new();
    for (subject, protocol) in [("kitchen-1", TRANSPORT_WS), ("kitchen-2", LEGACY)] {
        let token = server.token_for(subject, Role::Staff, Some(&f.restaurant), None);
        for _ in 0..2 {
            others.push(WsClient::ready(&server, protocol, &token).await);
        }
    }
    // The device's two newest sockets still serve it: each replays the restaurant's events.
    server
        .gql(
            Some(&f.customer),
            crate::support::PLACE,
            json!({"i": f.order_input("kept", &[(0, 1)])}),
        )
        .await
        .ok();
    for (n, mut kept) in newest.into_iter().enumerate() {
        let id = n.to_string();
        kept.subscribe(
            &id,
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 0}),
        )
        .await;
        let event = kept.next_result(&id).await;
        assert!(
            event["data"]["restaurantEvents"]["seq"].as_i64() >= Some(1),
            "{event}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_are_capped() {
    let server = TestServer::start(&sqlite_url("max_websockets"), &["--max-websockets", "3"]);
    let f = server.fixture().await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(WsClient::ready(&server, TRANSPORT_WS, &f.staff).await);
    }
    assert_eq!(upgrade(&server).await, Err(503), "a fourth is refused");
    // Plain requests are not WebSockets: they still work.
    server
        .gql(Some(&f.staff), ORDERS, json!({"r": f.restaurant}))
        .await
        .ok();
    // A place frees up when one closes.
    open.pop().expect("one").close().await;
    eventually(
        "a place is free after a connection closed",
        Duration::from_secs(5),
        async || upgrade(&server).await.is_ok(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_connection_are_capped() {
    let server = TestServer::start(
        &sqlite_url("max_subscriptions"),
        &["--ws-max-subscriptions", "2"],
    );
    let f = server.fixture().await;
    let mut kitchen = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    let variables = json!({"r": f.restaurant});
    kitchen
        .subscribe("a", RESTAURANT_EVENTS, variables.clone())
        .await;
    kitchen
        .subscribe("b", RESTAURANT_EVENTS, variables.clone())
        .await;
    kitchen
        .subscribe("c", RESTAURANT_EVENTS, variables.clone())
        .await;
    let refused = kitchen.recv().await.json();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "c");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );
    // A subscription is live once its actor has joined the channel; the node is this test's
    // own, so its count of them is these subscriptions'.
    let alive = async |n: u64| {
        let what = format!("{n} subscriptions are live");
        let alive = async || server.channels.subscribers_alive() == n;
        eventually(&what, Duration::from_secs(10), alive).await;
    };
    alive(2).await;
    // The connection stays; ending one subscription makes room for another.
    kitchen.send(json!({"type": "complete", "id": "a"})).await;
    alive(1).await;
    kitchen.subscribe("d", RESTAURANT_EVENTS, variables).await;
    alive(2).await;
    f.place(&server, "one").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let message = kitchen.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        got.push(message["id"].as_str().expect("id").to_owned());
    }
    got.sort();
    assert_eq!(got, ["b", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_refused() {
    let server = TestServer::start(
        &sqlite_url("rate_limit"),
        &["--rate-limit", "5", "--rate-limit-burst", "10"],
    );
    // Fixtures are made by the admin token: a bucket of its own.
    let f = server.fixture().await;
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..15 {
        let mut request = server
            .http()
            .post(format!("{}/graphql", server.base))
            .json(&json!({"query": ORDERS, "variables": {"r": f.restaurant}}));
        request = request.bearer_auth(&f.staff);
        let response = request.send().await.expect("sent");
        statuses.push(response.status().as_u16());
        if response.status() == 429 && refusal.is_none() {
            let retry_after = response.headers().get("retry-after").cloned();
            let body: serde_json::Value = response.json().await.expect("JSON");
            refusal = Some((retry_after, body));
        }
    }
    assert_eq!(
        statuses[..10],
        [200; 10],
        "the burst is allowed: {statuses:?}"
    );
    let (retry_after, body) = refusal.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert!(retry_after.is_some(), "Retry-After is set");
    // Other tokens are not affected.
    server
        .gql(Some(&f.admin), ORDERS, json!({"r": f.restaurant}))
        .await
        .ok();
    // Subscribe messages of the same token count too.
    let mut kitchen = WsClient::ready(&server, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe("k", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
        .await;
    let refused = kitchen.recv().await.json();
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );
    // The bucket refills at 5 a second: time has to pass, there is nothing else to wait for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server
        .gql(Some(&f.staff), ORDERS, json!({"r": f.restaurant}))
        .await
        .ok();
}

/// A query stuck behind a table lock is answered with TIMEOUT when the query timeout passes,
/// and the same query works once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_time_out() {
    let db = "orderhub_query_timeout";
    let server = TestServer::start(&postgres_url(db), &["--query-timeout", "500ms"]);
    let f = server.fixture().await;
    let lock = tokio::task::spawn_blocking(move || {
        postgres_server().psql(
            db,
            "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
        )
    });
    let locked = "SELECT count(*) FROM pg_locks WHERE relation = 'orders'::regclass \
                  AND mode = 'AccessExclusiveLock' AND granted";
    eventually("the lock is taken", Duration::from_secs(10), async || {
        postgres_server().psql(db, locked) == "1"
    })
    .await;
    let started = Instant::now();
    let stuck = server
        .gql(Some(&f.staff), ORDERS, json!({"r": f.restaurant}))
        .await;
    stuck.expect_code("TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    lock.await.expect("the lock was released");
    server
        .gql(Some(&f.staff), ORDERS, json!({"r": f.restaurant}))
        .await
        .ok();
}

/// A restaurant's actor takes `ORDERHUB_COMMAND_QUEUE` commands at a time (queued or running):
/// while its store is stuck behind a lock, more are refused at once with UNAVAILABLE and
/// retryAfterSeconds instead of each waiting out the command timeout; what was taken is done
/// once the store answers, and nothing else was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_command_queue_refuses_at_once() {
    let db = "orderhub_command_queue";
    let server = TestServer::start(&postgres_url(db), &["--command-queue", "2"]);
    let f = server.fixture().await;
    // The row lock every command of the restaurant takes first; reads are not held up.
    let hold = format!(
        "BEGIN; SELECT 1 FROM restaurants WHERE id = '{}' FOR UPDATE; SELECT pg_sleep(3); COMMIT;",
        f.restaurant
    );
    let lock = tokio::task::spawn_blocking(move || postgres_server().psql(db, &hold));
    let locked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    eventually("the lock is taken", Duration::from_secs(10), async || {
        postgres_server().psql(db, locked) == "1"
    })
    .await;
    let refused_before = server.registry.refused();
    let started = Instant::now();
    let calls = (0..6).map(|i| {
        let input = f.order_input(&format!("queued-{i}"), &[(0, 1)]);
        let (api, token) = (Api::at(&server.base), f.customer.clone());
        tokio::spawn(async move {
            let answer = api.gql(Some(&token), crate::support::PLACE, json!({"i": input}));
            let answer = answer.await;
            (answer, started.elapsed())
        })
    });
    // Spawned all at once, before any answer is awaited.
    let calls: Vec<_> = calls.collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("call"));
    }
    let (refused, placed): (Vec<_>, Vec<_>) = answers
        .iter()
        .partition(|(answer, _)| answer.code().is_some());
    assert_eq!((refused.len(), placed.len()), (4, 2), "{answers:?}");
    for (answer, took) in &refused {
        answer.expect_code("UNAVAILABLE");
        let retry = &answer.0["errors"][0]["extensions"]["retryAfterSeconds"];
        assert!(retry.as_u64().is_some_and(|s| s >= 1), "{}", answer.0);
        assert!(*took < Duration::from_secs(2), "refused after {took:?}");
    }
    for (answer, took) in &placed {
        answer.ok();
        assert!(
            *took >= Duration::from_secs(2),
            "placed through a lock after {took:?}"
        );
    }
    assert_eq!(server.registry.refused() - refused_before, 4);
    lock.await.expect("the lock was released");
    let count = postgres_server().psql(db, "SELECT count(*) FROM orders");
    assert_eq!(count, "2", "the refused commands wrote nothing");
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the node's descriptors")
        .count()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 200 WebSockets that never send `connection_init` and 600 TCP connections that never send
/// a byte: the node holds at most its connection limit, refuses the rest at once, closes the
/// silent ones after their timeouts, and serves normally afterwards — memory and descriptors
/// back where they were, without the flood letting go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_is_bounded() {
    let _alone = crate::support::load_test().await;
    let dir = crate::harness::temp_dir("flood");
    let database = format!("sqlite://{}/flood.db", dir.display());
    let node = NodeProcess::start(
        &dir,
        &[
            ("DATABASE_URL", database.as_str()),
            ("ORDERHUB_JWT_SECRET", SECRET),
            ("ORDERHUB_NO_DEMO", "true"),
            ("ORDERHUB_MAX_CONNECTIONS", "300"),
            ("ORDERHUB_HEADER_TIMEOUT", "5s"),
            ("ORDERHUB_WS_INIT_TIMEOUT", "5s"),
        ],
    );
    let api = node.api();
    let f = api.fixture().await;
    let pid = node.pid();
    let (files_before, rss_before) = (open_files(pid), resident_kib(pid));

    let mut silent_websockets = Vec::new();
    for _ in 0..200 {
        silent_websockets.push(WsClient::connect(&api, TRANSPORT_WS).await);
    }
    let address = api.base.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..600 {
        silent.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("the kernel accepts the connection"),
        );
    }
    // The last ones were over the limit: closed by the node at once. The node accepts in
    // order, so once it has closed the last one it has taken in the whole flood.
    let mut byte = [0u8; 1];
    let last = silent.last_mut().expect("a connection");
    let read = tokio::time::timeout(Duration::from_secs(1), last.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    let files_during = open_files(pid);
    assert!(
        files_during <= files_before + 300 + 10,
        "{files_during} descriptors open with a limit of 300 (before: {files_before})"
    );

    // The timeouts clear the silent ones, though the flood holds on to its end.
    let deadline = Instant::now() + Duration::from_secs(15);
    while open_files(pid) > files_before + 10 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors still open 15 s later (before: {files_before})",
            open_files(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.gql(Some(&f.staff), ORDERS, json!({"r": f.restaurant}))
        .await
        .ok();
    let rss_after = resident_kib(pid);
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let series = r#"orderhub_connections_refused_total{reason="max_connections"}"#;
    let refused = metric_value(&api.metrics().await, series).expect("the refusal counter");
    assert!(refused >= 400.0, "{refused} refused");
    drop(silent);
    drop(silent_websockets);
    node.assert_no_panic();
}

/// A `{ __typename }` POST with `Authorization: <authorization>` (none if `None`): its status.
async fn typename_over_http(api: &Api, authorization: Option<&str>) -> u16 {
    let mut request = api
        .http()
        .post(format!("{}/graphql", api.base))
        .json(&json!({"query": "{ __typename }"}));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.expect("sent").status().as_u16()
}

/// A `{ __typename }` subscribe message: whether it ran (else it was RATE_LIMITED).
async fn typename_over_ws(client: &mut WsClient, id: &str) -> bool {
    client
        .send(json!({"type": "subscribe", "id": id, "payload": {"query": "{ __typename }"}}))
        .await;
    let answer = client.recv().await.json();
    match answer["type"].as_str() {
        Some("next") => {
            assert_eq!(client.recv().await.json()["type"], "complete");
            true
        }
        Some("error") => {
            assert_eq!(
                answer["payload"][0]["extensions"]["code"], "RATE_LIMITED",
                "{answer}"
            );
            false
        }
        _ => panic!("unexpected {answer}"),
    }
}

/// What a bucket of 10 at 1 a second may let through in `elapsed`: the burst, the refill,
/// and one for a refill landing between two checks.
fn allowance(elapsed: Duration) -> usize {
    10 + elapsed.as_secs_f64().ceil() as usize + 1
}

/// One credential has one bucket, whatever the spelling of its scheme and spaces, whichever
/// token was issued for its identity, and over either transport; requests without a valid
/// token share their peer's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_has_one_bucket_however_it_is_spelled() {
    use orderhub_actors::domain::Role;
    let server = TestServer::start(
        &sqlite_url("rate_limit_identity"),
        &["--rate-limit", "1", "--rate-limit-burst", "10"],
    );
    let f = server.fixture().await;

    // HTTP first: six spellings of one staff identity, the last a token issued again.
    let token = &f.staff;
    let reissued = server.token_with_ttl(
        Role::Staff,
        Some(&f.restaurant),
        None,
        Duration::from_secs(700),
    );
    assert_ne!(&reissued, token);
    let spellings = [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer  {token}"),
        format!("bEaReR   {token}"),
        format!("Bearer {reissued}"),
    ];
    let started = Instant::now();
    let mut refused = [0; 6];
    let mut served = 0;
    for i in 0..36 {
        match typename_over_http(&server, Some(&spellings[i % 6])).await {
            200 => served += 1,
            429 => refused[i % 6] += 1,
            other => panic!("HTTP {other}"),
        }
    }
    assert!(
        served <= allowance(started.elapsed()),
        "{served} served: the spellings had buckets of their own"
    );
    assert!(
        refused.iter().all(|&n| n > 0),
        "a spelling was never limited: {refused:?}"
    );
    // The same identity over the WebSocket, its token in the payload or on the upgrade
    // request and spelled otherwise, finds the bucket empty.
    let mut sockets = [
        WsClient::connect_authorized(&server, TRANSPORT_WS, &format!("bearer   {token}")).await,
        WsClient::connect(&server, TRANSPORT_WS).await,
        WsClient::connect(&server, TRANSPORT_WS).await,
    ];
    for (socket, payload) in sockets.iter_mut().zip([
        None,
        Some(json!({"authorization": format!("BEARER  {token}")})),
        Some(json!({"Authorization": format!("Bearer {reissued}")})),
    ]) {
        let ack = socket.init_with(payload).await.json();
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }
    for (n, socket) in sockets.iter_mut().enumerate() {
        let mut ran = 0;
        for i in 0..3 {
            ran += usize::from(typename_over_ws(socket, &format!("{n}-{i}")).await);
        }
        assert!(ran < 3, "socket {n} had a bucket of its own");
    }

    // The WebSocket first: another identity, three sockets spelling its token three ways.
    let token = server.token_for("ws-first", Role::Staff, Some(&f.restaurant), None);
    let mut sockets = [
        WsClient::connect_authorized(&server, TRANSPORT_WS, &format!("BEARER {token}")).await,
        WsClient::connect(&server, TRANSPORT_WS).await,
        WsClient::connect(&server, TRANSPORT_WS).await,
    ];
    for (socket, payload) in sockets.iter_mut().zip([
        None,
        Some(json!({"authorization": format!("Bearer {token}")})),
        Some(json!({"authorization": format!("bearer  {token}")})),
    ]) {
        let ack = socket.init_with(payload).await.json();
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }
    let started = Instant::now();
    let mut refused = [0; 3];
    let mut served = 0;
    for i in 0..30 {
        if typename_over_ws(&mut sockets[i % 3], &i.to_string()).await {
            served += 1;
        } else {
            refused[i % 3] += 1;
        }
    }
    assert!(
        served <= allowance(started.elapsed()),
        "{served} served: the sockets had buckets of their own"
    );
    assert!(
        refused.iter().all(|&n| n > 0),
        "a socket was never limited: {refused:?}"
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(typename_over_http(&server, Some(&format!("Bearer   {token}"))).await);
    }
    assert!(
        statuses.contains(&429),
        "HTTP had a bucket of its own: {statuses:?}"
    );

    // Without a valid token: no header, a forged token, garbage: one bucket, the peer's.
    let forged = format!("Bearer {}x", f.admin);
    let anonymous = [None, Some(forged.as_str()), Some("Bearer nonsense")];
    let started = Instant::now();
    let mut served = 0;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let status = typename_over_http(&server, anonymous[i % 3]).await;
        served += usize::from(status == 200);
        statuses.push(status);
    }
    assert!(
        served <= allowance(started.elapsed()),
        "{served} served without a valid token: {statuses:?}"
    );
    // The staff identity's bucket is not the peer's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        typename_over_http(&server, Some(&format!("Bearer {}", f.staff))).await,
        200
    );
}
