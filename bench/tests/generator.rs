//! The generator against real servers: a tiny fanout on orderhub (SQLite, in-process) must
//! find every event exactly once and in order; against the wire baseline made to skip,
//! repeat or swap an event, its checks must notice.

use orderhub::app::{App, Settings};
use orderhub::config::{Cli, Command};
use orderhub_bench::client::Target;
use orderhub_bench::fanout::{self, FanoutParams, FanoutReport};
use orderhub_bench::setup::Signer;
use orderhub_bench::wire::{self, Fault, WireConfig};
use orderhub_bench::{idle, storm};
use std::time::Duration;

const SECRET: &str = "generator-tests-secret-0123456789abcdef";

fn params(subscribers: usize, orders: usize) -> FanoutParams {
    FanoutParams {
        subscribers,
        restaurants: 1,
        orders,
        rate: 0.0,
        writers: 2,
        stalled: 0,
        stalled_recv_buffer: 4096,
        stall_hold: Duration::ZERO,
        slow_consumer_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(2),
        subscribe_to: Vec::new(),
        live: false,
    }
}

async fn fanout_on(base: &str, subscribers: usize, orders: usize, drain: u64) -> FanoutReport {
    let target = Target::new(base).await.expect("target");
    let signer = Signer::new(SECRET).expect("signer");
    let params = FanoutParams {
        // At most: the run ends once every display has the last event.
        drain: Duration::from_secs(drain),
        ..params(subscribers, orders)
    };
    fanout::run(&target, &signer, params, &[std::process::id()], "fanout")
        .await
        .expect("fanout runs")
}

async fn orderhub() -> String {
    let db = format!(
        "sqlite://{}/generator-{}.db",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    let argv = [
        "orderhub",
        "serve",
        "--no-demo",
        "--database-url",
        &db,
        "--jwt-secret",
        SECRET,
        "--rate-limit",
        "0",
    ];
    let Some(Command::Serve(args)) = <Cli as clap::Parser>::parse_from(argv).command else {
        panic!("serve arguments did not parse");
    };
    let app = App::build(&Settings::new(&args))
        .await
        .expect("orderhub starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(app.serve(listener, std::future::pending()));
    format!("http://{addr}")
}

async fn wire_server(fault: Option<Fault>) -> String {
    let config = WireConfig {
        fault,
        ..WireConfig::default()
    };
    let (addr, serving) = wire::bind("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("wire server binds");
    tokio::spawn(serving);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_orderhub_event_once_in_order() {
    let base = orderhub().await;
    let report = fanout_on(&base, 5, 30, 10).await;
    assert_eq!(report.subscribed, 5, "{report:?}");
    assert_eq!(report.writes.ok, 30, "{:?}", report.writes);
    assert!(report.deliveries.is_clean(), "{:?}", report.deliveries);
    assert_eq!(report.deliveries.received, 5 * 30);
    assert_eq!(report.expected_deliveries, 5 * 30);
    assert_eq!(report.complete, 5);
    assert_eq!(report.delivery_latency.count, 5 * 30);
    assert!(
        report.subscriber_ends.is_empty(),
        "{:?}",
        report.subscriber_ends
    );
    assert!(report.server.is_some_and(|s| s.cpu_seconds > 0.0));
}

/// Displays that subscribe without `after` count from their first event; every later one
/// must still arrive once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_get_every_later_event_once_in_order() {
    let base = orderhub().await;
    let target = Target::new(&base).await.expect("target");
    let signer = Signer::new(SECRET).expect("signer");
    let params = FanoutParams {
        live: true,
        drain: Duration::from_secs(10),
        ..params(5, 30)
    };
    let report = fanout::run(&target, &signer, params, &[std::process::id()], "fanout")
        .await
        .expect("the run completes");
    assert_eq!(report.subscribed, 5, "{report:?}");
    assert!(report.deliveries.is_clean(), "{:?}", report.deliveries);
    assert_eq!(report.complete, 5, "{report:?}");
}

/// Idle displays, a few of them: each subscribes, and each gets the one event placed once
/// all are open. The server here is this process, so its memory reading is this process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriptions_are_open_and_live_in_both_forms() {
    let base = orderhub().await;
    let target = Target::new(&base).await.expect("target");
    let signer = Signer::new(SECRET).expect("signer");
    for live in [false, true] {
        let report = idle::run(&target, &signer, 6, 2, &[std::process::id()], live)
            .await
            .expect("the idle run completes");
        assert_eq!((report.subscribed, report.refused), (6, 0), "{report:?}");
        assert_eq!(report.live, 6, "live: {live}: {report:?}");
        assert!(report.kib_per_subscription.is_some(), "{report:?}");
        assert!(report.summary().contains("6 connections subscribed"));
    }
}

/// A small storm: every client resumes from `after: 0` at once and gets its restaurant's
/// whole history, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_resuming_clients_gets_every_history() {
    let base = orderhub().await;
    let target = Target::new(&base).await.expect("target");
    let signer = Signer::new(SECRET).expect("signer");
    let report = storm::run(
        &target,
        &signer,
        8,
        2,
        5,
        Duration::from_secs(20),
        &[std::process::id()],
    )
    .await
    .expect("the storm completes");
    assert_eq!((report.refused, report.resumed), (0, 8), "{report:?}");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.deliveries.is_clean(), "{:?}", report.deliveries);
    assert_eq!(report.deliveries.received, 8 * 5);
    assert_eq!(report.first_event.count, 8);
    assert!(report.all_resumed_seconds.is_some(), "{report:?}");
    assert!(report.summary().contains("8 resumed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_baseline_delivers_cleanly() {
    let report = fanout_on(&wire_server(None).await, 4, 20, 5).await;
    assert!(report.deliveries.is_clean(), "{report:?}");
    assert_eq!(report.deliveries.received, 4 * 20);
    assert_eq!(report.complete, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_event_is_missing() {
    // Seq 1 is the warm-up; seq 5 is never sent.
    let report = fanout_on(&wire_server(Some(Fault::Skip(5))).await, 3, 10, 10).await;
    assert_eq!(report.deliveries.missing, 3, "{:?}", report.deliveries);
    assert_eq!(report.deliveries.received, 3 * 9);
    assert_eq!(report.deliveries.duplicates, 0);
    assert_eq!(report.complete, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_is_a_duplicate() {
    let report = fanout_on(&wire_server(Some(Fault::Duplicate(4))).await, 3, 10, 10).await;
    assert_eq!(report.deliveries.duplicates, 3, "{:?}", report.deliveries);
    assert_eq!(report.deliveries.missing, 0);
    assert_eq!(report.deliveries.out_of_order, 0);
    assert_eq!(report.deliveries.received, 3 * 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_is_out_of_order() {
    let report = fanout_on(&wire_server(Some(Fault::Swap(6))).await, 3, 10, 10).await;
    assert_eq!(report.deliveries.out_of_order, 3, "{:?}", report.deliveries);
    assert_eq!(report.deliveries.missing, 0);
    assert_eq!(report.deliveries.duplicates, 0);
    assert_eq!(report.deliveries.received, 3 * 10);
}
