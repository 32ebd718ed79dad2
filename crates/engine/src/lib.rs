//! Docker Engine access for the release toolchain.
//!
//! Two concerns live here, both in Docker's own vocabulary:
//! - [`stack`]: reading (and later rendering) compose stack files, the input of
//!   `docker stack deploy`;
//! - [`swarm`]: live Swarm state read through the Engine API (bollard), honouring
//!   `DOCKER_HOST` and negotiating the API version with the daemon.

pub mod stack;
pub mod swarm;

pub use stack::{PublishedPort, StackError, StackFile, StackService};
pub use swarm::{Engine, EngineError, ServiceState};
