//! Menus with options, allergens and translations, tax per rate, and the manager's commands,
//! on every backend.

use async_graphql::futures_util::future::join_all;
use orderhub_actors::domain::Role;
use orderhub_actors::shutdown::ShutdownSignal;
use serde_json::{json, Value};

use crate::support::{on_every_backend, Gql, TestServer};

on_every_backend!(
    a_takeout_ramen_with_options_is_taxed_per_rate,
    menu_changes_are_versioned_events_and_orders_keep_their_copy,
    bad_menu_and_tax_input_is_refused,
);

const CREATE_ITEM: &str = "mutation($r: ID!, $i: MenuItemInput!) { \
    createMenuItem(restaurantId: $r, input: $i) { id version \
    optionGroups { id options { id name } } } }";

const ORDER: &str = "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { \
    id serviceMode total { amount } grandTotal { amount currency } \
    taxes { basisPoints base { amount } tax { amount } } \
    items { id name quantity taxBasisPoints unitPrice { amount } subtotal { amount } \
    options { optionId groupName name priceDelta { amount } } } } }";

const UPDATE: &str = "mutation($m: ID!, $i: MenuItemUpdateInput!, $v: Int) { \
    updateMenuItem(menuItemId: $m, input: $i, expectedVersion: $v) { id name version \
    price { amount } } }";

/// A restaurant (JPY: Japan's rules, prices with tax, rounded down) with a table, a ramen with
/// noodle firmness and up to three toppings, and a beer; its manager and a customer.
struct Ramen {
    restaurant: String,
    table: String,
    manager: String,
    staff: String,
    customer: String,
    ramen: String,
    beer: String,
    /// Soft, Firm.
    firmness: Vec<String>,
    /// Egg 150, Chashu 250, Nori 100.
    toppings: Vec<String>,
}

fn option_ids(item: &Gql, group: usize) -> Vec<String> {
    item.at(&format!("createMenuItem.optionGroups.{group}.options"))
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn ramen_bar(server: &TestServer) -> Ramen {
    let admin = server.admin();
    let created = server
        .gql(
            Some(&admin),
            "mutation { createRestaurant(input: {name: \"Ramen Bar\"}) { id pricesIncludeTax \
             taxRounding taxRules { category serviceMode basisPoints } } }",
            json!({}),
        )
        .await;
    let restaurant = created.str("createRestaurant.id");
    assert_eq!(
        created.at("createRestaurant.pricesIncludeTax"),
        &json!(true)
    );
    assert_eq!(created.str("createRestaurant.taxRounding"), "DOWN");
    let rules = created.at("createRestaurant.taxRules");
    assert!(
        rules.as_array().is_some_and(|r| r
            .contains(&json!({"category": "FOOD", "serviceMode": "TAKEOUT", "basisPoints": 800}))),
        "Japan's rules for JPY: {rules}"
    );
    let manager = server.token(Role::Manager, Some(&restaurant), None);
    let table = server
        .gql(
            Some(&manager),
            "mutation($r: ID!) { createTable(restaurantId: $r, name: \"T1\") { id } }",
            json!({"r": restaurant}),
        )
        .await
        .str("createTable.id");
    let ramen = server
        .gql(
            Some(&manager),
            CREATE_ITEM,
            json!({"r": restaurant, "i": {
                "name": "醤油ラーメン", "price": 950, "allergens": ["WHEAT", "EGG", "SOY"],
                "description": "鶏ガラ醤油",
                "translations": [
                    {"locale": "en", "name": "Shoyu ramen", "description": "Chicken and soy"},
                    {"locale": "zh-Hans", "name": "酱油拉面"}
                ],
                "optionGroups": [
                    {"name": "麺のかたさ", "minSelected": 1, "maxSelected": 1,
                     "translations": [{"locale": "en", "name": "Noodles"}],
                     "options": [{"name": "やわらかめ", "priceDelta": 0},
                                 {"name": "かため", "priceDelta": 0,
                                  "translations": [{"locale": "en", "name": "Firm"}]}]},
                    {"name": "トッピング", "minSelected": 0, "maxSelected": 3,
                     "options": [{"name": "味玉", "priceDelta": 150},
                                 {"name": "チャーシュー", "priceDelta": 250},
                                 {"name": "のり", "priceDelta": 100}]}
                ]
            }}),
        )
        .await;
    let beer = server
        .gql(
            Some(&manager),
            CREATE_ITEM,
            json!({"r": restaurant, "i": {"name": "Beer", "price": 600, "taxCategory": "ALCOHOL",
                   "allergens": ["WHEAT", "GLUTEN"]}}),
        )
        .await
        .str("createMenuItem.id");
    Ramen {
        staff: server.token(Role::Staff, Some(&restaurant), None),
        customer: server.token(Role::Customer, Some(&restaurant), Some(&table)),
        firmness: option_ids(&ramen, 0),
        toppings: option_ids(&ramen, 1),
        ramen: ramen.str("createMenuItem.id"),
        restaurant,
        table,
        manager,
        beer,
    }
}

impl Ramen {
    fn order(&self, key: &str, mode: &str, ramen_options: &[&String]) -> Value {
        json!({
            "restaurantId": self.restaurant, "tableId": self.table, "idempotencyKey": key,
            "serviceMode": mode,
            "items": [
                {"menuItemId": self.ramen, "quantity": 2, "optionIds": ramen_options},
                {"menuItemId": self.beer, "quantity": 1}
            ]
        })
    }
}

async fn a_takeout_ramen_with_options_is_taxed_per_rate(server: &'static TestServer) {
    let r = ramen_bar(server).await;
    let menu = server
        .gql(
            Some(&r.customer),
            "query($r: ID!) { restaurant(id: $r) { menu { name(locale: \"en-GB\") \
             description(locale: \"en\") allergens taxCategory prepSeconds version \
             optionGroups { name(locale: \"en\") minSelected maxSelected \
             options { name(locale: \"en\") priceDelta { amount } available } } } } }",
            json!({"r": r.restaurant}),
        )
        .await;
    menu.ok();
    assert_eq!(
        menu.str("restaurant.menu.0.name"),
        "Shoyu ramen",
        "en for en-GB"
    );
    assert_eq!(menu.str("restaurant.menu.0.description"), "Chicken and soy");
    assert_eq!(
        menu.at("restaurant.menu.0.allergens"),
        &json!(["EGG", "WHEAT", "SOY"]),
        "each once, in the contract's order"
    );
    assert_eq!(menu.str("restaurant.menu.0.optionGroups.0.name"), "Noodles");
    assert_eq!(
        menu.str("restaurant.menu.0.optionGroups.0.options.0.name"),
        "やわらかめ",
        "no English for it: its own name"
    );
    assert_eq!(
        menu.str("restaurant.menu.0.optionGroups.0.options.1.name"),
        "Firm"
    );
    assert_eq!(menu.int("restaurant.menu.0.prepSeconds"), 300);
    assert_eq!(menu.str("restaurant.menu.1.taxCategory"), "ALCOHOL");

    // Firm, egg and chashu, twice, to take away; a beer.
    let chosen = [&r.toppings[1], &r.firmness[1], &r.toppings[0]];
    let placed = server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("takeout", "TAKEOUT", &chosen)}),
        )
        .await;
    placed.ok();
    let order = placed.at("placeOrder");
    assert_eq!(order["serviceMode"], json!("TAKEOUT"));
    let ramen = &order["items"][0];
    assert_eq!(ramen["unitPrice"]["amount"], json!(950 + 150 + 250));
    assert_eq!(ramen["subtotal"]["amount"], json!(2 * 1350));
    let options: Vec<&str> = ramen["options"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        options,
        ["かため", "味玉", "チャーシュー"],
        "in the menu's order"
    );
    assert_eq!(ramen["options"][1]["groupName"], json!("トッピング"));
    assert_eq!(ramen["taxBasisPoints"], json!(800), "food to take away");
    assert_eq!(order["items"][1]["taxBasisPoints"], json!(1000), "alcohol");
    // By hand: 8 % in ¥2,700 is 2,700 × 8/108 = 200; 10 % in ¥600 is 54.54…, down to 54.
    assert_eq!(
        order["taxes"],
        json!([
            {"basisPoints": 800, "base": {"amount": 2700}, "tax": {"amount": 200}},
            {"basisPoints": 1000, "base": {"amount": 600}, "tax": {"amount": 54}}
        ])
    );
    assert_eq!(order["total"]["amount"], json!(3300));
    assert_eq!(
        order["grandTotal"],
        json!({"amount": 3300, "currency": "JPY"}),
        "prices include tax"
    );
    let line = order["items"][0]["id"].as_str().unwrap_or_default();
    let order_id = order["id"].as_str().unwrap_or_default();
    assert!(line.starts_with(order_id), "{line} names its order");

    // The options are a set: a retry in another order is the same order.
    let shuffled = [&r.toppings[0], &r.toppings[1], &r.firmness[1]];
    let retried = server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("takeout", "TAKEOUT", &shuffled)}),
        )
        .await;
    assert_eq!(retried.str("placeOrder.id"), order_id);
    let other = [&r.firmness[1]];
    server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("takeout", "TAKEOUT", &other)}),
        )
        .await
        .expect_code("CONFLICT");

    // The kitchen reads the options with the order.
    let seen = server
        .gql(
            Some(&r.staff),
            "query($o: ID!) { order(id: $o) { items { options { name } } } }",
            json!({"o": order_id}),
        )
        .await;
    assert_eq!(seen.str("order.items.0.options.0.name"), "かため");

    // Prices without tax, rounded half up: the tax goes on top.
    server
        .gql(
            Some(&r.manager),
            "mutation($r: ID!) { setTaxSettings(restaurantId: $r, input: \
             {pricesIncludeTax: false, taxRounding: HALF_UP}) { pricesIncludeTax taxRounding } }",
            json!({"r": r.restaurant}),
        )
        .await
        .ok();
    let eat_in = server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("eat-in", "EAT_IN", &[&r.firmness[0]])}),
        )
        .await;
    // 10 % on ¥1,900 + ¥600: 190 + 60.
    assert_eq!(
        eat_in.at("placeOrder.taxes"),
        &json!([{"basisPoints": 1000, "base": {"amount": 2500}, "tax": {"amount": 250}}])
    );
    assert_eq!(eat_in.int("placeOrder.grandTotal.amount"), 2750);
    // The earlier order keeps the taxes it was placed with.
    let again = server
        .gql(
            Some(&r.staff),
            "query($o: ID!) { order(id: $o) { grandTotal { amount } taxes { tax { amount } } } }",
            json!({"o": order_id}),
        )
        .await;
    assert_eq!(again.int("order.grandTotal.amount"), 3300);
    assert_eq!(again.int("order.taxes.1.tax.amount"), 54);
}

async fn menu_changes_are_versioned_events_and_orders_keep_their_copy(server: &'static TestServer) {
    let r = ramen_bar(server).await;
    let placed = server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("before", "EAT_IN", &[&r.firmness[0]])}),
        )
        .await;
    let order_id = placed.str("placeOrder.id");

    // Two managers with the same version: one wins.
    let racing = (0..2).map(|i| {
        server.gql(
            Some(&r.manager),
            UPDATE,
            json!({"m": r.ramen, "i": {"name": format!("Ramen {i}"), "price": 1000}, "v": 1}),
        )
    });
    let results = join_all(racing).await;
    let winners: Vec<&Gql> = results.iter().filter(|g| g.code().is_none()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().any(|g| g.code() == Some("CONFLICT")));
    assert_eq!(winners[0].int("updateMenuItem.version"), 2);

    // The beer first: the menu's order moves.
    server
        .gql(
            Some(&r.manager),
            UPDATE,
            json!({"m": r.beer, "i": {"position": 0}}),
        )
        .await
        .ok();
    // Firm sold out: staff may say so; a customer may not.
    const OPTION: &str = "mutation($o: ID!, $a: Boolean!) { \
        setOptionAvailability(optionId: $o, available: $a) { version \
        optionGroups { options { available } } } }";
    server
        .gql(
            Some(&r.customer),
            OPTION,
            json!({"o": r.firmness[1], "a": false}),
        )
        .await
        .expect_code("FORBIDDEN");
    let sold_out = server
        .gql(
            Some(&r.staff),
            OPTION,
            json!({"o": r.firmness[1], "a": false}),
        )
        .await;
    assert_eq!(sold_out.int("setOptionAvailability.version"), 3);
    server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("firm", "EAT_IN", &[&r.firmness[1]])}),
        )
        .await
        .expect_code("SOLD_OUT");

    // Archived: off the menu, not orderable, and the earlier order keeps its copy.
    let archived = server
        .gql(
            Some(&r.manager),
            "mutation($m: ID!) { archiveMenuItem(menuItemId: $m) { version } }",
            json!({"m": r.ramen}),
        )
        .await;
    assert_eq!(archived.int("archiveMenuItem.version"), 4);
    let menu = server
        .gql(
            Some(&r.customer),
            "query($r: ID!) { restaurant(id: $r) { menu { id } } }",
            json!({"r": r.restaurant}),
        )
        .await;
    assert_eq!(menu.at("restaurant.menu"), &json!([{"id": r.beer}]));
    server
        .gql(
            Some(&r.customer),
            ORDER,
            json!({"i": r.order("after", "EAT_IN", &[&r.firmness[0]])}),
        )
        .await
        .expect_code("BAD_USER_INPUT");
    let kept = server
        .gql(
            Some(&r.staff),
            "query($o: ID!) { order(id: $o) { items { name unitPrice { amount } } } }",
            json!({"o": order_id}),
        )
        .await;
    assert_eq!(kept.str("order.items.0.name"), "醤油ラーメン");
    assert_eq!(kept.int("order.items.0.unitPrice.amount"), 950);

    // Every change is an event in the restaurant's gap-free log.
    let store =
        orderhub::store::connect(&server.database_url, None, ShutdownSignal::new().shutdown())
            .await
            .expect("store");
    let restaurant = orderhub_actors::domain::RestaurantId::parse(&r.restaurant).expect("id");
    let kinds: Vec<&str> = store
        .events(&restaurant, 0, 100)
        .await
        .expect("events")
        .iter()
        .map(|e| e.kind.name())
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        kinds,
        [
            "MenuItemChanged", // the ramen created
            "MenuItemChanged", // the beer created
            "OrderPlaced",
            "MenuItemChanged", // renamed
            "MenuItemChanged", // the beer moved
            "MenuItemChanged", // firm sold out
            "MenuItemChanged", // archived
        ]
    );
}

async fn bad_menu_and_tax_input_is_refused(server: &'static TestServer) {
    let r = ramen_bar(server).await;
    let item = |extra: Value| {
        let mut input = json!({"name": "Soba", "price": 800});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        input
    };
    let group = |min: i64, max: i64, deltas: &[i64]| {
        json!([{"name": "G", "minSelected": min, "maxSelected": max,
                "options": deltas.iter().enumerate()
                    .map(|(i, d)| json!({"name": format!("o{i}"), "priceDelta": d}))
                    .collect::<Vec<_>>()}])
    };
    let translations = |count: usize| -> Vec<Value> {
        (0..count)
            .map(|i| json!({"locale": format!("x{}", i % 10), "name": "n"}))
            .collect()
    };
    for (what, input) in [
        (
            "negative delta",
            item(json!({"optionGroups": group(0, 1, &[-1])})),
        ),
        (
            "min above the options",
            item(json!({"optionGroups": group(2, 2, &[0])})),
        ),
        (
            "max below min",
            item(json!({"optionGroups": group(1, 0, &[0, 0])})),
        ),
        (
            "huge locale",
            item(json!({"translations": [{"locale": "x".repeat(10_000), "name": "n"}]})),
        ),
        (
            "21 translations",
            item(json!({"translations": translations(21)})),
        ),
        ("negative price", item(json!({"price": -1}))),
        (
            "prep time of a year",
            item(json!({"prepSeconds": 31_536_000})),
        ),
    ] {
        let refused = server
            .gql(
                Some(&r.manager),
                CREATE_ITEM,
                json!({"r": r.restaurant, "i": input}),
            )
            .await;
        assert_eq!(
            refused.code(),
            Some("BAD_USER_INPUT"),
            "{what}: {refused:?}"
        );
    }
    // 10,000 translations do not even fit in a request.
    let (status, refused) = server
        .try_gql(
            Some(&r.manager),
            CREATE_ITEM,
            json!({"r": r.restaurant, "i": item(json!({"translations": translations(10_000)}))}),
        )
        .await
        .expect("an answer");
    assert_eq!(status.as_u16(), 413, "{refused:?}");
    assert_eq!(refused.code(), Some("BAD_REQUEST"), "{refused:?}");
    let menu = server
        .gql(
            Some(&r.manager),
            "query($r: ID!) { restaurant(id: $r) { menu { id } } }",
            json!({"r": r.restaurant}),
        )
        .await;
    assert_eq!(
        menu.at("restaurant.menu").as_array().map(Vec::len),
        Some(2),
        "nothing was created"
    );
    // Staff may not shape the menu.
    server
        .gql(
            Some(&r.staff),
            CREATE_ITEM,
            json!({"r": r.restaurant, "i": item(json!({}))}),
        )
        .await
        .expect_code("FORBIDDEN");

    const TAX: &str = "mutation($r: ID!, $i: TaxSettingsInput!) { \
        setTaxSettings(restaurantId: $r, input: $i) { taxRules { basisPoints } } }";
    for rules in [
        json!([{"category": "FOOD", "serviceMode": "EAT_IN", "basisPoints": 10_001}]),
        json!([{"category": "FOOD", "serviceMode": "EAT_IN", "basisPoints": -1}]),
        json!([{"category": "FOOD", "serviceMode": "EAT_IN", "basisPoints": 800},
               {"category": "FOOD", "serviceMode": "EAT_IN", "basisPoints": 1000}]),
    ] {
        server
            .gql(
                Some(&r.manager),
                TAX,
                json!({"r": r.restaurant, "i": {"taxRules": rules}}),
            )
            .await
            .expect_code("BAD_USER_INPUT");
    }
    server
        .gql(
            Some(&r.staff),
            TAX,
            json!({"r": r.restaurant, "i": {"taxRounding": "UP"}}),
        )
        .await
        .expect_code("FORBIDDEN");

    // Choices: too few, too many, twice, another item's, not an id.
    let foreign = ramen_bar(server).await.firmness[0].clone();
    let (soft, firm) = (&r.firmness[0], &r.firmness[1]);
    for (what, chosen) in [
        ("no firmness", vec![&r.toppings[0]]),
        ("two firmnesses", vec![soft, firm]),
        ("twice", vec![soft, soft]),
        ("another item's", vec![soft, &foreign]),
    ] {
        let refused = server
            .gql(
                Some(&r.customer),
                ORDER,
                json!({"i": r.order(what, "EAT_IN", &chosen)}),
            )
            .await;
        assert_eq!(
            refused.code(),
            Some("BAD_USER_INPUT"),
            "{what}: {refused:?}"
        );
    }
    let mut not_an_id = r.order("not an id", "EAT_IN", &[soft]);
    not_an_id["items"][0]["optionIds"] = json!(["' OR 1=1 --"]);
    server
        .gql(Some(&r.customer), ORDER, json!({"i": not_an_id}))
        .await
        .expect_code("BAD_USER_INPUT");
}
