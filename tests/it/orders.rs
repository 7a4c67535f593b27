//! Every query and mutation's behaviour, on both backends.

use async_graphql::futures_util::future::join_all;
use orderhub_actors::shutdown::ShutdownSignal;
use serde_json::json;

use crate::support::{on_every_backend, TestServer, ADVANCE, CANCEL, PLACE};

on_every_backend!(
    placing_computes_totals_from_menu_prices,
    tickets_and_versions_count_up,
    orders_advance_one_step_at_a_time,
    stale_expected_version_conflicts,
    cancelling_depends_on_role_and_status,
    sold_out_items_are_refused,
    bad_order_input_is_refused,
    idempotency_key_returns_the_first_order,
    idempotency_keys_are_compared_exactly,
    concurrent_retries_order_once,
    concurrent_advances_have_one_winner,
    orders_page_newest_first_with_filters,
    restaurant_menu_and_tables,
    staff_calls,
    events_are_numbered_without_gaps,
    text_counts_and_compares_as_people_read_it,
);

async fn placing_computes_totals_from_menu_prices(server: &'static TestServer) {
    let f = server.fixture().await;
    let mut input = f.order_input("k-total", &[(0, 2), (1, 3)]);
    input["note"] = json!("no onions, please");
    input["items"][1]["note"] = json!("extra crispy");
    let placed = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    placed.ok();
    assert_eq!(placed.int("placeOrder.total.amount"), 2 * 900 + 3 * 450);
    assert_eq!(placed.str("placeOrder.total.currency"), "JPY");
    assert_eq!(placed.str("placeOrder.status"), "PLACED");
    assert_eq!(placed.str("placeOrder.note"), "no onions, please");
    assert_eq!(placed.str("placeOrder.items.0.name"), "Ramen");
    assert_eq!(placed.int("placeOrder.items.0.unitPrice.amount"), 900);
    assert_eq!(placed.int("placeOrder.items.0.subtotal.amount"), 1800);
    assert_eq!(placed.int("placeOrder.items.1.quantity"), 3);
    assert_eq!(placed.str("placeOrder.items.1.note"), "extra crispy");
    assert_eq!(placed.str("placeOrder.tableId"), f.tables[0]);

    let read = server
        .gql(
            Some(&f.customer),
            "query($id: ID!) { order(id: $id) { id total { amount } items { name } placedAt updatedAt } }",
            json!({"id": placed.str("placeOrder.id")}),
        )
        .await;
    assert_eq!(read.int("order.total.amount"), 3150);
    assert_eq!(read.at("order.items").as_array().map(Vec::len), Some(2));
    let placed_at = read.str("order.placedAt");
    assert!(
        placed_at.ends_with('Z') && placed_at.len() == 24,
        "RFC 3339 with millis: {placed_at}"
    );
}

async fn tickets_and_versions_count_up(server: &'static TestServer) {
    let f = server.fixture().await;
    let mut numbers = Vec::new();
    for i in 0..3 {
        let placed = server
            .gql(
                Some(&f.customer),
                PLACE,
                json!({"i": f.order_input(&format!("n{i}"), &[(0, 1)])}),
            )
            .await;
        assert_eq!(placed.int("placeOrder.version"), 1);
        numbers.push(placed.int("placeOrder.number"));
    }
    assert_eq!(
        numbers,
        [1, 2, 3],
        "a new restaurant's first tickets of the day"
    );
}

async fn orders_advance_one_step_at_a_time(server: &'static TestServer) {
    let f = server.fixture().await;
    let order = f.place(server, "adv").await;
    let skip = server
        .gql(Some(&f.staff), ADVANCE, json!({"o": order, "to": "READY"}))
        .await;
    skip.expect_code("INVALID_TRANSITION");
    for (version, to) in [
        (1, "ACCEPTED"),
        (2, "PREPARING"),
        (3, "READY"),
        (4, "SERVED"),
    ] {
        let moved = server
            .gql(
                Some(&f.staff),
                ADVANCE,
                json!({"o": order, "to": to, "v": version}),
            )
            .await;
        moved.ok();
        assert_eq!(moved.str("advanceOrder.status"), to);
        assert_eq!(moved.int("advanceOrder.version"), version + 1);
    }
    for to in ["PLACED", "SERVED", "CANCELLED"] {
        let again = server
            .gql(Some(&f.staff), ADVANCE, json!({"o": order, "to": to}))
            .await;
        again.expect_code("INVALID_TRANSITION");
    }
    let cancel = server
        .gql(Some(&f.staff), CANCEL, json!({"o": order, "r": "too late"}))
        .await;
    cancel.expect_code("INVALID_TRANSITION");
}

async fn stale_expected_version_conflicts(server: &'static TestServer) {
    let f = server.fixture().await;
    let order = f.place(server, "stale").await;
    let stale = server
        .gql(
            Some(&f.staff),
            ADVANCE,
            json!({"o": order, "to": "ACCEPTED", "v": 7}),
        )
        .await;
    stale.expect_code("CONFLICT");
    let unchanged = server
        .gql(
            Some(&f.staff),
            "query($id: ID!) { order(id: $id) { status version } }",
            json!({"id": order}),
        )
        .await;
    assert_eq!(
        (
            unchanged.str("order.status"),
            unchanged.int("order.version")
        ),
        ("PLACED".into(), 1)
    );
}

async fn cancelling_depends_on_role_and_status(server: &'static TestServer) {
    let f = server.fixture().await;
    let mine = f.place(server, "c1").await;
    let cancelled = server
        .gql(
            Some(&f.customer),
            CANCEL,
            json!({"o": mine, "r": "changed my mind"}),
        )
        .await;
    cancelled.ok();
    assert_eq!(cancelled.str("cancelOrder.status"), "CANCELLED");
    assert_eq!(cancelled.str("cancelOrder.cancelReason"), "changed my mind");
    assert_eq!(cancelled.int("cancelOrder.version"), 2);

    let accepted = f.place(server, "c2").await;
    f.advance(server, &accepted, "ACCEPTED").await;
    let late = server
        .gql(
            Some(&f.customer),
            CANCEL,
            json!({"o": accepted, "r": "hungry no more"}),
        )
        .await;
    late.expect_code("FORBIDDEN");
    let other_table = server
        .gql(
            Some(&f.other_customer),
            CANCEL,
            json!({"o": accepted, "r": "x"}),
        )
        .await;
    other_table.expect_code("NOT_FOUND");
    let empty_reason = server
        .gql(Some(&f.staff), CANCEL, json!({"o": accepted, "r": "   "}))
        .await;
    empty_reason.expect_code("BAD_USER_INPUT");
    let staff = server
        .gql(
            Some(&f.staff),
            CANCEL,
            json!({"o": accepted, "r": "out of noodles"}),
        )
        .await;
    assert_eq!(staff.ok().str("cancelOrder.status"), "CANCELLED");
}

async fn sold_out_items_are_refused(server: &'static TestServer) {
    let f = server.fixture().await;
    let sold_out = server
        .gql(
            Some(&f.customer),
            PLACE,
            json!({"i": f.order_input("so1", &[(0, 1), (2, 1)])}),
        )
        .await;
    sold_out.expect_code("SOLD_OUT");
    const SET: &str = "mutation($m: ID!, $a: Boolean!) { setMenuItemAvailability(menuItemId: $m, available: $a) { id available } }";
    let back = server
        .gql(Some(&f.staff), SET, json!({"m": f.menu[2], "a": true}))
        .await;
    assert_eq!(
        back.ok().at("setMenuItemAvailability.available"),
        &json!(true)
    );
    server
        .gql(
            Some(&f.customer),
            PLACE,
            json!({"i": f.order_input("so2", &[(2, 1)])}),
        )
        .await
        .ok();
    server
        .gql(Some(&f.staff), SET, json!({"m": f.menu[0], "a": false}))
        .await
        .ok();
    let menu = server
        .gql(
            Some(&f.customer),
            "query($r: ID!) { restaurant(id: $r) { menu { available } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(
        menu.at("restaurant.menu"),
        &json!([{"available": false}, {"available": true}, {"available": true}])
    );
    let customer_sets = server
        .gql(Some(&f.customer), SET, json!({"m": f.menu[0], "a": true}))
        .await;
    customer_sets.expect_code("FORBIDDEN");
}

async fn bad_order_input_is_refused(server: &'static TestServer) {
    let f = server.fixture().await;
    let other = server.fixture().await;
    let mut cases = vec![
        ("no items", f.order_input("b1", &[])),
        ("quantity 0", f.order_input("b2", &[(0, 0)])),
        ("quantity -1", f.order_input("b3", &[(0, -1)])),
        ("quantity 100", f.order_input("b4", &[(0, 100)])),
        ("101 lines", f.order_input("b5", &vec![(0, 1); 101])),
        ("empty key", f.order_input("", &[(0, 1)])),
        ("long key", f.order_input(&"k".repeat(129), &[(0, 1)])),
    ];
    let mut foreign = f.order_input("b6", &[(0, 1)]);
    foreign["items"][0]["menuItemId"] = json!(other.menu[0]);
    cases.push(("another restaurant's menu item", foreign));
    let mut unknown = f.order_input("b7", &[(0, 1)]);
    unknown["items"][0]["menuItemId"] = json!("00000000-0000-7000-8000-000000000000");
    cases.push(("unknown menu item", unknown));
    let mut invalid = f.order_input("b8", &[(0, 1)]);
    invalid["items"][0]["menuItemId"] = json!("'; DROP TABLE orders; --");
    cases.push(("malformed id", invalid));
    let mut control = f.order_input("b9", &[(0, 1)]);
    control["note"] = json!("ring\u{7}bell");
    cases.push(("control character in note", control));
    for (case, input) in cases {
        let refused = server
            .gql(Some(&f.customer), PLACE, json!({"i": input}))
            .await;
        assert_eq!(
            refused.code(),
            Some("BAD_USER_INPUT"),
            "{case}: {}",
            refused.0
        );
    }
    let mut huge = f.order_input("b10", &[(0, 1)]);
    huge["items"][0]["quantity"] = json!(99_999_999_999_i64);
    let refused = server
        .gql(Some(&f.customer), PLACE, json!({"i": huge}))
        .await;
    assert!(
        refused.0["errors"][0]["message"].is_string(),
        "an Int beyond 32 bits is refused: {}",
        refused.0
    );
    let none = server
        .gql(
            Some(&f.staff),
            "query($r: ID!) { orders(restaurantId: $r) { edges { node { id } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(none.at("orders.edges"), &json!([]), "nothing was written");
}

async fn idempotency_key_returns_the_first_order(server: &'static TestServer) {
    let f = server.fixture().await;
    let input = f.order_input("same-key", &[(0, 1), (1, 2)]);
    let first = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    let again = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    assert_eq!(first.ok().at("placeOrder"), again.ok().at("placeOrder"));
    let different = f.order_input("same-key", &[(0, 2)]);
    let conflict = server
        .gql(Some(&f.customer), PLACE, json!({"i": different}))
        .await;
    conflict.expect_code("CONFLICT");
    let next = server
        .gql(
            Some(&f.customer),
            PLACE,
            json!({"i": f.order_input("other-key", &[(0, 1)])}),
        )
        .await;
    assert_eq!(
        next.int("placeOrder.number"),
        2,
        "the retry consumed no ticket number"
    );
}

/// Keys that differ only in case, by a trailing space or by a long tail are different keys
/// (MySQL's usual collations would take the first two for equal, and a key may be longer than
/// an index holds).
async fn idempotency_keys_are_compared_exactly(server: &'static TestServer) {
    let f = server.fixture().await;
    let long = "🍜".repeat(128);
    let mut longer_by_one = "🍜".repeat(127);
    longer_by_one.push('🥟');
    let keys = ["Key", "key", "key ", long.as_str(), longer_by_one.as_str()];
    let mut ids = std::collections::BTreeSet::new();
    for key in keys {
        let input = f.order_input(key, &[(0, 1)]);
        let placed = server
            .gql(Some(&f.customer), PLACE, json!({"i": input}))
            .await;
        ids.insert(placed.ok().str("placeOrder.id"));
    }
    assert_eq!(ids.len(), keys.len(), "one order per key");
    for key in keys {
        let input = f.order_input(key, &[(0, 1)]);
        let again = server
            .gql(Some(&f.customer), PLACE, json!({"i": input}))
            .await;
        assert!(
            ids.contains(&again.ok().str("placeOrder.id")),
            "{key:?} replays"
        );
    }
}

async fn concurrent_retries_order_once(server: &'static TestServer) {
    let f = server.fixture().await;
    let input = f.order_input("racing-key", &[(1, 4)]);
    let attempts = (0..16).map(|_| server.gql(Some(&f.customer), PLACE, json!({"i": input})));
    let results = join_all(attempts).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| r.ok().str("placeOrder.id"))
        .collect();
    assert_eq!(ids.len(), 1, "every retry got the same order");
    let orders = server
        .gql(
            Some(&f.staff),
            "query($r: ID!) { orders(restaurantId: $r) { edges { node { id } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(orders.at("orders.edges").as_array().map(Vec::len), Some(1));
}

async fn concurrent_advances_have_one_winner(server: &'static TestServer) {
    let f = server.fixture().await;
    let order = f.place(server, "contended").await;
    let attempts = (0..12).map(|_| {
        server.gql(
            Some(&f.staff),
            ADVANCE,
            json!({"o": order, "to": "ACCEPTED", "v": 1}),
        )
    });
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|r| r.code().is_none()).count();
    let conflicts = results
        .iter()
        .filter(|r| r.code() == Some("CONFLICT"))
        .count();
    assert_eq!((winners, conflicts), (1, 11), "{results:?}");
}

async fn orders_page_newest_first_with_filters(server: &'static TestServer) {
    let f = server.fixture().await;
    let mut placed = Vec::new();
    for i in 0..5 {
        placed.push(f.place(server, &format!("page{i}")).await);
    }
    f.advance(server, &placed[1], "ACCEPTED").await;
    const PAGE: &str = "query($r: ID!, $s: [OrderStatus!], $first: Int, $after: String) { \
        orders(restaurantId: $r, statuses: $s, first: $first, after: $after) { \
        edges { cursor node { id status } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let page = server
            .gql(
                Some(&f.staff),
                PAGE,
                json!({"r": f.restaurant, "first": 2, "after": after}),
            )
            .await;
        page.ok();
        for edge in page.at("orders.edges").as_array().into_iter().flatten() {
            seen.push(edge["node"]["id"].as_str().unwrap_or_default().to_owned());
        }
        if page.at("orders.pageInfo.hasNextPage") != &json!(true) {
            break;
        }
        after = page.at("orders.pageInfo.endCursor").clone();
    }
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let accepted = server
        .gql(
            Some(&f.staff),
            PAGE,
            json!({"r": f.restaurant, "s": ["ACCEPTED"]}),
        )
        .await;
    assert_eq!(
        accepted.at("orders.edges"),
        &json!([{"cursor": accepted.at("orders.edges.0.cursor"), "node": {"id": placed[1], "status": "ACCEPTED"}}])
    );
    for first in [0, 101] {
        let bad = server
            .gql(
                Some(&f.staff),
                PAGE,
                json!({"r": f.restaurant, "first": first}),
            )
            .await;
        bad.expect_code("BAD_USER_INPUT");
    }
    let garbage = server
        .gql(
            Some(&f.staff),
            PAGE,
            json!({"r": f.restaurant, "after": "not-a-cursor"}),
        )
        .await;
    garbage.expect_code("BAD_USER_INPUT");
}

async fn restaurant_menu_and_tables(server: &'static TestServer) {
    let f = server.fixture().await;
    const READ: &str = "query($r: ID!) { restaurant(id: $r) { id name currency menu { id name price { amount currency } available } tables { id name restaurantId } } }";
    let staff = server
        .gql(Some(&f.staff), READ, json!({"r": f.restaurant}))
        .await;
    staff.ok();
    assert_eq!(staff.str("restaurant.name"), "Test Kitchen");
    assert_eq!(
        staff.at("restaurant.menu.0"),
        &json!({"id": f.menu[0], "name": "Ramen", "price": {"amount": 900, "currency": "JPY"}, "available": true})
    );
    assert_eq!(
        staff.at("restaurant.tables.1"),
        &json!({"id": f.tables[1], "name": "T2", "restaurantId": f.restaurant})
    );
    let customer = server
        .gql(
            Some(&f.customer),
            "query($r: ID!) { restaurant(id: $r) { menu { name } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    assert_eq!(
        customer.ok().at("restaurant.menu").as_array().map(Vec::len),
        Some(3)
    );
    let customer_tables = server
        .gql(Some(&f.customer), READ, json!({"r": f.restaurant}))
        .await;
    customer_tables.expect_code("FORBIDDEN");
    let missing = server
        .gql(
            Some(&f.admin),
            "query { restaurant(id: \"00000000-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(missing.ok().at("restaurant"), &json!(null));
}

async fn staff_calls(server: &'static TestServer) {
    let f = server.fixture().await;
    const CALL: &str = "mutation($t: ID!, $m: String) { callStaff(tableId: $t, message: $m) { id tableId restaurantId message at } }";
    let call = server
        .gql(
            Some(&f.customer),
            CALL,
            json!({"t": f.tables[0], "m": "water, please"}),
        )
        .await;
    call.ok();
    assert_eq!(call.str("callStaff.message"), "water, please");
    assert_eq!(call.str("callStaff.restaurantId"), f.restaurant);
    let other = server
        .gql(Some(&f.customer), CALL, json!({"t": f.tables[1]}))
        .await;
    other.expect_code("FORBIDDEN");
    server
        .gql(Some(&f.staff), CALL, json!({"t": f.tables[1]}))
        .await
        .ok();
}

async fn events_are_numbered_without_gaps(server: &'static TestServer) {
    let f = server.fixture().await;
    let order = f.place(server, "ev1").await;
    f.advance(server, &order, "ACCEPTED").await;
    server
        .gql(Some(&f.staff), "mutation($m: ID!) { setMenuItemAvailability(menuItemId: $m, available: false) { id } }", json!({"m": f.menu[1]}))
        .await
        .ok();
    server
        .gql(
            Some(&f.customer),
            "mutation($t: ID!) { callStaff(tableId: $t) { id } }",
            json!({"t": f.tables[0]}),
        )
        .await
        .ok();
    // Refused commands write no event.
    server
        .gql(Some(&f.staff), ADVANCE, json!({"o": order, "to": "SERVED"}))
        .await
        .expect_code("INVALID_TRANSITION");
    f.place(server, "ev1").await; // an idempotent retry

    let store =
        orderhub::store::connect(&server.database_url, None, ShutdownSignal::new().shutdown())
            .await
            .expect("store");
    let restaurant = orderhub_actors::domain::RestaurantId::parse(&f.restaurant).expect("id");
    let events = store.events(&restaurant, 0, 100).await.expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        kinds,
        [
            // The fixture's three menu items.
            "MenuItemChanged",
            "MenuItemChanged",
            "MenuItemChanged",
            "OrderPlaced",
            "OrderStatusChanged",
            "MenuItemAvailabilityChanged",
            "StaffCalled"
        ]
    );
    assert_eq!(
        store
            .events(&restaurant, 5, 100)
            .await
            .expect("events")
            .first()
            .map(|e| e.seq),
        Some(6)
    );
}

/// Text a person cannot tell apart counts, compares and is stored the same: NFC, counted in
/// grapheme clusters; blank means nothing shows.
async fn text_counts_and_compares_as_people_read_it(server: &'static TestServer) {
    let composed = "が".repeat(200);
    // The same 200 characters as 400 code points: か followed by a combining mark.
    let decomposed = "か\u{3099}".repeat(200);
    let f = server.fixture().await;
    let mut input = f.order_input("nfd-note", &[(0, 1)]);
    input["items"][0]["note"] = json!(decomposed);
    let placed = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    assert_eq!(
        placed.ok().str("placeOrder.items.0.note"),
        composed,
        "stored composed"
    );

    // The same cart with the other form is a retry, not a different order.
    input["items"][0]["note"] = json!(composed);
    let again = server
        .gql(Some(&f.customer), PLACE, json!({"i": input}))
        .await;
    assert_eq!(again.ok().at("placeOrder"), placed.at("placeOrder"));

    let mut longer = f.order_input("nfd-long", &[(0, 1)]);
    longer["items"][0]["note"] = json!(format!("{decomposed}か\u{3099}"));
    server
        .gql(Some(&f.customer), PLACE, json!({"i": longer}))
        .await
        .expect_code("BAD_USER_INPUT");

    const CREATE: &str =
        "mutation($r: ID!, $n: String!) { createTable(restaurantId: $r, name: $n) { name } }";
    for blank in ["\u{200B}", "\u{3000}\u{FEFF}", " \u{2060} "] {
        server
            .gql(
                Some(&f.admin),
                CREATE,
                json!({"r": f.restaurant, "n": blank}),
            )
            .await
            .expect_code("BAD_USER_INPUT");
    }
    let table = server
        .gql(
            Some(&f.admin),
            CREATE,
            json!({"r": f.restaurant, "n": "\u{200B}Terrasse\u{301} 1 "}),
        )
        .await;
    assert_eq!(table.ok().str("createTable.name"), "Terrass\u{e9} 1");
}
