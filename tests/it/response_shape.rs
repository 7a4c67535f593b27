//! A response always has the shape of its query, as the GraphQL spec's "Handling Field Errors"
//! (October 2021, §6.4.4) has it: a field that raised an error is null, a non-null field's null
//! goes to its nearest nullable parent, and with none `data` is null. A selected key never goes
//! missing (normalized client caches read a missing key as a cache miss or a parse error).
//! Over HTTP and as WebSocket operations on both subprotocols, for every kind of caller that
//! can meet a forbidden field; and in subscription events.

use serde_json::{json, Value};

use crate::support::{on_every_backend, Fixture, TestServer};
use crate::ws_client::{WsClient, LEGACY, TRANSPORT_WS};

on_every_backend!(
    a_forbidden_field_nulls_its_nearest_nullable_parent,
    an_event_has_the_shape_of_its_selection
);

/// `tables` (`[Table!]!`, staff only) under the nullable `restaurant`, beside a second,
/// nullable root field that must keep its value.
const NESTED: &str = "query($r: ID!) { \
    restaurant(id: $r) { id tables { id } } same: restaurant(id: $r) { id } }";

/// `orders` (`OrderConnection!`, staff only) is a non-null root field: with nothing nullable
/// above it, `data` is null.
const TO_THE_ROOT: &str = "query($r: ID!) { \
    same: restaurant(id: $r) { id } orders(restaurantId: $r, first: 1) { edges { node { id } } } }";

/// `data`, which must be there, and each error's code and path, sorted.
fn shape(response: &Value) -> (Value, Vec<(String, Value)>) {
    assert!(response.get("data").is_some(), "no data key: {response}");
    let mut errors: Vec<(String, Value)> = response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let code = e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("none")
                        .to_owned();
                    (code, e["path"].clone())
                })
                .collect()
        })
        .unwrap_or_default();
    errors.sort_by_key(|(code, path)| format!("{code}{path}"));
    (response["data"].clone(), errors)
}

fn forbidden(paths: &[Value]) -> Vec<(String, Value)> {
    paths
        .iter()
        .map(|path| ("FORBIDDEN".to_owned(), path.clone()))
        .collect()
}

/// A caller, and what it gets for [`NESTED`] and [`TO_THE_ROOT`].
struct Caller {
    name: &'static str,
    token: String,
    nested: (Value, Vec<(String, Value)>),
    to_the_root: (Value, Vec<(String, Value)>),
}

fn callers(f: &Fixture, other: &Fixture) -> Vec<Caller> {
    let r = &f.restaurant;
    let whole = json!({
        "restaurant": {"id": r, "tables": [{"id": f.tables[0]}, {"id": f.tables[1]}]},
        "same": {"id": r},
    });
    // A customer may see its restaurant, not its tables.
    let customer = || {
        (
            json!({"restaurant": null, "same": {"id": r}}),
            forbidden(&[json!(["restaurant", "tables"])]),
        )
    };
    let customer_to_the_root = || (Value::Null, forbidden(&[json!(["orders"])]));
    // Another restaurant's callers may see neither.
    let stranger = || {
        (
            json!({"restaurant": null, "same": null}),
            forbidden(&[json!(["restaurant"]), json!(["same"])]),
        )
    };
    let stranger_to_the_root = || {
        (
            Value::Null,
            forbidden(&[json!(["orders"]), json!(["same"])]),
        )
    };
    let allowed = || {
        (
            json!({"same": {"id": r}, "orders": {"edges": [{"node": {"id": f.menu[0]}}]}}),
            vec![],
        )
    };
    vec![
        Caller {
            name: "customer at the table",
            token: f.customer.clone(),
            nested: customer(),
            to_the_root: customer_to_the_root(),
        },
        Caller {
            name: "customer at another table",
            token: f.other_customer.clone(),
            nested: customer(),
            to_the_root: customer_to_the_root(),
        },
        Caller {
            name: "customer of another restaurant",
            token: other.customer.clone(),
            nested: stranger(),
            to_the_root: stranger_to_the_root(),
        },
        Caller {
            name: "staff of another restaurant",
            token: other.staff.clone(),
            nested: stranger(),
            to_the_root: stranger_to_the_root(),
        },
        Caller {
            name: "staff",
            token: f.staff.clone(),
            nested: (whole.clone(), vec![]),
            to_the_root: allowed(),
        },
        Caller {
            name: "admin",
            token: f.admin.clone(),
            nested: (whole, vec![]),
            to_the_root: allowed(),
        },
    ]
}

/// The response to `query` sent over a WebSocket of `protocol` as `token`: a result, or, when
/// the operation failed as a whole, its error (`data` null, as the HTTP answer has it); and
/// whether only the first error could be told (the legacy protocol's `error` carries one).
async fn over_websocket(
    server: &TestServer,
    protocol: &'static str,
    token: &str,
    query: &str,
    variables: Value,
) -> (Value, bool) {
    let mut client = WsClient::ready(server, protocol, token).await;
    client.subscribe("q", query, variables).await;
    let message = client.recv().await.json();
    let answer = match message["type"].as_str() {
        Some("next" | "data") => {
            let done = client.recv().await.json();
            assert_eq!(done["type"], "complete", "{done}");
            (message["payload"].clone(), false)
        }
        Some("error") => match protocol {
            LEGACY => (json!({"data": null, "errors": [message["payload"]]}), true),
            _ => (json!({"data": null, "errors": message["payload"]}), false),
        },
        _ => panic!("neither a result nor an error: {message}"),
    };
    client.close().await;
    answer
}

async fn a_forbidden_field_nulls_its_nearest_nullable_parent(server: &'static TestServer) {
    let f = server.fixture().await;
    let other = server.fixture().await;
    // The one order `orders(first: 1)` finds, reused as the expected node id below.
    let order = f.place(server, "the-order").await;
    let mut failures = Vec::new();
    for caller in callers(&f, &other) {
        for (query, expected) in [(NESTED, &caller.nested), (TO_THE_ROOT, &caller.to_the_root)] {
            let mut expected = expected.clone();
            // The allowed answer names the order placed above.
            if let Some(node) = expected.0.pointer_mut("/orders/edges/0/node/id") {
                *node = json!(order);
            }
            let variables = json!({"r": f.restaurant});
            let http = server
                .gql(Some(&caller.token), query, variables.clone())
                .await;
            let mut answers = vec![("HTTP", (http.0, false))];
            for protocol in [TRANSPORT_WS, LEGACY] {
                let answer =
                    over_websocket(server, protocol, &caller.token, query, variables.clone()).await;
                answers.push((protocol, answer));
            }
            for (way, (answer, first_error_only)) in answers {
                let (data, errors) = shape(&answer);
                let as_expected = data == expected.0
                    && match first_error_only {
                        true => errors.len() == 1 && expected.1.contains(&errors[0]),
                        false => errors == expected.1,
                    };
                if !as_expected {
                    failures.push(format!(
                        "{} over {way}: expected {expected:?}, got {answer}",
                        caller.name
                    ));
                }
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

/// `... on StaffCalled` selects nothing of an `OrderPlaced`: that event is `{}` (its type,
/// `RestaurantEvent!`, is non-null), not null. On both subprotocols, in a cohort (`after` a
/// variable) and on its own (`after` written in the document).
async fn an_event_has_the_shape_of_its_selection(server: &'static TestServer) {
    let f = server.fixture().await;
    let selection =
        "restaurantEvents(restaurantId: $r, after: AFTER) { ... on StaffCalled { call { id } } }";
    let mut seen = f.seq;
    for protocol in [TRANSPORT_WS, LEGACY] {
        for (form, query) in [
            (
                "cohort",
                format!(
                    "subscription($r: ID!, $after: Int) {{ {} }}",
                    selection.replace("AFTER", "$after")
                ),
            ),
            (
                "own",
                format!(
                    "subscription($r: ID!) {{ {} }}",
                    selection.replace("AFTER", "SEEN")
                ),
            ),
        ] {
            let mut client = WsClient::ready(server, protocol, &f.staff).await;
            let query = query.replace("SEEN", &seen.to_string());
            client
                .subscribe("e", &query, json!({"r": f.restaurant, "after": seen}))
                .await;
            f.place(server, &format!("{protocol}-{form}")).await;
            let call = server
                .gql(
                    Some(&f.customer),
                    "mutation($t: ID!) { callStaff(tableId: $t) { id } }",
                    json!({"t": f.tables[0]}),
                )
                .await
                .str("callStaff.id");
            seen += 2;
            let placed = client.next_result("e").await;
            assert_eq!(
                placed,
                json!({"data": {"restaurantEvents": {}}}),
                "{protocol}, {form}"
            );
            let called = client.next_result("e").await;
            assert_eq!(
                called,
                json!({"data": {"restaurantEvents": {"call": {"id": call}}}}),
                "{protocol}, {form}"
            );
            client.close().await;
        }
    }
}
