//! Live Swarm state through the Engine API.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{LocalNodeState, Service};
use bollard::query_parameters::ListServicesOptions;
use serde::Serialize;

/// The label `docker stack deploy` puts on every object of a stack.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Seconds bollard waits for one Engine API call.
const REQUEST_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker Engine at {host}: {source}")]
    Connect {
        host: String,
        source: bollard::errors::Error,
    },
    #[error("the Docker Engine at {host} did not answer: {source}")]
    Unreachable {
        host: String,
        source: bollard::errors::Error,
    },
    #[error("the Docker Engine at {host} is not a Swarm manager (swarm state: {state})")]
    NotSwarmManager { host: String, state: String },
    #[error("Docker Engine request `{what}` failed at {host}: {source}")]
    Request {
        host: String,
        what: &'static str,
        source: bollard::errors::Error,
    },
}

impl EngineError {
    /// The hint a user needs to act on this error.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Connect { .. } | Self::Unreachable { .. } => Some(
                "is dockerd running? Check DOCKER_HOST or the environment's `docker_host`; on the testbed run `scripts/testbed up`",
            ),
            Self::NotSwarmManager { .. } => Some(
                "run `docker swarm init --advertise-addr 127.0.0.1` or point at a manager node",
            ),
            Self::Request { .. } => None,
        }
    }
}

/// A connection to one Docker Engine, with the API version negotiated.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

/// One service of a stack as the Swarm runs it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    /// Full Swarm service name, `<stack>_<service>`.
    pub name: String,
    /// The service's name inside its stack file.
    pub stack_service: String,
    /// The image reference in the service spec, exactly as deployed.
    pub image: String,
    /// Whether the image names a digest (`…@sha256:…`), so every node runs the same bytes.
    pub pinned: bool,
    pub global: bool,
    /// Desired tasks (replicas, or one per eligible node for global services).
    pub desired: u64,
    pub running: u64,
    /// The state of the last update (`updating`, `completed`, `rollback_started`, …), if any.
    pub update_state: Option<String>,
}

impl Engine {
    /// Connects to `host` (a `unix://` or `tcp://` address), or, when `None`, to what
    /// `DOCKER_HOST` names (including TLS via `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`),
    /// falling back to the local socket. Then negotiates the API version, so a newer
    /// client talks to an older daemon (the testbed's speaks API 1.41).
    pub async fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        let shown = host
            .map(str::to_owned)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let docker = match host {
            None => Docker::connect_with_defaults(),
            Some(h) if h.starts_with("unix://") => {
                Docker::connect_with_unix(h, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            Some(h) => {
                Docker::connect_with_http(h, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
        }
        .map_err(|source| EngineError::Connect {
            host: shown.clone(),
            source,
        })?;
        let docker =
            docker
                .negotiate_version()
                .await
                .map_err(|source| EngineError::Unreachable {
                    host: shown.clone(),
                    source,
                })?;
        Ok(Self {
            docker,
            host: shown,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying client, for the crate's other modules.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Fails unless this engine is an active Swarm manager.
    pub async fn require_swarm_manager(&self) -> Result<(), EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|source| EngineError::Unreachable {
                host: self.host.clone(),
                source,
            })?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        if active && swarm.control_available == Some(true) {
            return Ok(());
        }
        let state = swarm
            .local_node_state
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let state = if active { "worker".to_owned() } else { state };
        Err(EngineError::NotSwarmManager {
            host: self.host.clone(),
            state,
        })
    }

    /// Every service of `stack`, sorted by name, with running and desired task counts.
    pub async fn stack_services(&self, stack: &str) -> Result<Vec<ServiceState>, EngineError> {
        self.require_swarm_manager().await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{STACK_NAMESPACE_LABEL}={stack}")],
        )]);
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: Some(true),
            }))
            .await
            .map_err(|source| EngineError::Request {
                host: self.host.clone(),
                what: "list services",
                source,
            })?;
        let mut states: Vec<ServiceState> = services
            .into_iter()
            .filter_map(|s| service_state(stack, s))
            .collect();
        states.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(states)
    }
}

fn service_state(stack: &str, service: Service) -> Option<ServiceState> {
    let spec = service.spec?;
    let name = spec.name.unwrap_or_default();
    let stack_service = name
        .strip_prefix(stack)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(&name)
        .to_owned();
    let image = spec
        .task_template
        .and_then(|t| t.container_spec)
        .and_then(|c| c.image)
        .unwrap_or_default();
    let mode = spec.mode.unwrap_or_default();
    let global = mode.global.is_some();
    let status = service.service_status.unwrap_or_default();
    let desired = status
        .desired_tasks
        .or_else(|| {
            mode.replicated
                .and_then(|r| r.replicas)
                .and_then(|r| u64::try_from(r).ok())
        })
        .unwrap_or(0);
    Some(ServiceState {
        pinned: is_pinned(&image),
        name,
        stack_service,
        image,
        global,
        desired,
        running: status.running_tasks.unwrap_or(0),
        update_state: service
            .update_status
            .and_then(|u| u.state)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty()),
    })
}

/// Whether an image reference names its content by digest.
pub fn is_pinned(image: &str) -> bool {
    image.rsplit_once('@').is_some_and(|(_, digest)| {
        digest
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

#[cfg(test)]
mod tests {
    use super::is_pinned;

    #[test]
    fn pinned_means_a_full_sha256_digest() {
        let d = "a".repeat(64);
        assert!(is_pinned(&format!("r.example.com/x:1.0@sha256:{d}")));
        assert!(is_pinned(&format!("x@sha256:{d}")));
        assert!(!is_pinned("r.example.com:5000/x:1.0"));
        assert!(!is_pinned("x@sha256:abc"));
        assert!(!is_pinned(&format!("x@sha512:{d}")));
    }
}
