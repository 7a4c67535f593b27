//! Restaurant events and the subscriptions that stream them.

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Context, Interface, SimpleObject, Subscription as SubscriptionRoot, ID};
use orderhub_actors::channel::Filter;
use orderhub_actors::domain::{self, OrderId, RestaurantId};
use orderhub_actors::ports::{Freshness, Owned};
use orderhub_actors::ErrorCode;

use super::live::{self, Rendered};
use super::restaurants::Restaurant;
use super::types::{DateTime, MenuItem, Order, OrderStatus, StaffCall};
use super::{owner, parse_id, principal, services, ApiError};
use std::sync::Arc;

pub struct Subscription;

/// Request data for a member of a cohort catching up: `restaurantEvents` replays the stored
/// events from `after` up to and including this seq, and ends.
pub struct CatchUpTo(pub i64);

/// Request data for a cohort's shared execution: `restaurantEvents` reports here its
/// restaurant and the seq after which its live events start.
pub struct SharedExecution {
    pub live_after: Box<LiveAfter>,
}

/// Told the restaurant and the seq after which a shared execution's live events start.
pub type LiveAfter = dyn Fn(&RestaurantId, i64) + Send + Sync;

type EventStream<T> = BoxStream<'static, Result<T, ApiError>>;

#[SubscriptionRoot]
impl Subscription {
    /// Staff and admin. Every event of one restaurant in seq order, with no gap and no duplicate. With `after`, first replays every retained event with seq > after, then goes on live. An `after` before the retained history, or past the newest event (a store restored from a backup), fails with HISTORY_GONE and `extensions.lastSeq`, the newest seq: reload the state and resume from there.
    async fn restaurant_events(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        after: Option<i32>,
    ) -> Result<EventStream<RestaurantEvent>, ApiError> {
        let by = principal(ctx)?;
        let restaurant = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        by.may_operate(&restaurant)?;
        let services = services(ctx)?;
        let history = services
            .store
            .history(&restaurant)
            .await?
            .ok_or_else(|| ApiError::not_found("restaurant"))?;
        let after = after.map(i64::from);
        if let Some(after) = after {
            if after < 0 {
                return Err(ApiError::bad_input("after must be a seq, 0 or more"));
            }
            if !history.covers(after) {
                // Pruned, or past the newest event: either way the client's state cannot be
                // brought up to date by events, so it reloads and resumes from the newest.
                return Err(ApiError::new(
                    ErrorCode::HistoryGone,
                    "the events after that seq cannot be replayed (no longer retained, or past the newest event); reload the current state and resume with after: extensions.lastSeq",
                )
                .with_last_seq(history.last_seq));
            }
        }
        if let Some(CatchUpTo(until)) = ctx.data_opt::<CatchUpTo>() {
            let events = live::replay(
                services.store.clone(),
                restaurant,
                ctx.data_opt::<Arc<Rendered>>().cloned(),
                after.unwrap_or(*until),
                *until,
            );
            return Ok(events
                .map(|event| event.map(|e| RestaurantEvent::from(e.as_ref().clone())))
                .boxed());
        }
        let shared = ctx.data_opt::<SharedExecution>();
        let subscription = match shared {
            Some(shared) => {
                let subscription = services.channels.join_shared(&restaurant).await?;
                (shared.live_after)(&restaurant, subscription.live_after);
                subscription
            }
            None => {
                let expires_in = by.expires_at().map(live::expires_in);
                let filter = Filter::All;
                services
                    .channels
                    .join(&restaurant, filter, expires_in)
                    .await?
            }
        };
        let events = live::events(
            "restaurantEvents",
            services.store.clone(),
            restaurant,
            ctx.data_opt::<Arc<Rendered>>().cloned(),
            subscription,
            after,
            shared.is_none(),
        );
        Ok(events
            .map(|event| event.map(|e| RestaurantEvent::from(e.as_ref().clone())))
            .boxed())
    }

    /// The order each time it changes, starting with its current state. A customer may watch the orders of its own table.
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<EventStream<Order>, ApiError> {
        let by = principal(ctx)?;
        let order_id = parse_id("orderId", &order_id, OrderId::parse)?;
        let services = services(ctx)?;
        let restaurant = owner(ctx, Owned::Order(&order_id), "order").await?;
        // Joined before reading the current state, so that no change falls in between.
        let expires_in = by.expires_at().map(live::expires_in);
        let filter = Filter::Order(order_id.clone());
        let subscription = services
            .channels
            .join(&restaurant, filter, expires_in)
            .await?;
        // From the writer: the state that the changes after the join build on.
        let current = services
            .store
            .order(&order_id, Freshness::Current)
            .await?
            .filter(|order| by.may_see_order(order))
            .ok_or_else(|| ApiError::not_found("order"))?;
        let mut version = current.version;
        let changes = live::events(
            "orderUpdated",
            services.store.clone(),
            restaurant,
            ctx.data_opt::<Arc<Rendered>>().cloned(),
            subscription,
            None,
            true,
        )
        .filter_map(move |event| {
            let change = match event {
                Err(error) => Some(Err(error)),
                Ok(event) => match event.kind.order() {
                    Some(order) if order.version > version => {
                        version = order.version;
                        Some(Ok(Order(order.clone())))
                    }
                    _ => None,
                },
            };
            std::future::ready(change)
        });
        Ok(stream::once(std::future::ready(Ok(Order(current))))
            .chain(changes)
            .boxed())
    }
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
    MenuItemChanged(MenuItemChanged),
    RestaurantChanged(RestaurantChanged),
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
            domain::EventKind::MenuItemChanged { menu_item } => {
                RestaurantEvent::MenuItemChanged(MenuItemChanged {
                    seq,
                    restaurant_id,
                    at,
                    archived: menu_item.archived,
                    menu_item: MenuItem(menu_item),
                })
            }
            domain::EventKind::RestaurantChanged { restaurant } => {
                RestaurantEvent::RestaurantChanged(RestaurantChanged {
                    seq,
                    restaurant_id,
                    at,
                    // Its menu and tables, if asked for, as fresh as the event.
                    restaurant: Restaurant(restaurant, Freshness::Current),
                })
            }
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

/// An item was created, changed or archived, or one of its options changed availability.
#[derive(SimpleObject)]
pub struct MenuItemChanged {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    menu_item: MenuItem,
    archived: bool,
}

/// Ordering paused or resumed, stations or tax settings changed.
#[derive(SimpleObject)]
pub struct RestaurantChanged {
    seq: i32,
    restaurant_id: ID,
    at: DateTime,
    restaurant: Restaurant,
}
