//! Integration tests: real orderhub nodes on real SQLite files and a real PostgreSQL server
//! started by the harness, spoken to over HTTP.

mod harness;
mod support;
mod ws_client;

mod api;
mod authorization;
mod calibration;
mod catch_up;
mod causal;
mod cli;
mod clock;
mod cluster;
mod cors;
mod faults;
mod framing;
mod hostile;
mod limits;
mod live;
mod manage;
mod menu;
mod nodes;
mod observability;
mod orders;
mod realtime;
mod replica;
mod response_shape;
mod screens;
mod secrets;
mod shutdown;
mod supervision;
mod validation;
mod ws_messages;
