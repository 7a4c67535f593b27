//! One shutdown signal: when a node stops, every task it started on its runtime returns — the
//! accept loop, connections, actors, the Redis loops, the store's samplers, the idle sweeper,
//! the event pruner and the metrics sampler — so nothing is left running behind it.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::harness::redis::RedisServer;
use crate::support::{sqlite_url, test_settings, NodeThread};
use crate::ws_client::{WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_no_task_behind() {
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let settings = test_settings(&sqlite_url("shutdown"), &["--redis-url", &redis_url]);
    // The node's tasks are counted on its own runtime once it has served.
    let node = NodeThread::start(settings, || async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let deadline = Instant::now() + Duration::from_secs(5);
        while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        metrics.num_alive_tasks()
    });
    let api = node.api.clone();

    // Work for every kind of task: a restaurant actor, a channel with a subscription, the bus.
    let f = api.fixture().await;
    let mut kitchen = WsClient::ready(&api, TRANSPORT_WS, &f.staff).await;
    let variables = json!({"r": f.restaurant, "after": f.seq});
    kitchen.subscribe("k", RESTAURANT_EVENTS, variables).await;
    f.place(&api, "before-stop").await;
    let first = kitchen.next_result("k").await;
    assert_eq!(
        first["data"]["restaurantEvents"]["__typename"],
        "OrderPlaced"
    );

    let left = node.stop().await;
    assert_eq!(left, 0, "tasks still alive after the node stopped");
}
