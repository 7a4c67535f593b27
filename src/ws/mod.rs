//! GraphQL over WebSocket at `/graphql`: both subprotocols, their close codes, keep-alive,
//! and one task per operation so that a busy subscription never holds up another.
//!
//! async-graphql-axum's own handler is not used: it closes with the wrong codes, has no
//! connection_init timeout, lets a duplicate id replace a running subscription and never pings.

mod cohort;
mod connection;
mod outbox;
pub mod protocol;

pub use cohort::Cohorts;
pub use connection::{serve, WsConfig, WsServices};
pub use protocol::{close, Protocol};
