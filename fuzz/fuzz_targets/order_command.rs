//! Structured orders against a menu, through the domain's rules. Nothing may panic, and an
//! accepted order keeps the invariants money depends on: 1 to 100 lines, quantities 1 to 99,
//! prices from the menu, and a total that is the sum of the lines and fits in 32 bits.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use orderhub_actors::domain::{
    advance, build_order, cancel, fingerprint, validate_menu_item, validate_restaurant, CancelRule,
    LineRequest, MenuItem, MenuItemId, NewMenuItem, NewRestaurant, OrderStatus, PlaceOrderRequest,
    TableId, Timestamp, MAX_LINES, MAX_QUANTITY,
};

/// Numbers mostly near the limits that matter, sometimes anything: random 64-bit values alone
/// would almost never make an order the rules accept.
#[derive(Debug, Arbitrary)]
enum Number {
    Small(u8),
    Large(u32),
    Any(i64),
}

impl Number {
    fn value(&self) -> i64 {
        match self {
            Number::Small(n) => i64::from(*n),
            Number::Large(n) => i64::from(*n),
            Number::Any(n) => *n,
        }
    }
}

/// A client's text, or a plain one that passes.
#[derive(Debug, Arbitrary)]
enum Text {
    Plain,
    Given(String),
}

impl Text {
    fn or(self, plain: &str) -> String {
        match self {
            Text::Plain => plain.to_owned(),
            Text::Given(text) => text,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Dish {
    name: Text,
    price: Number,
    available: Option<bool>,
}

#[derive(Debug, Arbitrary)]
struct Line {
    /// Which dish of the menu, or (one past its end) an item that is not on it.
    dish: u8,
    quantity: Number,
    note: Option<String>,
}

#[derive(Debug, Arbitrary)]
struct Command {
    menu: Vec<Dish>,
    lines: Vec<Line>,
    note: Option<String>,
    key: Text,
    /// Then moved along: to which status, with which expected version.
    to: u8,
    expected_version: Option<i64>,
    cancel_as_customer: bool,
    reason: String,
}

fuzz_target!(|command: Command| {
    let Ok(restaurant) = validate_restaurant(NewRestaurant {
        name: "Fuzz Bar".into(),
        ..NewRestaurant::default()
    }) else {
        return;
    };
    let menu: Vec<MenuItem> = command
        .menu
        .into_iter()
        .filter_map(|dish| {
            validate_menu_item(
                &restaurant,
                NewMenuItem {
                    name: dish.name.or("Ramen"),
                    price: dish.price.value(),
                    available: dish.available,
                },
            )
            .ok()
        })
        .collect();
    let items = command
        .lines
        .into_iter()
        .map(|line| LineRequest {
            menu_item_id: menu
                .get(usize::from(line.dish) % (menu.len() + 1))
                .map(|item| item.id.clone())
                .unwrap_or_else(MenuItemId::generate),
            quantity: line.quantity.value(),
            note: line.note,
        })
        .collect();
    let request = PlaceOrderRequest {
        restaurant_id: restaurant.id.clone(),
        table_id: TableId::generate(),
        items,
        note: command.note,
        idempotency_key: command.key.or("cart-1"),
    };
    let _ = fingerprint(&request);
    let Ok(order) = build_order(&request, &restaurant, &menu, 1, Timestamp(0)) else {
        return;
    };

    assert!((1..=MAX_LINES).contains(&order.items.len()));
    assert_eq!(order.items.len(), request.items.len());
    let mut total: i128 = 0;
    for item in &order.items {
        assert!((1..=MAX_QUANTITY).contains(&item.quantity));
        let dish = menu
            .iter()
            .find(|dish| dish.id == item.menu_item_id)
            .expect("an accepted line names a dish on the menu");
        assert!(dish.available, "a sold-out dish was ordered");
        assert_eq!(item.unit_price, dish.price, "the price is the menu's");
        total += i128::from(item.unit_price.amount) * i128::from(item.quantity);
    }
    assert_eq!(i128::from(order.total.amount), total);
    assert!(
        i32::try_from(order.total.amount).is_ok(),
        "the total fits in 32 bits"
    );
    assert_eq!((order.status, order.version), (OrderStatus::Placed, 1));

    let to = OrderStatus::ALL[usize::from(command.to) % OrderStatus::ALL.len()];
    if let Ok(moved) = advance(&order, to, command.expected_version, Timestamp(1)) {
        assert_eq!(Some(to), order.status.next());
        assert_eq!(moved.version, order.version + 1);
        assert_eq!(moved.total, order.total);
    }
    let rule = if command.cancel_as_customer {
        CancelRule::Customer
    } else {
        CancelRule::Staff
    };
    if let Ok(cancelled) = cancel(&order, rule, &command.reason, Timestamp(1)) {
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert!(!command.reason.trim().is_empty());
    }
});
