//! Who may do what: every query and mutation against every kind of caller.

use serde_json::{json, Value};

use crate::support::{on_every_backend, Fixture, Gql, TestServer, ADVANCE, CANCEL, PLACE};

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
const CALLERS: [&str; 8] = [
    "anonymous",
    "forged token",
    "customer at the table",
    "customer at another table",
    "customer of another restaurant",
    "staff",
    "staff of another restaurant",
    "admin",
];

struct Case {
    operation: &'static str,
    /// The field whose value tells Ok from Null.
    field: &'static str,
    expected: [Outcome; 8],
}

const CASES: [Case; 12] = [
    Case {
        operation: "restaurant",
        field: "restaurant",
        expected: [UNAUTH, UNAUTH, Ok, Ok, FORBID, Ok, FORBID, Ok],
    },
    Case {
        operation: "restaurant.tables",
        field: "restaurant",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, Ok, FORBID, Ok],
    },
    Case {
        operation: "order",
        field: "order",
        expected: [UNAUTH, UNAUTH, Ok, Null, Null, Ok, Null, Ok],
    },
    Case {
        operation: "orders",
        field: "orders",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, Ok, FORBID, Ok],
    },
    Case {
        operation: "placeOrder",
        field: "placeOrder",
        expected: [UNAUTH, UNAUTH, Ok, FORBID, FORBID, Ok, FORBID, Ok],
    },
    Case {
        operation: "advanceOrder",
        field: "advanceOrder",
        expected: [UNAUTH, UNAUTH, FORBID, MISSING, MISSING, Ok, MISSING, Ok],
    },
    Case {
        operation: "cancelOrder",
        field: "cancelOrder",
        expected: [UNAUTH, UNAUTH, Ok, MISSING, MISSING, Ok, MISSING, Ok],
    },
    Case {
        operation: "setMenuItemAvailability",
        field: "setMenuItemAvailability",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, MISSING, Ok, MISSING, Ok],
    },
    Case {
        operation: "callStaff",
        field: "callStaff",
        expected: [UNAUTH, UNAUTH, Ok, FORBID, MISSING, Ok, MISSING, Ok],
    },
    Case {
        operation: "createRestaurant",
        field: "createRestaurant",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok],
    },
    Case {
        operation: "createTable",
        field: "createTable",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok],
    },
    Case {
        operation: "createMenuItem",
        field: "createMenuItem",
        expected: [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Ok],
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
    let tokens: [Option<&str>; 8] = [
        None,
        Some(&forged),
        Some(&f.customer),
        Some(&f.other_customer),
        Some(&other.customer),
        Some(&f.staff),
        Some(&other.staff),
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
        "createTable" => ("mutation($r: ID!) { createTable(restaurantId: $r, name: \"T9\") { id } }", json!({"r": f.restaurant})),
        "createMenuItem" => (
            "mutation($r: ID!) { createMenuItem(restaurantId: $r, input: {name: \"Tea\", price: 200}) { id } }",
            json!({"r": f.restaurant}),
        ),
        other => panic!("no request for {other}"),
    };
    (query.to_owned(), variables)
}
