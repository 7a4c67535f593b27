//! GraphQL over WebSocket at `/graphql`: both subprotocols, their close codes, keep-alive,
//! one task per connection that reads, writes and holds the subscriptions their cohorts serve,
//! and a task for each operation that runs on its own, so that a busy one never holds up
//! another.
//!
//! async-graphql-axum's own handler is not used: it closes with the wrong codes, has no
//! connection_init timeout, lets a duplicate id replace a running subscription and never pings.

mod cohort;
mod connection;
mod outbox;
pub mod protocol;

pub use cohort::Cohorts;
pub use connection::{serve, WsConfig, WsServices};
pub use outbox::OpenConnections;
pub use protocol::{close, Protocol};
