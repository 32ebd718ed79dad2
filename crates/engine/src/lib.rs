//! Docker Engine access for the release toolchain.
//!
//! Three concerns live here, all in Docker's own vocabulary:
//! - [`stack`]: reading (and later rendering) compose stack files, the input of
//!   `docker stack deploy`;
//! - [`swarm`]: live Swarm state read through the Engine API (bollard), honouring
//!   `DOCKER_HOST` and negotiating the API version with the daemon;
//! - [`image`]: builds and pushes through the engine, with build output streamed.

pub mod image;
pub mod stack;
pub mod swarm;

pub use image::{BuildSpec, ImageError, PushAuth};
pub use stack::{PublishedPort, StackError, StackFile, StackService};
pub use swarm::{Engine, EngineError, ServiceState};
