//! The HTTP surface: the contract, limits, GET, health checks.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

use crate::support::sqlite;

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs tests/contract/check.mjs with Node; the suite's setup (scripts/test) installs both.
fn contract_tool(args: &[&str]) -> std::process::Output {
    node_tool("check.mjs", args)
}

/// Runs a script of tests/contract to its end with Node.
fn node_tool(script: &str, args: &[&str]) -> std::process::Output {
    assert!(
        repo_file("tests/contract/node_modules/graphql").exists(),
        "graphql-js is missing: run `npm ci --prefix tests/contract` (scripts/test does this)"
    );
    Command::new("node")
        .arg(repo_file(&format!("tests/contract/{script}")))
        .args(args)
        .output()
        .expect("node is needed for the contract check: install the Debian package nodejs (scripts/test does this)")
}

/// graphql-http's `auditServer`, the GraphQL-over-HTTP working draft's own audit suite, finds
/// no MUST (error) and no SHOULD (warning) broken, with an admin token on every request.
#[test]
fn the_graphql_over_http_audit_finds_no_error_and_no_warning() {
    let server = sqlite();
    let url = format!("{}/graphql", server.base);
    let output = node_tool("audit.mjs", &[&url, &server.admin()]);
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
        output.status.success() && summary.ends_with(" 0 warnings, 0 errors"),
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
