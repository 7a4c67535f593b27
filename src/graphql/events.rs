//! Restaurant events and the subscriptions that stream them.

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{Context, Interface, SimpleObject, Subscription as SubscriptionRoot, ID};
use orderhub_actors::domain;

use super::types::{DateTime, MenuItem, Order, OrderStatus, StaffCall};
use super::ApiError;

pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// Staff and admin. Every event of one restaurant in seq order, with no gap and no duplicate. With `after`, first replays every retained event with seq > after, then goes on live.
    async fn restaurant_events(
        &self,
        _ctx: &Context<'_>,
        restaurant_id: ID,
        after: Option<i32>,
    ) -> Result<BoxStream<'static, RestaurantEvent>, ApiError> {
        let _ = (restaurant_id, after);
        Err(not_yet())
    }

    /// The order each time it changes, starting with its current state. A customer may watch the orders of its own table.
    async fn order_updated(
        &self,
        _ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<BoxStream<'static, Order>, ApiError> {
        let _ = order_id;
        Err(not_yet())
    }
}

fn not_yet() -> ApiError {
    ApiError::new(
        "UNAVAILABLE",
        "subscriptions are not served by this version yet",
    )
}

/// Something that happened in one restaurant. seq is 1, 2, 3, ... per restaurant, without gaps.
#[derive(Interface)]
#[graphql(
    field(name = "seq", ty = "&i32"),
    field(name = "restaurant_id", ty = "&ID"),
    field(name = "at", ty = "&DateTime")
)]
pub enum RestaurantEvent {
    OrderPlaced(OrderPlaced),
    OrderStatusChanged(OrderStatusChanged),
    MenuItemAvailabilityChanged(MenuItemAvailabilityChanged),
    StaffCalled(StaffCalled),
}

impl From<domain::Event> for RestaurantEvent {
    fn from(event: domain::Event) -> Self {
        let seq = i32::try_from(event.seq).unwrap_or(i32::MAX);
        let restaurant_id = ID(event.restaurant_id.to_string());
        let at = DateTime(event.at);
        match event.kind {
            domain::EventKind::OrderPlaced { order } => RestaurantEvent::OrderPlaced(OrderPlaced {
                seq,
                restaurant_id,
                at,
                order: Order(order),
            }),
            domain::EventKind::OrderStatusChanged { order, from } => {
                RestaurantEvent::OrderStatusChanged(OrderStatusChanged {
                    seq,
                    restaurant_id,
                    at,
                    order: Order(order),
                    from: from.into(),
                })
            }
            domain::EventKind::MenuItemAvailabilityChanged { menu_item } => {
                RestaurantEvent::MenuItemAvailabilityChanged(MenuItemAvailabilityChanged {
                    seq,
                    restaurant_id,
                    at,
                    menu_item: MenuItem(menu_item),
                })
            }
            domain::EventKind::StaffCalled { call } => RestaurantEvent::StaffCalled(StaffCalled {
                seq,
                restaurant_id,
                at,
                call: StaffCall(call),
            }),
        }
    }
}

#[derive(SimpleObject)]
pub struct OrderPlaced {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    order: Order,
}

#[derive(SimpleObject)]
pub struct OrderStatusChanged {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    /// The order as it was right after this change.
    order: Order,
    from: OrderStatus,
}

#[derive(SimpleObject)]
pub struct MenuItemAvailabilityChanged {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    menu_item: MenuItem,
}

#[derive(SimpleObject)]
pub struct StaffCalled {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    call: StaffCall,
}
