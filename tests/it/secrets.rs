//! The token secret stays inside the process: not in logs, errors, metrics or health checks,
//! and a weak one stops the server before it serves.

use serde_json::json;
use std::time::Duration;

use crate::cli::scratch;
use crate::hostile::{claims, signed};
use crate::support::{eventually, NodeProcess, BIN, SECRET};
use crate::ws_client::{WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_secret_never_leaves_the_process() {
    let dir = scratch("secret");
    let node = NodeProcess::start(
        &dir,
        &[("ORDERHUB_JWT_SECRET", SECRET), ("RUST_LOG", "debug")],
    );
    let api = node.api();
    let f = api.fixture().await;
    let mut answers = Vec::new();

    // Good traffic, and every kind of failure a token or a request can cause.
    f.place(&api, "secret-1").await;
    let forged = {
        let mut token = f.staff.clone();
        token.pop();
        token.push(if f.staff.ends_with('A') { 'B' } else { 'A' });
        token
    };
    let expired = signed(
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
        &claims(&f, "staff", -600),
    );
    let orders = "query($r: ID!) { orders(restaurantId: $r) { edges { node { id } } } }";
    for token in [
        forged.as_str(),
        "not.a.token",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ.",
        &f.customer,
        &f.staff,
    ] {
        let answer = api
            .gql(Some(token), orders, json!({"r": f.restaurant}))
            .await;
        answers.push(answer.0.to_string());
    }
    let answer = api
        .gql(Some(&expired), orders, json!({"r": f.restaurant}))
        .await;
    answer.expect_code("UNAUTHENTICATED");
    answers.push(answer.0.to_string());
    for body in [
        "{".to_owned(),
        json!({"query": "{ restaurant(id: "}).to_string(),
        json!({"query": "{ nothing }"}).to_string(),
        json!({"query": "{ __typename }", "pad": "x".repeat(300 * 1024)}).to_string(),
    ] {
        let response = api
            .http()
            .post(format!("{}/graphql", api.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        answers.push(response.text().await.expect("body"));
    }

    let mut refused = WsClient::connect(&api, TRANSPORT_WS).await;
    refused
        .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {forged}")}}))
        .await;
    answers.push(format!("{:?}", refused.recv().await));
    let mut kitchen = WsClient::ready(&api, TRANSPORT_WS, &f.staff).await;
    kitchen
        .subscribe(
            "k",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": 0}),
        )
        .await;
    answers.push(kitchen.next_result("k").await.to_string());
    kitchen.close().await;

    // `/readyz` last: it logs its store ping, and once that line is captured, so is every line
    // logged before it.
    for path in ["/metrics", "/healthz", "/", "/graphql?query=%7B", "/readyz"] {
        let response = api
            .http()
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .expect("GET");
        answers.push(response.text().await.expect("body"));
    }
    eventually(
        "the log line of the last request is captured",
        Duration::from_secs(10),
        async || node.output().contains("route=/readyz"),
    )
    .await;
    let logs = node.output();
    assert!(
        logs.contains("DEBUG"),
        "the logs are captured at debug level"
    );
    assert!(
        answers.iter().any(|a| a.contains("# TYPE orderhub_")),
        "metrics were served"
    );
    assert!(!logs.contains(SECRET), "the secret is in the logs");
    for answer in &answers {
        assert!(
            !answer.contains(SECRET),
            "the secret was answered: {answer}"
        );
    }
}

#[test]
fn hostile_weak_secret_is_refused_without_echoing_it() {
    let dir = scratch("weak-secret");
    let weak = "w".repeat(31);
    for args in [
        vec!["serve".to_owned()],
        vec!["serve".to_owned(), "--jwt-secret".to_owned(), weak.clone()],
    ] {
        let output = std::process::Command::new(BIN)
            .args(&args)
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env("ORDERHUB_JWT_SECRET", &weak)
            .env("ORDERHUB_LISTEN", "127.0.0.1:0")
            .output()
            .expect("orderhub runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("at least 32 bytes"), "{stderr}");
        assert!(
            !stderr.contains(&weak) && !stdout.contains(&weak),
            "the secret is echoed: {stderr}{stdout}"
        );
    }
}
