//! Hostile and broken input: every request below is refused with an exact code, and none of
//! them changes anything — not the restaurants' orders, menus or tables, and not their event
//! streams.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Api, Fixture, TestServer, ADVANCE, CANCEL, PLACE, SECRET};
use crate::ws_client::{
    Incoming, WsClient, LEGACY, ORDER_UPDATED, RESTAURANT_EVENTS, TRANSPORT_WS,
};

/// One hostile request and what it must get.
struct Case {
    name: &'static str,
    request: Request,
    expect: Expect,
}

enum Request {
    /// A GraphQL operation, POSTed as JSON.
    Gql {
        token: Option<String>,
        query: String,
        variables: Value,
    },
    /// Any body, with any content type.
    Post {
        content_type: Option<&'static str>,
        token: Option<String>,
        body: Vec<u8>,
    },
    /// A JSON body of `bytes`, written straight to the socket: with its Content-Length
    /// announced, or in chunks with no length to refuse it by.
    Streamed { bytes: usize, announced: bool },
    /// A GET of `/graphql` with a query string and headers.
    Get {
        query: Vec<(&'static str, String)>,
        headers: Vec<(&'static str, String)>,
    },
    /// A WebSocket with a subprotocol: `connection_init` with the token (if any), then frames.
    Ws {
        protocol: &'static str,
        token: Option<String>,
        frames: Vec<Frame>,
    },
}

enum Frame {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
}

/// What the HTTP requests accept, as Apollo Client and urql send it: the GraphQL-over-HTTP
/// draft's own type first, so that a request error (the document does not parse or validate,
/// a variable cannot be coerced) is a 400 without `data`.
const ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This HTTP status, and this `extensions.code` on the first error. The body is
    /// `application/graphql-response+json`, with `data` if and only if the status is 2xx.
    Refused(u16, &'static str),
    /// 200 and `data.<field>` null, without an error: invisible, as if it did not exist.
    Invisible(&'static str),
    /// The WebSocket is closed with this code.
    Closed(u16),
    /// The operation gets an `error` message with this code, and the connection stays open.
    OperationError(&'static str),
}
use Expect::{Closed, Invisible, OperationError, Refused};

const BAD_REQUEST: &str = "BAD_REQUEST";
const PARSE: &str = "GRAPHQL_PARSE_FAILED";
const INVALID: &str = "GRAPHQL_VALIDATION_FAILED";
const BAD_INPUT: &str = "BAD_USER_INPUT";
const UNAUTH: &str = "UNAUTHENTICATED";
const FORBIDDEN: &str = "FORBIDDEN";
const MISSING: &str = "NOT_FOUND";
const CONFLICT: &str = "CONFLICT";

/// A well-formed id that names nothing.
const NOTHING: &str = "00000000-0000-7000-8000-000000000000";

/// Two restaurants with orders in every interesting state.
struct Scene {
    a: Fixture,
    b: Fixture,
    /// A's menu item priced at the largest amount, and one at 30,000,000.
    caviar: String,
    truffle: String,
    /// Placed by the customer at A's first table with [`KEY`].
    placed: String,
    /// Placed at A's second table.
    other_table: String,
    /// At A's first table, accepted by the kitchen.
    accepted: String,
    /// B's order.
    foreign: String,
}

const KEY: &str = "hostile-first";

impl Scene {
    async fn set_up(api: &Api) -> Scene {
        let a = api.fixture().await;
        let b = api.fixture().await;
        let mut priced = Vec::new();
        for (name, price) in [("Caviar", i64::from(i32::MAX)), ("Truffle", 30_000_000)] {
            let item = api
                .gql(
                    Some(&a.admin),
                    "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) { id } }",
                    json!({"r": a.restaurant, "i": {"name": name, "price": price}}),
                )
                .await;
            priced.push(item.str("createMenuItem.id"));
        }
        let placed = a.place(api, KEY).await;
        let mut input = a.order_input("hostile-other-table", &[(0, 1)]);
        input["tableId"] = json!(a.tables[1]);
        let other_table = api
            .gql(Some(&a.other_customer), PLACE, json!({"i": input}))
            .await
            .str("placeOrder.id");
        let accepted = a.place(api, "hostile-accepted").await;
        a.advance(api, &accepted, "ACCEPTED").await;
        let foreign = b.place(api, "hostile-foreign").await;
        Scene {
            caviar: priced[0].clone(),
            truffle: priced[1].clone(),
            a,
            b,
            placed,
            other_table,
            accepted,
            foreign,
        }
    }

    /// A `placeOrder` input for A's first table with these `items`.
    fn order(&self, key: &str, items: Value) -> Value {
        json!({
            "restaurantId": self.a.restaurant,
            "tableId": self.a.tables[0],
            "items": items,
            "idempotencyKey": key,
        })
    }

    /// One line of `quantity` of A's first menu item.
    fn ramen(&self, quantity: Value) -> Value {
        json!([{"menuItemId": self.a.menu[0], "quantity": quantity}])
    }
}

fn gql(token: &str, query: &str, variables: Value) -> Request {
    Request::Gql {
        token: Some(token.to_owned()),
        query: query.to_owned(),
        variables,
    }
}

fn post(content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Request {
    Request::Post {
        content_type,
        token: None,
        body: body.into(),
    }
}

fn ws(protocol: &'static str, token: Option<&str>, frames: Vec<Frame>) -> Request {
    Request::Ws {
        protocol,
        token: token.map(str::to_owned),
        frames,
    }
}

fn subscribe(id: &str, query: &str, variables: Value) -> Frame {
    Frame::Json(
        json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}),
    )
}

/// `input` with `key` set to `value`.
fn with(mut input: Value, key: &str, value: Value) -> Value {
    input[key] = value;
    input
}

fn case(name: &'static str, request: Request, expect: Expect) -> Case {
    Case {
        name,
        request,
        expect,
    }
}

const ORDER: &str = "query($o: ID!) { order(id: $o) { id status } }";
const ORDERS: &str = "query($r: ID!, $first: Int, $after: String) { orders(restaurantId: $r, first: $first, after: $after) { edges { node { id } } } }";
const RESTAURANT: &str = "query($r: ID!) { restaurant(id: $r) { id name } }";
const TABLES: &str = "query($r: ID!) { restaurant(id: $r) { tables { id } } }";
const AVAILABILITY: &str = "mutation($m: ID!, $a: Boolean!) { setMenuItemAvailability(menuItemId: $m, available: $a) { id available } }";
const CALL_STAFF: &str =
    "mutation($t: ID!, $m: String) { callStaff(tableId: $t, message: $m) { id } }";
const CREATE_TABLE: &str =
    "mutation($r: ID!) { createTable(restaurantId: $r, name: \"Intruder\") { id } }";
const CREATE_ITEM: &str =
    "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) { id } }";

// Tokens an attacker can make without the secret.

fn encode(part: &Value) -> String {
    URL_SAFE_NO_PAD.encode(part.to_string())
}

pub(crate) fn claims(f: &Fixture, role: &str, exp: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "intruder", "role": role, "restaurant_id": f.restaurant, "iat": now, "exp": now + exp})
}

pub(crate) fn signed(algorithm: jsonwebtoken::Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// `alg: none`, no signature.
fn unsigned(f: &Fixture) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!("{}.{}.", encode(&header), encode(&claims(f, "admin", 600)))
}

/// A real customer token whose payload says `staff`, under the customer's signature.
fn promoted(f: &Fixture) -> String {
    let parts: Vec<&str> = f.customer.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64")).expect("json");
    payload["role"] = json!("staff");
    format!("{}.{}.{}", parts[0], encode(&payload), parts[2])
}

fn cases(s: &Scene) -> Vec<Case> {
    let (a, b) = (&s.a, &s.b);
    let staff = a.staff.as_str();
    let customer = a.customer.as_str();
    let one_ramen = s.order("hostile-new", s.ramen(json!(1)));
    let place_as = |token: String| Request::Gql {
        token: Some(token),
        query: PLACE.to_owned(),
        variables: json!({"i": one_ramen}),
    };
    let place = |items: Value| gql(customer, PLACE, json!({"i": s.order("hostile-new", items)}));
    let place_input = |input: Value| gql(customer, PLACE, json!({"i": input}));
    let advance = |order: &str, to: &str, version: Value| {
        gql(staff, ADVANCE, json!({"o": order, "to": to, "v": version}))
    };
    let with_note = |note: &str| place_input(with(one_ramen.clone(), "note", json!(note)));
    let mutation_body = json!({"query": PLACE, "variables": {"i": one_ramen}}).to_string();

    // Documents that cost the server more than they are worth.
    let mut ten_thousand =
        String::from("mutation($l: OrderItemInput!) { placeOrder(input: {restaurantId: \"");
    ten_thousand.push_str(&format!(
        "{}\", tableId: \"{}\", idempotencyKey: \"hostile-10k\", items: [",
        a.restaurant, a.tables[0]
    ));
    ten_thousand.push_str(&"$l,".repeat(10_000));
    ten_thousand.push_str("]}) { id } }");
    let aliases: String = (0..1000)
        .map(|i| format!("r{i}: restaurant(id: $r) {{ menu {{ name }} }} "))
        .collect();
    let alias_bomb = format!("query($r: ID!) {{ {aliases} }}");
    let mut laughs = String::from("query { ...F30 } fragment F0 on Query { __typename } ");
    for level in 1..=30 {
        laughs.push_str(&format!(
            "fragment F{level} on Query {{ ...F{p} ...F{p} }} ",
            p = level - 1
        ));
    }
    let page = "orders(restaurantId: $r, first: 100) { edges { node { items { name note menuItemId quantity } } } }";
    let complexity = format!(
        "query($r: ID!) {{ a: {page} b: {page} c: {page} d: {page} \
         e: {page} f: {page} g: {page} h: {page} }}"
    );
    let mut deep = String::from("query { __schema { types { fields { type ");
    deep.push_str(&"{ ofType ".repeat(20));
    deep.push_str("{ name }");
    deep.push_str(&"}".repeat(24));
    let nested_value = format!(
        "query {{ restaurant(id: {}\"x\"{}) {{ id }} }}",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let nested_json = format!(
        "{{\"query\": \"{{ __typename }}\", \"variables\": {{\"x\": {}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let call = format!(
        "mutation {{ callStaff(tableId: \"{}\") {{ id }} }}",
        a.tables[0]
    );
    let batch: Vec<Value> = (0..1000).map(|_| json!({"query": call})).collect();

    vec![
        // The HTTP envelope.
        case("malformed JSON", post(Some("application/json"), r#"{"query": "{ __typename }""#), Refused(400, BAD_REQUEST)),
        case("JSON that is not an object", post(Some("application/json"), r#""{ __typename }""#), Refused(400, BAD_REQUEST)),
        case("query that is not a string", post(Some("application/json"), r#"{"query": {"$ne": null}}"#), Refused(400, BAD_REQUEST)),
        case("body that is not UTF-8", post(Some("application/json"), b"{\"query\": \"\xff\xfe\"}".to_vec()), Refused(400, BAD_REQUEST)),
        case("empty body", post(Some("application/json"), ""), Refused(400, BAD_REQUEST)),
        case("body without a query", post(Some("application/json"), r#"{"qeury": "{ __typename }"}"#), Refused(400, BAD_REQUEST)),
        case("GET without a query", Request::Get { query: vec![("qeury", "{ __typename }".into())], headers: vec![] }, Refused(400, BAD_REQUEST)),
        case("empty batch", post(Some("application/json"), "[]"), Refused(400, BAD_REQUEST)),
        case("batch of 1000 mutations", Request::Post { content_type: Some("application/json"), token: Some(staff.to_owned()), body: Value::Array(batch).to_string().into() }, Refused(400, BAD_REQUEST)),
        case("JSON nested 10,000 deep", post(Some("application/json"), nested_json), Refused(400, BAD_REQUEST)),
        case("cross-site text/plain form post of a mutation", Request::Post { content_type: Some("text/plain"), token: Some(staff.to_owned()), body: mutation_body.clone().into() }, Refused(415, BAD_REQUEST)),
        case("no content type", Request::Post { content_type: None, token: Some(staff.to_owned()), body: mutation_body.clone().into() }, Refused(415, BAD_REQUEST)),
        case("urlencoded form", post(Some("application/x-www-form-urlencoded"), "query=%7B__typename%7D"), Refused(415, BAD_REQUEST)),
        case("multipart upload", post(Some("multipart/form-data; boundary=x"), "--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--x--\r\n"), Refused(415, BAD_REQUEST)),
        case("10 MB body", Request::Streamed { bytes: 10 << 20, announced: true }, Refused(413, BAD_REQUEST)),
        case("1 MB body in chunks, no Content-Length", Request::Streamed { bytes: 1 << 20, announced: false }, Refused(413, BAD_REQUEST)),
        case("mutation over GET, picked by operationName", Request::Get {
            query: vec![("query", format!("query Q {{ __typename }} mutation M {{ placeOrder(input: {{restaurantId: \"{}\", tableId: \"{}\", items: [{{menuItemId: \"{}\", quantity: 1}}], idempotencyKey: \"get\"}}) {{ id }} }}", a.restaurant, a.tables[0], a.menu[0])), ("operationName", "M".into())],
            headers: vec![("authorization", format!("Bearer {staff}"))],
        }, Refused(405, BAD_REQUEST)),
        case("GET with variables that are not JSON", Request::Get { query: vec![("query", "{ __typename }".into()), ("variables", "{".into())], headers: vec![] }, Refused(400, BAD_REQUEST)),
        case("WebSocket upgrade without a subprotocol", Request::Get { query: vec![], headers: upgrade(None) }, Refused(400, BAD_REQUEST)),
        case("WebSocket upgrade with an unknown subprotocol", Request::Get { query: vec![], headers: upgrade(Some("graphql-evil")) }, Refused(400, BAD_REQUEST)),

        // The document.
        case("syntax error", gql(staff, "{ restaurant(id: \"x\") { name ", json!({})), Refused(400, PARSE)),
        case("empty document", gql(staff, "", json!({})), Refused(400, PARSE)),
        case("argument nested 1000 lists deep", gql(staff, &nested_value, json!({})), Refused(400, PARSE)),
        case("100,000 open brackets", gql(staff, &"[".repeat(100_000), json!({})), Refused(400, PARSE)),
        case("20,000 open braces over GET", Request::Get { query: vec![("query", "{".repeat(20_000))], headers: vec![] }, Refused(400, PARSE)),
        case("selection 24 levels deep", gql(staff, &deep, json!({})), Refused(400, INVALID)),
        case("complexity bomb", gql(staff, &complexity, json!({"r": a.restaurant})), Refused(400, INVALID)),
        case("1000 aliases", gql(staff, &alias_bomb, json!({"r": a.restaurant})), Refused(400, INVALID)),
        case("fragments doubling 30 times", gql(staff, &laughs, json!({})), Refused(400, INVALID)),
        case("fragment cycle", gql(staff, "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }", json!({})), Refused(400, INVALID)),
        case("unknown field", gql(staff, "query($r: ID!) { restaurant(id: $r) { id secret } }", json!({"r": a.restaurant})), Refused(400, INVALID)),
        case("unknown argument", gql(staff, "query($r: ID!) { restaurant(id: $r, as: \"admin\") { id } }", json!({"r": a.restaurant})), Refused(400, INVALID)),
        case("variable of the wrong type", gql(staff, ORDERS, json!({"r": a.restaurant, "first": "all"})), Refused(400, INVALID)),
        case("missing required variable", gql(staff, ORDERS, json!({})), Refused(400, INVALID)),
        case("unknown enum value in a variable", advance(&s.placed, "DELIVERED", json!(null)), Refused(400, INVALID)),
        case("enum value in the wrong case", advance(&s.placed, "accepted", json!(null)), Refused(400, INVALID)),
        case("unknown operationName", Request::Gql { token: Some(staff.into()), query: "query A { __typename }".into(), variables: json!({}) }.named("B"), Refused(400, INVALID)),
        case("two operations, none named", gql(staff, "query A { __typename } query B { __typename }", json!({})), Refused(400, INVALID)),
        case("subscription over HTTP", gql(staff, RESTAURANT_EVENTS, json!({"r": a.restaurant})), Refused(400, INVALID)),

        // Prices are the server's: no input has a place for one.
        case("unitPrice on an order line", place(json!([{"menuItemId": a.menu[0], "quantity": 1, "unitPrice": {"amount": 1, "currency": "JPY"}}])), Refused(400, INVALID)),
        case("price on an order line", place(json!([{"menuItemId": a.menu[0], "quantity": 1, "price": 1}])), Refused(400, INVALID)),
        case("total on the order", place_input(with(one_ramen.clone(), "total", json!({"amount": 1}))), Refused(400, INVALID)),
        case("price inline in the document", gql(customer, &format!("mutation {{ placeOrder(input: {{restaurantId: \"{}\", tableId: \"{}\", items: [{{menuItemId: \"{}\", quantity: 1, unitPrice: 1}}], idempotencyKey: \"inline\"}}) {{ id }} }}", a.restaurant, a.tables[0], a.menu[0]), json!({})), Refused(400, INVALID)),

        // Quantities and totals.
        case("quantity 0", place(s.ramen(json!(0))), Refused(200, BAD_INPUT)),
        case("quantity -1", place(s.ramen(json!(-1))), Refused(200, BAD_INPUT)),
        case("quantity 2^31", place(s.ramen(json!(1_i64 << 31))), Refused(400, INVALID)),
        case("quantity 2^53", place(s.ramen(json!(1_i64 << 53))), Refused(400, INVALID)),
        case("quantity 1.5", place(s.ramen(json!(1.5))), Refused(400, INVALID)),
        case("quantity as a string", place(s.ramen(json!("1"))), Refused(400, INVALID)),
        case("line subtotal beyond 32 bits", place(json!([{"menuItemId": s.truffle, "quantity": 99}])), Refused(200, BAD_INPUT)),
        case("total beyond 32 bits", place(json!([{"menuItemId": s.caviar, "quantity": 1}, {"menuItemId": s.ramen_id(), "quantity": 1}])), Refused(200, BAD_INPUT)),
        case("10,000 lines", gql(customer, &ten_thousand, json!({"l": {"menuItemId": a.menu[0], "quantity": 1}})), Refused(200, BAD_INPUT)),
        case("no lines", place(json!([])), Refused(200, BAD_INPUT)),

        // Menu items.
        case("unknown menu item", place(json!([{"menuItemId": NOTHING, "quantity": 1}])), Refused(200, BAD_INPUT)),
        case("other restaurant's menu item", place(json!([{"menuItemId": b.menu[0], "quantity": 1}])), Refused(200, BAD_INPUT)),
        case("sold-out menu item", place(json!([{"menuItemId": a.menu[2], "quantity": 1}])), Refused(200, "SOLD_OUT")),

        // Free text.
        case("NUL in a note", with_note("no\u{0}onions"), Refused(200, BAD_INPUT)),
        case("ANSI escape in a note", with_note("\u{1b}[2J\u{1b}[31mFIRE"), Refused(200, BAD_INPUT)),
        case("C1 control in a line note", place(json!([{"menuItemId": a.menu[0], "quantity": 1, "note": "a\u{85}b"}])), Refused(200, BAD_INPUT)),
        case("note of 501 characters", with_note(&"é".repeat(501)), Refused(200, BAD_INPUT)),
        case("control character in a cancel reason", gql(staff, CANCEL, json!({"o": s.placed, "r": "x\u{8}\u{8}\u{8}"})), Refused(200, BAD_INPUT)),
        case("blank cancel reason", gql(staff, CANCEL, json!({"o": s.placed, "r": " \n "})), Refused(200, BAD_INPUT)),

        // Idempotency.
        case("idempotency key reused with another quantity", gql(customer, PLACE, json!({"i": s.order(KEY, s.ramen(json!(2)))})), Refused(200, CONFLICT)),
        case("idempotency key reused for another table", gql(staff, PLACE, json!({"i": with(s.order(KEY, s.ramen(json!(1))), "tableId", json!(a.tables[1]))})), Refused(200, CONFLICT)),
        case("idempotency key of 129 characters", place_input(s.order(&"k".repeat(129), s.ramen(json!(1)))), Refused(200, BAD_INPUT)),

        // Ids.
        case("order id that is empty", gql(staff, ORDER, json!({"o": ""})), Refused(200, BAD_INPUT)),
        case("order id of 10 kB", gql(staff, ORDER, json!({"o": "a".repeat(10_000)})), Refused(200, BAD_INPUT)),
        case("order id with SQL", advance("' OR '1'='1", "ACCEPTED", json!(null)), Refused(200, BAD_INPUT)),
        case("order id \"x\"", advance("x", "ACCEPTED", json!(null)), Refused(200, MISSING)),
        case("order id that names nothing", advance(NOTHING, "ACCEPTED", json!(null)), Refused(200, MISSING)),
        case("restaurant id that is empty", gql(staff, ORDERS, json!({"r": ""})), Refused(200, BAD_INPUT)),
        case("cursor that was never issued", gql(staff, ORDERS, json!({"r": a.restaurant, "after": "JyBPUiAxPTE"})), Refused(200, BAD_INPUT)),
        case("page of 0", gql(staff, ORDERS, json!({"r": a.restaurant, "first": 0})), Refused(200, BAD_INPUT)),

        // Status moves.
        case("skipping a status", advance(&s.placed, "READY", json!(null)), Refused(200, "INVALID_TRANSITION")),
        case("moving back to PLACED", advance(&s.accepted, "PLACED", json!(null)), Refused(200, "INVALID_TRANSITION")),
        case("stale expectedVersion", advance(&s.placed, "ACCEPTED", json!(7)), Refused(200, CONFLICT)),
        case("negative expectedVersion", advance(&s.placed, "ACCEPTED", json!(-1)), Refused(200, CONFLICT)),
        case("expectedVersion beyond 32 bits", advance(&s.placed, "ACCEPTED", json!(1_i64 << 40)), Refused(400, INVALID)),

        // Tokens.
        case("no token", Request::Gql { token: None, query: PLACE.into(), variables: json!({"i": one_ramen}) }, Refused(200, UNAUTH)),
        case("alg: none", place_as(unsigned(a)), Refused(200, UNAUTH)),
        case("signed with another secret", place_as(signed(jsonwebtoken::Algorithm::HS256, b"another-secret-of-at-least-32-bytes!", &claims(a, "staff", 600))), Refused(200, UNAUTH)),
        case("right secret, HS512", place_as(signed(jsonwebtoken::Algorithm::HS512, SECRET.as_bytes(), &claims(a, "staff", 600))), Refused(200, UNAUTH)),
        case("expired", place_as(signed(jsonwebtoken::Algorithm::HS256, SECRET.as_bytes(), &claims(a, "staff", -600))), Refused(200, UNAUTH)),
        case("role claim changed under the old signature", Request::Gql { token: Some(promoted(a)), query: ADVANCE.into(), variables: json!({"o": s.placed, "to": "ACCEPTED"}) }, Refused(200, UNAUTH)),
        case("staff token without a restaurant", place_as(signed(jsonwebtoken::Algorithm::HS256, SECRET.as_bytes(), &json!({"sub": "x", "role": "staff", "iat": 0, "exp": 4_102_444_800_i64}))), Refused(200, UNAUTH)),
        case("unknown role", place_as(signed(jsonwebtoken::Algorithm::HS256, SECRET.as_bytes(), &claims(a, "owner", 600))), Refused(200, UNAUTH)),

        // Roles.
        case("customer advances an order", gql(customer, ADVANCE, json!({"o": s.placed, "to": "ACCEPTED"})), Refused(200, FORBIDDEN)),
        case("customer cancels an accepted order", gql(customer, CANCEL, json!({"o": s.accepted, "r": "too slow"})), Refused(200, FORBIDDEN)),
        case("customer marks a dish sold out", gql(customer, AVAILABILITY, json!({"m": a.menu[0], "a": false})), Refused(200, FORBIDDEN)),
        case("customer lists orders", gql(customer, ORDERS, json!({"r": a.restaurant})), Refused(200, FORBIDDEN)),
        case("customer lists tables", gql(customer, TABLES, json!({"r": a.restaurant})), Refused(200, FORBIDDEN)),
        case("staff adds a table", gql(staff, CREATE_TABLE, json!({"r": a.restaurant})), Refused(200, FORBIDDEN)),
        case("staff adds a menu item", gql(staff, CREATE_ITEM, json!({"r": a.restaurant, "i": {"name": "Free", "price": 0}})), Refused(200, FORBIDDEN)),

        // Another table.
        case("customer reads another table's order", gql(customer, ORDER, json!({"o": s.other_table})), Invisible("order")),
        case("customer cancels another table's order", gql(customer, CANCEL, json!({"o": s.other_table, "r": "mine now"})), Refused(200, MISSING)),
        case("customer orders for another table", place_input(with(one_ramen.clone(), "tableId", json!(a.tables[1]))), Refused(200, FORBIDDEN)),
        case("customer calls staff to another table", gql(customer, CALL_STAFF, json!({"t": a.tables[1]})), Refused(200, FORBIDDEN)),
        case("staff orders for another restaurant's table", gql(staff, PLACE, json!({"i": with(s.order("hostile-b-table", s.ramen(json!(1))), "tableId", json!(b.tables[0]))})), Refused(200, MISSING)),

        // Another restaurant: B's staff on A, and on nothing, must not tell them apart.
        case("other staff reads the restaurant", gql(&b.staff, RESTAURANT, json!({"r": a.restaurant})), Refused(200, FORBIDDEN)),
        case("other staff reads a restaurant that does not exist", gql(&b.staff, RESTAURANT, json!({"r": NOTHING})), Refused(200, FORBIDDEN)),
        case("other staff reads an order", gql(&b.staff, ORDER, json!({"o": s.placed})), Invisible("order")),
        case("other staff lists orders", gql(&b.staff, ORDERS, json!({"r": a.restaurant})), Refused(200, FORBIDDEN)),
        case("other staff places an order", place_as(b.staff.clone()), Refused(200, FORBIDDEN)),
        case("other staff advances an order", gql(&b.staff, ADVANCE, json!({"o": s.placed, "to": "ACCEPTED"})), Refused(200, MISSING)),
        case("other staff cancels an order", gql(&b.staff, CANCEL, json!({"o": s.placed, "r": "sabotage"})), Refused(200, MISSING)),
        case("other staff marks a dish sold out", gql(&b.staff, AVAILABILITY, json!({"m": a.menu[0], "a": false})), Refused(200, MISSING)),
        case("other staff calls to a table", gql(&b.staff, CALL_STAFF, json!({"t": a.tables[0]})), Refused(200, MISSING)),
        case("A's staff advances B's order", gql(staff, ADVANCE, json!({"o": s.foreign, "to": "ACCEPTED"})), Refused(200, MISSING)),
    ]
}

/// The WebSocket cases: transport, protocol, and subscriptions across restaurants and tables.
fn ws_cases(s: &Scene) -> Vec<Case> {
    let (a, b) = (&s.a, &s.b);
    let staff = Some(a.staff.as_str());
    let events = |r: &str| subscribe("e", RESTAURANT_EVENTS, json!({"r": r}));
    let updates = |o: &str| subscribe("u", ORDER_UPDATED, json!({"o": o}));
    vec![
        case(
            "binary frame",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Binary(vec![0, 159, 146, 150])],
            ),
            Closed(4400),
        ),
        case(
            "text frame that is not JSON",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Text("subscribe me".into())],
            ),
            Closed(4400),
        ),
        case(
            "unknown message type",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Json(
                    json!({"type": "start", "id": "1", "payload": {"query": "{ __typename }"}}),
                )],
            ),
            Closed(4400),
        ),
        case(
            "unknown message type 10 kB long, quoted in the close reason",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Json(json!({"type": "x".repeat(10_000)}))],
            ),
            Closed(4400),
        ),
        case(
            "legacy: unknown message type",
            ws(
                LEGACY,
                staff,
                vec![Frame::Json(
                    json!({"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}}),
                )],
            ),
            Closed(4400),
        ),
        case(
            "subscribe with an empty id",
            ws(
                TRANSPORT_WS,
                staff,
                vec![subscribe("", RESTAURANT_EVENTS, json!({"r": a.restaurant}))],
            ),
            Closed(4400),
        ),
        case(
            "connection_init with a string payload",
            ws(
                TRANSPORT_WS,
                None,
                vec![Frame::Json(
                    json!({"type": "connection_init", "payload": a.staff}),
                )],
            ),
            Closed(4400),
        ),
        case(
            "subscribe before connection_init",
            ws(TRANSPORT_WS, None, vec![events(&a.restaurant)]),
            Closed(4401),
        ),
        case(
            "legacy: start before connection_init",
            ws(
                LEGACY,
                None,
                vec![Frame::Json(
                    json!({"type": "start", "id": "1", "payload": {"query": RESTAURANT_EVENTS, "variables": {"r": a.restaurant}}}),
                )],
            ),
            Closed(4401),
        ),
        case(
            "connection_init with alg: none",
            ws(
                TRANSPORT_WS,
                None,
                vec![Frame::Json(
                    json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", unsigned(a))}}),
                )],
            ),
            Closed(4403),
        ),
        case(
            "duplicate subscription id",
            ws(
                TRANSPORT_WS,
                staff,
                vec![events(&a.restaurant), events(&a.restaurant)],
            ),
            Closed(4409),
        ),
        case(
            "second connection_init",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Json(
                    json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", b.staff)}}),
                )],
            ),
            Closed(4429),
        ),
        case(
            "message over the size limit",
            ws(
                TRANSPORT_WS,
                staff,
                vec![Frame::Text(
                    json!({"type": "ping", "payload": {"pad": "x".repeat(300 * 1024)}}).to_string(),
                )],
            ),
            Closed(1009),
        ),
        case(
            "subscription with a syntax error",
            ws(
                TRANSPORT_WS,
                staff,
                vec![subscribe(
                    "e",
                    "subscription { restaurantEvents(",
                    json!({}),
                )],
            ),
            OperationError(PARSE),
        ),
        case(
            "subscription to an unknown field",
            ws(
                TRANSPORT_WS,
                staff,
                vec![subscribe(
                    "e",
                    "subscription { kitchenSecrets { seq } }",
                    json!({}),
                )],
            ),
            OperationError(INVALID),
        ),
        case(
            "subscription with a variable of the wrong type",
            ws(
                TRANSPORT_WS,
                staff,
                vec![subscribe(
                    "e",
                    RESTAURANT_EVENTS,
                    json!({"r": a.restaurant, "after": "latest"}),
                )],
            ),
            OperationError(INVALID),
        ),
        case(
            "mutation with a price over the socket",
            ws(
                TRANSPORT_WS,
                staff,
                vec![subscribe(
                    "m",
                    PLACE,
                    json!({"i": {"restaurantId": a.restaurant, "tableId": a.tables[0], "items": [{"menuItemId": a.menu[0], "quantity": 1, "unitPrice": 1}], "idempotencyKey": "ws"}}),
                )],
            ),
            OperationError(INVALID),
        ),
        case(
            "other staff subscribes to the restaurant",
            ws(TRANSPORT_WS, Some(&b.staff), vec![events(&a.restaurant)]),
            OperationError(FORBIDDEN),
        ),
        case(
            "other staff watches an order",
            ws(TRANSPORT_WS, Some(&b.staff), vec![updates(&s.placed)]),
            OperationError(MISSING),
        ),
        case(
            "customer subscribes to the restaurant",
            ws(TRANSPORT_WS, Some(&a.customer), vec![events(&a.restaurant)]),
            OperationError(FORBIDDEN),
        ),
        case(
            "customer watches another table's order",
            ws(
                TRANSPORT_WS,
                Some(&a.customer),
                vec![updates(&s.other_table)],
            ),
            OperationError(MISSING),
        ),
        case(
            "order id of 10 kB over the socket",
            ws(TRANSPORT_WS, staff, vec![updates(&"a".repeat(10_000))]),
            OperationError(BAD_INPUT),
        ),
    ]
}

impl Scene {
    fn ramen_id(&self) -> &str {
        &self.a.menu[0]
    }
}

impl Request {
    fn named(self, name: &str) -> Request {
        match self {
            Request::Gql {
                token,
                query,
                variables,
            } => Request::Post {
                content_type: Some("application/json"),
                token,
                body: json!({"query": query, "variables": variables, "operationName": name})
                    .to_string()
                    .into(),
            },
            other => other,
        }
    }
}

fn upgrade(protocol: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("connection", "Upgrade".to_owned()),
        ("upgrade", "websocket".to_owned()),
        ("sec-websocket-version", "13".to_owned()),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
    ];
    if let Some(protocol) = protocol {
        headers.push(("sec-websocket-protocol", protocol.to_owned()));
    }
    headers
}

/// What came back: an HTTP status and JSON body, or what a WebSocket said.
#[derive(Debug)]
enum Outcome {
    /// Status, `Content-Type`, body.
    Http(u16, String, Value),
    Ws(Incoming),
}

async fn send(api: &Api, request: &Request) -> Outcome {
    let url = format!("{}/graphql", api.base);
    let http = api.http();
    let response = match request {
        Request::Gql {
            token,
            query,
            variables,
        } => {
            let mut post = http
                .post(&url)
                .header("accept", ACCEPT)
                .json(&json!({"query": query, "variables": variables}));
            if let Some(token) = token {
                post = post.bearer_auth(token);
            }
            post.send().await
        }
        Request::Post {
            content_type,
            token,
            body,
        } => {
            let mut post = http.post(&url).header("accept", ACCEPT).body(body.clone());
            if let Some(content_type) = content_type {
                post = post.header("content-type", *content_type);
            }
            if let Some(token) = token {
                post = post.bearer_auth(token);
            }
            post.send().await
        }
        Request::Get { query, headers } => {
            let mut get = http.get(&url).header("accept", ACCEPT).query(query);
            for (name, value) in headers {
                get = get.header(*name, value);
            }
            get.send().await
        }
        Request::Streamed { bytes, announced } => return streamed(api, *bytes, *announced).await,
        Request::Ws {
            protocol,
            token,
            frames,
        } => return Outcome::Ws(over_websocket(api, protocol, token.as_deref(), frames).await),
    };
    let response = response.expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("HTTP {status}: the body is not JSON: {text:?}"));
    Outcome::Http(status, content_type, body)
}

/// A POST of a large body (JSON whitespace) written to the socket as it would come from a
/// client that does not wait for the server's answer.
async fn streamed(api: &Api, bytes: usize, announced: bool) -> Outcome {
    let address = api.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let framing = if announced {
        format!("content-length: {bytes}")
    } else {
        "transfer-encoding: chunked".to_owned()
    };
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\naccept: {ACCEPT}\r\n{framing}\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    // An announced length is refused on the head alone; the server answers before the body.
    if !announced {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            // The server may answer and close before everything is sent.
            if socket.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    let status = crate::support::status_line(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let content_type = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let body = serde_json::from_str(body.trim())
        .or_else(|_| {
            // A chunked response: the JSON is the first chunk.
            serde_json::from_str(body.lines().nth(1).unwrap_or_default())
        })
        .unwrap_or_else(|_| panic!("HTTP {status}: the body is not JSON: {body:?}"));
    Outcome::Http(status, content_type, body)
}

async fn over_websocket(
    api: &Api,
    protocol: &'static str,
    token: Option<&str>,
    frames: &[Frame],
) -> Incoming {
    let mut client = match token {
        Some(token) => WsClient::ready(api, protocol, token).await,
        None => WsClient::connect(api, protocol).await,
    };
    for frame in frames {
        match frame {
            Frame::Json(value) => client.send(value.clone()).await,
            Frame::Text(text) => client.send_raw(text).await,
            Frame::Binary(bytes) => client.send_binary(bytes.clone()).await,
        }
    }
    let answer = match client.recv().await {
        // The legacy protocol's word before it closes (tested in `ws_messages`).
        Incoming::Json(error) if error["type"] == "connection_error" => client.recv().await,
        answer => answer,
    };
    if let Incoming::Json(message) = &answer {
        if message["type"] == "error" {
            // The connection is still usable: it answers a ping.
            client.send(json!({"type": "ping"})).await;
            assert_eq!(
                client.recv().await,
                Incoming::Json(json!({"type": "pong"})),
                "the connection stays open after {message}"
            );
        }
    }
    client.close().await;
    answer
}

/// What must never reach a client.
const LEAKS: [&str; 9] = [
    "SELECT", "INSERT", "sqlx", "src/", ".rs:", "panicked", "database", "sqlite", SECRET,
];

fn check(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let fail = |what: String| Err(format!("{}: {what}; got {outcome:?}", case.name));
    let text = format!("{outcome:?}");
    if let Some(leak) = LEAKS.iter().find(|leak| text.contains(*leak)) {
        return fail(format!("leaks {leak:?}"));
    }
    match (case.expect, outcome) {
        (Refused(status, code), Outcome::Http(got, content_type, body)) => {
            let got_code = body["errors"][0]["extensions"]["code"].as_str();
            if (*got, got_code) != (status, Some(code)) {
                return fail(format!("expected HTTP {status} with {code}"));
            }
            if !content_type.starts_with("application/graphql-response+json") {
                return fail("expected application/graphql-response+json".into());
            }
            // GraphQL over HTTP: data (maybe null) once executed, and then 2xx; none otherwise.
            let executed = (200..300).contains(got);
            if body.get("data").is_some() != executed {
                return fail(format!("expected data only with a 2xx status, as {got} is"));
            }
            Ok(())
        }
        (Invisible(field), Outcome::Http(got, _, body)) => {
            if *got != 200 || body.get("errors").is_some() || !body["data"][field].is_null() {
                return fail(format!("expected data.{field} null without errors"));
            }
            Ok(())
        }
        (Closed(code), Outcome::Ws(Incoming::Closed(got, _))) if *got == Some(code) => Ok(()),
        (OperationError(code), Outcome::Ws(Incoming::Json(message)))
            if message["type"] == "error"
                && message["payload"][0]["extensions"]["code"] == code =>
        {
            Ok(())
        }
        (expect, _) => fail(format!("expected {expect:?}")),
    }
}

/// What the requests must leave alone: every order (status, version, lines), the menu and the
/// tables of a restaurant.
async fn snapshot(api: &Api, f: &Fixture) -> Value {
    let state = api
        .gql(
            Some(&f.admin),
            "query($r: ID!) { restaurant(id: $r) { menu { id price { amount } available } tables { id name } } \
             orders(restaurantId: $r, first: 100) { edges { node { id status version note total { amount } items { menuItemId quantity note } } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    state.ok();
    state.0["data"].clone()
}

/// A kitchen display of one restaurant, following its events from the first.
struct Watch {
    client: WsClient,
    last_seq: i64,
}

impl Watch {
    async fn start(api: &Api, f: &Fixture) -> Watch {
        let mut client = WsClient::ready(api, TRANSPORT_WS, &f.staff).await;
        client
            .subscribe(
                "w",
                RESTAURANT_EVENTS,
                json!({"r": f.restaurant, "after": 0}),
            )
            .await;
        let mut watch = Watch {
            client,
            last_seq: 0,
        };
        watch.last_seq = watch.mark(api, f).await;
        watch
    }

    /// Calls staff to the first table and reads events up to that call; returns its seq.
    async fn mark(&mut self, api: &Api, f: &Fixture) -> i64 {
        let call = api
            .gql(
                Some(&f.staff),
                CALL_STAFF,
                json!({"t": f.tables[0], "m": "mark"}),
            )
            .await
            .str("callStaff.id");
        loop {
            let event = self.client.next_result("w").await["data"]["restaurantEvents"].clone();
            if event["call"]["id"] == json!(call) {
                return event["seq"].as_i64().expect("seq");
            }
        }
    }

    /// Nothing arrived since the last look.
    async fn quiet_since(&mut self, wait: Duration) -> Result<(), String> {
        match self.client.recv_within(wait).await {
            None => Ok(()),
            Some(event) => Err(format!("an event arrived: {event:?}")),
        }
    }

    /// The next event after all the cases is the next mark: nothing came in between.
    async fn nothing_happened(mut self, api: &Api, f: &Fixture) {
        let before = self.last_seq;
        let mark = self.mark(api, f).await;
        assert_eq!(
            mark,
            before + 1,
            "events were written between seq {before} and the mark"
        );
        self.client.close().await;
    }
}

/// Runs cases one by one, checking after each that the restaurants are as they were.
async fn run(api: &Api, scene: &Scene, cases: Vec<Case>) {
    let mut watches = [
        Watch::start(api, &scene.a).await,
        Watch::start(api, &scene.b).await,
    ];
    let before = [snapshot(api, &scene.a).await, snapshot(api, &scene.b).await];
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let outcome = send(api, &case.request).await;
        let elapsed = started.elapsed();
        if let Err(failure) = check(case, &outcome) {
            failures.push(failure);
        }
        if elapsed > Duration::from_secs(3) {
            failures.push(format!("{}: took {elapsed:?}", case.name));
        }
        let after = [snapshot(api, &scene.a).await, snapshot(api, &scene.b).await];
        if after != before {
            failures.push(format!("{}: changed the restaurants: {after:?}", case.name));
        }
        for watch in &mut watches {
            if let Err(failure) = watch.quiet_since(Duration::from_millis(10)).await {
                failures.push(format!("{}: {failure}", case.name));
            }
        }
    }
    let [a, b] = watches;
    a.nothing_happened(api, &scene.a).await;
    b.nothing_happened(api, &scene.b).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn hostile_http(server: &'static TestServer) {
    let scene = Scene::set_up(server).await;
    let cases = cases(&scene);
    assert!(cases.len() >= 60, "{} cases", cases.len());
    run(server, &scene, cases).await;
}

mod hostile_http_requests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::hostile_http(crate::support::sqlite()).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::hostile_http(crate::support::postgres()).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        super::hostile_http(crate::support::mariadb()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_messages() {
    let server = crate::support::sqlite();
    let scene = Scene::set_up(server).await;
    run(server, &scene, ws_cases(&scene)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_introspection_when_disabled() {
    let server = TestServer::start(
        &crate::support::sqlite_url("no-introspection"),
        &["--disable-introspection"],
    );
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Order\") { fields { name } } }",
        "query { ...Sneaky } fragment Sneaky on Query { __schema { types { name } } }",
    ] {
        let refused = server.gql(None, query, json!({})).await;
        refused.expect_code(INVALID);
        assert!(refused.0["data"].is_null(), "{}", refused.0);
    }
    let typename = server.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(typename.ok().at("__typename"), "Query");
}
