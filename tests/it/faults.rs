//! Faults survived: a node stopped or killed mid-burst, Redis away for ten seconds,
//! PostgreSQL and MariaDB restarted under load. Every order that was confirmed is stored, every stored
//! order reached the kitchen exactly once and in order, and no call hangs.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::mariadb::MariaDbServer;
use crate::harness::postgres::PgServer;
use crate::harness::redis::RedisServer;
use crate::realtime::place_orders;
use crate::support::{postgres_server, postgres_url, Api, Fixture, NodeProcess, PLACE, SECRET};
use crate::ws_client::{Incoming, WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

/// What a kitchen display has applied: every event's seq and, for new orders, the order.
#[derive(Debug, Default)]
struct Board {
    seqs: Vec<i64>,
    placed: Vec<String>,
}

impl Board {
    fn last_seq(&self) -> i64 {
        self.seqs.last().copied().unwrap_or(0)
    }

    fn apply(&mut self, payload: &Value) {
        let event = &payload["data"]["restaurantEvents"];
        let seq = event["seq"].as_i64().unwrap_or_else(|| panic!("{payload}"));
        self.seqs.push(seq);
        if event["__typename"] == "OrderPlaced" {
            let order = event["order"]["id"].as_str().expect("order id");
            self.placed.push(order.to_owned());
        }
    }

    /// Subscribes on `client` from where the board is.
    async fn subscribe(&self, client: &mut WsClient, f: &Fixture) {
        let variables = json!({"r": f.restaurant, "after": self.last_seq()});
        client.subscribe("k", RESTAURANT_EVENTS, variables).await;
    }

    /// Applies events until `total` are on the board or the connection ends; returns how it
    /// ended (`None`: the total was reached). A subscription that ends with an error is
    /// resumed on the same connection, as a display would.
    async fn follow(
        &mut self,
        client: &mut WsClient,
        f: &Fixture,
        total: usize,
        wait: Duration,
    ) -> Option<Incoming> {
        let deadline = Instant::now() + wait;
        while self.seqs.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = client.recv_within(left).await.unwrap_or_else(|| {
                panic!(
                    "the kitchen has {} of {total} events after {wait:?}",
                    self.seqs.len()
                )
            });
            match message {
                Incoming::Json(message) if message["type"] == "next" => {
                    self.apply(&message["payload"])
                }
                Incoming::Json(message) if message["type"] == "error" => {
                    self.subscribe(client, f).await
                }
                Incoming::Json(message) => panic!("unexpected {message}"),
                closed @ Incoming::Closed(..) => return Some(closed),
            }
        }
        None
    }

    /// Connects to `api` as a kitchen does after losing its node, and follows from where the
    /// board is up to `events`.
    async fn resume_on(&mut self, api: &Api, f: &Fixture, events: i64) {
        let mut kitchen = WsClient::ready(api, TRANSPORT_WS, &f.staff).await;
        self.subscribe(&mut kitchen, f).await;
        let ended = self
            .follow(&mut kitchen, f, events as usize, Duration::from_secs(30))
            .await;
        assert!(ended.is_none(), "{ended:?}");
    }

    /// Every event exactly once and in order, and the orders among them are `orders`.
    fn assert_complete(&self, events: i64, orders: &HashSet<String>) {
        assert_eq!(self.seqs, (1..=events).collect::<Vec<_>>(), "seqs");
        let placed: HashSet<String> = self.placed.iter().cloned().collect();
        assert_eq!(placed.len(), self.placed.len(), "an order arrived twice");
        assert_eq!(
            &placed, orders,
            "the orders on the board are the stored ones"
        );
    }
}

/// What the database holds for a restaurant: its order ids and its number of events.
fn stored(pg: &PgServer, db: &str, f: &Fixture) -> (HashSet<String>, i64) {
    stored_in(&|sql| pg.psql(db, sql), f)
}

/// `stored`, with `query` running one statement and returning its rows, one a line.
fn stored_in(query: &dyn Fn(&str) -> String, f: &Fixture) -> (HashSet<String>, i64) {
    let restaurant = &f.restaurant;
    let orders = query(&format!(
        "SELECT id FROM orders WHERE restaurant_id = '{restaurant}'"
    ));
    let events = query(&format!(
        "SELECT count(*) FROM events WHERE restaurant_id = '{restaurant}'"
    ));
    let orders = orders.lines().map(str::to_owned).collect();
    (orders, events.trim().parse().expect("a count"))
}

/// Two nodes on one PostgreSQL database and one Redis, a fixture, and a kitchen on the first.
struct TwoNodes {
    _redis: RedisServer,
    a: NodeProcess,
    b: NodeProcess,
    on_a: Api,
    on_b: Api,
    f: Arc<Fixture>,
    kitchen: WsClient,
    /// The kitchen's board, with the warm-up order on it.
    board: Board,
}

impl TwoNodes {
    async fn start(db: &str) -> TwoNodes {
        let redis = RedisServer::start();
        let database = postgres_url(db);
        let redis_url = redis.url();
        let env = node_env(&database, &redis_url);
        let a = NodeProcess::start(scratch(), &env);
        let b = NodeProcess::start(scratch(), &env);
        let (on_a, on_b) = (a.api(), b.api());
        let f = Arc::new(on_b.fixture().await);
        let (kitchen, board) = kitchen_on(&on_a, &on_b, &f).await;
        TwoNodes {
            _redis: redis,
            a,
            b,
            on_a,
            on_b,
            f,
            kitchen,
            board,
        }
    }
}

fn node_env<'a>(database: &'a str, redis: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", database),
        ("REDIS_URL", redis),
        ("ORDERHUB_JWT_SECRET", SECRET),
        ("ORDERHUB_NO_DEMO", "true"),
        ("ORDERHUB_SHUTDOWN_TIMEOUT", "10s"),
        // Bursts from a test on a busy two-core machine; slow consumers have tests of their own.
        ("ORDERHUB_SUBSCRIPTION_BUFFER", "4096"),
    ]
}

fn scratch() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// A kitchen subscribed on `api` from the first event, and its board once the subscription is
/// live: a warm-up order placed on `via` (for two nodes, the other one) has reached it. The
/// order has two lines and a total of 1,800, as every order must in the PostgreSQL restart.
async fn kitchen_on(api: &Api, via: &Api, f: &Fixture) -> (WsClient, Board) {
    let mut kitchen = WsClient::ready(api, TRANSPORT_WS, &f.staff).await;
    let mut board = Board::default();
    board.subscribe(&mut kitchen, f).await;
    let input = f.order_input("warm-up", &[(0, 1), (1, 2)]);
    via.gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await
        .ok();
    let ended = board
        .follow(&mut kitchen, f, 1, Duration::from_secs(30))
        .await;
    assert!(
        ended.is_none(),
        "the warm-up order never arrived: {ended:?}"
    );
    (kitchen, board)
}

/// Places orders with keys `{prefix}-{i}` on `api` until it stops answering; every call must
/// answer within 20 s. Returns the ids of the orders confirmed.
async fn place_until_refused(api: Api, f: Arc<Fixture>, prefix: String) -> Vec<String> {
    let mut confirmed = Vec::new();
    for i in 0.. {
        let input = f.order_input(&format!("{prefix}-{i}"), &[(0, 1)]);
        let call = api.try_gql(Some(&f.customer), PLACE, json!({"i": input}));
        match tokio::time::timeout(Duration::from_secs(20), call).await {
            Err(_) => panic!("a placeOrder call hung"),
            // Refused or reset before an answer: the node is gone.
            Ok(Err(_)) => break,
            Ok(Ok((status, response))) => {
                assert!(status.is_success(), "HTTP {status}: {}", response.0);
                confirmed.push(response.ok().str("placeOrder.id"));
            }
        }
    }
    confirmed
}

/// SIGTERM while eight clients place orders as fast as they can: the node stops accepting,
/// answers what it accepted, closes its WebSockets with 1001 and exits 0. The kitchen resumes
/// on the other node and has every order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_burst_loses_nothing() {
    let _alone = crate::support::load_test().await;
    let db = "orderhub_sigterm";
    let TwoNodes {
        _redis,
        mut a,
        b,
        on_a,
        on_b,
        f,
        mut kitchen,
        mut board,
    } = TwoNodes::start(db).await;

    let writers: Vec<_> = (0..8)
        .map(|w| {
            tokio::spawn(place_until_refused(
                on_a.clone(),
                f.clone(),
                format!("w{w}"),
            ))
        })
        .collect();
    // Some orders first (40 after the warm-up), so that the signal lands in the middle of the
    // burst.
    assert!(board
        .follow(&mut kitchen, &f, 41, Duration::from_secs(30))
        .await
        .is_none());
    let signalled = Instant::now();
    let stopping = tokio::task::spawn_blocking(move || {
        let status = a.terminate();
        (a, status)
    });
    let closed = board
        .follow(&mut kitchen, &f, usize::MAX, Duration::from_secs(20))
        .await;
    assert!(
        matches!(closed, Some(Incoming::Closed(Some(1001), _))),
        "the kitchen was told the node is going away: {closed:?}"
    );
    let (a, status) = stopping.await.expect("terminated");
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(12),
        "exit within the deadline"
    );
    a.assert_no_panic();

    let mut confirmed = HashSet::new();
    for writer in writers {
        confirmed.extend(writer.await.expect("a writer finished"));
    }
    let (orders, events) = stored(postgres_server(), db, &f);
    eprintln!(
        "SIGTERM: {} orders confirmed, {} stored, exit after {:?}",
        confirmed.len(),
        orders.len(),
        signalled.elapsed()
    );
    assert!(
        confirmed.len() >= 40,
        "{} orders confirmed",
        confirmed.len()
    );
    assert!(
        confirmed.is_subset(&orders),
        "a confirmed order is not stored"
    );

    board.resume_on(&on_b, &f, events).await;
    board.assert_complete(events, &orders);
    b.assert_no_panic();
}

/// SIGKILL mid-burst: no goodbye at all. Clients of the dead node retry on the other with the
/// same idempotency key and resume with `after`: every order exactly once, every event seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_order_and_no_event() {
    let _alone = crate::support::load_test().await;
    let db = "orderhub_sigkill";
    let TwoNodes {
        _redis,
        mut a,
        b,
        on_a,
        on_b,
        f,
        mut kitchen,
        mut board,
    } = TwoNodes::start(db).await;

    const PER_WRITER: usize = 30;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (f, on_a, on_b) = (f.clone(), on_a.clone(), on_b.clone());
            tokio::spawn(async move {
                // Half the writers start on the node that will die; they move when it does.
                let mut node = if w % 2 == 0 { on_a } else { on_b.clone() };
                for i in 0..PER_WRITER {
                    let input = f.order_input(&format!("w{w}-{i}"), &[(0, 1)]);
                    loop {
                        let call = node.try_gql(Some(&f.customer), PLACE, json!({"i": input}));
                        match tokio::time::timeout(Duration::from_secs(20), call).await {
                            Err(_) => panic!("a placeOrder call hung"),
                            // The same key again, elsewhere: it was placed at most once.
                            Ok(Err(_)) => node = on_b.clone(),
                            Ok(Ok((_, response))) => {
                                response.ok();
                                break;
                            }
                        }
                    }
                    // A pace, not a wait: orders keep coming while the node dies.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    assert!(board
        .follow(&mut kitchen, &f, 41, Duration::from_secs(30))
        .await
        .is_none());
    a.kill();
    let ended = board
        .follow(&mut kitchen, &f, usize::MAX, Duration::from_secs(20))
        .await;
    assert!(matches!(ended, Some(Incoming::Closed(..))), "{ended:?}");
    for writer in writers {
        writer.await.expect("a writer finished");
    }

    let (orders, events) = stored(postgres_server(), db, &f);
    assert_eq!(
        orders.len(),
        1 + 6 * PER_WRITER,
        "the warm-up and every order placed exactly once"
    );
    board.resume_on(&on_b, &f, events).await;
    board.assert_complete(events, &orders);
    b.assert_no_panic();
}

async fn readiness(api: &Api) -> Value {
    let response = api
        .http()
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .expect("readyz answers");
    response.json().await.expect("JSON")
}

async fn wait_for_bus(api: &Api, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while readiness(api).await["bus"] != state {
        assert!(
            Instant::now() < deadline,
            "the bus is not {state} after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis away for ten seconds: orders keep being taken (the store is the source of truth),
/// `/readyz` says the bus is degraded, and the kitchen on the other node gets everything, in
/// order, once Redis is back. The channels' periodic store check is off: what arrives came
/// through the bus's own recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_ten_seconds_loses_nothing() {
    let _alone = crate::support::load_test().await;
    let redis = RedisServer::start();
    let db = "orderhub_redis_down";
    let database = postgres_url(db);
    let redis_url = redis.url();
    let mut env = node_env(&database, &redis_url);
    env.push(("ORDERHUB_CATCH_UP_INTERVAL", "1h"));
    let writer = NodeProcess::start(scratch(), &env);
    let reader = NodeProcess::start(scratch(), &env);
    let (on_writer, on_reader) = (writer.api(), reader.api());
    let f = on_writer.fixture().await;
    let (mut kitchen, mut board) = kitchen_on(&on_reader, &on_writer, &f).await;
    place_orders(&on_writer, &f, "before", 10).await;
    assert!(board
        .follow(&mut kitchen, &f, 11, Duration::from_secs(10))
        .await
        .is_none());

    redis.stop();
    wait_for_bus(&on_writer, "degraded").await;
    wait_for_bus(&on_reader, "degraded").await;
    let outage = Instant::now();
    let mut during = 0;
    while outage.elapsed() < Duration::from_secs(10) {
        f.place(&on_writer, &format!("during-{during}")).await;
        during += 1;
        // A pace, not a wait: orders keep coming through the whole outage.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(readiness(&on_writer).await["status"], "ready");
    redis.start_again();
    wait_for_bus(&on_writer, "ok").await;
    wait_for_bus(&on_reader, "ok").await;
    place_orders(&on_writer, &f, "after", 10).await;

    let (orders, events) = stored(postgres_server(), db, &f);
    assert_eq!(
        orders.len(),
        1 + 20 + during,
        "every order was taken, the warm-up too"
    );
    let ended = board
        .follow(&mut kitchen, &f, events as usize, Duration::from_secs(30))
        .await;
    assert!(ended.is_none(), "{ended:?}");
    board.assert_complete(events, &orders);
    writer.assert_no_panic();
    reader.assert_no_panic();
}

/// One call's outcome during a database outage.
#[derive(Debug)]
struct Outcome {
    took: Duration,
    /// `None` for a confirmed order, else the error's code and message.
    error: Option<(String, String)>,
}

/// A database server of its own, which a test stops and starts again.
#[derive(Clone)]
enum Restartable {
    Postgres(Arc<PgServer>),
    MariaDb(Arc<MariaDbServer>),
}

impl Restartable {
    fn name(&self) -> &'static str {
        match self {
            Restartable::Postgres(_) => "PostgreSQL",
            Restartable::MariaDb(_) => "MariaDB",
        }
    }

    /// A new database on it, and its URL.
    fn database(&self, db: &str) -> String {
        match self {
            Restartable::Postgres(pg) => {
                pg.create_database(db);
                pg.url(db)
            }
            Restartable::MariaDb(server) => {
                server.create_database(db);
                server.url(db)
            }
        }
    }

    /// One statement's rows, one a line.
    fn query(&self, db: &str, sql: &str) -> String {
        match self {
            Restartable::Postgres(pg) => pg.psql(db, sql),
            Restartable::MariaDb(server) => server.sql(db, sql),
        }
    }

    /// Stops it (sessions cut mid-transaction), waits `down`, starts it again.
    fn restart_after(&self, down: Duration) {
        match self {
            Restartable::Postgres(pg) => {
                pg.stop();
                std::thread::sleep(down);
                pg.start_again();
            }
            Restartable::MariaDb(server) => {
                server.stop();
                std::thread::sleep(down);
                server.start_again();
            }
        }
    }
}

/// PostgreSQL restarted (fast shutdown: sessions cut mid-transaction) while orders stream in.
/// Calls during the outage fail within seconds with UNAVAILABLE and nothing internal in the
/// message; nothing is half-written; afterwards orders are taken again without restarting
/// orderhub, and the kitchen has every stored order once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_burst_fails_fast_and_recovers() {
    let server = Restartable::Postgres(Arc::new(PgServer::start()));
    restart_mid_burst_fails_fast_and_recovers(server, "orderhub_pg_restart").await;
}

/// The same with MariaDB shut down normally (SIGTERM: sessions killed, transactions rolled
/// back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_mid_burst_fails_fast_and_recovers() {
    let server = Restartable::MariaDb(Arc::new(MariaDbServer::start()));
    restart_mid_burst_fails_fast_and_recovers(server, "orderhub_mariadb_restart").await;
}

async fn restart_mid_burst_fails_fast_and_recovers(pg: Restartable, db: &str) {
    let _alone = crate::support::load_test().await;
    let database = pg.database(db);
    let node = NodeProcess::start(
        scratch(),
        &[
            ("DATABASE_URL", database.as_str()),
            ("ORDERHUB_JWT_SECRET", SECRET),
            ("ORDERHUB_NO_DEMO", "true"),
        ],
    );
    let api = node.api();
    let f = Arc::new(api.fixture().await);
    let (mut kitchen, mut board) = kitchen_on(&api, &api, &f).await;

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let restarted = Arc::new(Mutex::new(None::<Instant>));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (api, f, outcomes, restarted) =
                (api.clone(), f.clone(), outcomes.clone(), restarted.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    // Until a few seconds after the database is back.
                    let back = *restarted.lock().expect("lock");
                    if back.is_some_and(|at: Instant| at.elapsed() > Duration::from_secs(3)) {
                        break;
                    }
                    let input = f.order_input(&format!("w{w}-{i}"), &[(0, 1), (1, 2)]);
                    let started = Instant::now();
                    let call = api.try_gql(Some(&f.customer), PLACE, json!({"i": input}));
                    let (_, response) = tokio::time::timeout(Duration::from_secs(20), call)
                        .await
                        .expect("a placeOrder call hung")
                        .expect("orderhub answers while the database is away");
                    let error = response.code().map(|code| {
                        let message = response.0["errors"][0]["message"].as_str();
                        (code.to_owned(), message.unwrap_or_default().to_owned())
                    });
                    let outcome = Outcome {
                        took: started.elapsed(),
                        error,
                    };
                    outcomes
                        .lock()
                        .expect("lock")
                        .push((Instant::now(), outcome));
                    // A pace, not a wait: a steady stream across the outage.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    // A second of orders before the outage, and four seconds of outage: the scenario's
    // durations, not waits for anything.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server = pg.clone();
    let back = tokio::task::spawn_blocking(move || {
        server.restart_after(Duration::from_secs(4));
        Instant::now()
    })
    .await
    .expect("restarted");
    *restarted.lock().expect("lock") = Some(back);
    for writer in writers {
        writer.await.expect("a writer finished");
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().expect("lock"));
    let failed: Vec<_> = outcomes.iter().filter(|(_, o)| o.error.is_some()).collect();
    let slowest = failed.iter().map(|(_, o)| o.took).max();
    eprintln!(
        "{} restart: {} calls, {} failed (slowest failure {slowest:?})",
        pg.name(),
        outcomes.len(),
        failed.len()
    );
    assert!(!failed.is_empty(), "the outage was noticed");
    for (_, outcome) in &failed {
        let (code, message) = outcome.error.as_ref().expect("an error");
        assert_eq!(code, "UNAVAILABLE", "{outcome:?}");
        for internal in [
            "sqlx",
            "postgres",
            "mysql",
            "mariadb",
            "refused",
            "pool",
            "terminating",
            "shutdown",
            "57P",
        ] {
            assert!(
                !message.to_lowercase().contains(internal),
                "internals leaked: {message}"
            );
        }
        assert!(
            outcome.took < Duration::from_secs(5),
            "slow failure: {outcome:?}"
        );
    }
    // Back without restarting orderhub: every call from a second after the restart succeeds.
    let after: Vec<_> = outcomes
        .iter()
        .filter(|(at, _)| *at > back + Duration::from_secs(1))
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|(_, o)| o.error.is_none()),
        "failures after recovery: {after:?}"
    );

    // Nothing half-written: every stored order has its two lines, its total and its event.
    let lines = pg.query(
        db,
        "SELECT count(*) FROM orders o WHERE total <> 1800 OR \
         (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) <> 2",
    );
    assert_eq!(lines.trim(), "0", "half-written orders");
    let (orders, events) = stored_in(&|sql| pg.query(db, sql), &f);
    let confirmed = outcomes.iter().filter(|(_, o)| o.error.is_none()).count();
    assert!(orders.len() >= confirmed, "a confirmed order is missing");
    assert_eq!(
        events - f.seq,
        orders.len() as i64,
        "one event per order, after the menu's"
    );
    let ended = board
        .follow(&mut kitchen, &f, events as usize, Duration::from_secs(30))
        .await;
    if let Some(closed) = ended {
        // The connection may have been cut with the database; resume like a display does.
        eprintln!("the kitchen reconnects after {closed:?}");
        board.resume_on(&api, &f, events).await;
    }
    board.assert_complete(events, &orders);
    assert_eq!(readiness(&api).await["status"], "ready");
    node.assert_no_panic();
}
