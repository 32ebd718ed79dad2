//! Per-task detail of a stack's services, for health checks: each current task's state,
//! the image it runs, its container's health, and the ports the service publishes.
//!
//! Swarm reports task state but not container health; health lives on the container,
//! so each running task's container is inspected on the engine we talk to. On a
//! multi-node Swarm, containers on other nodes cannot be inspected from here (the engine
//! answers 404): their health is reported as such, not guessed; any other failure to
//! inspect is reported as unknown.

use std::collections::HashMap;

use bollard::models::{HealthStatusEnum, Service, Task, TaskState};
use bollard::query_parameters::{InspectContainerOptions, ListServicesOptions, ListTasksOptions};
use futures_util::future::join_all;
use serde::Serialize;

use crate::swarm::{Engine, EngineError, STACK_NAMESPACE_LABEL};

/// One service of a stack with its current tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceTasks {
    /// Full Swarm service name, `<stack>_<service>`.
    pub name: String,
    /// The service's name inside its stack file.
    pub stack_service: String,
    /// The image in the service spec.
    pub image: String,
    pub global: bool,
    /// Replicas of a replicated service; for a global service, the tasks Swarm wants.
    pub desired: u64,
    /// Ports the service publishes now (live endpoint, else its endpoint spec).
    pub published_ports: Vec<LivePort>,
    /// Tasks Swarm wants running (desired state `running`), by slot.
    pub tasks: Vec<TaskDetail>,
}

/// A port a service publishes on the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePort {
    pub published: u16,
    pub target: u16,
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

/// One task as Swarm and its container report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDetail {
    pub id: String,
    pub slot: Option<u64>,
    /// `running`, `starting`, `failed`, …
    pub state: String,
    /// The image the task runs, exactly as in its spec (`repo:tag@sha256:…`).
    pub image: String,
    pub container_id: Option<String>,
    pub health: TaskHealth,
    /// Swarm's error for the task, if any.
    pub error: Option<String>,
    /// The node Swarm placed the task on (`Node::id`), once it is assigned.
    pub node_id: Option<String>,
    /// Ports the task itself publishes on its node (`publish_mode: host`), as bound.
    pub host_ports: Vec<LivePort>,
}

/// The health of a task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum TaskHealth {
    Healthy,
    /// Within the healthcheck's start period.
    Starting,
    /// The last healthcheck output, trimmed.
    Unhealthy(String),
    /// The image and the stack declare no healthcheck.
    NoHealthcheck,
    /// The engine we talk to does not have the container: it runs on another node.
    OtherNode,
    /// No container yet, or inspecting it failed.
    Unknown,
}

impl TaskDetail {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Whether the task runs and publishes a port on its own node (host mode).
    pub fn publishes_on_node(&self) -> bool {
        self.is_running() && !self.host_ports.is_empty()
    }

    /// The digest the task's image is pinned to, if it is.
    pub fn digest(&self) -> Option<registry_client::Digest> {
        registry_client::PinnedImage::parse(&self.image)
            .ok()
            .map(|p| p.digest().clone())
    }
}

impl Engine {
    /// Every service of `stack` with its current tasks, sorted by name.
    pub async fn stack_tasks(&self, stack: &str) -> Result<Vec<ServiceTasks>, EngineError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{STACK_NAMESPACE_LABEL}={stack}")],
        )]);
        let services = self
            .docker()
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: Some(true),
            }))
            .await
            .map_err(|source| self.request("list services", source))?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self
            .docker()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([
                    ("service".to_owned(), ids.clone()),
                    ("desired-state".to_owned(), vec!["running".to_owned()]),
                ])),
            }))
            .await
            .map_err(|source| self.request("list tasks", source))?;
        // The service filter also matches by prefix; keep the stack's own services' tasks.
        let tasks: Vec<Task> = tasks
            .into_iter()
            .filter(|t| t.service_id.as_ref().is_some_and(|id| ids.contains(id)))
            .collect();
        let details = join_all(tasks.iter().map(|t| self.task_detail(t))).await;
        let mut by_service: HashMap<String, Vec<TaskDetail>> = HashMap::new();
        for (task, detail) in tasks.iter().zip(details) {
            by_service
                .entry(task.service_id.clone().unwrap_or_default())
                .or_default()
                .push(detail);
        }
        let mut out: Vec<ServiceTasks> = services
            .into_iter()
            .filter_map(|s| {
                let id = s.id.clone().unwrap_or_default();
                let mut tasks = by_service.remove(&id).unwrap_or_default();
                tasks.sort_by_key(|t| (t.slot, t.id.clone()));
                service_tasks(stack, s, tasks)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn task_detail(&self, task: &Task) -> TaskDetail {
        let status = task.status.clone().unwrap_or_default();
        let state = status.state.unwrap_or(TaskState::NEW);
        let host_ports = status
            .port_status
            .and_then(|p| p.ports)
            .unwrap_or_default()
            .into_iter()
            .filter_map(live_port)
            .collect();
        let container_id = status
            .container_status
            .and_then(|c| c.container_id)
            .filter(|c| !c.is_empty());
        let health = match (&container_id, state) {
            (Some(id), TaskState::RUNNING) => self.container_health(id).await,
            _ => TaskHealth::Unknown,
        };
        TaskDetail {
            id: task.id.clone().unwrap_or_default(),
            slot: task.slot.and_then(|s| u64::try_from(s).ok()),
            state: state.to_string(),
            image: task
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            container_id,
            health,
            error: status.err.filter(|e| !e.is_empty()),
            node_id: task.node_id.clone().filter(|n| !n.is_empty()),
            host_ports,
        }
    }

    async fn container_health(&self, id: &str) -> TaskHealth {
        let container = match self
            .docker()
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return TaskHealth::OtherNode,
            Err(_) => return TaskHealth::Unknown,
        };
        let Some(health) = container.state.and_then(|s| s.health) else {
            return TaskHealth::NoHealthcheck;
        };
        match health.status {
            Some(HealthStatusEnum::HEALTHY) => TaskHealth::Healthy,
            Some(HealthStatusEnum::STARTING) => TaskHealth::Starting,
            Some(HealthStatusEnum::UNHEALTHY) => {
                let output = health
                    .log
                    .and_then(|log| log.into_iter().last())
                    .and_then(|r| r.output)
                    .map(|o| o.trim().chars().take(200).collect())
                    .unwrap_or_default();
                TaskHealth::Unhealthy(output)
            }
            _ => TaskHealth::NoHealthcheck,
        }
    }

    fn request(&self, what: &'static str, source: bollard::errors::Error) -> EngineError {
        EngineError::Request {
            host: self.host().to_owned(),
            what,
            source,
        }
    }
}

fn live_port(p: bollard::models::EndpointPortConfig) -> Option<LivePort> {
    Some(LivePort {
        published: u16::try_from(p.published_port?).ok()?,
        target: p
            .target_port
            .and_then(|t| u16::try_from(t).ok())
            .unwrap_or(0),
        protocol: p.protocol.map(|p| p.to_string()).unwrap_or_default(),
        mode: p.publish_mode.map(|m| m.to_string()).unwrap_or_default(),
    })
}

fn service_tasks(stack: &str, service: Service, tasks: Vec<TaskDetail>) -> Option<ServiceTasks> {
    let spec = service.spec?;
    let name = spec.name.clone().unwrap_or_default();
    let stack_service = name
        .strip_prefix(stack)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(&name)
        .to_owned();
    let mode = spec.mode.clone().unwrap_or_default();
    let global = mode.global.is_some();
    let desired = service
        .service_status
        .and_then(|s| s.desired_tasks)
        .or_else(|| {
            mode.replicated
                .and_then(|r| r.replicas)
                .and_then(|r| u64::try_from(r).ok())
        })
        .unwrap_or(0);
    let live = service.endpoint.and_then(|e| e.ports);
    let declared = spec.endpoint_spec.and_then(|e| e.ports);
    let published_ports = live
        .filter(|p| !p.is_empty())
        .or(declared)
        .unwrap_or_default()
        .into_iter()
        .filter_map(live_port)
        .collect();
    Some(ServiceTasks {
        image: spec
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.image)
            .unwrap_or_default(),
        name,
        stack_service,
        global,
        desired,
        published_ports,
        tasks,
    })
}
