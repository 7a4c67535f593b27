//! One shutdown signal: when a node stops, every task it started on its runtime returns — the
//! accept loop, connections, actors, the Redis loops, the store's samplers, the idle sweeper,
//! the event pruner and the metrics sampler — so nothing is left running behind it.

use orderhub::app::App;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::harness::redis::RedisServer;
use crate::support::{sqlite_url, test_settings, Api};
use crate::ws_client::{WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_no_task_behind() {
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let settings = test_settings(&sqlite_url("shutdown"), &["--redis-url", &redis_url]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The node has a runtime of its own, so that its tasks can be counted apart from the test's.
    let node = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("node runtime");
        runtime.block_on(async move {
            let app = App::build(&settings).await.expect("orderhub starts");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            ready_tx
                .send(listener.local_addr().expect("address"))
                .expect("ready");
            let stopped = async move {
                let _ = stop_rx.await;
            };
            app.serve(listener, stopped).await.expect("serve");
            let metrics = tokio::runtime::Handle::current().metrics();
            let deadline = Instant::now() + Duration::from_secs(5);
            while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            metrics.num_alive_tasks()
        })
    });
    let addr = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("started");
    let api = Api::at(&format!("http://{addr}"));

    // Work for every kind of task: a restaurant actor, a channel with a subscription, the bus.
    let f = api.fixture().await;
    let mut kitchen = WsClient::ready(&api, TRANSPORT_WS, &f.staff).await;
    let variables = json!({"r": f.restaurant, "after": 0});
    kitchen.subscribe("k", RESTAURANT_EVENTS, variables).await;
    f.place(&api, "before-stop").await;
    let first = kitchen.next_result("k").await;
    assert_eq!(
        first["data"]["restaurantEvents"]["__typename"],
        "OrderPlaced"
    );

    stop_tx.send(()).expect("the node is serving");
    let left = tokio::task::spawn_blocking(move || node.join().expect("node thread"))
        .await
        .expect("joined");
    assert_eq!(left, 0, "tasks still alive after the node stopped");
}
