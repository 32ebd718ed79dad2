//! Live Swarm state through the Engine API.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{LocalNodeState, Service};
use bollard::query_parameters::ListServicesOptions;
use serde::Serialize;

use crate::cause::{self, Cause, classify};
use crate::endpoint::{Address, Endpoint, EndpointError};

/// The label `docker stack deploy` puts on every object of a stack.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Seconds bollard waits for one Engine API call.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long connecting (version negotiation, or the SSH check) may take: an address
/// that drops packets would otherwise hang for the kernel's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The endpoint cannot be connected as configured (a usage error, not an outage).
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("cannot connect to the Docker Engine at {endpoint}: {cause} ({detail})")]
    Connect {
        endpoint: String,
        cause: Cause,
        detail: String,
        hint: String,
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
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Endpoint(e) => Some(e.hint()),
            Self::Connect { hint, .. } => Some(hint.clone()),
            Self::Unreachable { .. } => Some(
                "is dockerd running, and does the environment's docker_host/docker_context name it?".to_owned(),
            ),
            Self::NotSwarmManager { .. } => Some(
                "run `docker swarm init --advertise-addr 127.0.0.1` or point at a manager node"
                    .to_owned(),
            ),
            Self::Request { .. } => None,
        }
    }

    /// Whether the engine could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Unreachable { .. })
    }

    fn connect(endpoint: &Endpoint, cause: Cause, detail: String) -> Self {
        Self::Connect {
            endpoint: endpoint.to_string(),
            hint: cause.hint(endpoint),
            cause,
            detail,
        }
    }
}

/// A connection to one Docker Engine, with the API version negotiated.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: Endpoint,
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
    /// When the service's spec last changed (a deploy, a scale, a rollback), RFC 3339 as
    /// the engine reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `step` of connecting to `endpoint`, bounded by [`CONNECT_TIMEOUT`]; its error, or
/// `silence` when the time runs out, becomes the connect failure naming the endpoint.
async fn bounded<T, E: std::error::Error + 'static>(
    endpoint: &Endpoint,
    silence: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            let (cause, detail) = classify(&e);
            Err(EngineError::connect(endpoint, cause, detail))
        }
        Err(_) => Err(EngineError::connect(
            endpoint,
            Cause::TimedOut,
            format!("{silence} within {}s", CONNECT_TIMEOUT.as_secs()),
        )),
    }
}

/// A connection failure without a cause, made specific where the engine speaks TLS and
/// says why on a fresh connection (see [`crate::tls::rejection`]).
async fn unspecific_tls_failure(endpoint: &Endpoint, detail: String) -> EngineError {
    let rejection = match (endpoint.address(), endpoint.tls()) {
        (Address::Tcp { host, port }, Some(tls)) => crate::tls::rejection(tls, host, *port).await,
        _ => None,
    };
    match rejection {
        Some(e) => {
            let (cause, detail) = classify(&e);
            EngineError::connect(endpoint, cause, detail)
        }
        None => EngineError::connect(endpoint, Cause::Other, detail),
    }
}

impl Engine {
    /// Connects to `endpoint` and negotiates the API version, so a newer client talks to
    /// an older daemon (Engine 20.10 speaks API 1.41). Nothing is sent but the version
    /// request, so a failure here has changed nothing on the engine.
    ///
    /// Over ssh://, the engine (with its clones) owns one `ssh` control master, started
    /// here and closed when the last clone and pooled connection is dropped: a process
    /// must let its runtime drop its tasks before it exits, or the master outlives it.
    pub async fn connect(endpoint: &Endpoint) -> Result<Self, EngineError> {
        endpoint.check()?;
        let version = bollard::API_DEFAULT_VERSION;
        let made = match endpoint.address() {
            Address::Unix(path) => Docker::connect_with_unix(
                &format!("unix://{}", path.display()),
                REQUEST_TIMEOUT_SECS,
                version,
            ),
            Address::Tcp { host, port } => match endpoint.tls() {
                Some(tls) => crate::tls::docker(
                    tls,
                    &format!("{host}:{port}"),
                    REQUEST_TIMEOUT_SECS,
                    version,
                ),
                None => Docker::connect_with_http(&endpoint.host(), REQUEST_TIMEOUT_SECS, version),
            },
            Address::Ssh { user, host, port } => {
                ssh_check(endpoint, user.as_deref(), host, *port).await?;
                // One master for this engine and its clones, not one per pooled
                // connection as bollard's own ssh transport does (whose connects, when
                // cancelled, leave masters running): see the `ssh` module.
                let target = crate::ssh::Target {
                    user: user.as_deref(),
                    host,
                    port: *port,
                };
                let master = bounded(
                    endpoint,
                    "ssh gave no answer",
                    crate::ssh::Master::launch(&target, CONNECT_TIMEOUT / 2),
                )
                .await?;
                crate::ssh::docker(master, &endpoint.host(), REQUEST_TIMEOUT_SECS, version)
            }
        };
        let docker = made.map_err(|e| {
            let (cause, detail) = classify(&e);
            EngineError::connect(endpoint, cause, detail)
        })?;
        let docker = match bounded(endpoint, "no answer", docker.negotiate_version()).await {
            Ok(docker) => docker,
            Err(EngineError::Connect {
                cause: Cause::Other,
                detail,
                ..
            }) => return Err(unspecific_tls_failure(endpoint, detail).await),
            Err(e) => return Err(e),
        };
        Ok(Self {
            docker,
            host: endpoint.to_string(),
            endpoint: endpoint.clone(),
        })
    }

    /// The endpoint this engine was reached at.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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

/// Runs `docker version` on the far side through the system `ssh`, with the options the
/// Docker CLI's own SSH helper gets in effect: no prompt (`BatchMode`), and a host key that
/// must already be known (`StrictHostKeyChecking=yes`; the CLI's `ask` fails without a
/// terminal). The engine's master (`crate::ssh`) checks host keys as strictly; checking
/// with `docker version` first also tells a far side without a usable docker CLI
/// (`SshRemote`) apart, in `ssh`'s own words, before any API request.
async fn ssh_check(
    endpoint: &Endpoint,
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
) -> Result<(), EngineError> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs() / 2))
        .arg("-T");
    if let Some(p) = port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(u) = user {
        cmd.arg("-l").arg(u);
    }
    cmd.arg("--")
        .arg(host)
        .args(["docker", "version", "--format", "{{.Server.APIVersion}}"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    crate::deploy::scrub_release_vars(&mut cmd);
    let out = match tokio::time::timeout(CONNECT_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(EngineError::connect(
                endpoint,
                Cause::Other,
                format!("cannot run ssh: {e}"),
            ));
        }
        Err(_) => {
            return Err(EngineError::connect(
                endpoint,
                Cause::TimedOut,
                format!("ssh gave no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            ));
        }
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = cause::one_line(&stderr);
    // 255 is ssh's own failure; any other status is the remote command's.
    let cause = match out.status.code() {
        Some(255) => cause::of_text(&stderr),
        _ => Cause::SshRemote,
    };
    let detail = if detail.is_empty() {
        format!("ssh exited with {}", out.status)
    } else {
        detail
    };
    Err(EngineError::connect(endpoint, cause, detail))
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
    let updated_at: Option<String> = service.updated_at;
    Some(ServiceState {
        updated_at,
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

/// Whether an image reference names its content by digest
/// ([`registry_client::PinnedImage`]: lowercase hex, as the gate compares it).
pub fn is_pinned(image: &str) -> bool {
    registry_client::PinnedImage::parse(image).is_ok()
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

    /// Uppercase hex was accepted here while the records and the gate refuse it, so a
    /// stack could count as pinned to a digest no record could ever match.
    #[test]
    fn uppercase_hex_is_not_a_pin() {
        let upper = "A".repeat(64);
        assert!(!is_pinned(&format!("r.example.com/x:1.0@sha256:{upper}")));
    }
}
