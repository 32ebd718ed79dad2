//! Docker Engine access for the release toolchain.
//!
//! The concerns that live here, all in Docker's own vocabulary:
//! - [`stack`]: reading and rendering compose stack files, the input of
//!   `docker stack deploy`;
//! - [`deploy`]: applying a rendered stack, watching it converge, rolling it back;
//! - [`compose`]: applying a rendered compose file with `docker compose` and judging the
//!   project's containers (running, healthy, on the pinned digest);
//! - [`endpoint`]: which engine to talk to (unix, tcp with TLS, ssh, a CLI context, or the
//!   process environment as the Docker CLI reads it), for the API and for CLI children;
//! - [`swarm`]: live Swarm state read through the Engine API (bollard), connecting to an
//!   [`Endpoint`] and negotiating the API version with the daemon ([`cause`] tells why a
//!   connection failed);
//! - [`image`]: builds and pushes through the engine, with build output streamed;
//! - [`buildkit`]: BuildKit builds through `docker buildx build` on the same engine;
//! - [`nodes`]: the Swarm's nodes, and what a lost or drained node means for a deploy.

pub mod buildkit;
pub mod cause;
pub mod compose;
pub mod deploy;
pub mod endpoint;
pub mod image;
pub mod nodes;
pub mod proxy;
mod ssh;
pub mod stack;
pub mod swarm;
pub mod tasks;
mod tls;

pub use buildkit::{BuildSecret, Progress as BuildProgress, SecretSource};
pub use cause::Cause;
pub use compose::{
    Applied, ApplyError, ComposeContainer, ComposeError, Problem, compose_config, compose_down,
    compose_up,
};
pub use deploy::{
    Change, DeployError, Outcome, Progress, Snapshot, StackApplied, keep_from_children,
    stack_deploy, stack_rm, verdict,
};
pub use endpoint::{Address, Endpoint, EndpointError, Tls};
pub use image::{BuildSpec, ImageError, PushAuth};
pub use nodes::{Availability, Node, NodeLoss, NodeState, Placement, Role};
pub use stack::{
    PolicyProblem, PublishedPort, ServiceRules, StackError, StackFile, StackService, is_latest,
};
pub use swarm::{Engine, EngineError, ServiceState};
pub use tasks::{LivePort, ServiceTasks, TaskDetail, TaskHealth};
