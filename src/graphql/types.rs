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

pub struct MenuItem(pub domain::MenuItem);

#[Object]
impl MenuItem {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn restaurant_id(&self) -> ID {
        ID(self.0.restaurant_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn price(&self) -> Money {
        Money(self.0.price.clone())
    }
    /// False while the item is sold out.
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
    /// Sum of item subtotals, computed by the server from menu prices at order time.
    async fn total(&self) -> Money {
        Money(self.0.total.clone())
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
    async fn menu_item_id(&self) -> ID {
        ID(self.0.menu_item_id.to_string())
    }
    /// Name at order time.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Price at order time.
    async fn unit_price(&self) -> Money {
        Money(self.0.unit_price.clone())
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
