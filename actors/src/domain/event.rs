use serde::{Deserialize, Serialize};

use super::{MenuItem, Order, OrderStatus, Restaurant, RestaurantId, StaffCall, Timestamp};

/// Something that happened in one restaurant. `seq` is 1, 2, 3 … per restaurant, assigned by
/// the store in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub restaurant_id: RestaurantId,
    pub seq: i64,
    pub at: Timestamp,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    OrderPlaced {
        order: Order,
    },
    /// `order` is the order right after the change.
    OrderStatusChanged {
        order: Order,
        from: OrderStatus,
    },
    MenuItemAvailabilityChanged {
        menu_item: MenuItem,
    },
    StaffCalled {
        call: StaffCall,
    },
    /// An item was created, changed or archived, or one of its options changed availability.
    MenuItemChanged {
        menu_item: MenuItem,
    },
    /// The restaurant's tax settings changed (later: pausing, stations).
    RestaurantChanged {
        restaurant: Restaurant,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::OrderPlaced { .. } => "OrderPlaced",
            EventKind::OrderStatusChanged { .. } => "OrderStatusChanged",
            EventKind::MenuItemAvailabilityChanged { .. } => "MenuItemAvailabilityChanged",
            EventKind::StaffCalled { .. } => "StaffCalled",
            EventKind::MenuItemChanged { .. } => "MenuItemChanged",
            EventKind::RestaurantChanged { .. } => "RestaurantChanged",
        }
    }

    /// The event with its order's lines given ids if it was stored before lines had them
    /// ([`Order::with_line_ids`]).
    pub fn with_line_ids(self) -> EventKind {
        match self {
            EventKind::OrderPlaced { order } => EventKind::OrderPlaced {
                order: order.with_line_ids(),
            },
            EventKind::OrderStatusChanged { order, from } => EventKind::OrderStatusChanged {
                order: order.with_line_ids(),
                from,
            },
            other => other,
        }
    }

    /// The order this event is about, for `orderUpdated` subscribers.
    pub fn order(&self) -> Option<&Order> {
        match self {
            EventKind::OrderPlaced { order } | EventKind::OrderStatusChanged { order, .. } => {
                Some(order)
            }
            _ => None,
        }
    }
}
