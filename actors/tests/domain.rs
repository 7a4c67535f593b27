//! The domain's rules and its types' public forms (as stored, sent and shown), through the
//! crate's public API: access, events, ids, menus, money, orders and time.

mod common;

use common::staff_of;

use orderhub_actors::domain::{
    advance, build_order, cancel, fingerprint, next_ticket, ticket_day_after_change,
    validate_menu_item, validate_request, validate_restaurant, validate_table_name, BusinessDay,
    BusinessDayStart, CancelRule, Currency, DomainError, Event, EventKind, LineRequest, MenuItem,
    MenuItemId, Money, NewMenuItem, NewRestaurant, Order, OrderItem, OrderStatus,
    PlaceOrderRequest, Principal, Restaurant, RestaurantId, RestaurantSettings, Role,
    SettingsChange, StaffCall, StaffCallId, Table, TableId, TimeZone, Timestamp, DEFAULT_CURRENCY,
};
use serde_json::json;

const HOUR: i64 = 3_600_000;

fn restaurant() -> Restaurant {
    validate_restaurant(NewRestaurant {
        name: "Bistro".into(),
        ..NewRestaurant::default()
    })
    .expect("a valid restaurant")
}

fn table(restaurant: &Restaurant) -> Table {
    Table {
        id: TableId::generate(),
        restaurant_id: restaurant.id.clone(),
        name: "T1".into(),
    }
}

fn item(restaurant: &Restaurant, price: i64) -> MenuItem {
    validate_menu_item(
        restaurant,
        NewMenuItem {
            name: "Ramen".into(),
            price,
            available: None,
            ..Default::default()
        },
        0,
    )
    .expect("a valid menu item")
}

fn request(table: &Table, item: &MenuItem, quantity: i64) -> PlaceOrderRequest {
    PlaceOrderRequest {
        restaurant_id: table.restaurant_id.clone(),
        table_id: table.id.clone(),
        items: vec![LineRequest {
            menu_item_id: item.id.clone(),
            quantity,
            note: None,
            option_ids: Vec::new(),
        }],
        note: None,
        idempotency_key: "key-1".into(),
        service_mode: Default::default(),
    }
}

/// An order of one line, placed at `table`.
fn placed(restaurant: &Restaurant, table: &Table) -> Order {
    let ramen = item(restaurant, 900);
    build_order(
        &request(table, &ramen, 2),
        restaurant,
        std::slice::from_ref(&ramen),
        1,
        Timestamp(1_000),
    )
    .expect("a valid order")
}

fn customer(table: &Table) -> Principal {
    Principal::new(
        "guest".into(),
        Role::Customer,
        Some(table.restaurant_id.clone()),
        Some(table.id.clone()),
    )
    .expect("a customer principal")
}

fn is_bad_input<T>(result: &Result<T, DomainError>) -> bool {
    matches!(result, Err(DomainError::BadInput(_)))
}

// Access.

#[test]
fn roles_read_the_same_in_tokens_and_in_text() {
    for (role, text) in [
        (Role::Customer, "customer"),
        (Role::Staff, "staff"),
        (Role::Manager, "manager"),
        (Role::Admin, "admin"),
    ] {
        assert_eq!(role.as_str(), text);
        assert_eq!(serde_json::to_value(role).expect("serialize"), json!(text));
        assert_eq!(
            serde_json::from_value::<Role>(json!(text)).expect("deserialize"),
            role
        );
    }
}

#[test]
fn a_principal_carries_its_scope_and_its_expiry() {
    let r = restaurant();
    let t = table(&r);
    let guest = customer(&t);
    assert_eq!(guest.restaurant_id(), Some(&r.id));
    assert_eq!(guest.table_id(), Some(&t.id));
    assert_eq!(guest.expires_at(), None);
    let expiring = guest.clone().expiring_at(Timestamp(42));
    assert_eq!(expiring.expires_at(), Some(Timestamp(42)));
    assert_eq!(
        (expiring.restaurant_id(), expiring.table_id()),
        (Some(&r.id), Some(&t.id))
    );

    let kitchen = Principal::new("k".into(), Role::Staff, Some(r.id.clone()), Some(t.id))
        .expect("a staff principal");
    assert_eq!(kitchen.table_id(), None, "staff are not bound to a table");

    let operator = Principal::admin("operator");
    assert_eq!(operator.subject, "operator");
    assert_eq!(operator.role, Role::Admin);
    assert_eq!(
        (operator.restaurant_id(), operator.table_id()),
        (None, None)
    );
    assert!(operator.may_administer().is_ok());
}

#[test]
fn a_refusal_to_operate_says_why() {
    let r = restaurant();
    let t = table(&r);
    assert_eq!(
        customer(&t).may_operate(&r.id),
        Err(DomainError::Forbidden("staff only".into()))
    );
    assert_eq!(
        staff_of(&RestaurantId::generate()).may_operate(&r.id),
        Err(DomainError::Forbidden(
            "this token is not for that restaurant".into()
        ))
    );
    assert_eq!(
        customer(&t).may_administer(),
        Err(DomainError::Forbidden("admin only".into()))
    );
}

#[test]
fn an_order_is_seen_at_its_table_by_its_restaurants_staff_and_by_admins_only() {
    let r = restaurant();
    let (t1, t2) = (table(&r), table(&r));
    let order = placed(&r, &t1);
    let other = restaurant();

    assert!(customer(&t1).may_see_order(&order));
    assert!(!customer(&t2).may_see_order(&order));
    assert!(staff_of(&r.id).may_see_order(&order));
    assert!(!staff_of(&other.id).may_see_order(&order));
    assert!(Principal::admin("operator").may_see_order(&order));
    // A table id of this restaurant in a token for another one sees nothing.
    let forged = Principal::new(
        "guest".into(),
        Role::Customer,
        Some(other.id.clone()),
        Some(t1.id.clone()),
    )
    .expect("a customer principal");
    assert!(!forged.may_see_order(&order));
    assert!(forged.may_act_for_table(&r.id, &t1.id).is_err());
}

// Events.

fn events(r: &Restaurant, t: &Table) -> Vec<EventKind> {
    let order = placed(r, t);
    let accepted = advance(&order, OrderStatus::Accepted, None, Timestamp(2_000)).expect("accept");
    let call = StaffCall::new(t, Some("water".into()), Timestamp(3_000)).expect("a staff call");
    vec![
        EventKind::OrderPlaced {
            order: order.clone(),
        },
        EventKind::OrderStatusChanged {
            order: accepted,
            from: OrderStatus::Placed,
        },
        EventKind::MenuItemAvailabilityChanged {
            menu_item: item(r, 100),
        },
        EventKind::StaffCalled { call },
    ]
}

#[test]
fn an_events_name_is_its_type_as_stored() {
    let r = restaurant();
    let t = table(&r);
    let names: Vec<&str> = events(&r, &t).iter().map(EventKind::name).collect();
    assert_eq!(
        names,
        [
            "OrderPlaced",
            "OrderStatusChanged",
            "MenuItemAvailabilityChanged",
            "StaffCalled"
        ]
    );
    for (seq, kind) in (1..).zip(events(&r, &t)) {
        let event = Event {
            restaurant_id: r.id.clone(),
            seq,
            at: Timestamp(5_000),
            kind,
        };
        let stored = serde_json::to_value(&event).expect("serialize");
        assert_eq!(stored["kind"]["type"], json!(event.kind.name()));
        assert_eq!(stored["seq"], json!(seq));
        let read: Event = serde_json::from_value(stored).expect("deserialize");
        assert_eq!(read, event);
    }
}

#[test]
fn only_order_events_tell_an_order() {
    let r = restaurant();
    let t = table(&r);
    let kinds = events(&r, &t);
    let orders: Vec<Option<OrderStatus>> = kinds
        .iter()
        .map(|kind| kind.order().map(|o| o.status))
        .collect();
    assert_eq!(
        orders,
        [
            Some(OrderStatus::Placed),
            Some(OrderStatus::Accepted),
            None,
            None
        ]
    );
}

// Ids.

#[test]
fn ids_show_and_serialize_as_their_bare_text() {
    let id = TableId::from_trusted("table-7_b".into());
    assert_eq!(id.as_str(), "table-7_b");
    assert_eq!(id.to_string(), "table-7_b");
    assert_eq!(
        serde_json::to_value(&id).expect("serialize"),
        json!("table-7_b")
    );
    assert_eq!(
        serde_json::from_value::<TableId>(json!("table-7_b")).expect("deserialize"),
        id
    );
    assert_eq!(TableId::parse("table-7_b"), Some(id));
    assert!(MenuItemId::parse(&"a".repeat(64)).is_some());
    assert_eq!(StaffCallId::parse("a b"), None);
    assert_eq!(RestaurantId::parse("café"), None);
    let generated = StaffCallId::generate();
    assert_ne!(generated, StaffCallId::generate());
    assert_eq!(StaffCallId::parse(&generated.to_string()), Some(generated));
}

// Menus.

#[test]
fn table_names_are_trimmed_and_bounded() {
    assert_eq!(
        validate_table_name("  Terrace 2 ").as_deref(),
        Ok("Terrace 2")
    );
    assert!(validate_table_name(&"x".repeat(50)).is_ok());
    for bad in ["", "   ", "\t\n", "T\u{0}1"] {
        assert!(is_bad_input(&validate_table_name(bad)), "{bad:?}");
    }
    assert!(is_bad_input(&validate_table_name(&"x".repeat(51))));
}

#[test]
fn restaurants_take_a_currency_and_bounded_names() {
    let usd = validate_restaurant(NewRestaurant {
        name: "Diner".into(),
        currency: Some("USD".into()),
        ..NewRestaurant::default()
    })
    .expect("a valid restaurant");
    assert_eq!(usd.currency.as_str(), "USD");
    assert_eq!(restaurant().currency.as_str(), DEFAULT_CURRENCY);
    let named = |length| {
        validate_restaurant(NewRestaurant {
            name: "x".repeat(length),
            ..NewRestaurant::default()
        })
    };
    assert!(named(100).is_ok());
    assert!(is_bad_input(&named(101)));
}

#[test]
fn menu_items_are_priced_in_the_restaurants_currency() {
    let r = validate_restaurant(NewRestaurant {
        name: "Diner".into(),
        currency: Some("EUR".into()),
        ..NewRestaurant::default()
    })
    .expect("a valid restaurant");
    let new = |name: &str, price, available| {
        validate_menu_item(
            &r,
            NewMenuItem {
                name: name.into(),
                price,
                available,
                ..Default::default()
            },
            0,
        )
    };
    let tea = new(" Tea ", Money::MAX_AMOUNT, Some(false)).expect("a valid item");
    assert_eq!(tea.name, "Tea");
    assert_eq!(tea.price, Money::new(Money::MAX_AMOUNT, r.currency.clone()));
    assert_eq!(tea.restaurant_id, r.id);
    assert!(!tea.available);
    assert!(is_bad_input(&new(" ", 100, None)));
}

#[test]
fn a_staff_call_belongs_to_its_tables_restaurant() {
    let r = restaurant();
    let t = table(&r);
    let call = StaffCall::new(&t, None, Timestamp(7)).expect("a staff call");
    assert_eq!(
        (
            &call.restaurant_id,
            &call.table_id,
            call.message.as_deref(),
            call.at
        ),
        (&r.id, &t.id, None, Timestamp(7))
    );
    let max = "x".repeat(StaffCall::MAX_MESSAGE_CHARS);
    assert!(StaffCall::new(&t, Some(max), Timestamp(7)).is_ok());
    assert!(StaffCall::new(&t, Some("line\nbreak\tand tab".into()), Timestamp(7)).is_ok());
}

// Money.

#[test]
fn currencies_show_and_serialize_as_their_code() {
    let yen = Currency::parse("JPY").expect("JPY");
    assert_eq!(yen.to_string(), "JPY");
    assert_eq!(Currency::from_trusted("JPY".into()), yen);
    let price = Money::new(900, yen);
    let stored = serde_json::to_value(&price).expect("serialize");
    assert_eq!(stored, json!({ "amount": 900, "currency": "JPY" }));
    assert_eq!(
        serde_json::from_value::<Money>(stored).expect("deserialize"),
        price
    );
}

#[test]
fn sums_keep_the_currency_and_stop_at_the_largest_amount() {
    let eur = Currency::parse("EUR").expect("EUR");
    let half = Money::new(Money::MAX_AMOUNT / 2, eur.clone());
    let both = half.plus(&half).expect("within bounds");
    assert_eq!(both, Money::new(Money::MAX_AMOUNT - 1, eur.clone()));
    assert_eq!(
        both.plus(&Money::new(1, eur.clone())),
        Ok(Money::new(Money::MAX_AMOUNT, eur.clone()))
    );
    assert_eq!(half.times(0), Ok(Money::new(0, eur.clone())));
    assert_eq!(
        Money::new(1, eur.clone()).times(Money::MAX_AMOUNT),
        Ok(Money::new(Money::MAX_AMOUNT, eur.clone()))
    );
    assert!(is_bad_input(
        &Money::new(1, eur).times(Money::MAX_AMOUNT + 1)
    ));
}

// Orders.

#[test]
fn statuses_show_and_serialize_as_in_the_api() {
    for status in OrderStatus::ALL {
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(
            serde_json::to_value(status).expect("serialize"),
            json!(status.as_str())
        );
    }
    let mut path = vec![OrderStatus::Placed];
    while let Some(next) = path.last().and_then(|s| s.next()) {
        path.push(next);
    }
    assert_eq!(
        path,
        [
            OrderStatus::Placed,
            OrderStatus::Accepted,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::Served
        ]
    );
    assert_eq!(OrderStatus::Cancelled.next(), None);
}

#[test]
fn a_lines_subtotal_is_its_unit_price_times_its_quantity() {
    let r = restaurant();
    let line = OrderItem {
        menu_item_id: MenuItemId::generate(),
        name: "Gyoza".into(),
        unit_price: Money::new(450, r.currency.clone()),
        quantity: 3,
        note: None,
        id: Default::default(),
        options: Vec::new(),
        tax_basis_points: Default::default(),
    };
    assert_eq!(line.subtotal(), Money::new(1350, r.currency.clone()));
    let order = placed(&r, &table(&r));
    let sum: i64 = order.items.iter().map(|i| i.subtotal().amount).sum();
    assert_eq!(order.total.amount, sum);
}

#[test]
fn notes_and_keys_are_bounded_text() {
    let r = restaurant();
    let t = table(&r);
    let ramen = item(&r, 900);
    let base = request(&t, &ramen, 1);
    let with = |change: &dyn Fn(&mut PlaceOrderRequest)| {
        let mut request = base.clone();
        change(&mut request);
        validate_request(request)
    };
    assert!(with(&|q| q.items[0].note = Some("x".repeat(200))).is_ok());
    assert!(is_bad_input(&with(
        &|q| q.items[0].note = Some("x".repeat(201))
    )));
    assert!(is_bad_input(&with(
        &|q| q.items[0].note = Some("\u{7}".into())
    )));
    assert!(with(&|q| q.note = Some("x".repeat(500))).is_ok());
    assert!(is_bad_input(&with(&|q| q.note = Some("x".repeat(501)))));
    assert!(with(&|q| q.idempotency_key = "k".repeat(128)).is_ok());
    assert!(is_bad_input(
        &with(&|q| q.idempotency_key = "k\u{0}".into())
    ));
    // Characters, not bytes.
    assert!(with(&|q| q.idempotency_key = "é".repeat(128)).is_ok());
}

#[test]
fn a_fingerprint_covers_the_table_the_lines_and_the_note() {
    let r = restaurant();
    let t = table(&r);
    let ramen = item(&r, 900);
    let base = request(&t, &ramen, 1);
    let mut other_table = base.clone();
    other_table.table_id = TableId::generate();
    let mut line_note = base.clone();
    line_note.items[0].note = Some("extra spicy".into());
    let mut note = base.clone();
    note.note = Some("birthday".into());
    for changed in [other_table, line_note, note] {
        assert_ne!(fingerprint(&changed), fingerprint(&base), "{changed:?}");
    }
}

#[test]
fn a_change_never_moves_updated_at_back() {
    let r = restaurant();
    let order = placed(&r, &table(&r));
    // Another node's clock may lag: the order keeps its later time.
    let accepted = advance(&order, OrderStatus::Accepted, Some(1), Timestamp(10)).expect("accept");
    assert_eq!(accepted.updated_at, order.updated_at);
    assert_eq!(accepted.placed_at, order.placed_at);
    let cancelled = cancel(
        &accepted,
        CancelRule::Staff,
        "out of stock",
        Timestamp(9_000),
    )
    .expect("cancel");
    assert_eq!(cancelled.updated_at, Timestamp(9_000));
    assert_eq!(
        (cancelled.items.clone(), cancelled.total.clone()),
        (order.items, order.total)
    );
}

#[test]
fn the_cancel_rule_follows_the_role() {
    let r = restaurant();
    let t = table(&r);
    assert_eq!(
        CancelRule::for_principal(&customer(&t)),
        CancelRule::Customer
    );
    assert_eq!(
        CancelRule::for_principal(&staff_of(&r.id)),
        CancelRule::Staff
    );
    assert_eq!(
        CancelRule::for_principal(&Principal::admin("operator")),
        CancelRule::Staff
    );
}

#[test]
fn a_cancel_reason_is_bounded_text() {
    let r = restaurant();
    let order = placed(&r, &table(&r));
    let with = |reason: &str| cancel(&order, CancelRule::Staff, reason, Timestamp(2_000));
    assert!(with(&"x".repeat(200)).is_ok());
    assert!(is_bad_input(&with(&"x".repeat(201))));
    assert!(is_bad_input(&with("oops\u{1b}")));
}

#[test]
fn a_refusal_reads_well() {
    assert_eq!(
        DomainError::InvalidTransition {
            from: OrderStatus::Ready,
            to: OrderStatus::Cancelled
        }
        .to_string(),
        "an order cannot move from READY to CANCELLED"
    );
    let id = MenuItemId::from_trusted("m1".into());
    assert_eq!(
        DomainError::SoldOut(id).to_string(),
        "menu item m1 is sold out"
    );
    assert_eq!(
        DomainError::NotFound("order").to_string(),
        "order not found"
    );
    let r = restaurant();
    let stale = advance(
        &placed(&r, &table(&r)),
        OrderStatus::Accepted,
        Some(3),
        Timestamp(0),
    );
    assert_eq!(
        stale,
        Err(DomainError::Conflict(
            "the order is at version 1, not 3".into()
        ))
    );
}

// Time.

#[test]
fn now_is_the_system_time_in_milliseconds() {
    let since_epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis()
    };
    let before = since_epoch();
    let now = Timestamp::now();
    let after = since_epoch();
    let millis = u128::try_from(now.millis()).expect("after the epoch");
    assert!(
        (before..=after).contains(&millis),
        "{before} <= {millis} <= {after}"
    );
    assert_eq!(Timestamp(123).millis(), 123);
}

#[test]
fn business_days_turn_at_four_local_west_of_utc_and_before_the_epoch() {
    let midnight_utc = 20_000 * 24 * HOUR;
    let four = BusinessDayStart::DEFAULT;
    // 2024-10-04: New York keeps EDT, UTC-4.
    let new_york = zone("America/New_York");
    // 07:59 UTC is 03:59 in New York: still the day before.
    let late = BusinessDay::of(
        Timestamp(midnight_utc + 7 * HOUR + 59 * 60_000),
        &new_york,
        four,
    );
    let early = BusinessDay::of(Timestamp(midnight_utc + 8 * HOUR), &new_york, four);
    assert_eq!(early.0, late.0 + 1);
    assert_eq!(early, BusinessDay(20_000));

    // Before 04:00 on the first day of the epoch is the day before it, not day 0.
    let utc = TimeZone::utc();
    assert_eq!(BusinessDay::of(Timestamp(0), &utc, four), BusinessDay(-1));
    assert_eq!(
        BusinessDay::of(Timestamp(4 * HOUR), &utc, four),
        BusinessDay(0)
    );
    assert_eq!(BusinessDay::of(Timestamp(-1), &utc, four), BusinessDay(-1));
    // Instants past the time-zone library's range read as its edge, without a panic.
    assert!(BusinessDay::of(Timestamp(i64::MAX), &new_york, four).0 > 0);
    assert!(BusinessDay::of(Timestamp(i64::MIN), &new_york, four).0 < 0);

    let today = BusinessDay::of(Timestamp(midnight_utc + 12 * HOUR), &utc, four);
    assert_eq!(next_ticket(today, 7, today), (today, 8));
    assert_eq!(next_ticket(BusinessDay(today.0 - 1), 7, today), (today, 1));
}

fn zone(name: &str) -> TimeZone {
    TimeZone::parse(name).expect("a zone of the bundled database")
}

/// Milliseconds since the epoch of a UTC date and time.
fn utc(date: &str) -> i64 {
    let at: jiff::Timestamp = date.parse().expect("an RFC 3339 instant");
    at.as_millisecond()
}

/// The business day numbered as its date.
fn day(date: &str) -> BusinessDay {
    let date: jiff::civil::Date = date.parse().expect("a date");
    let epoch = jiff::civil::date(1970, 1, 1);
    BusinessDay(i64::from(epoch.until(date).expect("in range").get_days()))
}

/// Places an order every `step` minutes from `from` to `to` (UTC) on `restaurant`'s clock, as
/// the restaurant actor numbers them; returns the instants at which #1 was given, with the
/// last number of the day before.
fn turns(restaurant: &Restaurant, from: &str, to: &str, step: i64) -> Vec<(i64, i64)> {
    let (mut ticket_day, mut last) = (BusinessDay(0), 0);
    let mut turns = Vec::new();
    let mut at = utc(from);
    while at <= utc(to) {
        let (day, number) = next_ticket(ticket_day, last, restaurant.business_day(Timestamp(at)));
        if number == 1 {
            turns.push((at, last));
        } else {
            assert_eq!(number, last + 1, "numbers run on at {at}");
        }
        (ticket_day, last) = (day, number);
        at += step * 60_000;
    }
    turns
}

fn restaurant_in(zone_name: &str, starts_at: &str) -> Restaurant {
    validate_restaurant(NewRestaurant {
        name: "Bistro".into(),
        currency: Some("EUR".into()),
        time_zone: Some(zone_name.into()),
        business_day_starts_at: Some(starts_at.into()),
        tax: Default::default(),
    })
    .expect("a valid restaurant")
}

#[test]
fn tokyo_turns_its_day_at_four_in_the_morning_there() {
    let tokyo = restaurant_in("Asia/Tokyo", "04:00");
    // 19:00 UTC is 04:00 JST the next morning.
    let before = tokyo.business_day(Timestamp(utc("2026-12-01T18:59:59.999Z")));
    let after = tokyo.business_day(Timestamp(utc("2026-12-01T19:00:00Z")));
    assert_eq!(before, day("2026-12-01"));
    assert_eq!(after, day("2026-12-02"));
    // Lunch at 13:00 JST (04:00 UTC, the old UTC turn) is the same day.
    assert_eq!(
        tokyo.business_day(Timestamp(utc("2026-12-02T04:00:00Z"))),
        day("2026-12-02")
    );
    // A yen restaurant is in Tokyo unless told otherwise.
    assert_eq!(restaurant().time_zone.name(), "Asia/Tokyo");
    assert_eq!(restaurant().day_starts_at, BusinessDayStart::DEFAULT);
}

#[test]
fn berlin_has_a_23_hour_day_in_march_and_a_25_hour_day_in_october() {
    let berlin = restaurant_in("Europe/Berlin", "04:00");
    // Clocks go forward on 2026-03-29 at 02:00 CET (01:00 UTC): 04:00 CET (03:00 UTC) on the
    // 28th, 04:00 CEST (02:00 UTC) on the 29th. One order a minute, numbered right through.
    let spring = turns(&berlin, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z", 1);
    let at: Vec<i64> = spring.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-03-27T12:00:00Z"), // the first order
            utc("2026-03-28T03:00:00Z"),
            utc("2026-03-29T02:00:00Z"),
            utc("2026-03-30T02:00:00Z"),
        ]
    );
    assert_eq!(at[2] - at[1], 23 * HOUR);
    assert_eq!(at[3] - at[2], 24 * HOUR);
    // Every minute of the short night counted on: 23 h of orders, #1 to #1380.
    assert_eq!(spring[2].1, 23 * 60);
    assert_eq!(
        berlin.business_day(Timestamp(utc("2026-03-29T01:30:00Z"))),
        day("2026-03-28")
    );

    // Clocks go back on 2026-10-25 at 03:00 CEST (01:00 UTC): 04:00 CEST (02:00 UTC) on the
    // 24th, 04:00 CET (03:00 UTC) on the 25th.
    let autumn = turns(&berlin, "2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z", 1);
    let at: Vec<i64> = autumn.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-10-23T12:00:00Z"),
            utc("2026-10-24T02:00:00Z"),
            utc("2026-10-25T03:00:00Z"),
            utc("2026-10-26T03:00:00Z"),
        ]
    );
    assert_eq!(at[2] - at[1], 25 * HOUR);
    assert_eq!(autumn[2].1, 25 * 60);
}

#[test]
fn new_york_has_a_23_hour_day_in_march_and_a_25_hour_day_in_november() {
    let new_york = restaurant_in("America/New_York", "04:00");
    // Forward on 2026-03-08 at 02:00 EST (07:00 UTC); back on 2026-11-01 at 02:00 EDT
    // (06:00 UTC). 04:00 EST is 09:00 UTC, 04:00 EDT 08:00 UTC.
    let spring = turns(&new_york, "2026-03-06T12:00:00Z", "2026-03-09T12:00:00Z", 1);
    let at: Vec<i64> = spring.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-03-06T12:00:00Z"),
            utc("2026-03-07T09:00:00Z"),
            utc("2026-03-08T08:00:00Z"),
            utc("2026-03-09T08:00:00Z"),
        ]
    );
    assert_eq!(at[2] - at[1], 23 * HOUR);
    assert_eq!(spring[2].1, 23 * 60);

    let autumn = turns(&new_york, "2026-10-30T12:00:00Z", "2026-11-02T12:00:00Z", 1);
    let at: Vec<i64> = autumn.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-10-30T12:00:00Z"),
            utc("2026-10-31T08:00:00Z"),
            utc("2026-11-01T09:00:00Z"),
            utc("2026-11-02T09:00:00Z"),
        ]
    );
    assert_eq!(at[2] - at[1], 25 * HOUR);
    assert_eq!(autumn[2].1, 25 * 60);
}

#[test]
fn a_start_in_the_skipped_hour_turns_the_day_at_the_jump() {
    // 02:30 does not occur in Berlin on 2026-03-29: clocks go from 02:00 CET to 03:00 CEST
    // (01:00 UTC). The day turns at the jump, the first instant whose wall clock reads past
    // 02:30; on the days around it, at 02:30 itself.
    let berlin = restaurant_in("Europe/Berlin", "02:30");
    let turned = turns(&berlin, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z", 1);
    let at: Vec<i64> = turned.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-03-27T12:00:00Z"),
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            utc("2026-03-29T01:00:00Z"), // 01:59:59 CET, then 03:00 CEST
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
        ]
    );
    assert_eq!(
        berlin.business_day(Timestamp(utc("2026-03-29T00:59:59.999Z"))),
        day("2026-03-28")
    );
    assert_eq!(
        berlin.business_day(Timestamp(utc("2026-03-29T01:00:00Z"))),
        day("2026-03-29")
    );
}

#[test]
fn a_start_in_the_repeated_hour_turns_the_day_once() {
    // 02:30 occurs twice in Berlin on 2026-10-25: at 00:30 UTC (CEST) and 01:30 UTC (CET).
    // The day turns at the first; in the repeated hour the wall clock reads before 02:30
    // again, and the tickets keep counting the day already begun: one #1 that night.
    let berlin = restaurant_in("Europe/Berlin", "02:30");
    let turned = turns(&berlin, "2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z", 1);
    let at: Vec<i64> = turned.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        at,
        [
            utc("2026-10-23T12:00:00Z"),
            utc("2026-10-24T00:30:00Z"),
            utc("2026-10-25T00:30:00Z"),
            utc("2026-10-26T01:30:00Z"),
        ]
    );
    assert_eq!(at[3] - at[2], 25 * HOUR);
}

#[test]
fn a_changed_clock_keeps_the_days_count_until_its_next_start() {
    // A restaurant that kept UTC moves to Tokyo at 01:00 UTC (10:00 JST) on 2026-12-02. Under
    // UTC it was still the 1st (before 04:00 UTC); in Tokyo it is the 2nd. Tonight's count goes
    // on as the 2nd's and restarts at 04:00 JST on the 3rd, not at 04:00 UTC.
    let mut restaurant = restaurant_in("UTC", "04:00");
    let now = Timestamp(utc("2026-12-02T01:00:00Z"));
    let before = restaurant.business_day(now);
    assert_eq!(before, day("2026-12-01"));
    let change = SettingsChange::validate(RestaurantSettings {
        time_zone: Some("Asia/Tokyo".into()),
        ..RestaurantSettings::default()
    })
    .expect("valid settings");
    restaurant = change.apply(&restaurant);
    let after = restaurant.business_day(now);
    assert_eq!(after, day("2026-12-02"));
    let stored = ticket_day_after_change(before, before, after);
    assert_eq!(stored, after);
    // The next order is #58 after #57, also at 04:00 UTC, and #1 at 04:00 JST.
    let at_four_utc = restaurant.business_day(Timestamp(utc("2026-12-02T04:00:00Z")));
    assert_eq!(next_ticket(stored, 57, after), (after, 58));
    assert_eq!(next_ticket(stored, 58, at_four_utc), (after, 59));
    let at_four_jst = restaurant.business_day(Timestamp(utc("2026-12-02T19:00:00Z")));
    assert_eq!(next_ticket(stored, 59, at_four_jst), (day("2026-12-03"), 1));

    // Moving the start later, past now: the day in progress keeps counting until the new start.
    let night = Timestamp(utc("2026-12-02T19:30:00Z")); // 04:30 JST on the 3rd
    let before = restaurant.business_day(night);
    assert_eq!(before, day("2026-12-03"));
    let later = SettingsChange::validate(RestaurantSettings {
        business_day_starts_at: Some("05:00".into()),
        ..RestaurantSettings::default()
    })
    .expect("valid settings")
    .apply(&restaurant);
    let after = later.business_day(night);
    assert_eq!(after, day("2026-12-02"));
    let stored = ticket_day_after_change(before, before, after);
    assert_eq!(next_ticket(stored, 3, after), (after, 4));
    let at_five = later.business_day(Timestamp(utc("2026-12-02T20:00:00Z")));
    assert_eq!(next_ticket(stored, 4, at_five), (day("2026-12-03"), 1));

    // A count of an earlier day is left alone: the next order starts the day at #1.
    assert_eq!(
        ticket_day_after_change(day("2026-11-30"), before, after),
        day("2026-11-30")
    );
}

#[test]
fn settings_change_only_what_is_given_and_refuse_bad_text() {
    let restaurant = restaurant_in("Europe/Berlin", "04:00");
    let renamed = SettingsChange::validate(RestaurantSettings {
        name: Some(" Brasserie ".into()),
        ..RestaurantSettings::default()
    })
    .expect("a valid name")
    .apply(&restaurant);
    assert_eq!(renamed.name, "Brasserie");
    assert_eq!(renamed.time_zone, restaurant.time_zone);
    assert_eq!(renamed.day_starts_at, restaurant.day_starts_at);
    assert_eq!(renamed.id, restaurant.id);
    let nothing = SettingsChange::validate(RestaurantSettings::default()).expect("empty is valid");
    assert_eq!(nothing.apply(&restaurant), restaurant);

    let huge = "A".repeat(1 << 20);
    for bad in [
        "",
        "Mars/Base",
        "../../etc/passwd",
        "Europe/Berlin\0",
        huge.as_str(),
    ] {
        let refused = SettingsChange::validate(RestaurantSettings {
            time_zone: Some(bad.into()),
            ..RestaurantSettings::default()
        });
        assert!(
            matches!(refused, Err(DomainError::BadInput(_))),
            "{:.40}",
            bad
        );
        let created = validate_restaurant(NewRestaurant {
            name: "x".into(),
            time_zone: Some(bad.into()),
            ..NewRestaurant::default()
        });
        assert!(is_bad_input(&created), "{:.40}", bad);
    }
    for bad in [
        "",
        "25:00",
        "4:00",
        "24:00",
        "04:00 ",
        "noon",
        huge.as_str(),
    ] {
        let refused = SettingsChange::validate(RestaurantSettings {
            business_day_starts_at: Some(bad.into()),
            ..RestaurantSettings::default()
        });
        assert!(
            matches!(refused, Err(DomainError::BadInput(_))),
            "{:.40}",
            bad
        );
    }
    let blank = SettingsChange::validate(RestaurantSettings {
        name: Some("  ".into()),
        ..RestaurantSettings::default()
    });
    assert!(matches!(blank, Err(DomainError::BadInput(_))));
}

/// Every zone of the bundled database, by name.
static ZONES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    jiff::tz::TimeZoneDatabase::bundled()
        .available()
        .map(|name| name.as_str().to_owned())
        .collect()
});

#[test]
fn every_zone_of_the_bundled_database_is_accepted() {
    assert!(ZONES.len() > 300, "{} zones", ZONES.len());
    for name in ZONES.iter() {
        assert_eq!(zone(name).name(), name);
    }
}

proptest::proptest! {
    /// For any instant, zone and start time, the business day is the local date of (the
    /// instant's local wall-clock time − the start time), computed here with the time-zone
    /// library's own calendar arithmetic.
    #[test]
    fn the_business_day_is_the_local_date_of_the_instant_minus_the_start(
        // From 1900 to 2100.
        at in -2_208_988_800_000_i64..4_102_444_800_000_i64,
        zone_index in proptest::prelude::any::<proptest::sample::Index>(),
        start in 0_i64..1440,
    ) {
        let name: &String = zone_index.get(ZONES.as_slice());
        let zone = zone(name);
        let start = BusinessDayStart::from_minutes(start).expect("0 to 1439");
        let instant = jiff::Timestamp::from_millisecond(at).expect("in range");
        let local = zone.zone().to_datetime(instant);
        let shifted = local
            .checked_sub(jiff::SignedDuration::from_mins(start.minutes()))
            .expect("in range");
        let epoch = jiff::civil::date(1970, 1, 1);
        let expected = i64::from(epoch.until(shifted.date()).expect("in range").get_days());
        proptest::prop_assert_eq!(BusinessDay::of(Timestamp(at), &zone, start), BusinessDay(expected));
    }
}
