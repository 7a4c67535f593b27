//! GraphQL over WebSocket at `/graphql`: both subprotocols, their close codes, keep-alive,
//! one task per connection that reads and writes, and a task for each operation while it runs
//! on its own (a cohort member's task ends once it has caught up: its subscription actor
//! writes to the connection from then on), so that a busy one never holds up another.
//!
//! Imports go one way: `connection` uses `cohort` and `outbox`, `cohort` uses `outbox`, and
//! `outbox` (with the types of what it queues) uses neither.
//!
//! async-graphql-axum's own handler is not used: it closes with the wrong codes, has no
//! connection_init timeout, lets a duplicate id replace a running subscription and never pings.

mod cohort;
mod connection;
mod outbox;
pub mod protocol;

pub use cohort::Cohorts;
pub use connection::{serve, WsServices};
pub use outbox::OpenConnections;
pub use protocol::{close, Protocol};
