//! The manager screen's server side: `Restaurant.tableLinks` (a customer link and QR code per
//! table, for managers and admins only) and the page at `/manage`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orderhub_actors::domain::Role;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{sqlite, sqlite_url, Api, Fixture, Gql, TestServer, PLACE};

const LINKS: &str = "query($r: ID!, $b: String!) { restaurant(id: $r) { \
    tableLinks(baseUrl: $b) { table { id name restaurantId } url qrSvg expiresAt } } }";

async fn links(server: &Api, token: &str, restaurant: &str, base_url: &str) -> Gql {
    server
        .gql(Some(token), LINKS, json!({"r": restaurant, "b": base_url}))
        .await
}

/// The claims of a JWT, unverified (the server verifies them when the token is used).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn now_seconds() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(now.as_secs()).expect("seconds")
}

/// Checks each link of `answer` against the fixture's tables and returns the links' tokens,
/// one per table in the fixture's order.
fn check_links(answer: &Gql, f: &Fixture, base: &str, ttl_seconds: i64) -> Vec<String> {
    answer.ok();
    let links = answer
        .at("restaurant.tableLinks")
        .as_array()
        .expect("a list of links");
    assert_eq!(links.len(), f.tables.len(), "one link per table: {links:?}");
    let mut tokens = Vec::new();
    for (link, (table, name)) in links.iter().zip(f.tables.iter().zip(["T1", "T2"])) {
        assert_eq!(link["table"]["id"], json!(table));
        assert_eq!(link["table"]["name"], json!(name));
        assert_eq!(link["table"]["restaurantId"], json!(f.restaurant));
        let url = link["url"].as_str().expect("url");
        let prefix = format!("{base}/order#token=");
        let token = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} starts with {prefix}"));
        let claims = claims(token);
        assert_eq!(claims["role"], json!("customer"), "{claims}");
        assert_eq!(claims["restaurant_id"], json!(f.restaurant), "{claims}");
        assert_eq!(claims["table_id"], json!(table), "{claims}");
        let exp = claims["exp"].as_i64().expect("exp");
        let expected = now_seconds() + ttl_seconds;
        assert!(
            (expected - 60..=expected + 1).contains(&exp),
            "exp {exp} is about now + {ttl_seconds} s"
        );
        let expires_at = link["expiresAt"].as_str().expect("expiresAt");
        let parsed = chrono::DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
        assert_eq!(parsed.timestamp(), exp, "expiresAt is the token's exp");
        let svg = link["qrSvg"].as_str().expect("qrSvg");
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.ends_with("</svg>"),
            "an SVG document: {svg:.80}"
        );
        tokens.push(token.to_owned());
    }
    tokens
}

/// A manager gets a link per table whose token is a customer token for that table, valid
/// for the default year; it places orders at that table and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_gets_a_working_customer_link_per_table() {
    let server = sqlite();
    let f = server.fixture().await;
    let manager = server.token(Role::Manager, Some(&f.restaurant), None);
    // Trailing slashes are dropped: the link is never `…//order`.
    let answer = links(
        server,
        &manager,
        &f.restaurant,
        &format!("{}/", server.base),
    )
    .await;
    let tokens = check_links(&answer, &f, &server.base, 365 * 86_400);

    let placed = server
        .gql(
            Some(&tokens[0]),
            PLACE,
            json!({"i": f.order_input("from-the-qr-code", &[(0, 2)])}),
        )
        .await;
    placed.ok();
    assert_eq!(placed.str("placeOrder.tableId"), f.tables[0]);
    assert_eq!(placed.int("placeOrder.total.amount"), 1800);
    // The second table's token is for the second table only.
    server
        .gql(
            Some(&tokens[1]),
            PLACE,
            json!({"i": f.order_input("wrong-table", &[(0, 1)])}),
        )
        .await
        .expect_code("FORBIDDEN");

    // An admin may too, for any restaurant.
    let answer = links(server, &f.admin, &f.restaurant, "https://orders.example").await;
    check_links(&answer, &f, "https://orders.example", 365 * 86_400);
}

/// ORDERHUB_TABLE_TOKEN_TTL sets how long the printed links stay valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_token_ttl_is_configurable() {
    let server = TestServer::start(&sqlite_url("table_token_ttl"), &["--table-token-ttl", "2d"]);
    let f = server.fixture().await;
    let manager = server.token(Role::Manager, Some(&f.restaurant), None);
    let answer = links(&server, &manager, &f.restaurant, &server.base).await;
    check_links(&answer, &f, &server.base, 2 * 86_400);
}

/// Staff and customers of the restaurant, and managers of another, get FORBIDDEN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_managers_and_admins_get_table_links() {
    let server = sqlite();
    let f = server.fixture().await;
    let other = server.fixture().await;
    let other_manager = server.token(Role::Manager, Some(&other.restaurant), None);
    for (who, token) in [
        ("staff", &f.staff),
        ("customer", &f.customer),
        ("another restaurant's manager", &other_manager),
    ] {
        let answer = links(server, token, &f.restaurant, &server.base).await;
        assert_eq!(answer.code(), Some("FORBIDDEN"), "{who}: {}", answer.0);
        assert!(
            !answer.0.to_string().contains("token="),
            "{who} sees no link: {}",
            answer.0
        );
    }
    server
        .gql(None, LINKS, json!({"r": f.restaurant, "b": server.base}))
        .await
        .expect_code("UNAUTHENTICATED");
}

/// baseUrl must be an absolute http(s) URL without a fragment or a query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_base_url_is_bad_user_input() {
    let server = sqlite();
    let f = server.fixture().await;
    let manager = server.token(Role::Manager, Some(&f.restaurant), None);
    let too_long = format!("https://orders.example/{}", "x".repeat(600));
    for base_url in [
        "",
        "/order",
        "orders.example",
        "ftp://orders.example",
        "javascript:alert(1)",
        "https://",
        "https://orders.example/#table",
        "https://orders.example/?a=b",
        "https://user:secret@orders.example",
        "https://orders.example/a b",
        &too_long,
    ] {
        let answer = links(server, &manager, &f.restaurant, base_url).await;
        assert_eq!(
            answer.code(),
            Some("BAD_USER_INPUT"),
            "{base_url:.40}: {}",
            answer.0
        );
    }
}

/// The page, its script and its stylesheet, under the screens' policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_screen_is_served_with_its_policy() {
    let server = sqlite();
    for (path, kind) in [
        ("/manage", "text/html"),
        ("/assets/screens/manage.js", "text/javascript"),
        ("/assets/screens/manage.css", "text/css"),
    ] {
        let response = server
            .http()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        let body = response.text().await.expect("body");
        if path == "/manage" {
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "no inline code"
            );
            for asset in ["manage.js", "manage.css", "screens.css"] {
                assert!(
                    body.contains(&format!("/assets/screens/{asset}")),
                    "{asset}"
                );
            }
        }
    }
}
