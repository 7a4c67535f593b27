//! Metrics from inside the application, and dashboards proven against a real Prometheus.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::prometheus::PrometheusServer;
use crate::harness::redis::RedisServer;
use crate::realtime::{place_orders_steadily, seqs};
use crate::support::{
    eventually, metric_value, replicated_urls, sqlite_url, Api, NodeProcess, TestServer, SECRET,
};
use crate::ws_client::{Incoming, WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

/// Every metric family the dashboards rely on.
const FAMILIES: &[&str] = &[
    "orderhub_http_requests_total",
    "orderhub_http_request_duration_seconds",
    "orderhub_graphql_operations_total",
    "orderhub_graphql_operation_duration_seconds",
    "orderhub_graphql_resolver_duration_seconds",
    "orderhub_ws_connections",
    "orderhub_connections_refused_total",
    "orderhub_rate_limited_total",
    "orderhub_subscriptions_active",
    "orderhub_subscription_cohorts",
    "orderhub_events_published_total",
    "orderhub_events_received_total",
    "orderhub_events_delivered_total",
    "orderhub_event_delivery_seconds",
    "orderhub_slow_consumer_cuts_total",
    "orderhub_subscription_buffer_depth",
    "orderhub_bus_reconnects_total",
    "orderhub_bus_connected",
    "orderhub_actors",
    "orderhub_actor_failures_total",
    "orderhub_db_query_duration_seconds",
    "orderhub_db_pool_connections",
    "orderhub_db_reads_total",
];

/// Queries, mutations, an error, and a subscription that receives events.
async fn traffic(api: &Api) {
    const EVENTS: usize = 100;
    let f = api.fixture().await;
    let mut kitchen = WsClient::ready(api, TRANSPORT_WS, &f.staff).await;
    // From the start: every order reaches it whether its channel has joined yet or not.
    kitchen
        .subscribe(
            "k",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 0}),
        )
        .await;
    let menu = api
        .gql(
            Some(&f.customer),
            "query Menu($r: ID!) { restaurant(id: $r) { name menu { id name price { amount } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    menu.ok();
    let forbidden = api
        .gql(
            Some(&f.customer),
            "query KitchenOrders($r: ID!) { orders(restaurantId: $r) { edges { node { id } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    forbidden.expect_code("FORBIDDEN");
    // The kitchen reads while the orders come in, as a display does.
    let reader = tokio::spawn(async move { seqs(&mut kitchen, "k", EVENTS).await });
    place_orders_steadily(api, &f, "observed", EVENTS).await;
    assert_eq!(
        reader.await.expect("reader"),
        (1..=EVENTS as i64).collect::<Vec<_>>()
    );
    let orders = api
        .gql(Some(&f.staff), "query KitchenOrders($r: ID!) { orders(restaurantId: $r, first: 5) { edges { node { id status total { amount } } } } }", json!({"r": f.restaurant}))
        .await;
    orders.ok();
}

/// A subscriber that stops reading, on a node that notices it after a few events (tiny
/// buffers). Returns once it was cut.
async fn stall(api: &Api) {
    let f = api.fixture().await;
    let mut stalled = WsClient::connect_small(api, TRANSPORT_WS).await;
    stalled.init(&f.staff).await;
    // From the start: every order is due to it whether its channel has joined yet or not.
    stalled
        .subscribe(
            "s",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 0}),
        )
        .await;
    place_orders_steadily(api, &f, "stalling", 200).await;
    loop {
        match stalled.recv().await {
            Incoming::Json(message) if message["type"] == "next" => continue,
            Incoming::Json(message) => {
                assert_eq!(
                    message["payload"][0]["extensions"]["code"], "SLOW_CONSUMER",
                    "{message}"
                );
                break;
            }
            Incoming::Closed(..) => break,
        }
    }
}

fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_operations_resolvers_realtime_and_store() {
    let _alone = crate::support::load_test().await;
    let server = TestServer::start(&sqlite_url("metrics"), &["--slow-consumer-timeout", "1s"]);
    traffic(&server).await;
    // Metrics are per process: the stalled subscriber can be on a node of its own, with buffers
    // small enough to notice it quickly (and too small for anyone who must keep up).
    let tight = TestServer::start(
        &sqlite_url("metrics-tight"),
        &[
            "--subscription-buffer",
            "2",
            "--socket-send-buffer",
            "4096",
            "--slow-consumer-timeout",
            "1s",
        ],
    );
    stall(&tight).await;
    // Cut by its full buffer, or by its stuck socket, whichever came first; the buffer cuts are
    // sampled every 2 s (histograms are drained whenever the metrics are rendered).
    let cuts = |exposition: &str| {
        let value = |series: &str| metric_value(exposition, series).unwrap_or(0.0);
        value(r#"orderhub_slow_consumer_cuts_total{reason="buffer"}"#)
            + value(r#"orderhub_slow_consumer_cuts_total{reason="socket"}"#)
    };
    let mut exposition = String::new();
    eventually(
        "the metrics count the stalled subscriber's cut",
        Duration::from_secs(10),
        async || {
            exposition = server.metrics().await;
            cuts(&exposition) >= 1.0
        },
    )
    .await;
    let present = families(&exposition);
    let missing: Vec<&&str> = FAMILIES.iter().filter(|f| !present.contains(**f)).collect();
    assert!(missing.is_empty(), "missing metric families: {missing:?}");
    let has = |needle: &str| exposition.lines().any(|line| line.contains(needle));
    assert!(has(
        r#"orderhub_graphql_resolver_duration_seconds_count{field="Query.orders"}"#
    ));
    assert!(has(
        r#"orderhub_graphql_resolver_duration_seconds_count{field="Restaurant.menu"}"#
    ));
    assert!(has(
        r#"orderhub_graphql_resolver_duration_seconds_count{field="Mutation.placeOrder"}"#
    ));
    for plain in [
        "Order.status",
        "Money.amount",
        "MenuItem.name",
        "OrderEdge.node",
    ] {
        assert!(
            !has(&format!("field=\"{plain}\"")),
            "a plain field was timed: {plain}"
        );
    }
    assert!(
        has(r#"operation="KitchenOrders",outcome="FORBIDDEN""#) || has(r#"outcome="FORBIDDEN""#)
    );
    assert!(has(
        r#"orderhub_http_requests_total{method="POST",route="/graphql",status="200"}"#
    ));
    let value = |series: &str| metric_value(&exposition, series).unwrap_or(0.0);
    assert!(
        cuts(&exposition) >= 1.0,
        "the stalled subscriber was counted"
    );
    assert!(value("orderhub_events_delivered_total") >= 100.0);
    assert!(value("orderhub_event_delivery_seconds_count") >= 100.0);
    assert!(value("orderhub_events_published_total") >= 101.0);
}

/// The README's promise to operators: point Prometheus at orderhub, load the dashboards, and
/// every panel shows data. Runs every panel's PromQL through a real Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_has_data_in_a_real_prometheus() {
    let _alone = crate::support::load_test().await;
    let redis = RedisServer::start();
    let (primary, replica) = replicated_urls("orderhub_dashboards");
    let redis_url = redis.url();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let node = NodeProcess::start(
        dir,
        &[
            ("DATABASE_URL", primary.as_str()),
            ("DATABASE_READ_URL", replica.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("ORDERHUB_JWT_SECRET", SECRET),
            ("ORDERHUB_NO_DEMO", "true"),
        ],
    );
    let target = node.base.trim_start_matches("http://").to_owned();
    let prometheus = PrometheusServer::start(&[target]);
    let api = node.api();
    let http = reqwest::Client::new();
    let query = |expr: String| {
        let http = http.clone();
        let url = format!("{}/api/v1/query", prometheus.url());
        async move {
            let response = http
                .get(url)
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .expect("Prometheus answers");
            response.json::<Value>().await.expect("JSON")
        }
    };
    // How many times Prometheus has scraped the node so far.
    let scrapes = async || {
        let answer = query(r#"count_over_time(up{job="orderhub"}[1h])"#.to_owned()).await;
        let count = answer["data"]["result"][0]["value"][1].as_str();
        count.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
    };
    // Three more scrapes: at least two that began after what came before.
    let three_more_scrapes = async || {
        let before = scrapes().await;
        let what = format!("Prometheus has scraped the node {} times", before + 3);
        eventually(&what, Duration::from_secs(30), async || {
            scrapes().await >= before + 3
        })
        .await;
    };
    // Traffic on both sides of a few scrapes, so that rates have two samples to work with.
    traffic(&api).await;
    three_more_scrapes().await;
    traffic(&api).await;
    three_more_scrapes().await;

    let mut failures = Vec::new();
    let mut checked = 0;
    for file in [
        "grafana/dashboards/overview.json",
        "grafana/dashboards/graphql.json",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
                .expect("dashboard JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr").to_owned();
                let answer = query(expr.clone()).await;
                checked += 1;
                let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
                if answer["status"] != "success" || series == 0 {
                    failures.push(format!("{file} / {}: {expr} -> {answer}", panel["title"]));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} expressions found");
    assert!(
        failures.is_empty(),
        "{} of {checked} panel queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
