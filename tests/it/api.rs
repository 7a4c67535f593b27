//! The HTTP surface: the contract, limits, GET, health checks.

use serde_json::{json, Value};
use std::path::Path;

use crate::support::sqlite;

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs tests/contract/check.mjs with Node; the suite's setup (scripts/test) installs both.
fn contract_tool(args: &[&str]) -> std::process::Output {
    crate::support::node_run("check.mjs", args)
}

/// graphql-http's `auditServer`, the GraphQL-over-HTTP working draft's own audit suite, finds
/// no MUST (error) and no SHOULD (warning) broken, with an admin token on every request; and
/// every MAY it checks is taken (no notice).
#[test]
fn the_graphql_over_http_audit_finds_no_error_and_no_warning() {
    let server = sqlite();
    let url = format!("{}/graphql", server.base);
    let output = crate::support::node_run("audit.mjs", &[&url, &server.admin()]);
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = report
        .lines()
        .find(|line| line.starts_with("audit: "))
        .unwrap_or_else(|| {
            panic!(
                "no summary from the audit:\n{report}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(
        output.status.success() && summary.ends_with(" 0 notices, 0 warnings, 0 errors"),
        "{summary}\n{report}"
    );
}

#[test]
fn served_schema_is_a_compatible_superset_of_the_contract() {
    let served = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("served-{}.graphql", std::process::id()));
    std::fs::write(&served, orderhub::graphql::sdl()).expect("write served SDL");
    let contract = repo_file("tests/contract/schema.graphql");
    let output = contract_tool(&[
        "compat",
        contract.to_str().unwrap_or_default(),
        served.to_str().unwrap_or_default(),
    ]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "breaking changes against the contract:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("compatible"), "{report}");
    let _ = std::fs::remove_file(served);
}

#[test]
fn the_compatibility_check_catches_a_removed_field() {
    let contract = repo_file("tests/contract/schema.graphql");
    let broken_sdl = orderhub::graphql::sdl().replace("\tversion: Int!\n", "");
    let broken = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("broken-{}.graphql", std::process::id()));
    std::fs::write(&broken, broken_sdl).expect("write broken SDL");
    let output = contract_tool(&[
        "compat",
        contract.to_str().unwrap_or_default(),
        broken.to_str().unwrap_or_default(),
    ]);
    assert!(!output.status.success(), "a removed field must be reported");
    let _ = std::fs::remove_file(broken);
}

#[tokio::test]
async fn standard_introspection_fits_the_limits_and_abuse_does_not() {
    let server = sqlite();
    let query = String::from_utf8(contract_tool(&["introspection-query"]).stdout).expect("utf-8");
    assert!(query.contains("__schema"), "{query}");
    let introspection = server.gql(None, &query, json!({})).await;
    introspection.ok();
    assert_eq!(introspection.at("__schema.queryType.name"), &json!("Query"));

    let mut deep = String::from("query { __schema { types { fields { type ");
    for _ in 0..20 {
        deep.push_str("{ ofType ");
    }
    deep.push_str("{ name }");
    deep.push_str(&"}".repeat(20 + 4));
    let refused = server.gql(None, &deep, json!({})).await;
    let message = refused.0["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("nested too deep"), "{}", refused.0);
}

#[tokio::test]
async fn get_serves_queries_but_never_mutations() {
    let server = sqlite();
    let url = format!("{}/graphql", server.base);
    let query = server
        .http()
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .expect("GET");
    assert_eq!(query.status(), 200);
    assert_eq!(
        query.json::<Value>().await.expect("json"),
        json!({"data": {"__typename": "Query"}})
    );
    // GraphQL over HTTP § GET: the operation is named by `operationName`.
    let named = server
        .http()
        .get(&url)
        .query(&[
            (
                "query",
                "query A { a: __typename } query B { b: __typename }",
            ),
            ("operationName", "B"),
        ])
        .send()
        .await
        .expect("GET");
    assert_eq!(
        named.json::<Value>().await.expect("json"),
        json!({"data": {"b": "Query"}})
    );
    let mutation = server
        .http()
        .get(&url)
        .query(&[(
            "query",
            "mutation { createRestaurant(input: {name: \"x\"}) { id } }",
        )])
        .bearer_auth(server.admin())
        .send()
        .await
        .expect("GET");
    assert_eq!(mutation.status(), 405);
}

#[tokio::test]
async fn health_and_readiness() {
    let server = sqlite();
    let health = server
        .http()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status(), 200);
    let ready = server
        .http()
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.expect("json")["store"], "ok");
}

#[tokio::test]
async fn expired_and_malformed_tokens_are_unauthenticated() {
    let server = sqlite();
    for header in ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer"] {
        let response = server
            .http()
            .post(format!("{}/graphql", server.base))
            .header("authorization", header)
            .json(&json!({"query": "{ orders(restaurantId: \"x\") { edges { cursor } } }"}))
            .send()
            .await
            .expect("POST");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{header}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_a_listener_of_their_own() {
    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = crate::support::TestServer::start(
        &crate::support::sqlite_url("metrics-listener"),
        &["--metrics-listen", &listen],
    );
    let own = server
        .http()
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .expect("metrics listener");
    assert_eq!(own.status(), 200);
    assert!(own.text().await.expect("text").contains("# TYPE orderhub_"));
    let main = server
        .http()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("main listener");
    assert_eq!(main.status(), 404, "not on the main listener then");
}

/// The GraphQL-over-HTTP draft's rules for each `Accept`: the response's type, its status, and
/// whether it has `data`, for a response that executed (with or without field errors) and for
/// each kind of request error; refusals keep their status in the negotiated type.
#[tokio::test]
async fn graphql_responses_follow_the_accepted_media_type() {
    let server = sqlite();
    let admin = server.admin();
    let url = format!("{}/graphql", server.base);
    const JSON: &str = "application/json";
    const GRAPHQL: &str = "application/graphql-response+json";
    let accepts = [
        (None, JSON),
        (Some("*/*"), JSON),
        (Some("application/*"), JSON),
        (Some("application/json"), JSON),
        (Some("application/graphql-response+json"), GRAPHQL),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL,
        ),
        (
            Some("application/graphql-response+json;q=0.5, application/json"),
            JSON,
        ),
    ];
    // Query, variables; whether it executes (else a request error) and the first error's code.
    let requests = [
        ("{ __typename }", json!({}), true, None),
        (
            "{ order(id: \"\") { id } }",
            json!({}),
            true,
            Some("BAD_USER_INPUT"),
        ),
        ("{", json!({}), false, Some("GRAPHQL_PARSE_FAILED")),
        (
            "{ secret }",
            json!({}),
            false,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            "query($o: ID!) { order(id: $o) { id } }",
            json!({}),
            false,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            "query($n: Int) { __typename }",
            json!({"n": 1_i64 << 40}),
            false,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            "query A { __typename } query B { __typename }",
            json!({}),
            false,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            "subscription { orderUpdated(orderId: \"x\") { id } }",
            json!({}),
            false,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
    ];
    let mut failures = Vec::new();
    for (accept, media) in accepts {
        for (query, variables, executes, code) in &requests {
            let mut post = server
                .http()
                .post(&url)
                .bearer_auth(&admin)
                .json(&json!({"query": query, "variables": variables}));
            if let Some(accept) = accept {
                post = post.header("accept", accept);
            }
            let response = post.send().await.expect("POST");
            let status = response.status().as_u16();
            let content_type = content_type(&response);
            let body: Value = response.json().await.expect("JSON");
            let expected_status = match (media, executes) {
                (GRAPHQL, false) => 400,
                _ => 200,
            };
            let wrong = status != expected_status
                || !content_type.starts_with(media)
                || body.get("data").is_some() != *executes
                || body["errors"][0]["extensions"]["code"].as_str() != *code;
            if wrong {
                failures.push(format!(
                    "Accept {accept:?}, {query}: expected {expected_status} {media}, data {}, \
                     code {code:?}; got {status} {content_type} {body}",
                    if *executes { "present" } else { "absent" }
                ));
            }
        }
        // Refused before GraphQL: the same status, in the negotiated type.
        let mut refused = server
            .http()
            .post(&url)
            .header("content-type", "text/plain")
            .body("{ __typename }");
        if let Some(accept) = accept {
            refused = refused.header("accept", accept);
        }
        let refused = refused.send().await.expect("POST");
        if refused.status() != 415 || !content_type(&refused).starts_with(media) {
            failures.push(format!(
                "Accept {accept:?}, text/plain: expected 415 {media}, got {} {}",
                refused.status(),
                content_type(&refused)
            ));
        }
    }
    // A query over GET follows the same rules.
    let get = server
        .http()
        .get(&url)
        .query(&[("query", "{")])
        .header("accept", GRAPHQL)
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), 400);
    assert!(content_type(&get).starts_with(GRAPHQL));
    let vary = get.headers().get("vary").and_then(|v| v.to_str().ok());
    assert!(
        vary.is_some_and(|vary| vary.to_ascii_lowercase().contains("accept")),
        "{vary:?}"
    );
    // A client that accepts neither type is refused.
    for accept in [
        "text/html",
        "application/json;q=0",
        "application/xml, text/*",
    ] {
        let refused = server
            .http()
            .post(&url)
            .header("accept", accept)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(refused.status(), 406, "{accept}");
        let body: Value = refused.json().await.expect("JSON");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{body}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A variable that cannot be coerced is a request error: not a field of the mutation runs,
/// not even those before the field that uses it (GraphQL spec § 6.1.2), over HTTP and over
/// both WebSocket subprotocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_that_cannot_be_coerced_runs_nothing() {
    use crate::ws_client::{WsClient, LEGACY, TRANSPORT_WS};
    let server = sqlite();
    let f = server.fixture().await;
    // The first field would mark the dish sold out; the second cannot take its variable.
    let query = "mutation($m: ID!, $o: ID!, $v: Int, $t: ID!) { \
        setMenuItemAvailability(menuItemId: $m, available: false) { id } \
        advanceOrder(orderId: $o, to: ACCEPTED, expectedVersion: $v) { id } \
        callStaff(tableId: $t) { id } }";
    let order = "00000000-0000-7000-8000-000000000000";
    let cases = [
        (
            "an Int past 32 bits",
            json!({"m": f.menu[0], "o": order, "v": 1_i64 << 40, "t": f.tables[0]}),
        ),
        (
            "a required variable missing",
            json!({"m": f.menu[0], "o": order, "v": 1}),
        ),
        (
            "a required variable null",
            json!({"m": f.menu[0], "o": order, "v": 1, "t": null}),
        ),
    ];
    let available = || async {
        let menu = server
            .gql(
                Some(&f.staff),
                "query($r: ID!) { restaurant(id: $r) { menu { id available } } }",
                json!({"r": f.restaurant}),
            )
            .await;
        menu.ok().at("restaurant.menu")[0]["available"].clone()
    };
    for (what, variables) in &cases {
        let refused = server.gql(Some(&f.staff), query, variables.clone()).await;
        refused.expect_code("GRAPHQL_VALIDATION_FAILED");
        assert!(refused.0.get("data").is_none(), "{what}: {}", refused.0);
        assert_eq!(
            available().await,
            json!(true),
            "{what}: a field ran over HTTP"
        );
        for protocol in [TRANSPORT_WS, LEGACY] {
            let mut client = WsClient::ready(server, protocol, &f.staff).await;
            client.subscribe("m", query, variables.clone()).await;
            let error = client.recv().await.json();
            assert_eq!(
                (&error["type"], &error["id"]),
                (&json!("error"), &json!("m")),
                "{what}, {protocol}: {error}"
            );
            let code = match protocol {
                TRANSPORT_WS => &error["payload"][0]["extensions"]["code"],
                _ => &error["payload"]["extensions"]["code"],
            };
            assert_eq!(
                code, "GRAPHQL_VALIDATION_FAILED",
                "{what}, {protocol}: {error}"
            );
            client.close().await;
            assert_eq!(
                available().await,
                json!(true),
                "{what}: a field ran over {protocol}"
            );
        }
    }
}
