//! Who may do what: every query and mutation against every kind of caller.

use orderhub_actors::domain::Role;
use serde_json::{json, Value};

use crate::support::{
    on_every_backend, sqlite_url, Api, Fixture, Gql, TestServer, ADVANCE, CANCEL, PLACE, SECRET,
};
use crate::ws_client::{Incoming, WsClient, LEGACY, RESTAURANT_EVENTS, TRANSPORT_WS};

on_every_backend!(authorization_matrix);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// Answered with null: the thing is invisible to this caller.
    Null,
    Code(&'static str),
}
use Outcome::{Code, Null, Ok};

const UNAUTH: Outcome = Code("UNAUTHENTICATED");
const FORBID: Outcome = Code("FORBIDDEN");
const MISSING: Outcome = Code("NOT_FOUND");

/// The callers, in the column order of the table below.
const CALLERS: [&str; 10] = [
    "anonymous",
    "forged token",
    "customer at the table",
    "customer at another table",
    "customer of another restaurant",
    "staff",
    "staff of another restaurant",
    "manager",
    "manager of another restaurant",
    "admin",
];

struct Case {
    operation: &'static str,
    /// The field whose value tells Ok from Null.
    field: &'static str,
    expected: [Outcome; 10],
}

const CASES: [Case; 17] = [
    Case {
        operation: "restaurant",
        field: "restaurant",
        expected: [UNAUTH, UNAUTH, Ok, Ok, FORBID, Ok, FORBID, Ok, FORBID, Ok],
    },
    Case {
        operation: "restaurant.tables",
        field: "restaurant",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, Ok, FORBID, Ok, FORBID, Ok,
        ],
    },
    Case {
        operation: "order",
        field: "order",
        expected: [UNAUTH, UNAUTH, Ok, Null, Null, Ok, Null, Ok, Null, Ok],
    },
    Case {
        operation: "orders",
        field: "orders",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, Ok, FORBID, Ok, FORBID, Ok,
        ],
    },
    Case {
        operation: "placeOrder",
        field: "placeOrder",
        expected: [
            UNAUTH, UNAUTH, Ok, FORBID, FORBID, Ok, FORBID, Ok, FORBID, Ok,
        ],
    },
    Case {
        operation: "advanceOrder",
        field: "advanceOrder",
        expected: [
            UNAUTH, UNAUTH, FORBID, MISSING, MISSING, Ok, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "cancelOrder",
        field: "cancelOrder",
        expected: [
            UNAUTH, UNAUTH, Ok, MISSING, MISSING, Ok, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "setMenuItemAvailability",
        field: "setMenuItemAvailability",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, MISSING, Ok, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "callStaff",
        field: "callStaff",
        expected: [
            UNAUTH, UNAUTH, Ok, FORBID, MISSING, Ok, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "createRestaurant",
        field: "createRestaurant",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, Ok,
        ],
    },
    Case {
        operation: "updateRestaurant",
        field: "updateRestaurant",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok, FORBID, Ok,
        ],
    },
    Case {
        operation: "createTable",
        field: "createTable",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok, FORBID, Ok,
        ],
    },
    Case {
        operation: "createMenuItem",
        field: "createMenuItem",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok, FORBID, Ok,
        ],
    },
    // Named by the item: another restaurant's item is missing, as an order is.
    Case {
        operation: "updateMenuItem",
        field: "updateMenuItem",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, MISSING, FORBID, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "archiveMenuItem",
        field: "archiveMenuItem",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, MISSING, FORBID, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "setOptionAvailability",
        field: "setOptionAvailability",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, MISSING, Ok, MISSING, Ok, MISSING, Ok,
        ],
    },
    Case {
        operation: "setTaxSettings",
        field: "setTaxSettings",
        expected: [
            UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok, FORBID, Ok,
        ],
    },
];

async fn authorization_matrix(server: &'static TestServer) {
    let f = server.fixture().await;
    let other = server.fixture().await;
    let forged = {
        let mut token = f.staff.clone();
        token.pop();
        token.push(if f.staff.ends_with('A') { 'B' } else { 'A' });
        token
    };
    // The suite's subject, which made the fixtures: its reads see them even on a replica.
    let manager = server.token(Role::Manager, Some(&f.restaurant), None);
    let other_manager = server.token(Role::Manager, Some(&other.restaurant), None);
    let tokens: [Option<&str>; 10] = [
        None,
        Some(&forged),
        Some(&f.customer),
        Some(&f.other_customer),
        Some(&other.customer),
        Some(&f.staff),
        Some(&other.staff),
        Some(&manager),
        Some(&other_manager),
        Some(&f.admin),
    ];
    let mut failures = Vec::new();
    for case in &CASES {
        for (column, token) in tokens.iter().enumerate() {
            let (query, variables) = request(server, &f, case.operation).await;
            let response = server.gql(*token, &query, variables).await;
            let got = outcome(&response, case.field);
            if got != case.expected[column] {
                failures.push(format!(
                    "{} by {}: expected {:?}, got {:?} ({})",
                    case.operation, CALLERS[column], case.expected[column], got, response.0
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn outcome(response: &Gql, field: &str) -> Outcome {
    match response.code() {
        Some(code) => Code(match code {
            "UNAUTHENTICATED" => "UNAUTHENTICATED",
            "FORBIDDEN" => "FORBIDDEN",
            "NOT_FOUND" => "NOT_FOUND",
            _ => panic!("unexpected error {}", response.0),
        }),
        None if response.at(field).is_null() => Null,
        None => Ok,
    }
}

/// The request for one operation on the fixture's restaurant, first table, first menu item.
/// Operations that change an order get a fresh order each time.
async fn request(server: &TestServer, f: &Fixture, operation: &str) -> (String, Value) {
    let fresh_order = || async { f.place(server, &uuid::Uuid::new_v4().to_string()).await };
    // An item with one option, made by the admin; (item id, option id).
    let fresh_item = || async {
        let created = server
            .gql(
                Some(&f.admin),
                "mutation($r: ID!) { createMenuItem(restaurantId: $r, input: {name: \"Tea\", \
                 price: 200, optionGroups: [{name: \"Size\", minSelected: 0, maxSelected: 1, \
                 options: [{name: \"L\", priceDelta: 50}]}]}) { id optionGroups { options { id } } } }",
                json!({"r": f.restaurant}),
            )
            .await;
        (
            created.str("createMenuItem.id"),
            created.str("createMenuItem.optionGroups.0.options.0.id"),
        )
    };
    let (query, variables) = match operation {
        "restaurant" => ("query($r: ID!) { restaurant(id: $r) { id menu { id } } }", json!({"r": f.restaurant})),
        "restaurant.tables" => ("query($r: ID!) { restaurant(id: $r) { tables { id } } }", json!({"r": f.restaurant})),
        "order" => ("query($o: ID!) { order(id: $o) { id } }", json!({"o": fresh_order().await})),
        "orders" => ("query($r: ID!) { orders(restaurantId: $r) { edges { node { id } } } }", json!({"r": f.restaurant})),
        "placeOrder" => (PLACE, json!({"i": f.order_input(&uuid::Uuid::new_v4().to_string(), &[(0, 1)])})),
        "advanceOrder" => (ADVANCE, json!({"o": fresh_order().await, "to": "ACCEPTED"})),
        "cancelOrder" => (CANCEL, json!({"o": fresh_order().await, "r": "test"})),
        "setMenuItemAvailability" => (
            "mutation($m: ID!) { setMenuItemAvailability(menuItemId: $m, available: true) { id } }",
            json!({"m": f.menu[0]}),
        ),
        "callStaff" => ("mutation($t: ID!) { callStaff(tableId: $t) { id } }", json!({"t": f.tables[0]})),
        "createRestaurant" => ("mutation { createRestaurant(input: {name: \"X\"}) { id } }", json!({})),
        // The name it has: allowed or not, nothing changes.
        "updateRestaurant" => (
            "mutation($r: ID!) { updateRestaurant(restaurantId: $r, input: {name: \"Test Kitchen\"}) { id } }",
            json!({"r": f.restaurant}),
        ),
        "createTable" => ("mutation($r: ID!) { createTable(restaurantId: $r, name: \"T9\") { id } }", json!({"r": f.restaurant})),
        "createMenuItem" => (
            "mutation($r: ID!) { createMenuItem(restaurantId: $r, input: {name: \"Tea\", price: 200}) { id } }",
            json!({"r": f.restaurant}),
        ),
        "updateMenuItem" => (
            "mutation($m: ID!) { updateMenuItem(menuItemId: $m, input: {prepSeconds: 240}) { id } }",
            json!({"m": fresh_item().await.0}),
        ),
        "archiveMenuItem" => (
            "mutation($m: ID!) { archiveMenuItem(menuItemId: $m) { id } }",
            json!({"m": fresh_item().await.0}),
        ),
        "setOptionAvailability" => (
            "mutation($o: ID!) { setOptionAvailability(optionId: $o, available: false) { id } }",
            json!({"o": fresh_item().await.1}),
        ),
        "setTaxSettings" => (
            "mutation($r: ID!) { setTaxSettings(restaurantId: $r, input: {taxRounding: DOWN}) { id } }",
            json!({"r": f.restaurant}),
        ),
        other => panic!("no request for {other}"),
    };
    (query.to_owned(), variables)
}

/// A token whose claims set is exactly `payload`, byte for byte (serde would print whole
/// numbers as integers), signed with HS256 and the suite's secret.
pub fn signed(payload: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HS256 signs");
    format!("{message}.{signature}")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// How a token fared on one of the ways a token arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused,
}

/// The verdict of `token` over HTTP, in the `connection_init` payload and on the WebSocket
/// upgrade request, in that order. `f.restaurant` is read with it as a staff token.
async fn verdicts(server: &Api, f: &Fixture, token: &str) -> [Verdict; 3] {
    let bearer = format!("Bearer {token}");
    let response = server
        .gql(
            Some(token),
            "query($r: ID!) { restaurant(id: $r) { id } }",
            json!({"r": f.restaurant}),
        )
        .await;
    let http = match response.code() {
        None if response.at("restaurant.id") == &json!(f.restaurant) => Verdict::Accepted,
        Some("UNAUTHENTICATED") => Verdict::Refused,
        _ => panic!("neither served nor refused: {}", response.0),
    };
    let judge = |answer: Incoming| match answer {
        Incoming::Json(ack) if ack["type"] == "connection_ack" => Verdict::Accepted,
        Incoming::Closed(Some(4403), _) => Verdict::Refused,
        other => panic!("neither acknowledged nor refused: {other:?}"),
    };
    let mut in_payload = WsClient::connect(server, TRANSPORT_WS).await;
    let payload = judge(
        in_payload
            .init_with(Some(json!({"authorization": bearer})))
            .await,
    );
    let mut on_upgrade = WsClient::connect_authorized(server, TRANSPORT_WS, &bearer).await;
    let upgrade = judge(on_upgrade.init_with(None).await);
    [http, payload, upgrade]
}

/// Each case's token on every way a token arrives; the failures listed together.
async fn check_claims(server: &Api, f: &Fixture, cases: &[(&str, String, Verdict)]) {
    let mut failures = Vec::new();
    for (name, payload, expected) in cases {
        let got = verdicts(server, f, &signed(payload)).await;
        for (way, verdict) in ["HTTP", "connection_init", "upgrade header"]
            .iter()
            .zip(got)
        {
            if verdict != *expected {
                failures.push(format!(
                    "{name} over {way}: {verdict:?}, not {expected:?} ({payload})"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 7519 §2 and §4.1: NumericDates are any JSON number, `iat` is optional, `exp` and
/// `nbf` hold beyond the 5 s leeway, and `iss` and `aud` are not checked when not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_claims_are_read_as_rfc_7519_says() {
    use Verdict::{Accepted, Refused};
    let server = TestServer::start(&sqlite_url("claims"), &[]);
    let f = server.fixture().await;
    let now = now();
    let staff = |claims: String| {
        format!(
            r#"{{"sub":"kitchen-7","role":"staff","restaurant_id":"{}",{claims}}}"#,
            f.restaurant
        )
    };
    let cases = [
        (
            "exp with a fraction",
            staff(format!(r#""iat":{now},"exp":{}.5"#, now + 3600)),
            Accepted,
        ),
        (
            "iat with a fraction",
            staff(format!(r#""iat":{}.25,"exp":{}"#, now - 1, now + 3600)),
            Accepted,
        ),
        (
            "exp in exponent notation",
            staff(format!(r#""exp":{:e}"#, (now + 3600) as f64)),
            Accepted,
        ),
        (
            "exp and nbf in exponent notation, capital E and a sign",
            staff(format!(
                r#""exp":{},"nbf":{}"#,
                format!("{:e}", (now + 3600) as f64).replace('e', "E+"),
                format!("{:e}", (now - 60) as f64).replace('e', "E")
            )),
            Accepted,
        ),
        (
            "exactly the README's claims, no iat",
            staff(format!(r#""exp":{}"#, now + 3600)),
            Accepted,
        ),
        (
            "exp 30 s ago",
            staff(format!(r#""iat":{},"exp":{}"#, now - 3600, now - 30)),
            Refused,
        ),
        (
            "exp 30.5 s ago, with a fraction",
            staff(format!(r#""exp":{}.5"#, now - 31)),
            Refused,
        ),
        (
            "nbf a minute ago",
            staff(format!(r#""nbf":{},"exp":{}"#, now - 60, now + 3600)),
            Accepted,
        ),
        (
            "nbf in a minute",
            staff(format!(r#""nbf":{},"exp":{}"#, now + 60, now + 3600)),
            Refused,
        ),
        (
            "iss, aud (array) and jti, none configured",
            staff(format!(
                r#""iss":"https://id.example","aud":["billing"],"jti":"j-1","exp":{}"#,
                now + 3600
            )),
            Accepted,
        ),
        (
            "aud as a string, not configured",
            staff(format!(r#""aud":"anyone","exp":{}"#, now + 3600)),
            Accepted,
        ),
        (
            "iat that is not a number",
            staff(format!(r#""iat":"today","exp":{}"#, now + 3600)),
            Refused,
        ),
        ("no exp", staff(format!(r#""iat":{now}"#)), Refused),
    ];
    check_claims(&server, &f, &cases).await;
}

/// With `ORDERHUB_JWT_ISSUER` and `ORDERHUB_JWT_AUDIENCE` set, `iss` must equal the one and
/// `aud` (a string or an array) contain the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_and_audience_are_required() {
    use Verdict::{Accepted, Refused};
    let database = sqlite_url("claims-configured");
    // The fixture is made through a node that checks neither: the suite's tokens have no
    // `iss` or `aud`. Both nodes share the database.
    let open = TestServer::start(&database, &[]);
    let f = open.fixture().await;
    let strict = TestServer::start(
        &database,
        &[
            "--jwt-issuer",
            "https://id.example",
            "--jwt-audience",
            "orderhub",
        ],
    );
    let exp = now() + 3600;
    let staff = |claims: &str| {
        format!(
            r#"{{"sub":"kitchen-7","role":"staff","restaurant_id":"{}","exp":{exp},{claims}}}"#,
            f.restaurant
        )
    };
    let cases = [
        (
            "matching iss and aud as a string",
            staff(r#""iss":"https://id.example","aud":"orderhub""#),
            Accepted,
        ),
        (
            "matching iss and aud as an array",
            staff(r#""iss":"https://id.example","aud":["billing","orderhub"]"#),
            Accepted,
        ),
        (
            "another issuer",
            staff(r#""iss":"https://evil.example","aud":"orderhub""#),
            Refused,
        ),
        (
            "the issuer in another case",
            staff(r#""iss":"HTTPS://ID.EXAMPLE","aud":"orderhub""#),
            Refused,
        ),
        ("no iss", staff(r#""aud":"orderhub""#), Refused),
        (
            "another audience",
            staff(r#""iss":"https://id.example","aud":"billing""#),
            Refused,
        ),
        (
            "an array without this audience",
            staff(r#""iss":"https://id.example","aud":["billing","kitchen"]"#),
            Refused,
        ),
        ("no aud", staff(r#""iss":"https://id.example""#), Refused),
    ];
    check_claims(&strict, &f, &cases).await;
    // `orderhub token`'s tokens name no issuer: refused here, accepted where unchecked.
    assert_eq!(verdicts(&strict, &f, &f.staff).await, [Verdict::Refused; 3]);
    assert_eq!(verdicts(&open, &f, &f.staff).await, [Verdict::Accepted; 3]);
}

/// A `connection_init` with no token in its payload nor on the upgrade request is refused
/// with 4403, on both subprotocols; a token in either place is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_without_a_credential_is_refused() {
    let server = crate::support::sqlite();
    let f = server.fixture().await;
    for protocol in [TRANSPORT_WS, LEGACY] {
        for payload in [None, Some(json!({})), Some(json!({"note": "no token"}))] {
            let mut client = WsClient::connect(server, protocol).await;
            let message = match &payload {
                Some(payload) => json!({"type": "connection_init", "payload": payload}),
                None => json!({"type": "connection_init"}),
            };
            client.send(message).await;
            if protocol == LEGACY {
                let error = client.recv().await.json();
                assert_eq!(error["type"], "connection_error", "{protocol}: {error}");
            }
            client.expect_close(4403).await;
        }
        let bearer = format!("Bearer {}", f.staff);
        let mut on_upgrade = WsClient::connect_authorized(server, protocol, &bearer).await;
        let ack = on_upgrade.init_with(None).await;
        assert!(
            matches!(&ack, Incoming::Json(ack) if ack["type"] == "connection_ack"),
            "{protocol}: {ack:?}"
        );
        WsClient::ready(server, protocol, &f.staff)
            .await
            .close()
            .await;
        on_upgrade.close().await;
    }
}

/// A manager follows its restaurant's events like its staff, and is refused another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_follows_its_restaurant_s_events_only() {
    let server = crate::support::sqlite();
    let f = server.fixture().await;
    let other = server.fixture().await;
    let manager = server.token(Role::Manager, Some(&f.restaurant), None);
    let mut client = WsClient::ready(server, TRANSPORT_WS, &manager).await;
    client
        .subscribe("theirs", RESTAURANT_EVENTS, json!({"r": other.restaurant}))
        .await;
    let refused = client.recv().await.json();
    assert_eq!(
        (
            refused["type"].as_str(),
            refused["id"].as_str(),
            refused["payload"][0]["extensions"]["code"].as_str()
        ),
        (Some("error"), Some("theirs"), Some("FORBIDDEN")),
        "{refused}"
    );
    client
        .subscribe(
            "own",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": f.seq}),
        )
        .await;
    let order = f.place(server, "managed").await;
    let event = client.next_result("own").await;
    assert_eq!(
        event["data"]["restaurantEvents"]["order"]["id"],
        json!(order),
        "{event}"
    );
    client.close().await;
}
