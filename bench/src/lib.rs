//! orderhub-bench: a load generator that speaks GraphQL over HTTP and graphql-transport-ws,
//! so it measures orderhub and any other server with the same API the same way, and the
//! wire-limit baseline server it is compared with.

pub mod client;
pub mod fanout;
pub mod frame;
pub mod histogram;
pub mod idle;
pub mod reader;
pub mod server_stats;
pub mod setup;
pub mod storm;
pub mod tracker;
pub mod wire;
