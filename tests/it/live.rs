//! Live means live: subscribers who join at the same moment get every later event through the
//! live path, in every form of subscription that can share a cohort. The node checks the store
//! only once a minute, so an event that missed the live path does not arrive in time and the
//! test fails, instead of passing late.

use async_graphql::futures_util::future::join_all;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::support::{load_test, Api, Fixture, TestServer};
use crate::ws_client::{Incoming, WsClient, LEGACY, TRANSPORT_WS};

/// How many subscribers join at once, per form.
const SIZES: [usize; 5] = [1, 2, 5, 20, 200];
/// Orders placed once every subscriber is live.
const ORDERS: usize = 5;
/// Far below the one-minute catch-up: only the live path is this fast.
const DEADLINE: Duration = Duration::from_secs(20);

fn node() -> &'static TestServer {
    static NODE: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();
    NODE.get_or_init(|| {
        let url = crate::support::sqlite_url("live");
        TestServer::start(&url, &["--catch-up-interval", "60s"])
    })
}

/// One way to write the same subscription.
#[derive(Debug, Clone, Copy)]
struct Form {
    id_in_variables: bool,
    after: bool,
    fragment: bool,
    /// A named operation, sent without `operationName` (as the graphql-ws client does).
    named: bool,
    protocol: &'static str,
}

impl Form {
    fn all() -> Vec<Form> {
        let mut forms = Vec::new();
        for id_in_variables in [true, false] {
            for after in [false, true] {
                for fragment in [false, true] {
                    for protocol in [TRANSPORT_WS, LEGACY] {
                        forms.push(Form {
                            id_in_variables,
                            after,
                            fragment,
                            named: id_in_variables && !fragment,
                            protocol,
                        });
                    }
                }
            }
        }
        forms
    }

    fn document(&self, restaurant: &str) -> (String, Value) {
        let mut definitions = Vec::new();
        let mut arguments = Vec::new();
        let mut variables = serde_json::Map::new();
        if self.id_in_variables {
            definitions.push("$r: ID!");
            arguments.push("restaurantId: $r".to_owned());
            variables.insert("r".into(), json!(restaurant));
        } else {
            arguments.push(format!("restaurantId: \"{restaurant}\""));
        }
        if self.after {
            definitions.push("$after: Int");
            arguments.push("after: $after".into());
            variables.insert("after".into(), json!(0));
        }
        let selection = "seq ... on OrderPlaced { order { note } }";
        let (body, fragments) = if self.fragment {
            (
                "...Ev",
                format!(" fragment Ev on RestaurantEvent {{ {selection} }}"),
            )
        } else {
            (selection, String::new())
        };
        let name = if self.named { " Lg" } else { "" };
        let definitions = if definitions.is_empty() {
            String::new()
        } else {
            format!("({})", definitions.join(", "))
        };
        let query = format!(
            "subscription{name}{definitions} {{ restaurantEvents({}) {{ {body} }} }}{fragments}",
            arguments.join(", ")
        );
        (query, Value::Object(variables))
    }
}

/// Reads one subscriber's events until it has `last`; returns their seqs.
async fn read_events(
    mut client: WsClient,
    live: Arc<AtomicUsize>,
    mut last: watch::Receiver<Option<i64>>,
) -> Result<Vec<i64>, String> {
    let mut seqs = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let (Some(&got), Some(last)) = (seqs.last(), *last.borrow()) {
            if got >= last {
                return Ok(seqs);
            }
        }
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = tokio::select! {
            message = client.recv_within(wait) => message,
            // A new target: look again whether it is reached.
            _ = last.changed() => continue,
        };
        let message = match message {
            Some(Incoming::Json(message)) => message,
            Some(closed) => return Err(format!("ended: {closed:?} after {seqs:?}")),
            None => return Err(format!("no event within {DEADLINE:?}; had {seqs:?}")),
        };
        let seq = message["payload"]["data"]["restaurantEvents"]["seq"]
            .as_i64()
            .ok_or_else(|| format!("not an event: {message}"))?;
        if seqs.is_empty() {
            live.fetch_add(1, Ordering::Relaxed);
        }
        seqs.push(seq);
    }
}

async fn join_at_once(api: &Api, form: Form, size: usize) {
    let f: Fixture = api.fixture().await;
    let (query, variables) = form.document(&f.restaurant);
    let mut clients =
        join_all((0..size).map(|_| WsClient::ready(api, form.protocol, &f.staff))).await;
    // Every subscribe goes out at the same moment.
    join_all(
        clients
            .iter_mut()
            .map(|client| client.subscribe("live", &query, variables.clone())),
    )
    .await;
    let live = Arc::new(AtomicUsize::new(0));
    let (target, last) = watch::channel(None);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(read_events(client, live.clone(), last.clone())))
        .collect();
    // Without `after`, only events after a subscriber joined reach it: warm up until every one
    // has had one.
    let mut placed = 0;
    while live.load(Ordering::Relaxed) < size {
        assert!(
            placed < 50,
            "{form:?} × {size}: subscribers never all got an event"
        );
        f.place(api, &format!("warm-up-{placed}")).await;
        placed += 1;
        // A pace, not the wait: the loop waits for every subscriber to have had an event,
        // giving each warm-up 100 ms before the next.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..ORDERS {
        f.place(api, &format!("order-{i}")).await;
    }
    let last_seq = f.seq + i64::try_from(placed + ORDERS).expect("small");
    target.send_replace(Some(last_seq));
    for (n, reader) in readers.into_iter().enumerate() {
        let seqs = match reader.await.expect("reader") {
            Ok(seqs) => seqs,
            Err(error) => panic!("{form:?} × {size}, subscriber {n}: {error}"),
        };
        let first = seqs[0];
        let expected: Vec<i64> = (first..=last_seq).collect();
        assert_eq!(seqs, expected, "{form:?} × {size}, subscriber {n}");
        if form.after {
            assert_eq!(first, 1, "{form:?}: after 0 replays from the start");
        }
    }
}

/// Every form, each with 1, 2, 5, 20 and 200 subscribers joining at once, each on a
/// restaurant of its own so that every join races for a fresh channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_are_live_in_every_form() {
    let _alone = load_test().await;
    let api = Api::at(&node().base);
    for form in Form::all() {
        for size in SIZES {
            join_at_once(&api, form, size).await;
        }
    }
}

/// The report this suite comes from, as it was made: 20 stock `graphql-ws` clients subscribe at
/// once with a named operation and the id in `variables`, then orders come 100 ms apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_stock_graphql_ws_clients_joining_together_are_live() {
    const CLIENTS: usize = 20;
    let _alone = load_test().await;
    let api = Api::at(&node().base);
    let f = api.fixture().await;
    let url = api.base.replace("http://", "ws://") + "/graphql";
    let clients = CLIENTS.to_string();
    let args = [url.as_str(), &f.staff, &f.restaurant, &clients];
    let (mut child, lines_rx) = crate::support::node_script("concurrent.mjs", &args);
    let first = lines_rx.recv_timeout(Duration::from_secs(30));
    assert_eq!(first.as_deref(), Ok("subscribed"));
    let mut seen: Vec<Vec<i64>> = vec![Vec::new(); CLIENTS];
    let record = |seen: &mut Vec<Vec<i64>>, line: String| {
        let (client, seq) = line.split_once(' ').expect("CLIENT SEQ");
        let client: usize = client.parse().expect("client");
        seen[client].push(seq.parse().expect("seq"));
    };
    // Warm up until every client has an event: then every one is surely subscribed.
    let mut placed = 0;
    while seen.iter().any(Vec::is_empty) {
        assert!(placed < 50, "not every client got an event: {seen:?}");
        f.place(&api, &format!("warm-up-{placed}")).await;
        placed += 1;
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            record(&mut seen, line);
        }
    }
    for i in 0..10 {
        f.place(&api, &format!("order-{i}")).await;
        // A pace, not a wait: orders 100 ms apart, as in the report.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last: i64 = placed + 10;
    let deadline = std::time::Instant::now() + DEADLINE;
    while !seen
        .iter()
        .all(|s| s.last().is_some_and(|&got| got >= last))
    {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines_rx
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("events missing after {DEADLINE:?}: {seen:?}"));
        record(&mut seen, line);
    }
    let _ = child.kill();
    let _ = child.wait();
    for (client, seqs) in seen.iter().enumerate() {
        let expected: Vec<i64> = (seqs[0]..=last).collect();
        assert_eq!(seqs, &expected, "client {client}");
    }
}
