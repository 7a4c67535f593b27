//! Browsers on other origins (`ORDERHUB_CORS_ORIGINS`): CORS preflights and responses, and the
//! `Origin` check on WebSocket upgrades, each over a real socket.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{metric_value, sqlite_url, TestServer};

/// The origin the test servers list; nothing is served there.
const LISTED: &str = "http://app.example:5173";
const UNLISTED: &str = "http://evil.example";

fn listing(name: &str) -> TestServer {
    TestServer::start(&sqlite_url(name), &["--cors-origins", LISTED])
}

/// The `Access-Control-*` fields of a response, names lowercased.
fn cors_fields(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// A browser's preflight for a POST with a token: `(status, headers)`.
async fn preflight(server: &TestServer, origin: &str) -> (StatusCode, HeaderMap) {
    let response = server
        .http()
        .request(Method::OPTIONS, format!("{}/graphql", server.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("OPTIONS");
    (response.status(), response.headers().clone())
}

/// A listed origin's preflight gets exactly what a POST with a token needs; an unlisted one's,
/// and every preflight to a server with no list, gets no `Access-Control-*` field at all.
#[tokio::test]
async fn a_preflight_is_answered_for_listed_origins_only() {
    let server = listing("cors_preflight");
    let (status, headers) = preflight(&server, LISTED).await;
    assert_eq!(status, StatusCode::OK);
    let field = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("{name} in {headers:?}"))
            .to_ascii_lowercase()
    };
    assert_eq!(field("access-control-allow-origin"), LISTED);
    let methods = field("access-control-allow-methods");
    for method in ["get", "head", "post", "options"] {
        assert!(methods.contains(method), "{method}: {methods}");
    }
    let allowed = field("access-control-allow-headers");
    for name in ["authorization", "content-type", "accept"] {
        assert!(allowed.contains(name), "{name}: {allowed}");
    }
    assert_eq!(field("access-control-max-age"), "600");
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "tokens are not cookies: {headers:?}"
    );
    assert!(field("vary").contains("origin"));

    for origin in [
        UNLISTED,
        "null",
        "http://app.example:5174",
        "https://app.example:5173",
    ] {
        let (status, headers) = preflight(&server, origin).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{origin}");
        assert_eq!(cors_fields(&headers), [], "{origin}: {headers:?}");
    }
    let unlisting = TestServer::start(&sqlite_url("cors_preflight_none"), &[]);
    let (status, headers) = preflight(&unlisting, LISTED).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(cors_fields(&headers), [], "no list, no CORS: {headers:?}");
}

/// A listed origin can read every answer, refusals included; any other origin, none.
#[tokio::test]
async fn responses_carry_cors_fields_for_listed_origins_only() {
    let server = listing("cors_responses");
    let post = |origin: &'static str, content_type: &'static str| {
        server
            .http()
            .post(format!("{}/graphql", server.base))
            .header("origin", origin)
            .header("content-type", content_type)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
    };
    for (content_type, status) in [
        ("application/json", StatusCode::OK),
        ("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let listed = post(LISTED, content_type).await.expect("POST");
        assert_eq!(listed.status(), status, "{content_type}");
        let fields = cors_fields(listed.headers());
        assert!(
            fields.contains(&("access-control-allow-origin".into(), LISTED.into())),
            "{content_type}: {fields:?}"
        );
        assert!(
            fields.contains(&("access-control-expose-headers".into(), "retry-after".into())),
            "{content_type}: {fields:?}"
        );
        let unlisted = post(UNLISTED, content_type).await.expect("POST");
        assert_eq!(unlisted.status(), status, "{content_type}");
        assert_eq!(cors_fields(unlisted.headers()), [], "{content_type}");
        let vary: Vec<_> = unlisted.headers().get_all("vary").iter().collect();
        assert!(
            vary.iter().any(|value| value.as_bytes() == b"origin"),
            "a cache keeps the two apart: {vary:?}"
        );
    }
}

/// Sends a WebSocket upgrade to `/graphql` with `origin` (if any) and returns the status and
/// the response as far as it came (the head, and the body of a refusal).
async fn upgrade(server: &TestServer, origin: Option<&str>) -> (u16, String) {
    let address = server.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let origin = origin.map_or(String::new(), |origin| format!("Origin: {origin}\r\n"));
    let head = format!(
        "GET /graphql HTTP/1.1\r\nHost: {address}\r\n{origin}Upgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    // A 101 leaves the socket open: read until the head, and a refusal's body, are in.
    let complete = |response: &[u8]| {
        let text = String::from_utf8_lossy(response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= length
    };
    while !complete(&response) {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => response.extend_from_slice(&buffer[..read]),
            _ => break,
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = crate::support::status_line(&response);
    (status, response)
}

/// An upgrade without `Origin` (not a browser), from the server's own origin (the screens) or
/// from a listed one is accepted; from any other origin it is refused with 403 and FORBIDDEN,
/// before a socket exists.
#[tokio::test]
async fn a_websocket_upgrade_needs_no_origin_its_own_or_a_listed_one() {
    let server = listing("cors_websocket");
    let unlisting = TestServer::start(&sqlite_url("cors_websocket_none"), &[]);
    let series = r#"orderhub_connections_refused_total{reason="origin"}"#;
    // Nodes in this process share one recorder: count from what is there now.
    let refused_before = metric_value(&server.metrics().await, series).unwrap_or(0.0);
    let mut refusals = 0.0;
    for (server, listed) in [(&server, true), (&unlisting, false)] {
        let own = server.base.clone();
        let (_, port) = own.rsplit_once(':').expect("base has a port");
        let port: u16 = port.parse().expect("port");
        let other_port = format!("http://127.0.0.1:{}", port ^ 1);
        let own_over_tls = own.replace("http://", "https://");
        // Another name for the same address is another origin.
        let own_by_name = own.replace("127.0.0.1", "localhost");
        for (origin, accepted) in [
            (None, true),
            (Some(own.as_str()), true),
            (Some(LISTED), listed),
            (Some(UNLISTED), false),
            (Some("null"), false),
            (Some(other_port.as_str()), false),
            // The scheme is not compared: a proxy in front may end TLS.
            (Some(own_over_tls.as_str()), true),
            (Some(own_by_name.as_str()), false),
        ] {
            let (status, response) = upgrade(server, origin).await;
            if accepted {
                assert_eq!(
                    status, 101,
                    "listed: {listed}, Origin {origin:?}: {response}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "listed: {listed}, Origin {origin:?}: {response}"
                );
                assert!(response.contains("\"code\":\"FORBIDDEN\""), "{response}");
                assert!(response.contains("ORDERHUB_CORS_ORIGINS"), "{response}");
                refusals += 1.0;
            }
        }
    }
    let refused = metric_value(&server.metrics().await, series).unwrap_or(0.0);
    assert!(
        refused - refused_before >= refusals,
        "{refusals} refusals counted: {refused_before} → {refused}"
    );
}
