//! The orderhub core: domain types and rules, the ports the core needs (store, event sink,
//! clock) and the actors that execute a restaurant's commands. No HTTP, SQL or Redis here:
//! adapters in the `orderhub` crate implement the ports.

pub mod channel;
pub mod domain;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod mailbox;
pub mod ports;
pub mod restaurant;
pub mod shutdown;
mod slots;
pub mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{CommandError, ErrorCode, StoreError};
