//! The document limits against what the contract invites: every listed field, at its
//! documented maximum and with the full selection of its type built from the served schema
//! itself, is accepted on both transports. (`hostile.rs` checks that abuse is still refused.)

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use crate::support::{sqlite, Api, Fixture};
use crate::ws_client::{WsClient, TRANSPORT_WS};

/// The documented maxima (README, *API*): `orders(first:)` and lines per order.
const MAX_PAGE: usize = 100;
const MAX_LINES: usize = 100;
/// `ORDERHUB_WS_MAX_SUBSCRIPTIONS`' default.
const MAX_SUBSCRIPTIONS: usize = 100;

const INTROSPECTION: &str = "{ __schema { \
    queryType { name } mutationType { name } subscriptionType { name } \
    types { name kind possibleTypes { name } \
      fields { name args { name type { kind ofType { kind ofType { kind } } } } \
        type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

/// The served schema's output types, as introspection describes them.
struct Schema {
    types: BTreeMap<String, Value>,
    roots: [String; 3],
}

/// An output type with its wrappers taken off, and whether a list was among them.
fn named(mut reference: &Value) -> (String, bool) {
    let mut listed = false;
    while reference["name"].is_null() {
        listed |= reference["kind"] == "LIST";
        reference = &reference["ofType"];
    }
    (
        reference["name"].as_str().unwrap_or_default().to_owned(),
        listed,
    )
}

impl Schema {
    async fn served(api: &Api) -> Schema {
        let introspected = api.gql(None, INTROSPECTION, json!({})).await;
        let schema = introspected.ok().at("__schema");
        let types = schema["types"]
            .as_array()
            .expect("types")
            .iter()
            .map(|t| (t["name"].as_str().unwrap_or_default().to_owned(), t.clone()))
            .collect();
        let root = |kind: &str| schema[kind]["name"].as_str().unwrap_or_default().to_owned();
        Schema {
            types,
            roots: [
                root("queryType"),
                root("mutationType"),
                root("subscriptionType"),
            ],
        }
    }

    fn fields(&self, type_name: &str) -> &[Value] {
        self.types[type_name]["fields"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every field of `type_name`, and every field of theirs, down to the leaves; abstract
    /// types get an inline fragment per possible type. A type already on the path is not
    /// entered again (so the selection is finite), and a field with a required argument
    /// would need this test to say what to pass. The one that has one, `Restaurant.tableLinks`,
    /// mints a token per table for a manager's QR sheet: the staff reads here leave it out
    /// (`manage.rs` tests it).
    fn full_selection(&self, type_name: &str, path: &mut Vec<String>) -> String {
        let t = &self.types[type_name];
        let mut parts = vec!["__typename".to_owned()];
        for field in self.fields(type_name) {
            let name = field["name"].as_str().unwrap_or_default();
            if (type_name, name) == ("Restaurant", "tableLinks") {
                continue;
            }
            let required = field["args"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|arg| arg["type"]["kind"] == "NON_NULL");
            assert!(!required, "{type_name}.{name} needs an argument: say which");
            let (inner, _) = named(&field["type"]);
            match self.types[&inner]["kind"].as_str() {
                Some("SCALAR" | "ENUM") => parts.push(name.to_owned()),
                _ if path.contains(&inner) => {}
                _ => {
                    path.push(inner.clone());
                    parts.push(format!("{name} {}", self.full_selection(&inner, path)));
                    path.pop();
                }
            }
        }
        for possible in t["possibleTypes"].as_array().into_iter().flatten() {
            let possible = possible["name"].as_str().unwrap_or_default().to_owned();
            path.push(possible.clone());
            parts.push(format!(
                "... on {possible} {}",
                self.full_selection(&possible, path)
            ));
            path.pop();
        }
        format!("{{ {} }}", parts.join(" "))
    }

    /// Whether a selection of `type_name` can hold a list anywhere below it.
    fn holds_a_list(&self, type_name: &str, path: &mut Vec<String>) -> bool {
        let possible: Vec<String> = self.types[type_name]["possibleTypes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let fields = self.fields(type_name).iter().map(|f| named(&f["type"]));
        let below: Vec<(String, bool)> = fields
            .chain(possible.into_iter().map(|p| (p, false)))
            .collect();
        below.into_iter().any(|(inner, listed)| {
            if listed {
                return true;
            }
            if path.contains(&inner) {
                return false;
            }
            path.push(inner.clone());
            let holds = self.holds_a_list(&inner, path);
            path.pop();
            holds
        })
    }

    /// The root fields (`root` is 0, 1, 2 for query, mutation, subscription) that return a
    /// list or a type that holds one.
    fn listed_roots(&self, root: usize) -> Vec<String> {
        self.fields(&self.roots[root])
            .iter()
            .filter(|field| {
                let (inner, listed) = named(&field["type"]);
                listed || self.holds_a_list(&inner, &mut vec![inner.clone()])
            })
            .map(|field| field["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The full selection of what root field `name` of `root` returns.
    fn of_root(&self, root: usize, name: &str) -> String {
        let field = self
            .fields(&self.roots[root])
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no root field {name}"));
        let (inner, _) = named(&field["type"]);
        self.full_selection(&inner, &mut vec![inner.clone()])
    }
}

/// An order of `MAX_LINES` lines, the most the contract allows, as `placeOrder`'s input.
fn longest_order(f: &Fixture, key: &str) -> Value {
    let lines: Vec<Value> = (0..MAX_LINES)
        .map(|i| json!({"menuItemId": f.menu[i % 2], "quantity": 1, "note": format!("line {i}")}))
        .collect();
    json!({
        "restaurantId": f.restaurant,
        "tableId": f.tables[0],
        "items": lines,
        "idempotencyKey": key,
        "note": "the longest order",
    })
}

/// An item with the most the domain takes: 20 translations, every allergen, 20 option groups
/// of 50 options (options untranslated: with 20 translations each the request would pass
/// `ORDERHUB_MAX_BODY_BYTES`).
fn largest_item(name: &str) -> Value {
    const LOCALES: [&str; 20] = [
        "en", "ja", "zh", "ko", "fr", "de", "es", "it", "pt", "ru", "ar", "hi", "th", "vi", "id",
        "ms", "nl", "sv", "pl", "tr",
    ];
    let groups: Vec<Value> = (0..20)
        .map(|g| {
            let options: Vec<Value> = (0..50)
                .map(|o| json!({"name": format!("option {o}"), "priceDelta": o}))
                .collect();
            json!({"name": format!("group {g}"), "minSelected": 0, "maxSelected": 50,
                   "options": options})
        })
        .collect();
    json!({
        "name": name, "price": 1000, "description": "the largest item",
        "translations": LOCALES.iter()
            .map(|l| json!({"locale": l, "name": format!("{name} ({l})"), "description": "d"}))
            .collect::<Vec<_>>(),
        "allergens": ["EGG", "MILK", "WHEAT", "BUCKWHEAT", "PEANUT", "SHRIMP", "CRAB", "WALNUT",
                      "TREE_NUTS", "SOY", "SESAME", "FISH", "MOLLUSCS", "CELERY", "MUSTARD",
                      "SULPHITES", "LUPIN", "GLUTEN"],
        "optionGroups": groups,
    })
}

/// Every listed root field with the arguments that reach its documented maximum: the query,
/// its variables, and who may send it.
struct Operation {
    field: String,
    query: String,
    variables: Value,
    token: String,
}

/// `order` is read; `changed` gives a fresh order to each mutation that changes one, and `tag`
/// tells one transport's idempotency keys from the other's.
fn operations(
    schema: &Schema,
    f: &Fixture,
    order: &str,
    changed: &mut impl Iterator<Item = String>,
    tag: &str,
    largest: &(String, String),
) -> Vec<Operation> {
    let mut fresh = || changed.next().expect("enough orders to change");
    let mut operations = Vec::new();
    for (root, keyword) in ["query", "mutation", "subscription"].iter().enumerate() {
        for field in schema.listed_roots(root) {
            let selection = schema.of_root(root, &field);
            let (header, call, variables, token) = match field.as_str() {
                "restaurant" => (
                    "$r: ID!",
                    "restaurant(id: $r)",
                    json!({"r": f.restaurant}),
                    &f.staff,
                ),
                "order" => ("$o: ID!", "order(id: $o)", json!({"o": order}), &f.staff),
                "orders" => (
                    "$r: ID!, $first: Int",
                    "orders(restaurantId: $r, first: $first)",
                    json!({"r": f.restaurant, "first": MAX_PAGE}),
                    &f.staff,
                ),
                "placeOrder" => (
                    "$i: PlaceOrderInput!",
                    "placeOrder(input: $i)",
                    json!({"i": longest_order(f, &format!("longest-{tag}"))}),
                    &f.staff,
                ),
                "advanceOrder" => (
                    "$o: ID!",
                    "advanceOrder(orderId: $o, to: ACCEPTED)",
                    json!({"o": fresh()}),
                    &f.staff,
                ),
                "cancelOrder" => (
                    "$o: ID!",
                    "cancelOrder(orderId: $o, reason: \"calibration\")",
                    json!({"o": fresh()}),
                    &f.staff,
                ),
                "createRestaurant" => (
                    "$n: String!",
                    "createRestaurant(input: {name: $n})",
                    json!({"n": "Calibration"}),
                    &f.admin,
                ),
                "updateRestaurant" => (
                    "$r: ID!, $n: String!",
                    "updateRestaurant(restaurantId: $r, input: {name: $n})",
                    json!({"r": f.restaurant, "n": "Test Kitchen"}),
                    &f.admin,
                ),
                "setMenuItemAvailability" => (
                    "$m: ID!",
                    "setMenuItemAvailability(menuItemId: $m, available: true)",
                    json!({"m": f.menu[0]}),
                    &f.staff,
                ),
                "createMenuItem" => (
                    "$r: ID!, $i: MenuItemInput!",
                    "createMenuItem(restaurantId: $r, input: $i)",
                    json!({"r": f.restaurant, "i": largest_item(&format!("largest {tag}"))}),
                    &f.admin,
                ),
                "updateMenuItem" => (
                    "$m: ID!, $d: String",
                    "updateMenuItem(menuItemId: $m, input: {description: $d})",
                    json!({"m": largest.0, "d": format!("calibrated over {tag}")}),
                    &f.admin,
                ),
                "archiveMenuItem" => (
                    "$m: ID!",
                    "archiveMenuItem(menuItemId: $m)",
                    json!({"m": f.menu[2]}),
                    &f.admin,
                ),
                "setOptionAvailability" => (
                    "$o: ID!",
                    "setOptionAvailability(optionId: $o, available: false)",
                    json!({"o": largest.1}),
                    &f.staff,
                ),
                "setTaxSettings" => (
                    "$r: ID!",
                    "setTaxSettings(restaurantId: $r, input: {taxRounding: DOWN})",
                    json!({"r": f.restaurant}),
                    &f.admin,
                ),
                "restaurantEvents" => (
                    "$r: ID!",
                    "restaurantEvents(restaurantId: $r, after: 0)",
                    json!({"r": f.restaurant}),
                    &f.staff,
                ),
                "orderUpdated" => (
                    "$o: ID!",
                    "orderUpdated(orderId: $o)",
                    json!({"o": order}),
                    &f.staff,
                ),
                other => {
                    panic!("{keyword} {other} holds a list: give it its documented maximum here")
                }
            };
            operations.push(Operation {
                query: format!("{keyword}({header}) {{ {call} {selection} }}"),
                field,
                variables,
                token: token.clone(),
            });
        }
    }
    operations
}

/// The object a response holds for `field`, with no error.
fn accepted(field: &str, response: &Value) -> Map<String, Value> {
    assert!(
        response.get("errors").is_none(),
        "{field} with its full selection was refused: {}",
        response["errors"]
    );
    match &response["data"][field] {
        Value::Object(object) => object.clone(),
        other => panic!("{field}: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_maxima_pass_with_the_full_selection_of_their_types() {
    let server = sqlite();
    let f = server.fixture().await;
    let schema = Schema::served(server).await;
    // A page of MAX_PAGE orders, all of the longest kind: the response is as large as the
    // contract lets one be.
    let mut orders = Vec::new();
    for n in 0..MAX_PAGE {
        let placed = server
            .gql(
                Some(&f.customer),
                "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { id } }",
                json!({"i": longest_order(&f, &format!("longest-{n}"))}),
            )
            .await;
        orders.push(placed.str("placeOrder.id"));
    }
    let (read, mut changed) = (orders[0].clone(), orders[1..].iter().cloned());
    let created = server
        .gql(
            Some(&f.admin),
            "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) \
             { id optionGroups { options { id } } } }",
            json!({"r": f.restaurant, "i": largest_item("largest")}),
        )
        .await;
    let largest = (
        created.str("createMenuItem.id"),
        created.str("createMenuItem.optionGroups.0.options.0.id"),
    );

    // Over HTTP: queries and mutations.
    let over_http = operations(&schema, &f, &read, &mut changed, "http", &largest);
    let listed: Vec<&str> = over_http.iter().map(|o| o.field.as_str()).collect();
    for expected in [
        "orders",
        "order",
        "placeOrder",
        "restaurantEvents",
        "orderUpdated",
    ] {
        assert!(
            listed.contains(&expected),
            "{expected} not among {listed:?}"
        );
    }
    for op in over_http
        .iter()
        .filter(|o| !o.query.starts_with("subscription"))
    {
        let response = server
            .gql(Some(&op.token), &op.query, op.variables.clone())
            .await;
        let data = accepted(&op.field, &response.0);
        if op.field == "orders" {
            let edges = data["edges"].as_array().map(Vec::len);
            assert_eq!(edges, Some(MAX_PAGE), "a full page");
            let lines = data["edges"][0]["node"]["items"].as_array().map(Vec::len);
            assert_eq!(lines, Some(MAX_LINES), "the longest orders");
        }
    }

    // Abuse is still refused: two full pages by aliases are twice the largest response the
    // contract invites.
    let page = over_http
        .iter()
        .find(|o| o.field == "orders")
        .expect("orders");
    // The operation's one field with its selection: what lies inside the outer braces.
    let call = page
        .query
        .split_once('{')
        .and_then(|(_, rest)| rest.trim_end().strip_suffix('}'))
        .unwrap_or_default()
        .trim();
    let twice = format!("query($r: ID!, $first: Int) {{ a: {call} b: {call} }}");
    let refused = server
        .gql(Some(&f.staff), &twice, page.variables.clone())
        .await;
    refused.expect_code("GRAPHQL_VALIDATION_FAILED");
    let message = refused.0["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("too complex"), "{}", refused.0);
    assert!(refused.0["data"].is_null(), "{}", refused.0);

    // Over a WebSocket: every operation, each on a socket of its sender.
    for op in operations(&schema, &f, &read, &mut changed, "ws", &largest) {
        let mut socket = WsClient::ready(server, TRANSPORT_WS, &op.token).await;
        socket.subscribe("1", &op.query, op.variables.clone()).await;
        let payload = socket.next_result("1").await;
        accepted(&op.field, &payload);
        socket.close().await;
    }

    // The documented number of subscriptions on one connection, each with the full selection
    // of its type.
    let subscriptions = operations(&schema, &f, &read, &mut changed, "subscriptions", &largest);
    let order_updated = subscriptions
        .iter()
        .find(|o| o.field == "orderUpdated")
        .expect("orderUpdated");
    let mut socket = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
    for n in 0..MAX_SUBSCRIPTIONS {
        let (query, variables) = (&order_updated.query, order_updated.variables.clone());
        socket
            .subscribe(&format!("sub-{n}"), query, variables)
            .await;
    }
    // orderUpdated starts with the order as it is: every subscription answers once.
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < MAX_SUBSCRIPTIONS {
        let message = socket.recv().await.json();
        assert_eq!(message["type"], "next", "{message}");
        accepted("orderUpdated", &message["payload"]);
        answered.insert(message["id"].as_str().unwrap_or_default().to_owned());
    }
    socket.close().await;
}
