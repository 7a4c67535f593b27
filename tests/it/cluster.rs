//! Several nodes sharing a database (PostgreSQL, MariaDB) and Redis: every subscriber on every
//! node sees every event in order (Redis outages are in `faults`).

use serde_json::json;

use crate::harness::redis::RedisServer;
use crate::realtime::{place_orders, seqs, warm_up};
use crate::support::{mariadb_url, postgres_url, NodeProcess, SECRET};
use crate::ws_client::{WsClient, LEGACY, RESTAURANT_EVENTS, TRANSPORT_WS};

/// Two server processes; the channels' periodic store check is turned off, so that whatever
/// reaches the other node travelled through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_two_processes_see_every_event_in_order() {
    two_processes_through_redis(&postgres_url("orderhub_cluster")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_two_processes_on_mariadb_see_every_event_in_order() {
    two_processes_through_redis(&mariadb_url("orderhub_cluster")).await;
}

async fn two_processes_through_redis(database: &str) {
    let _alone = crate::support::load_test().await;
    let redis = RedisServer::start();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let redis_url = redis.url();
    let env = [
        ("DATABASE_URL", database),
        ("REDIS_URL", redis_url.as_str()),
        ("ORDERHUB_JWT_SECRET", SECRET),
        ("ORDERHUB_NO_DEMO", "true"),
        ("ORDERHUB_CATCH_UP_INTERVAL", "1h"),
        // This test is about order across nodes, on a CI machine that may be busy compiling;
        // cutting slow consumers has tests of its own.
        ("ORDERHUB_SUBSCRIPTION_BUFFER", "4096"),
    ];
    let a = NodeProcess::start(dir, &env);
    let b = NodeProcess::start(dir, &env);
    let (a, b) = (a.api(), b.api());
    let f = a.fixture().await;
    let mut kitchen = vec![
        WsClient::ready(&a, TRANSPORT_WS, &f.staff).await,
        WsClient::ready(&b, TRANSPORT_WS, &f.staff).await,
        WsClient::ready(&b, LEGACY, &f.staff).await,
    ];
    for client in &mut kitchen {
        client
            .subscribe("k", RESTAURANT_EVENTS, json!({"r": f.restaurant}))
            .await;
    }
    let (warm_ups, firsts) = warm_up(&a, &f, &mut kitchen).await;
    const ORDERS: usize = 500;
    let half = ORDERS / 2;
    tokio::join!(
        place_orders(&a, &f, "on-a", half),
        place_orders(&b, &f, "on-b", half)
    );
    let last = warm_ups + ORDERS as i64;
    for (client, first) in kitchen.iter_mut().zip(firsts) {
        let expected: Vec<i64> = (first + 1..=last).collect();
        assert_eq!(seqs(client, "k", expected.len()).await, expected);
    }
}
