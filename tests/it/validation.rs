//! Section 5 of the GraphQL spec (October 2021), rule by rule: one document breaking each rule,
//! modelled on the spec's own examples, is refused with `GRAPHQL_VALIDATION_FAILED` over HTTP
//! and over both WebSocket subprotocols, and nothing of it runs; graphql-js's `validate`
//! refuses the same documents (`tests/contract/validate.mjs`).

use serde_json::{json, Value};
use std::path::Path;

use crate::support::{sqlite, Api, Fixture};
use crate::ws_client::{Incoming, WsClient, LEGACY, TRANSPORT_WS};

const INVALID: &str = "GRAPHQL_VALIDATION_FAILED";

/// A document that breaks one rule, and the spec section the rule is in.
struct Broken {
    section: &'static str,
    rule: &'static str,
    query: String,
}

/// The ids the documents name, so that each one would run (and write) if it were not refused.
struct Ids<'a> {
    f: &'a Fixture,
    order: &'a str,
}

impl Ids<'_> {
    /// `template` with RID, TID, MID, OID and INPUT (a valid `PlaceOrderInput` literal whose
    /// remaining fields follow) replaced.
    fn fill(&self, template: &str) -> String {
        template
            .replace(
                "INPUT",
                "{restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 1}]",
            )
            .replace("RID", &self.f.restaurant)
            .replace("TID", &self.f.tables[0])
            .replace("MID", &self.f.menu[0])
            .replace("OID", self.order)
    }
}

/// Variables every document is sent with: those it declares are valid values, the rest are
/// ignored (spec §6.1.2).
fn variables(ids: &Ids) -> Value {
    json!({
        "i": {
            "restaurantId": ids.f.restaurant,
            "tableId": ids.f.tables[0],
            "idempotencyKey": "validation-variable",
            "items": [{"menuItemId": ids.f.menu[0], "quantity": 1}],
        },
        "o": ids.order,
        "r": ids.f.restaurant,
        "f": 10,
        "q": 1,
        "s": ["PLACED"],
    })
}

fn broken(ids: &Ids) -> Vec<Broken> {
    let rules: &[(&str, &str, &[&str])] = &[
        ("5.2.1.1", "Operation Name Uniqueness", &[
            "query getName { restaurant(id: \"RID\") { name } } mutation getName { placeOrder(input: INPUT}) { id } }",
            "mutation place { placeOrder(input: INPUT}) { id } } mutation place { placeOrder(input: INPUT}) { number } }",
        ]),
        ("5.2.2.1", "Lone Anonymous Operation", &[
            "{ restaurant(id: \"RID\") { name } } mutation place { placeOrder(input: INPUT}) { id } }",
            "mutation { placeOrder(input: INPUT}) { id } } { restaurant(id: \"RID\") { name } }",
        ]),
        ("5.2.3.1", "Single Root Field", &[
            "subscription sub { orderUpdated(orderId: \"OID\") { id } restaurantEvents(restaurantId: \"RID\") { seq } }",
            "subscription sub { ...multipleSubscriptions } fragment multipleSubscriptions on Subscription { orderUpdated(orderId: \"OID\") { id } restaurantEvents(restaurantId: \"RID\") { seq } }",
            "subscription sub { first: orderUpdated(orderId: \"OID\") { id } second: orderUpdated(orderId: \"OID\") { id } }",
            "subscription sub { orderUpdated(orderId: \"OID\") { id } __typename }",
            "subscription sub { __typename }",
            "subscription sub { ... on Subscription { __typename } }",
        ]),
        ("5.3.1", "Field Selections", &[
            "mutation { placeOrder(input: INPUT}) { meowVolume } }",
            "mutation { placeOrder(input: INPUT}) { ... on Order { barkVolume } } }",
        ]),
        ("5.3.2", "Field Selection Merging", &[
            "mutation { placeOrder(input: INPUT}) { number: id number } }",
            "mutation { place: placeOrder(input: INPUT}) { id } place: placeOrder(input: INPUT, note: \"other\"}) { id } }",
            "mutation($o: ID!) { cancelOrder(orderId: $o, reason: \"a\") { id } cancelOrder(orderId: \"OID\", reason: \"a\") { id } }",
            "mutation { placeOrder(input: INPUT}) { items { name } } placeOrder(input: INPUT}) { items { name: note } } }",
            "subscription { restaurantEvents(restaurantId: \"RID\") { ... on OrderPlaced { someValue: seq } ... on StaffCalled { someValue: at } } }",
            "subscription { restaurantEvents(restaurantId: \"RID\") { ... on OrderPlaced { order { total { amount } } } ... on OrderStatusChanged { order: order { total { amount: currency } } } } }",
        ]),
        ("5.3.3", "Leaf Field Selections", &[
            "mutation { placeOrder(input: INPUT}) { id { length } } }",
            "mutation { placeOrder(input: INPUT}) }",
        ]),
        ("5.4.1", "Argument Names", &[
            "mutation { placeOrder(input: INPUT}, command: CLEAN_UP_HOUSE) { id } }",
            "mutation { placeOrder(input: INPUT}) @include(unless: false) { id } }",
        ]),
        ("5.4.2", "Argument Uniqueness", &[
            "mutation { placeOrder(input: INPUT}, input: INPUT}) { id } }",
            "mutation { placeOrder(input: INPUT}) @include(if: true, if: true) { id } }",
        ]),
        ("5.4.2.1", "Required Arguments", &[
            "mutation { placeOrder { id } }",
            "mutation { cancelOrder(orderId: \"OID\", reason: null) { id } }",
            "mutation { placeOrder(input: INPUT}) @include { id } }",
        ]),
        ("5.5.1.1", "Fragment Name Uniqueness", &[
            "mutation { placeOrder(input: INPUT}) { ...fragmentOne } } fragment fragmentOne on Order { id } fragment fragmentOne on Order { number }",
        ]),
        ("5.5.1.2", "Fragment Spread Type Existence", &[
            "mutation { placeOrder(input: INPUT}) { ...notOnExistingType } } fragment notOnExistingType on NotInSchema { id }",
            "mutation { placeOrder(input: INPUT}) { ... on NotInSchema { id } } }",
        ]),
        ("5.5.1.3", "Fragments On Composite Types", &[
            "mutation { placeOrder(input: INPUT}) { status { ...fragOnScalar } } } fragment fragOnScalar on OrderStatus { something }",
            "mutation { placeOrder(input: INPUT}) { ... on Boolean { somethingElse } } }",
        ]),
        ("5.5.1.4", "Fragments Must Be Used", &[
            "mutation { placeOrder(input: INPUT}) { id } } fragment nameFragment on Order { number }",
        ]),
        ("5.5.2.1", "Fragment Spread Target Defined", &[
            "mutation { placeOrder(input: INPUT}) { ...undefinedFragment } }",
        ]),
        ("5.5.2.2", "Fragment Spreads Must Not Form Cycles", &[
            "mutation { placeOrder(input: INPUT}) { ...nameFragment } } fragment nameFragment on Order { id ...numberFragment } fragment numberFragment on Order { number ...nameFragment }",
        ]),
        ("5.5.2.3", "Fragment Spread Is Possible", &[
            "mutation { placeOrder(input: INPUT}) { ... on Table { name } } }",
            "mutation { placeOrder(input: INPUT}) { ...tableFragment } } fragment tableFragment on Table { name }",
            "subscription { restaurantEvents(restaurantId: \"RID\") { ... on Order { id } } }",
        ]),
        ("5.6.1", "Values of Correct Type", &[
            "mutation { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: \"one\"}]}) { id } }",
            "mutation { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 1.5}]}) { id } }",
            "mutation { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 3000000000}]}) { id } }",
            "mutation { advanceOrder(orderId: \"OID\", to: \"ACCEPTED\") { id } }",
            "mutation { advanceOrder(orderId: \"OID\", to: NOT_A_STATUS) { id } }",
            "query($s: [OrderStatus!] = [\"PLACED\"]) { orders(restaurantId: \"RID\", statuses: $s) { pageInfo { hasNextPage } } }",
            "mutation($q: Int = \"one\") { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: $q}]}) { id } }",
        ]),
        ("5.6.2", "Input Object Field Names", &[
            "mutation { placeOrder(input: INPUT, favoriteCookieFlavor: \"Bacon\"}) { id } }",
        ]),
        ("5.6.3", "Input Object Field Uniqueness", &[
            "mutation { placeOrder(input: INPUT, idempotencyKey: \"other\"}) { id } }",
            "mutation { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 1, quantity: 2}]}) { id } }",
        ]),
        ("5.6.4", "Input Object Required Fields", &[
            "mutation { placeOrder(input: {restaurantId: \"RID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 1}]}) { id } }",
            "mutation { placeOrder(input: {restaurantId: \"RID\", tableId: null, idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: 1}]}) { id } }",
        ]),
        ("5.7.1", "Directives Are Defined", &[
            "mutation { placeOrder(input: INPUT}) @unknownDirective { id } }",
        ]),
        ("5.7.2", "Directives Are In Valid Locations", &[
            "mutation @skip(if: true) { placeOrder(input: INPUT}) { id } }",
            "mutation { placeOrder(input: INPUT}) { ...orderFragment } } fragment orderFragment on Order @include(if: true) { id }",
        ]),
        ("5.7.3", "Directives Are Unique Per Location", &[
            "mutation { placeOrder(input: INPUT}) @skip(if: false) @skip(if: false) { id } }",
            "mutation { placeOrder(input: INPUT}) { ...orderFragment @include(if: true) @include(if: true) } } fragment orderFragment on Order { id }",
            "mutation { placeOrder(input: INPUT}) { ... on Order @skip(if: false) @skip(if: false) { id } } }",
        ]),
        ("5.8.1", "Variable Uniqueness", &[
            "mutation($i: PlaceOrderInput!, $i: PlaceOrderInput!) { placeOrder(input: $i) { id } }",
        ]),
        ("5.8.2", "Variables Are Input Types", &[
            "mutation($i: PlaceOrderInput!, $o: Order) { placeOrder(input: $i) { id } }",
            "mutation($i: PlaceOrderInput!, $m: [Money!]) { placeOrder(input: $i) { id } }",
        ]),
        ("5.8.3", "All Variable Uses Defined", &[
            "mutation { placeOrder(input: $i) { id } }",
            "mutation { ...placeFragment } fragment placeFragment on Mutation { placeOrder(input: $i) { id } }",
        ]),
        ("5.8.4", "All Variables Used", &[
            "mutation($i: PlaceOrderInput!, $unused: Int) { placeOrder(input: $i) { id } }",
            "mutation place($i: PlaceOrderInput!) { placeOrder(input: INPUT}) { id } } fragment cancelFragment on Mutation { placeOrder(input: $i) { id } }",
        ]),
        ("5.8.5", "All Variable Usages Are Allowed", &[
            "mutation($i: PlaceOrderInput) { placeOrder(input: $i) { id } }",
            "mutation($i: PlaceOrderInput = null) { placeOrder(input: $i) { id } }",
            "mutation($q: Int) { placeOrder(input: {restaurantId: \"RID\", tableId: \"TID\", idempotencyKey: \"validation\", items: [{menuItemId: \"MID\", quantity: $q}]}) { id } }",
            "mutation($o: String!) { cancelOrder(orderId: \"OID\", reason: $o) { id } advanceOrder(orderId: $o, to: ACCEPTED) { id } }",
            "query($s: OrderStatus) { orders(restaurantId: \"RID\", statuses: $s) { pageInfo { hasNextPage } } }",
            "query($s: [OrderStatus]) { orders(restaurantId: \"RID\", statuses: $s) { pageInfo { hasNextPage } } }",
        ]),
    ];
    rules
        .iter()
        .flat_map(|(section, rule, documents)| {
            documents.iter().map(move |query| Broken {
                section,
                rule,
                query: ids.fill(query),
            })
        })
        .collect()
}

/// Subscriptions near §5.2.3.1's edge that the spec allows: a field left out by a literal
/// `@skip` does not count, and one field may come through a fragment.
fn allowed_subscriptions(ids: &Ids) -> Vec<String> {
    [
        "subscription { orderUpdated(orderId: \"OID\") { id } other: restaurantEvents(restaurantId: \"RID\") @skip(if: true) { seq } }",
        "subscription { ...only } fragment only on Subscription { orderUpdated(orderId: \"OID\") { id } }",
    ]
    .iter()
    .map(|query| ids.fill(query))
    .collect()
}

/// Documents near each rule's edge that the spec allows, so that no check overreaches.
fn allowed(ids: &Ids) -> Vec<String> {
    [
        // §5.8.5: a nullable variable with a non-null default, and a nullable variable where
        // the argument has a default, may stand where a non-null value is needed.
        "query($f: Int) { orders(restaurantId: \"RID\", first: $f) { pageInfo { hasNextPage } } }",
        "query($o: ID = \"OID\") { order(id: $o) { id } }",
        // §5.3.2: the same field twice with the same arguments, and aliases that differ.
        "query($o: ID!) { order(id: $o) { id } order(id: $o) { id status } other: order(id: \"OID\") { id } }",
        // §5.7.3: a directive once on each of several locations.
        "query { order(id: \"OID\") @include(if: true) { ... @skip(if: false) { id } ...F @include(if: true) } } fragment F on Order { number }",
    ]
    .iter()
    .map(|query| ids.fill(query))
    .collect()
}

async fn set_up(api: &Api) -> (Fixture, String) {
    let f = api.fixture().await;
    let order = f.place(api, "validation-existing").await;
    (f, order)
}

/// What running any of the documents would have changed: the restaurant's orders.
async fn orders(api: &Api, f: &Fixture) -> Value {
    let page = api
        .gql(
            Some(&f.staff),
            "query($r: ID!) { orders(restaurantId: $r) { edges { node { id status version note } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    page.ok().at("orders").clone()
}

fn describe(broken: &Broken) -> String {
    format!("§{} {}: {}", broken.section, broken.rule, broken.query)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_is_enforced_over_http() {
    let server = sqlite();
    let (f, order) = set_up(server).await;
    let ids = Ids {
        f: &f,
        order: &order,
    };
    let before = orders(server, &f).await;
    let mut failures = Vec::new();
    for broken in broken(&ids) {
        let response = server
            .gql(Some(&f.staff), &broken.query, variables(&ids))
            .await;
        let code = response.code();
        // Refused before execution: no `data` at all (spec §7.1.2).
        if code != Some(INVALID) || response.0.get("data").is_some_and(|d| !d.is_null()) {
            failures.push(format!("{}\n  got {}", describe(&broken), response.0));
        }
    }
    for query in allowed(&ids) {
        let response = server.gql(Some(&f.staff), &query, variables(&ids)).await;
        if response.code() == Some(INVALID) {
            failures.push(format!("allowed: {query}\n  got {}", response.0));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(orders(server, &f).await, before, "a refused document ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_is_enforced_over_websockets() {
    let server = sqlite();
    let (f, order) = set_up(server).await;
    let ids = Ids {
        f: &f,
        order: &order,
    };
    let before = orders(server, &f).await;
    let mut failures = Vec::new();
    for protocol in [TRANSPORT_WS, LEGACY] {
        for broken in broken(&ids) {
            // A socket each, so that a document that runs cannot answer for the next one.
            let mut socket = WsClient::ready(server, protocol, &f.staff).await;
            socket.subscribe("1", &broken.query, variables(&ids)).await;
            match socket.recv().await {
                // graphql-transport-ws sends a list of errors, graphql-ws one error.
                Incoming::Json(message)
                    if message["type"] == "error"
                        && message["id"] == "1"
                        && [&message["payload"][0], &message["payload"]]
                            .iter()
                            .any(|error| error["extensions"]["code"] == INVALID) => {}
                other => {
                    failures.push(format!("{protocol} {}\n  got {other:?}", describe(&broken)))
                }
            }
            socket.close().await;
        }
        for query in allowed_subscriptions(&ids) {
            let mut socket = WsClient::ready(server, protocol, &f.staff).await;
            socket.subscribe("1", &query, json!({})).await;
            // orderUpdated starts with the order as it is.
            match socket.recv().await {
                Incoming::Json(message)
                    if ["next", "data"].contains(&message["type"].as_str().unwrap_or_default()) => {
                }
                other => failures.push(format!("{protocol} allowed: {query}\n  got {other:?}")),
            }
            socket.close().await;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(orders(server, &f).await, before, "a refused document ran");
}

/// graphql-js refuses every document this server refuses, and accepts the allowed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_js_refuses_the_same_documents() {
    let server = sqlite();
    let (f, order) = set_up(server).await;
    let ids = Ids {
        f: &f,
        order: &order,
    };
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let sdl = scratch.join(format!("validation-served-{}.graphql", std::process::id()));
    std::fs::write(&sdl, orderhub::graphql::sdl()).expect("write served SDL");
    let broken = broken(&ids);
    let mut allowed = allowed(&ids);
    allowed.extend(allowed_subscriptions(&ids));
    let documents: Vec<Value> = broken
        .iter()
        .map(|b| json!({"name": describe(b), "query": b.query}))
        .chain(
            allowed
                .iter()
                .map(|q| json!({"name": format!("allowed: {q}"), "query": q})),
        )
        .collect();
    let file = scratch.join(format!("validation-documents-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&documents).expect("json")).expect("write");
    let (mut child, lines) = crate::support::node_script(
        "validate.mjs",
        &[
            sdl.to_str().unwrap_or_default(),
            file.to_str().unwrap_or_default(),
        ],
    );
    // The lines end when the script closes its output.
    let verdicts: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(&line).expect("a JSON line"))
        .collect();
    let status = child.wait().expect("node");
    assert!(status.success(), "validate.mjs failed: {status}");
    assert_eq!(verdicts.len(), documents.len(), "{verdicts:?}");
    let mut failures = Vec::new();
    for verdict in &verdicts {
        let name = verdict["name"].as_str().unwrap_or_default();
        let should_refuse = !name.starts_with("allowed: ");
        if verdict["refused"] != should_refuse {
            failures.push(format!("{name}\n  graphql-js: {}", verdict["errors"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_file(sdl);
    let _ = std::fs::remove_file(file);
}

/// Variable values are coerced before anything runs (spec §6.1.2): a value that does not fit
/// its variable's type refuses the whole request, even when the field it is for comes after
/// one that would write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_values_that_do_not_fit_are_refused_before_anything_runs() {
    let server = sqlite();
    let (f, order) = set_up(server).await;
    let ids = Ids {
        f: &f,
        order: &order,
    };
    let before = orders(server, &f).await;
    let query = "mutation($i: PlaceOrderInput!, $o: ID!, $r: String!) { \
        placeOrder(input: $i) { id } cancelOrder(orderId: $o, reason: $r) { id } }";
    let fitting = variables(&ids);
    let with = |path: &[&str], value: Value| {
        let mut variables = fitting.clone();
        let mut at = &mut variables;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        match value {
            Value::Null => {
                if let Some(object) = at.as_object_mut() {
                    object.remove(path[path.len() - 1]);
                }
            }
            value => at[path[path.len() - 1]] = value,
        }
        variables
    };
    let mut misfits = vec![
        ("a number for String!", with(&["r"], json!(5))),
        ("no value for ID!", with(&["o"], Value::Null)),
        ("a list for ID!", with(&["o"], json!([order]))),
        ("a field the input lacks", with(&["i", "tip"], json!(100))),
        ("no tableId", with(&["i", "tableId"], Value::Null)),
    ];
    let mut items = fitting["i"]["items"].clone();
    items[0]["quantity"] = json!("one");
    misfits.push(("a string for Int!", with(&["i", "items"], items.clone())));
    items[0]["quantity"] = json!(3_000_000_000_i64);
    misfits.push(("an Int over 32 bits", with(&["i", "items"], items)));
    let mut failures = Vec::new();
    for (what, variables) in &misfits {
        let response = server.gql(Some(&f.staff), query, variables.clone()).await;
        if response.code() != Some(INVALID) || response.0.get("data").is_some_and(|d| !d.is_null())
        {
            failures.push(format!("HTTP, {what}: {}", response.0));
        }
        let mut socket = WsClient::ready(server, TRANSPORT_WS, &f.staff).await;
        socket.subscribe("1", query, variables.clone()).await;
        let message = socket.recv().await.json();
        if message["type"] != "error" || message["payload"][0]["extensions"]["code"] != INVALID {
            failures.push(format!("WebSocket, {what}: {message}"));
        }
        socket.close().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(orders(server, &f).await, before, "a refused request ran");
    // The same request with values that fit runs (and cancels the order).
    let fits = server.gql(Some(&f.staff), query, fitting).await;
    assert_eq!(fits.ok().str("cancelOrder.id"), order);
}
