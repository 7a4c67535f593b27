//! Orders: reading them, placing them, moving them along.

use async_graphql::{Context, InputObject, Object, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orderhub_actors::domain::{
    self, LineRequest, MenuItemId, OptionId, OrderId, PlaceOrderRequest, Principal, RestaurantId,
    TableId, Timestamp,
};
use orderhub_actors::ports::{Freshness, OrderPage, OrderQuery as PageQuery, Owned};
use orderhub_actors::restaurant::{Reply, RestaurantMsg};

use super::types::{Order, OrderConnection, OrderEdge, OrderStatus, PageInfo, ServiceMode};
use super::{
    at_least, command, freshness, owner, parse_id, principal, reflects, services, ApiError,
    ApiResult,
};

const MAX_PAGE: i32 = 100;

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// A customer may read the orders of its own table; staff those of its restaurant.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least_seq: Option<i32>,
    ) -> ApiResult<Option<Order>> {
        let by = principal(ctx)?;
        let id = parse_id("id", &id, OrderId::parse)?;
        let store = &services(ctx)?.store;
        let order = match by.restaurant_id() {
            Some(restaurant) => {
                let fresh = freshness(ctx, restaurant, at_least_seq).await?;
                store.order(&id, fresh).await?
            }
            // An admin's token names no restaurant to know the replica's progress in: the
            // writer, and the seq checked against the order's restaurant.
            None => match at_least(at_least_seq)? {
                None => store.order(&id, Freshness::Recent).await?,
                Some(seq) => {
                    let order = store.order(&id, Freshness::Current).await?;
                    if let Some(order) = &order {
                        let newest = store.history(&order.restaurant_id).await?;
                        reflects(seq, newest.map_or(0, |h| h.last_seq))?;
                    }
                    order
                }
            },
        };
        // Another table's order reads as missing: its existence is not the caller's business.
        Ok(order.filter(|o| by.may_see_order(o)).map(Order))
    }

    /// Staff and admin. Newest first.
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, MAX_PAGE) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        statuses: Option<Vec<OrderStatus>>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
        at_least_seq: Option<i32>,
    ) -> ApiResult<OrderConnection> {
        let by = principal(ctx)?;
        let restaurant_id = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        by.may_operate(&restaurant_id)?;
        let first = first.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::bad_input(format!(
                "first must be 1 to {MAX_PAGE}"
            )));
        }
        let limit = first as usize;
        let query = PageQuery {
            restaurant_id,
            statuses: statuses
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            limit: limit + 1,
            before: after.as_deref().map(decode_cursor).transpose()?,
        };
        let services = services(ctx)?;
        let at_least_seq = at_least(at_least_seq)?;
        let fresh = at_least_seq.map_or(Freshness::Recent, |seq| {
            services.reads.freshness_for(&query.restaurant_id, seq)
        });
        let OrderPage { mut orders, seq } = services.store.orders(&query, fresh).await?;
        // From the writer (the replica lacked it), `seq` is the newest there is.
        if let Some(at_least_seq) = at_least_seq {
            reflects(at_least_seq, seq)?;
        }
        let has_next_page = orders.len() > limit;
        orders.truncate(limit);
        let edges: Vec<OrderEdge> = orders
            .into_iter()
            .map(|order| OrderEdge {
                cursor: encode_cursor(&order),
                node: Order(order),
            })
            .collect();
        let end_cursor = edges.last().map(|edge| edge.cursor.clone());
        Ok(OrderConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            seq,
        })
    }
}

/// Opaque to clients: the keyset position (placed_at, id) of the last order of a page.
fn encode_cursor(order: &domain::Order) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", order.placed_at.millis(), order.id))
}

fn decode_cursor(cursor: &str) -> ApiResult<(Timestamp, OrderId)> {
    let invalid = || ApiError::bad_input("after is not a cursor returned by orders");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (millis, id) = text.split_once(':').ok_or_else(invalid)?;
    let millis = millis.parse().map_err(|_| invalid())?;
    Ok((Timestamp(millis), OrderId::parse(id).ok_or_else(invalid)?))
}

#[derive(InputObject)]
pub struct OrderItemInput {
    menu_item_id: ID,
    /// 1 to 99.
    quantity: i32,
    note: Option<String>,
    /// The chosen options: each group's count within its min and max, no option twice. Order does not matter (also not for idempotency).
    option_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct PlaceOrderInput {
    restaurant_id: ID,
    table_id: ID,
    items: Vec<OrderItemInput>,
    note: Option<String>,
    /// Chosen by the client, 1 to 128 characters. The same key for the same restaurant returns the same order: a retried request never orders twice.
    idempotency_key: String,
    /// Defaults to EAT_IN.
    service_mode: Option<ServiceMode>,
}

impl PlaceOrderInput {
    fn into_request(self) -> ApiResult<PlaceOrderRequest> {
        if self.items.len() > domain::MAX_LINES {
            return Err(ApiError::bad_input(format!(
                "an order has at most {} lines",
                domain::MAX_LINES
            )));
        }
        let items = self
            .items
            .into_iter()
            .map(|line| {
                let option_ids = line.option_ids.unwrap_or_default();
                if option_ids.len() > domain::MAX_OPTIONS_PER_LINE {
                    return Err(ApiError::bad_input(format!(
                        "a line chooses at most {} options",
                        domain::MAX_OPTIONS_PER_LINE
                    )));
                }
                Ok(LineRequest {
                    menu_item_id: parse_id("menuItemId", &line.menu_item_id, MenuItemId::parse)?,
                    quantity: i64::from(line.quantity),
                    note: line.note,
                    option_ids: option_ids
                        .iter()
                        .map(|id| parse_id("optionIds", id, OptionId::parse))
                        .collect::<ApiResult<_>>()?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(PlaceOrderRequest {
            restaurant_id: parse_id("restaurantId", &self.restaurant_id, RestaurantId::parse)?,
            table_id: parse_id("tableId", &self.table_id, TableId::parse)?,
            items,
            note: self.note,
            idempotency_key: self.idempotency_key,
            service_mode: self.service_mode.map(Into::into).unwrap_or_default(),
        })
    }
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Customer (for its own table), staff or admin.
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> ApiResult<Order> {
        let by = principal(ctx)?;
        let request = input.into_request()?;
        // Checked again by the actor; checked here so that no actor is spawned for a
        // restaurant the caller cannot order from.
        by.may_act_for_table(&request.restaurant_id, &request.table_id)?;
        let restaurant = request.restaurant_id.clone();
        let order = command(ctx, &restaurant, |by, reply| RestaurantMsg::PlaceOrder {
            by,
            request: request.clone(),
            reply,
        })
        .await?;
        Ok(Order(order))
    }

    /// Staff. Moves an order one step along PLACED -> ACCEPTED -> PREPARING -> READY -> SERVED; any other move fails with INVALID_TRANSITION. With expectedVersion, fails with CONFLICT if the order has changed since.
    async fn advance_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        to: OrderStatus,
        expected_version: Option<i32>,
    ) -> ApiResult<Order> {
        on_order(ctx, &order_id, |by, order_id, reply| {
            RestaurantMsg::AdvanceOrder {
                by,
                order_id,
                to: to.into(),
                expected_version: expected_version.map(i64::from),
                reply,
            }
        })
        .await
    }

    /// Staff: from PLACED, ACCEPTED or PREPARING. A customer: its own order while still PLACED.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        reason: String,
    ) -> ApiResult<Order> {
        on_order(ctx, &order_id, |by, order_id, reply| {
            RestaurantMsg::CancelOrder {
                by,
                order_id,
                reason: reason.clone(),
                reply,
            }
        })
        .await
    }
}

/// Sends a command about an existing order to the actor of the order's restaurant.
async fn on_order(
    ctx: &Context<'_>,
    order_id: &ID,
    message: impl Fn(Principal, OrderId, Reply<domain::Order>) -> RestaurantMsg,
) -> ApiResult<Order> {
    let order_id = parse_id("orderId", order_id, OrderId::parse)?;
    let restaurant = owner(ctx, Owned::Order(&order_id), "order").await?;
    let order = command(ctx, &restaurant, |by, reply| {
        message(by, order_id.clone(), reply)
    })
    .await?;
    Ok(Order(order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let order_id = OrderId::generate();
        let encoded = URL_SAFE_NO_PAD.encode(format!("1234:{order_id}"));
        assert_eq!(
            decode_cursor(&encoded).unwrap(),
            (Timestamp(1234), order_id)
        );
        for garbage in ["", "!!", "bm9jb2xvbg", &URL_SAFE_NO_PAD.encode("x:y")] {
            assert!(decode_cursor(garbage).is_err(), "{garbage}");
        }
    }
}
