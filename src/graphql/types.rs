//! GraphQL object types over the domain's values. Fields here are plain reads of an object
//! already loaded; the ones that reach the store are in the resource modules.

use async_graphql::{
    Enum, InputValueError, InputValueResult, Object, Scalar, ScalarType, SimpleObject, Value, ID,
};
use chrono::{DateTime as ChronoDateTime, SecondsFormat, TimeZone, Utc};
use orderhub_actors::domain::{self, Timestamp};

/// RFC 3339 timestamp, UTC, e.g. 2026-11-23T12:34:56.789Z.
#[derive(Debug, Clone, Copy)]
pub struct DateTime(pub Timestamp);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        let parsed = ChronoDateTime::parse_from_rfc3339(text)
            .map_err(|e| InputValueError::custom(format!("not an RFC 3339 timestamp: {e}")))?;
        Ok(DateTime(Timestamp(parsed.timestamp_millis())))
    }

    fn to_value(&self) -> Value {
        let text = Utc
            .timestamp_millis_opt(self.0.millis())
            .single()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        Value::String(text)
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "orderhub_actors::domain::OrderStatus")]
pub enum OrderStatus {
    Placed,
    Accepted,
    Preparing,
    Ready,
    Served,
    Cancelled,
}

/// An amount in the currency's minor unit: JPY has none, so 1200 is ¥1,200. Never a float.
pub struct Money(pub domain::Money);

#[Object]
impl Money {
    /// Bounded by the domain to 32 bits.
    async fn amount(&self) -> i32 {
        i32::try_from(self.0.amount).unwrap_or(i32::MAX)
    }
    /// ISO 4217 code, e.g. JPY.
    async fn currency(&self) -> &str {
        self.0.currency.as_str()
    }
}

pub struct Table(pub domain::Table);

#[Object]
impl Table {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn restaurant_id(&self) -> ID {
        ID(self.0.restaurant_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "orderhub_actors::domain::ServiceMode")]
pub enum ServiceMode {
    EatIn,
    #[graphql(name = "TAKEOUT")]
    TakeOut,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "orderhub_actors::domain::TaxCategory")]
pub enum TaxCategory {
    Food,
    SoftDrink,
    Alcohol,
    Other,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "orderhub_actors::domain::TaxRounding")]
pub enum TaxRounding {
    /// Toward zero (Japan's usual practice).
    Down,
    /// Half a minor unit and above goes up.
    HalfUp,
    Up,
}

/// Allergens that menus must declare: the union of Japan's mandatory eight (egg, milk, wheat, buckwheat, peanut, shrimp, crab, walnut) and the EU's fourteen.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "orderhub_actors::domain::Allergen")]
pub enum Allergen {
    Egg,
    Milk,
    Wheat,
    Buckwheat,
    Peanut,
    Shrimp,
    Crab,
    Walnut,
    /// Tree nuts other than walnut.
    TreeNuts,
    Soy,
    Sesame,
    Fish,
    Molluscs,
    Celery,
    Mustard,
    Sulphites,
    Lupin,
    /// Gluten-containing cereals other than wheat (barley, rye, oats).
    Gluten,
}

/// The rate for one tax category in one service mode. A category with no rule is taxed at 0.
#[derive(SimpleObject)]
pub struct TaxRule {
    pub category: TaxCategory,
    pub service_mode: ServiceMode,
    /// Basis points: 1000 is 10 %.
    pub basis_points: i32,
}

impl From<&domain::TaxRule> for TaxRule {
    fn from(rule: &domain::TaxRule) -> Self {
        Self {
            category: rule.category.into(),
            service_mode: rule.service_mode.into(),
            basis_points: i32::from(rule.basis_points.get()),
        }
    }
}

/// Tax at one rate over one document (an order or a bill).
#[derive(SimpleObject)]
pub struct TaxLine {
    pub basis_points: i32,
    /// What the rate applies to: the sum of the lines at this rate (tax included when prices include tax).
    pub base: Money,
    /// The tax in `base`, or on top of it when prices exclude tax; rounded once, with the restaurant's rounding.
    pub tax: Money,
}

impl TaxLine {
    pub fn of(line: &domain::TaxLine, currency: &domain::Currency) -> Self {
        Self {
            basis_points: i32::from(line.basis_points.get()),
            base: Money(domain::Money::new(line.base, currency.clone())),
            tax: Money(domain::Money::new(line.tax, currency.clone())),
        }
    }
}

#[derive(SimpleObject)]
pub struct MenuItemTranslation {
    pub locale: String,
    pub name: String,
    pub description: Option<String>,
}

pub struct MenuItem(pub domain::MenuItem);

#[Object]
impl MenuItem {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn restaurant_id(&self) -> ID {
        ID(self.0.restaurant_id.to_string())
    }
    /// In `locale` (a BCP 47 tag such as ja, en, zh-Hans) when the item has a translation for it or for its language; else the item's own name.
    async fn name(&self, locale: Option<String>) -> &str {
        self.0.name_in(locale.as_deref())
    }
    async fn price(&self) -> Money {
        Money(self.0.price.clone())
    }
    /// False while the item is sold out.
    async fn available(&self) -> bool {
        self.0.available
    }
    /// In `locale` as for name.
    async fn description(&self, locale: Option<String>) -> Option<&str> {
        self.0.description_in(locale.as_deref())
    }
    async fn translations(&self) -> Vec<MenuItemTranslation> {
        self.0
            .translations
            .iter()
            .map(|t| MenuItemTranslation {
                locale: t.locale.as_str().to_owned(),
                name: t.name.clone(),
                description: t.description.clone(),
            })
            .collect()
    }
    async fn allergens(&self) -> Vec<Allergen> {
        self.0.allergens.iter().map(|&a| a.into()).collect()
    }
    async fn tax_category(&self) -> TaxCategory {
        self.0.tax_category.into()
    }
    /// Typical preparation time, for estimates.
    async fn prep_seconds(&self) -> i32 {
        clamp(self.0.prep_seconds)
    }
    /// Choices the customer makes (size, noodle firmness, toppings), in display order.
    async fn option_groups(&self) -> Vec<OptionGroup> {
        self.0
            .option_groups
            .iter()
            .map(|group| OptionGroup(group.clone(), self.0.price.currency.clone()))
            .collect()
    }
    /// Grows by 1 on every change to the item, its options or their availability.
    async fn version(&self) -> i32 {
        clamp(self.0.version)
    }
    /// True once taken off the menu (only in MenuItemChanged and archiveMenuItem's answer).
    async fn archived(&self) -> bool {
        self.0.archived
    }
}

/// A group of a menu item, and the currency of its price deltas.
pub struct OptionGroup(pub domain::OptionGroup, pub domain::Currency);

#[Object]
impl OptionGroup {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self, locale: Option<String>) -> &str {
        self.0.name_in(locale.as_deref())
    }
    /// How many options must be chosen: 0 makes the group optional.
    async fn min_selected(&self) -> i32 {
        clamp(self.0.min_selected)
    }
    /// At most this many; at least minSelected and at least 1.
    async fn max_selected(&self) -> i32 {
        clamp(self.0.max_selected)
    }
    async fn options(&self) -> Vec<MenuOption> {
        self.0
            .options
            .iter()
            .map(|option| MenuOption(option.clone(), self.1.clone()))
            .collect()
    }
}

pub struct MenuOption(pub domain::MenuOption, pub domain::Currency);

#[Object]
impl MenuOption {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self, locale: Option<String>) -> &str {
        self.0.name_in(locale.as_deref())
    }
    /// Added to the item's price for each unit ordered; may be 0, never negative.
    async fn price_delta(&self) -> Money {
        Money(domain::Money::new(self.0.price_delta, self.1.clone()))
    }
    /// False while sold out.
    async fn available(&self) -> bool {
        self.0.available
    }
}

pub struct Order(pub domain::Order);

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn restaurant_id(&self) -> ID {
        ID(self.0.restaurant_id.to_string())
    }
    async fn table_id(&self) -> ID {
        ID(self.0.table_id.to_string())
    }
    /// Short ticket number shown on kitchen displays; unique per restaurant per business day, starting at 1.
    async fn number(&self) -> i32 {
        clamp(self.0.number)
    }
    async fn status(&self) -> OrderStatus {
        self.0.status.into()
    }
    /// Counted for complexity as if it held `MAX_LINES` lines, the most an order may have.
    #[graphql(complexity = "1 + domain::MAX_LINES * child_complexity")]
    async fn items(&self) -> Vec<OrderItem> {
        self.0.items.iter().cloned().map(OrderItem).collect()
    }
    async fn service_mode(&self) -> ServiceMode {
        self.0.service_mode.into()
    }
    /// Sum of item subtotals, computed by the server from menu prices at order time.
    async fn total(&self) -> Money {
        Money(self.0.total.clone())
    }
    /// Tax per rate over this order's lines.
    async fn taxes(&self) -> Vec<TaxLine> {
        let currency = &self.0.total.currency;
        self.0
            .taxes
            .iter()
            .map(|line| TaxLine::of(line, currency))
            .collect()
    }
    /// What this order costs the customer: total, plus taxes when prices exclude tax.
    async fn grand_total(&self) -> Money {
        Money(self.0.grand_total())
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// Why the order was cancelled; null unless it is CANCELLED.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    async fn placed_at(&self) -> DateTime {
        DateTime(self.0.placed_at)
    }
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
    /// Starts at 1 and grows by 1 on every change; use as expectedVersion.
    async fn version(&self) -> i32 {
        clamp(self.0.version)
    }
}

pub struct OrderItem(pub domain::OrderItem);

#[Object]
impl OrderItem {
    /// Identifies this line within the restaurant.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn menu_item_id(&self) -> ID {
        ID(self.0.menu_item_id.to_string())
    }
    /// Name at order time.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Price at order time: the item's price plus the chosen options' deltas.
    async fn unit_price(&self) -> Money {
        Money(self.0.unit_price.clone())
    }
    /// The options chosen, as they were at order time.
    async fn options(&self) -> Vec<OrderItemOption> {
        let currency = &self.0.unit_price.currency;
        self.0
            .options
            .iter()
            .map(|option| OrderItemOption {
                option_id: ID(option.option_id.to_string()),
                group_name: option.group_name.clone(),
                name: option.name.clone(),
                price_delta: Money(domain::Money::new(option.price_delta, currency.clone())),
            })
            .collect()
    }
    async fn tax_basis_points(&self) -> i32 {
        i32::from(self.0.tax_basis_points.get())
    }
    async fn quantity(&self) -> i32 {
        clamp(self.0.quantity)
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn subtotal(&self) -> Money {
        Money(self.0.subtotal())
    }
}

#[derive(SimpleObject)]
pub struct OrderItemOption {
    pub option_id: ID,
    pub group_name: String,
    pub name: String,
    pub price_delta: Money,
}

pub struct StaffCall(pub domain::StaffCall);

#[Object]
impl StaffCall {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn restaurant_id(&self) -> ID {
        ID(self.0.restaurant_id.to_string())
    }
    async fn table_id(&self) -> ID {
        ID(self.0.table_id.to_string())
    }
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    async fn at(&self) -> DateTime {
        DateTime(self.0.at)
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    pub cursor: String,
    pub node: Order,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderConnection {
    pub edges: Vec<OrderEdge>,
    pub page_info: PageInfo,
    /// Served as `seq` below, in GraphQL's 32-bit `Int`.
    #[graphql(skip)]
    pub seq: i64,
}

#[async_graphql::ComplexObject]
impl OrderConnection {
    /// The restaurant's newest event seq that this page reflects (a read may come from a replica that is behind): subscribe to restaurantEvents with after: seq to get exactly what the page lacks.
    async fn seq(&self) -> i32 {
        clamp(self.seq)
    }
}

/// Counters the domain keeps small; GraphQL `Int` is 32-bit.
fn clamp(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
