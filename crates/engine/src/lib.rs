//! Docker Engine access for the release toolchain.
//!
//! The concerns here, all in Docker's own vocabulary:
//! - [`stack`]: reading and rendering compose stack files, the input of
//!   `docker stack deploy`;
//! - [`deploy`]: applying a rendered stack, watching it converge, rolling it back;
//! - [`swarm`]: live Swarm state read through the Engine API (bollard), honouring
//!   `DOCKER_HOST` and negotiating the API version with the daemon;
//! - [`image`]: builds and pushes through the engine, with build output streamed;
//! - [`nodes`]: the Swarm's nodes, and what a lost or drained node means for a deploy.

pub mod deploy;
pub mod image;
pub mod nodes;
pub mod stack;
pub mod swarm;
pub mod tasks;

pub use deploy::{Change, DeployError, Outcome, Progress, Snapshot, stack_deploy};
pub use image::{BuildSpec, ImageError, PushAuth};
pub use nodes::{Availability, Node, NodeLoss, NodeState, Placement, Role};
pub use stack::{PublishedPort, StackError, StackFile, StackService};
pub use swarm::{Engine, EngineError, ServiceState};
pub use tasks::{LivePort, ServiceTasks, TaskDetail, TaskHealth};
