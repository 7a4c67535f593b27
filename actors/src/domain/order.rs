use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

use super::options::{choose, ChosenOption, OptionId};
use super::tax::{tax_lines, BasisPoints, ServiceMode, TaxLine, TaxRounding};
use super::{
    check_name, check_text, DomainError, MenuItem, MenuItemId, Money, OrderId, Principal,
    Restaurant, RestaurantId, Role, TableId, Timestamp,
};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 99;
const MAX_ORDER_NOTE_CHARS: usize = 500;
const MAX_LINE_NOTE_CHARS: usize = 200;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
const MAX_CANCEL_REASON_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    Accepted,
    Preparing,
    Ready,
    Served,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Placed,
        OrderStatus::Accepted,
        OrderStatus::Preparing,
        OrderStatus::Ready,
        OrderStatus::Served,
        OrderStatus::Cancelled,
    ];

    /// The one status an order may advance to from this one.
    pub fn next(self) -> Option<OrderStatus> {
        match self {
            OrderStatus::Placed => Some(OrderStatus::Accepted),
            OrderStatus::Accepted => Some(OrderStatus::Preparing),
            OrderStatus::Preparing => Some(OrderStatus::Ready),
            OrderStatus::Ready => Some(OrderStatus::Served),
            OrderStatus::Served | OrderStatus::Cancelled => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::Accepted => "ACCEPTED",
            OrderStatus::Preparing => "PREPARING",
            OrderStatus::Ready => "READY",
            OrderStatus::Served => "SERVED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<order id>_<line>`: a line of an order, named within its restaurant; it names its order,
/// so the order of a line a client names is found without an index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderItemId(String);

impl OrderItemId {
    pub fn new(order: &OrderId, line: i64) -> Self {
        Self(format!("{order}_{line}"))
    }

    /// The order and the line (0-based) of an id from a client; `None` for any other form.
    pub fn parse(s: &str) -> Option<(OrderId, i64)> {
        let (order, line) = s.rsplit_once('_')?;
        let digits =
            !line.is_empty() && line.len() <= 3 && line.bytes().all(|b| b.is_ascii_digit());
        Some((
            OrderId::parse(order)?,
            line.parse().ok().filter(|_| digits)?,
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Empty in payloads stored before lines had ids: see [`Order::with_line_ids`].
    #[serde(default)]
    pub id: OrderItemId,
    pub menu_item_id: MenuItemId,
    /// Name at order time.
    pub name: String,
    /// Price at order time: the item's price plus the chosen options' deltas.
    pub unit_price: Money,
    pub quantity: i64,
    pub note: Option<String>,
    /// As they were at order time, in the menu's order.
    #[serde(default)]
    pub options: Vec<ChosenOption>,
    /// The rate of the item's tax category in the order's service mode, at order time.
    #[serde(default)]
    pub tax_basis_points: BasisPoints,
}

impl OrderItem {
    /// Cannot overflow: it was checked when the order was built.
    pub fn subtotal(&self) -> Money {
        Money::new(
            self.unit_price.amount * self.quantity,
            self.unit_price.currency.clone(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub restaurant_id: RestaurantId,
    pub table_id: TableId,
    pub number: i64,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total: Money,
    pub note: Option<String>,
    pub cancel_reason: Option<String>,
    pub placed_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
    #[serde(default)]
    pub service_mode: ServiceMode,
    /// Per rate over the lines (`tax_lines`), as computed when placed.
    #[serde(default)]
    pub taxes: Vec<TaxLine>,
    /// The restaurant's tax settings when placed, which its taxes were computed with.
    #[serde(default = "included")]
    pub prices_include_tax: bool,
    #[serde(default)]
    pub tax_rounding: TaxRounding,
}

fn included() -> bool {
    true
}

impl Order {
    /// What the order costs the customer: `total`, plus the taxes when prices exclude tax.
    /// Within `Money::MAX_AMOUNT`: `tax_lines` refused the order otherwise.
    pub fn grand_total(&self) -> Money {
        let tax: i64 = if self.prices_include_tax {
            0
        } else {
            self.taxes.iter().map(|line| line.tax).sum()
        };
        Money::new(
            self.total.amount.saturating_add(tax),
            self.total.currency.clone(),
        )
    }

    /// Gives lines stored before they had ids (in events' payloads) the ids they have now.
    pub fn with_line_ids(mut self) -> Order {
        for (line, item) in self.items.iter_mut().enumerate() {
            if item.id.as_str().is_empty() {
                item.id = OrderItemId::new(&self.id, i64::try_from(line).unwrap_or(i64::MAX));
            }
        }
        self
    }
}

/// One line of a `placeOrder` request, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineRequest {
    pub menu_item_id: MenuItemId,
    pub quantity: i64,
    pub note: Option<String>,
    /// A set: `validate_request` sorts it and refuses an option twice. Left out of the
    /// fingerprint when empty, so a line without options has the fingerprint it always had.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub option_ids: Vec<OptionId>,
}

/// The most options one line may choose.
pub const MAX_OPTIONS_PER_LINE: usize = 50;

/// A `placeOrder` request. It names menu items and quantities, never prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrderRequest {
    pub restaurant_id: RestaurantId,
    pub table_id: TableId,
    pub items: Vec<LineRequest>,
    pub note: Option<String>,
    pub idempotency_key: String,
    pub service_mode: ServiceMode,
}

/// Checks everything that needs no stored state, so bad requests never reach the store, and
/// returns the request with its texts in NFC (`text`), as they are compared and stored.
pub fn validate_request(mut request: PlaceOrderRequest) -> Result<PlaceOrderRequest, DomainError> {
    // Normalized before it is counted, like every text.
    crate::domain::text::normalize(&mut request.idempotency_key);
    let key_chars = crate::domain::text::characters(&request.idempotency_key);
    if key_chars == 0 || key_chars > MAX_IDEMPOTENCY_KEY_CHARS {
        return bad(format!(
            "idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
        ));
    }
    check_text(
        "idempotencyKey",
        &mut request.idempotency_key,
        MAX_IDEMPOTENCY_KEY_CHARS,
    )?;
    if request.items.is_empty() {
        return bad("an order needs at least one item".into());
    }
    if request.items.len() > MAX_LINES {
        return bad(format!("an order has at most {MAX_LINES} lines"));
    }
    for line in &mut request.items {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return bad(format!("quantity must be 1 to {MAX_QUANTITY}"));
        }
        if let Some(note) = &mut line.note {
            check_text("item note", note, MAX_LINE_NOTE_CHARS)?;
        }
        if line.option_ids.len() > MAX_OPTIONS_PER_LINE {
            return bad(format!(
                "a line chooses at most {MAX_OPTIONS_PER_LINE} options"
            ));
        }
        line.option_ids.sort();
        if let Some(twice) = line.option_ids.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("option {} is chosen twice", twice[0]));
        }
    }
    if let Some(note) = &mut request.note {
        check_text("note", note, MAX_ORDER_NOTE_CHARS)?;
    }
    Ok(request)
}

/// What makes two requests with one idempotency key "the same order": everything but the key.
pub fn fingerprint(request: &PlaceOrderRequest) -> String {
    #[derive(Serialize)]
    struct Content<'a> {
        table: &'a TableId,
        items: &'a [LineRequest],
        note: &'a Option<String>,
        // Left out for eat-in, so that orders placed before service modes keep their
        // fingerprint.
        #[serde(skip_serializing_if = "is_eat_in")]
        service_mode: ServiceMode,
    }
    fn is_eat_in(mode: &ServiceMode) -> bool {
        *mode == ServiceMode::EatIn
    }
    let content = Content {
        table: &request.table_id,
        items: &request.items,
        note: &request.note,
        service_mode: request.service_mode,
    };
    // Serializing plain strings and integers cannot fail.
    serde_json::to_string(&content).unwrap_or_default()
}

/// Builds a new order from a validated request and the menu items it names, as stored now.
/// Prices come from the menu; the client never sends one.
pub fn build_order(
    request: &PlaceOrderRequest,
    restaurant: &Restaurant,
    menu: &[MenuItem],
    number: i64,
    now: Timestamp,
) -> Result<Order, DomainError> {
    // Checked here too, so that no caller builds an order from an unchecked request.
    let request = &validate_request(request.clone())?;
    let menu: HashMap<&MenuItemId, &MenuItem> = menu
        .iter()
        .filter(|item| item.restaurant_id == restaurant.id && !item.archived)
        .map(|item| (&item.id, item))
        .collect();
    let id = OrderId::generate();
    let mut total = Money::new(0, restaurant.currency.clone());
    let mut items = Vec::with_capacity(request.items.len());
    for line in &request.items {
        let item = menu.get(&line.menu_item_id).ok_or_else(|| {
            DomainError::BadInput(format!("unknown menu item {}", line.menu_item_id))
        })?;
        if !item.available {
            return Err(DomainError::SoldOut(item.id.clone()));
        }
        let (options, delta) = choose(&item.option_groups, &line.option_ids)?;
        let unit_price = item
            .price
            .plus(&Money::new(delta, item.price.currency.clone()))?;
        total = total.plus(&unit_price.times(line.quantity)?)?;
        items.push(OrderItem {
            id: OrderItemId::new(&id, i64::try_from(items.len()).unwrap_or(i64::MAX)),
            menu_item_id: item.id.clone(),
            name: item.name.clone(),
            unit_price,
            quantity: line.quantity,
            note: line.note.clone(),
            options,
            tax_basis_points: restaurant
                .tax
                .rules
                .rate(item.tax_category, request.service_mode),
        });
    }
    let summary = tax_lines(
        items
            .iter()
            .map(|line| (line.tax_basis_points, line.subtotal().amount)),
        &restaurant.tax,
    )?;
    Ok(Order {
        id,
        restaurant_id: restaurant.id.clone(),
        table_id: request.table_id.clone(),
        number,
        status: OrderStatus::Placed,
        items,
        total,
        note: request.note.clone(),
        cancel_reason: None,
        placed_at: now,
        updated_at: now,
        version: 1,
        service_mode: request.service_mode,
        taxes: summary.lines,
        prices_include_tax: restaurant.tax.prices_include_tax,
        tax_rounding: restaurant.tax.rounding,
    })
}

fn bad<T>(message: String) -> Result<T, DomainError> {
    Err(DomainError::BadInput(message))
}

fn changed(order: &Order, status: OrderStatus, now: Timestamp) -> Order {
    Order {
        status,
        updated_at: now.max(order.updated_at),
        version: order.version + 1,
        ..order.clone()
    }
}

/// Moves an order one step along PLACED → ACCEPTED → PREPARING → READY → SERVED.
/// A stale `expected_version` is a conflict even when the move itself would be valid.
pub fn advance(
    order: &Order,
    to: OrderStatus,
    expected_version: Option<i64>,
    now: Timestamp,
) -> Result<Order, DomainError> {
    check_version(order, expected_version)?;
    if order.status.next() != Some(to) {
        return Err(DomainError::InvalidTransition {
            from: order.status,
            to,
        });
    }
    Ok(changed(order, to, now))
}

fn check_version(order: &Order, expected: Option<i64>) -> Result<(), DomainError> {
    match expected {
        Some(expected) if expected != order.version => Err(DomainError::Conflict(format!(
            "the order is at version {}, not {expected}",
            order.version
        ))),
        _ => Ok(()),
    }
}

/// Who may cancel, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRule {
    /// Staff: until the food is ready.
    Staff,
    /// A customer: its own order, only while nobody has accepted it yet.
    Customer,
}

impl CancelRule {
    pub fn for_principal(principal: &Principal) -> CancelRule {
        match principal.role {
            Role::Customer => CancelRule::Customer,
            Role::Staff | Role::Manager | Role::Admin => CancelRule::Staff,
        }
    }
}

pub fn cancel(
    order: &Order,
    rule: CancelRule,
    reason: &str,
    now: Timestamp,
) -> Result<Order, DomainError> {
    let reason = check_name("reason", reason, MAX_CANCEL_REASON_CHARS)?;
    let staff_may = matches!(
        order.status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Preparing
    );
    if !staff_may {
        return Err(DomainError::InvalidTransition {
            from: order.status,
            to: OrderStatus::Cancelled,
        });
    }
    if rule == CancelRule::Customer && order.status != OrderStatus::Placed {
        return Err(DomainError::Forbidden(
            "the kitchen has accepted this order; ask the staff to cancel it".into(),
        ));
    }
    let mut cancelled = changed(order, OrderStatus::Cancelled, now);
    cancelled.cancel_reason = Some(reason);
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, TableId};

    fn restaurant() -> Restaurant {
        Restaurant {
            id: RestaurantId::generate(),
            name: "Bistro".into(),
            currency: Currency::parse("JPY").unwrap(),
            time_zone: crate::domain::TimeZone::utc(),
            day_starts_at: crate::domain::BusinessDayStart::DEFAULT,
            tax: Default::default(),
        }
    }

    fn item(r: &Restaurant, price: i64, available: bool) -> MenuItem {
        let new = crate::domain::NewMenuItem {
            name: format!("dish {price}"),
            price,
            available: Some(available),
            ..Default::default()
        };
        crate::domain::validate_menu_item(r, new, 0).unwrap()
    }

    fn request(r: &Restaurant, lines: &[(&MenuItem, i64)]) -> PlaceOrderRequest {
        PlaceOrderRequest {
            restaurant_id: r.id.clone(),
            table_id: TableId::generate(),
            items: lines
                .iter()
                .map(|(item, quantity)| LineRequest {
                    menu_item_id: item.id.clone(),
                    quantity: *quantity,
                    note: None,
                    option_ids: Vec::new(),
                })
                .collect(),
            note: Some("no onions".into()),
            idempotency_key: "k1".into(),
            service_mode: Default::default(),
        }
    }

    fn placed() -> Order {
        let r = restaurant();
        let ramen = item(&r, 900, true);
        build_order(
            &request(&r, &[(&ramen, 1)]),
            &r,
            &[ramen],
            1,
            Timestamp(1_000),
        )
        .unwrap()
    }

    #[test]
    fn totals_come_from_menu_prices() {
        let r = restaurant();
        let (ramen, gyoza) = (item(&r, 900, true), item(&r, 450, true));
        let order = build_order(
            &request(&r, &[(&ramen, 2), (&gyoza, 3)]),
            &r,
            &[ramen.clone(), gyoza],
            7,
            Timestamp(5),
        )
        .unwrap();
        assert_eq!(
            order.total,
            Money::new(2 * 900 + 3 * 450, r.currency.clone())
        );
        assert_eq!(order.items[0].subtotal().amount, 1800);
        assert_eq!(order.items[0].name, ramen.name);
        assert_eq!(
            (order.number, order.version, order.status),
            (7, 1, OrderStatus::Placed)
        );
    }

    #[test]
    fn requests_are_bounded() {
        let r = restaurant();
        let ramen = item(&r, 900, true);
        let menu = [ramen.clone()];
        let refuse = |req: PlaceOrderRequest| {
            matches!(
                build_order(&req, &r, &menu, 1, Timestamp(0)),
                Err(DomainError::BadInput(_))
            )
        };
        assert!(refuse(request(&r, &[])));
        assert!(refuse(request(&r, &[(&ramen, 0)])));
        assert!(refuse(request(&r, &[(&ramen, -1)])));
        assert!(refuse(request(&r, &[(&ramen, 100)])));
        assert!(!refuse(request(&r, &[(&ramen, 99)])));
        let lines: Vec<_> = (0..=MAX_LINES).map(|_| (&ramen, 1)).collect();
        assert!(refuse(request(&r, &lines)));
        assert!(!refuse(request(&r, &lines[..MAX_LINES])));
        let mut keyless = request(&r, &[(&ramen, 1)]);
        keyless.idempotency_key = String::new();
        assert!(refuse(keyless));
        let mut long_key = request(&r, &[(&ramen, 1)]);
        long_key.idempotency_key = "k".repeat(129);
        assert!(refuse(long_key));
        let mut control = request(&r, &[(&ramen, 1)]);
        control.note = Some("\u{1b}[2J".into());
        assert!(refuse(control));
    }

    #[test]
    fn unknown_foreign_and_sold_out_items_are_refused() {
        let r = restaurant();
        let other = restaurant();
        let foreign = item(&other, 100, true);
        let sold_out = item(&r, 100, false);
        let menu = [foreign.clone(), sold_out.clone()];
        assert!(matches!(
            build_order(&request(&r, &[(&foreign, 1)]), &r, &menu, 1, Timestamp(0)),
            Err(DomainError::BadInput(_))
        ));
        assert_eq!(
            build_order(&request(&r, &[(&sold_out, 1)]), &r, &menu, 1, Timestamp(0)),
            Err(DomainError::SoldOut(sold_out.id.clone()))
        );
    }

    #[test]
    fn totals_that_overflow_are_refused() {
        let r = restaurant();
        let caviar = item(&r, Money::MAX_AMOUNT, true);
        assert!(build_order(
            &request(&r, &[(&caviar, 1)]),
            &r,
            std::slice::from_ref(&caviar),
            1,
            Timestamp(0)
        )
        .is_ok());
        assert!(build_order(
            &request(&r, &[(&caviar, 2)]),
            &r,
            std::slice::from_ref(&caviar),
            1,
            Timestamp(0)
        )
        .is_err());
        assert!(build_order(
            &request(&r, &[(&caviar, 1), (&caviar, 1)]),
            &r,
            &[caviar],
            1,
            Timestamp(0)
        )
        .is_err());
    }

    #[test]
    fn status_moves_one_step_at_a_time() {
        let mut order = placed();
        for to in [
            OrderStatus::Accepted,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::Served,
        ] {
            let version = order.version;
            order = advance(&order, to, Some(version), Timestamp(2_000)).unwrap();
            assert_eq!((order.status, order.version), (to, version + 1));
        }
        for to in OrderStatus::ALL {
            assert!(matches!(
                advance(&order, to, None, Timestamp(3_000)),
                Err(DomainError::InvalidTransition { .. })
            ));
        }
        let skip = advance(&placed(), OrderStatus::Preparing, None, Timestamp(0));
        assert_eq!(
            skip,
            Err(DomainError::InvalidTransition {
                from: OrderStatus::Placed,
                to: OrderStatus::Preparing
            })
        );
    }

    #[test]
    fn stale_versions_conflict() {
        let order = placed();
        assert!(matches!(
            advance(&order, OrderStatus::Accepted, Some(2), Timestamp(0)),
            Err(DomainError::Conflict(_))
        ));
        assert!(advance(&order, OrderStatus::Accepted, Some(1), Timestamp(0)).is_ok());
    }

    #[test]
    fn cancelling_depends_on_who_and_when() {
        let order = placed();
        let cancelled = cancel(
            &order,
            CancelRule::Customer,
            "changed my mind",
            Timestamp(9),
        )
        .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(cancelled.cancel_reason.as_deref(), Some("changed my mind"));
        assert_eq!(cancelled.version, 2);

        let accepted = advance(&order, OrderStatus::Accepted, None, Timestamp(0)).unwrap();
        assert!(matches!(
            cancel(&accepted, CancelRule::Customer, "x", Timestamp(0)),
            Err(DomainError::Forbidden(_))
        ));
        let preparing = advance(&accepted, OrderStatus::Preparing, None, Timestamp(0)).unwrap();
        assert!(cancel(&preparing, CancelRule::Staff, "burnt", Timestamp(0)).is_ok());
        let ready = advance(&preparing, OrderStatus::Ready, None, Timestamp(0)).unwrap();
        assert!(matches!(
            cancel(&ready, CancelRule::Staff, "x", Timestamp(0)),
            Err(DomainError::InvalidTransition { .. })
        ));
        assert!(matches!(
            cancel(&cancelled, CancelRule::Staff, "x", Timestamp(0)),
            Err(DomainError::InvalidTransition { .. })
        ));
        assert!(matches!(
            cancel(&order, CancelRule::Staff, "  ", Timestamp(0)),
            Err(DomainError::BadInput(_))
        ));
    }

    #[test]
    fn fingerprint_ignores_only_the_key() {
        let r = restaurant();
        let ramen = item(&r, 900, true);
        let a = request(&r, &[(&ramen, 1)]);
        let mut same = a.clone();
        same.idempotency_key = "other".into();
        assert_eq!(fingerprint(&a), fingerprint(&same));
        let mut more = a.clone();
        more.items[0].quantity = 2;
        assert_ne!(fingerprint(&a), fingerprint(&more));
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("placed"), None);
    }
}
