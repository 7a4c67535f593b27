//! The restaurant actors: one per restaurant per node, spawned on first use, stopped when idle,
//! restarted by the registry's supervisor when one fails.

mod actor;
mod menu;
mod registry;

pub use actor::{Queued, Reply, RestaurantActor, RestaurantMsg};
pub use registry::{Deps, RegistryConfig, RestaurantRegistry};
