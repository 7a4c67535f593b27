//! HTTP/1.1 message rules (RFC 9112) that hyper leaves to the server, and the deadline on
//! request bodies, each on a raw socket.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{sqlite_url, TestServer};

const QUERY: &str = "/graphql?query=%7B__typename%7D";

async fn connect(server: &TestServer) -> (TcpStream, String) {
    let address = server.base.trim_start_matches("http://").to_owned();
    let socket = TcpStream::connect(&address).await.expect("connect");
    (socket, address)
}

/// Sends `head` as it is and reads until the server closes (or 10 s): the status code and
/// the whole response.
async fn exchange(server: &TestServer, head: &str) -> (u16, String) {
    let (mut socket, _) = connect(server).await;
    socket.write_all(head.as_bytes()).await.expect("send");
    read_response(&mut socket, Duration::from_secs(10)).await
}

async fn read_response(socket: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut response = Vec::new();
    let _ = tokio::time::timeout(within, socket.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = crate::support::status_line(&response);
    (status, response)
}

#[tokio::test]
async fn the_host_header_is_required_once_and_valid() {
    let server = TestServer::start(&sqlite_url("framing_host"), &[]);
    let (_, address) = connect(&server).await;
    let cases: [(&str, String, u16); 8] = [
        ("one valid Host", format!("Host: {address}\r\n"), 200),
        ("an empty Host", "Host:\r\n".into(), 200),
        ("no Host", String::new(), 400),
        (
            "two Host lines",
            format!("Host: {address}\r\nHost: {address}\r\n"),
            400,
        ),
        ("two equal Host lines", "Host: a\r\nHost: a\r\n".into(), 400),
        ("Host: a b", "Host: a b\r\n".into(), 400),
        (
            "Host with user information",
            "Host: user@example.com\r\n".into(),
            400,
        ),
        (
            "Host with a path",
            "Host: example.com/graphql\r\n".into(),
            400,
        ),
    ];
    for (case, host, expected) in cases {
        let head = format!("GET {QUERY} HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
        let (status, response) = exchange(&server, &head).await;
        assert_eq!(status, expected, "{case}: {response}");
        if expected == 400 {
            assert!(
                response.contains("RFC 9112"),
                "{case}: says why: {response}"
            );
            assert!(response.contains("BAD_REQUEST"), "{case}: {response}");
        } else {
            assert!(
                response.contains("\"__typename\":\"Query\""),
                "{case}: {response}"
            );
        }
    }
    // HTTP/1.0 has no Host requirement.
    let (status, response) = exchange(&server, &format!("GET {QUERY} HTTP/1.0\r\n\r\n")).await;
    assert_eq!(status, 200, "{response}");
}

#[tokio::test]
async fn request_targets_match_their_forms() {
    let server = TestServer::start(&sqlite_url("framing_targets"), &[]);
    let (_, address) = connect(&server).await;
    for (target, method, expected) in [
        ("*", "GET", 400),
        (address.as_str(), "GET", 400),
        (&format!("http://{address}{QUERY}"), "GET", 200),
    ] {
        let head =
            format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let (status, response) = exchange(&server, &head).await;
        assert_eq!(status, expected, "{method} {target}: {response}");
    }
    // Framing hyper refuses on its own, kept so by this test: a final coding other than
    // chunked, and two different lengths.
    for framing in [
        "Transfer-Encoding: gzip\r\n",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
    ] {
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{framing}Connection: close\r\n\r\n{{}}"
        );
        let (status, response) = exchange(&server, &head).await;
        assert_eq!(status, 400, "{framing}: {response}");
    }
}

/// A body trickled one byte at a time is cut at the body deadline (here 2 s, then at least
/// 500 bytes/s) with 408 and a closed connection; the same body sent at once is served.
#[tokio::test]
async fn a_trickled_body_is_cut_at_its_deadline() {
    let server = TestServer::start(
        &sqlite_url("framing_body"),
        &["--body-timeout", "2s", "--body-min-rate", "500"],
    );
    let body = format!("{{\"query\":\"{{ __typename }}\"}}{}", " ".repeat(974));
    assert_eq!(body.len(), 1000);
    let (socket, address) = connect(&server).await;
    let head = |connection: &str| {
        format!(
            "POST /graphql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: {connection}\r\n\r\n"
        )
    };
    let (mut reading, mut writing) = socket.into_split();
    writing
        .write_all(head("keep-alive").as_bytes())
        .await
        .expect("head");
    let started = Instant::now();
    let bytes = body.clone().into_bytes();
    // One byte every 500 ms: 2 bytes/s, for as long as the server listens (at most 30 s).
    let trickle = tokio::spawn(async move {
        for byte in bytes.into_iter().take(60) {
            if writing.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), reading.read_to_end(&mut response)).await;
    let took = started.elapsed();
    trickle.abort();
    let response = String::from_utf8_lossy(&response);
    assert!(read.is_ok(), "still open after {took:?}: {response}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(
        took < Duration::from_secs(6),
        "cut after {took:?}, not near 2 s"
    );

    let (mut socket, _) = connect(&server).await;
    let whole = format!("{}{body}", head("close"));
    socket.write_all(whole.as_bytes()).await.expect("send");
    let (status, response) = read_response(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{response}");
}

/// The status line and header fields of a raw response, names lowercased, `Date` left out,
/// sorted by name; and its body.
fn head_and_body(response: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let mut lines = head.split("\r\n");
    let mut fields = vec![("status".to_owned(), lines.next().unwrap_or("").to_owned())];
    fields.extend(
        lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .filter(|(name, _)| name != "date"),
    );
    // The order of different fields means nothing (RFC 9110 § 5.3); of equal ones it does,
    // and a stable sort keeps it.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    (fields, body)
}

/// HEAD is GET without the body (RFC 9110 § 9.3.2) on every route that answers GET: the same
/// status and header fields, `Content-Type` and `Content-Length` included, and no body. A
/// mutation by HEAD is refused as by GET, never run.
#[tokio::test]
async fn head_is_get_without_the_body_on_every_get_route() {
    let server = TestServer::start(&sqlite_url("framing_head"), &[]);
    let (_, address) = connect(&server).await;
    let f = server.fixture().await;
    // Puts the sold-out Special back on the menu, if it ever runs.
    let mutation = format!(
        "/graphql?query=mutation%7BsetMenuItemAvailability(menuItemId%3A%22{}%22%2Cavailable%3Atrue)%7Bid%7D%7D",
        f.menu[2]
    );
    for (target, accept, status) in [
        (QUERY, "application/json", 200),
        (QUERY, "application/graphql-response+json", 200),
        (
            "/graphql?query=%7Bnope%7D",
            "application/graphql-response+json",
            400,
        ),
        ("/graphql", "*/*", 400),
        (QUERY, "text/html", 406),
        (mutation.as_str(), "*/*", 405),
        ("/", "text/html", 200),
        ("/kitchen", "text/html", 200),
        ("/order", "text/html", 200),
        ("/assets/screens/client.js", "*/*", 200),
        ("/assets/screens/nothing.js", "*/*", 404),
        ("/healthz", "*/*", 200),
        ("/readyz", "*/*", 200),
        ("/metrics", "*/*", 200),
    ] {
        let request = |method: &str| {
            format!(
                "{method} {target} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\n\
                 Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
                f.staff
            )
        };
        let (got, get) = exchange(&server, &request("GET")).await;
        assert_eq!(got, status, "GET {target}: {get}");
        let (headed, head) = exchange(&server, &request("HEAD")).await;
        let (mut get_fields, get_body) = head_and_body(&get);
        let (mut head_fields, head_body) = head_and_body(&head);
        assert_eq!(headed, got, "HEAD {target}: {head}");
        assert!(
            status == 404 || !get_body.is_empty(),
            "GET {target} has a body"
        );
        assert_eq!(head_body, "", "HEAD {target} has none");
        if target == "/metrics" {
            // The exposition grows between the two requests; its length with it.
            get_fields.retain(|(name, _)| name != "content-length");
            head_fields.retain(|(name, _)| name != "content-length");
        } else {
            assert!(
                head_fields.iter().any(|(name, _)| name == "content-length"),
                "HEAD {target} gives the length GET would have: {head}"
            );
        }
        assert_eq!(head_fields, get_fields, "HEAD {target} vs GET");
    }
    let menu = server
        .gql(
            Some(&f.staff),
            "query($r: ID!) { restaurant(id: $r) { menu { id available } } }",
            serde_json::json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(
        menu.at("restaurant.menu")[2]["available"],
        false,
        "the mutation sent by GET and HEAD never ran"
    );
}
