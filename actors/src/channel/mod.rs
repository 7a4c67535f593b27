//! Live events: one ChannelActor per restaurant that someone on this node watches, holding
//! the node's subscription to that restaurant on the bus, and one SubscriptionActor per
//! GraphQL subscription, a supervised child of its channel, feeding a bounded buffer.

mod actor;
mod registry;
mod subscriber;

pub use actor::{ChannelActor, ChannelMsg};
pub use registry::{ChannelConfig, ChannelInner, ChannelRegistry};
pub use subscriber::{EndReason, Filter, SubscriberMsg, Subscription, SubscriptionActor};
