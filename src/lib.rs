//! orderhub: a realtime order hub for restaurants. This crate holds the adapters around the
//! core (`orderhub-actors`): configuration, HTTP, GraphQL, the sqlx store, the buses and the CLI.

pub mod app;
pub mod auth;
pub mod bus;
pub mod config;
pub mod demo;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod rate_limit;
pub mod store;
pub mod ws;
