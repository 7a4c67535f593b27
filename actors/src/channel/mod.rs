//! Live events: one ChannelActor per restaurant that someone on this node watches, holding
//! the node's subscription to that restaurant on the bus, a child of the registry's supervisor
//! (which restarts it when it fails), and one SubscriptionActor per subscription, a supervised
//! child of its channel, with its own bounded mailbox, seq position, token expiry and
//! slow-consumer cut.

mod actor;
mod registry;
mod subscriber;

pub use actor::{ChannelActor, ChannelMsg};
pub use registry::{ChannelConfig, ChannelInner, ChannelRegistry};
pub use subscriber::{
    Delivery, EndReason, Feeder, Filter, Frame, Joining, Outlet, Refused, Source, Subscriber,
    SubscriberMsg, Subscription, SubscriptionActor,
};
