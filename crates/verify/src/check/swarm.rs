//! Swarm checks, per service: running == desired replicas, every task healthy, every task
//! on the digest recorded for the environment, and an internal service publishes no port.

use std::sync::Arc;
use std::time::Instant;

use engine::{Endpoint, Engine, EngineError, Node, ServiceTasks, TaskHealth};
use tokio::sync::Mutex;

use super::Probed;
use super::lazy::LazyEngine;
use crate::digest::Digest;
use crate::drift::Drift;

/// The stack all Swarm checks of a run look at, and one engine connection for all of them,
/// made on first use (and retried by later attempts if it failed).
///
/// Attempts share listings of the stack: an attempt takes the last listing if it was
/// still in progress when the attempt began, and lists the stack itself otherwise. The
/// checks of a stack's services start together, so one listing (its services, their
/// tasks, a container inspection per task) serves them all, rather than one per service;
/// a retry, begun after its wait, always gets a listing that ended after its wait (its
/// first answers may be older than the attempt by up to one listing's duration).
#[derive(Debug)]
pub struct SwarmTarget {
    stack: String,
    engine: LazyEngine,
    listing: Mutex<Option<Listing>>,
}

#[derive(Debug)]
struct Listing {
    /// When the engine's answers were all in.
    done: Instant,
    stack: Arc<StackListing>,
}

/// One listing of the stack: its services with their tasks, and the Swarm's nodes (for
/// checks that run once per node, `{node}` in an HTTP check's URL).
#[derive(Debug, Default)]
pub(crate) struct StackListing {
    pub services: Vec<ServiceTasks>,
    pub nodes: Vec<Node>,
}

impl SwarmTarget {
    /// `endpoint`: the engine the environment names.
    pub fn new(endpoint: Endpoint, stack: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            stack: stack.into(),
            engine: LazyEngine::new(endpoint),
            listing: Mutex::new(None),
        })
    }

    pub(crate) fn stack(&self) -> &str {
        &self.stack
    }

    /// The stack's services, tasks and nodes, listed by a listing that ended after `since`: the
    /// last one if it did (it was in progress then, and this attempt waited for it), else
    /// a new one. The lock is held while listing, so attempts that begin meanwhile wait for it;
    /// an attempt cut off by its timeout releases the lock without a listing.
    async fn services(
        &self,
        engine: &Engine,
        since: Instant,
    ) -> Result<Arc<StackListing>, EngineError> {
        let mut last = self.listing.lock().await;
        if let Some(listing) = last.as_ref()
            && listing.done >= since
        {
            return Ok(Arc::clone(&listing.stack));
        }
        let (services, nodes) = tokio::try_join!(engine.stack_tasks(&self.stack), engine.nodes())?;
        let stack = Arc::new(StackListing { services, nodes });
        tracing::debug!(
            stack = %self.stack,
            "listed the stack: {} services on {} nodes",
            stack.services.len(),
            stack.nodes.len()
        );
        *last = Some(Listing {
            done: Instant::now(),
            stack: Arc::clone(&stack),
        });
        Ok(stack)
    }

    /// The stack as listed after `since`, connecting first if need be; errors as the
    /// attempt that asked should report them.
    pub(crate) async fn listing(&self, since: Instant) -> Result<Arc<StackListing>, Probed> {
        let engine = match self.engine().await {
            Ok(e) => e,
            Err(e) => return Err(Probed::unreachable(e.to_string())),
        };
        match self.services(engine, since).await {
            Ok(s) => Ok(s),
            Err(e @ (EngineError::Connect { .. } | EngineError::Unreachable { .. })) => {
                Err(Probed::unreachable(e.to_string()))
            }
            Err(e) => Err(Probed::fail(e.to_string())),
        }
    }

    async fn engine(&self) -> Result<&Engine, EngineError> {
        self.engine.get().await
    }
}

/// One service of the stack and what it must look like.
#[derive(Debug, Clone)]
pub struct SwarmProbe {
    pub target: Arc<SwarmTarget>,
    /// The service's name in the stack file.
    pub stack_service: String,
    /// The digest recorded for the environment; `None` when nothing was recorded, and then
    /// digests are reported, not judged.
    pub expected_digest: Option<Digest>,
    /// Declared internal: must publish no port.
    pub internal: bool,
}

impl SwarmProbe {
    pub(crate) fn target(&self) -> String {
        format!("swarm {}_{}", self.target.stack, self.stack_service)
    }

    pub(crate) async fn attempt(&self) -> Probed {
        let listing = match self.target.listing(Instant::now()).await {
            Ok(l) => l,
            Err(probed) => return probed,
        };
        let services = &listing.services;
        if services.is_empty() {
            // Nothing of the stack is there: the environment is not deployed (or was removed),
            // which says nothing about the release being checked.
            return Probed::unreachable(format!(
                "stack {} is not deployed: the engine runs none of its services",
                self.target.stack
            ));
        }
        let Some(service) = services
            .iter()
            .find(|s| s.stack_service == self.stack_service)
        else {
            return Probed::fail(format!(
                "service {} is not deployed in stack {}",
                self.stack_service, self.target.stack
            ));
        };
        self.judge(service)
    }

    fn judge(&self, service: &ServiceTasks) -> Probed {
        let mut problems = Vec::new();
        let running = service.tasks.iter().filter(|t| t.is_running()).count() as u64;
        if running != service.desired {
            let mut why = format!("{running} of {} replicas running", service.desired);
            let states: Vec<String> = service
                .tasks
                .iter()
                .filter(|t| !t.is_running())
                .map(|t| match &t.error {
                    Some(err) => format!("task {} {}: {err}", slot(t.slot), t.state),
                    None => format!("task {} {}", slot(t.slot), t.state),
                })
                .collect();
            if !states.is_empty() {
                why = format!("{why} ({})", states.join(", "));
            }
            problems.push(why);
        }
        // Containers on other nodes cannot be inspected from this engine. Swarm reports a
        // task with a healthcheck as running only once the check has passed, and fails it
        // when the container turns unhealthy, so their running state stands for their
        // health; the summary says so. A container this engine has but could not inspect
        // is a problem.
        let mut on_other_nodes = 0;
        for task in service.tasks.iter().filter(|t| t.is_running()) {
            match &task.health {
                TaskHealth::Healthy | TaskHealth::NoHealthcheck => {}
                TaskHealth::Starting => {
                    problems.push(format!("task {} health: starting", slot(task.slot)));
                }
                TaskHealth::Unhealthy(output) if output.is_empty() => {
                    problems.push(format!("task {} unhealthy", slot(task.slot)));
                }
                TaskHealth::Unhealthy(output) => problems.push(format!(
                    "task {} unhealthy: {}",
                    slot(task.slot),
                    one_line(output)
                )),
                TaskHealth::OtherNode => on_other_nodes += 1,
                TaskHealth::Unknown => problems.push(format!(
                    "task {} health unknown (its container could not be inspected)",
                    slot(task.slot)
                )),
            }
        }
        if let Some(want) = &self.expected_digest {
            for task in &service.tasks {
                match crate::drift::of_image(want, &task.image) {
                    None | Some(Drift::NotRunning) => {}
                    Some(Drift::Foreign { live }) => problems.push(format!(
                        "task {} runs foreign digest {}, recorded {}",
                        slot(task.slot),
                        short(live.as_str()),
                        short(want.as_str())
                    )),
                    Some(Drift::Unpinned { image }) => problems.push(format!(
                        "task {} runs unpinned image {image}, recorded digest {}",
                        slot(task.slot),
                        short(want.as_str())
                    )),
                }
            }
        }
        if self.internal && !service.published_ports.is_empty() {
            let ports: Vec<String> = service
                .published_ports
                .iter()
                .map(|p| format!("{}/{} ({} mode)", p.published, p.protocol, p.mode))
                .collect();
            problems.push(format!(
                "internal service publishes port {}",
                ports.join(", ")
            ));
        }
        let digest = match &self.expected_digest {
            Some(d) => format!("recorded digest {}", short(d.as_str())),
            None => "no digest recorded for the environment (not judged)".to_owned(),
        };
        let mut summary = format!(
            "{running}/{} running, {digest}, {} published port(s)",
            service.desired,
            service.published_ports.len()
        );
        if on_other_nodes > 0 {
            summary.push_str(&format!(
                ", health of {on_other_nodes} task(s) on other nodes taken from Swarm's running \
                 state"
            ));
        }
        if problems.is_empty() {
            Probed {
                summary,
                ..Probed::default()
            }
        } else {
            let cause = problems.join("; ");
            Probed {
                summary: format!("{summary}: {cause}"),
                failure: Some(cause),
                ..Probed::default()
            }
        }
    }
}

fn slot(slot: Option<u64>) -> String {
    slot.map_or_else(|| "(global)".to_owned(), |s| s.to_string())
}

/// `sha256:0123456789ab`: enough to tell digests apart in a one-line message.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::TaskDetail;

    fn task(slot: u64, health: TaskHealth) -> TaskDetail {
        TaskDetail {
            id: format!("t{slot}"),
            slot: Some(slot),
            state: "running".to_owned(),
            image: "r/api:1@sha256:aa".to_owned(),
            container_id: Some(format!("c{slot}")),
            health,
            error: None,
            node_id: Some("n1".to_owned()),
            host_ports: Vec::new(),
        }
    }

    fn service(tasks: Vec<TaskDetail>) -> ServiceTasks {
        ServiceTasks {
            name: "s_api".to_owned(),
            stack_service: "api".to_owned(),
            image: "r/api:1@sha256:aa".to_owned(),
            global: false,
            desired: tasks.len() as u64,
            published_ports: Vec::new(),
            tasks,
        }
    }

    fn probe() -> SwarmProbe {
        SwarmProbe {
            target: SwarmTarget::new(Endpoint::local(), "s"),
            stack_service: "api".to_owned(),
            expected_digest: None,
            internal: false,
        }
    }

    #[test]
    fn a_running_task_on_another_node_passes_on_swarms_word_and_says_so() {
        let p = probe().judge(&service(vec![
            task(1, TaskHealth::Healthy),
            task(2, TaskHealth::OtherNode),
        ]));
        assert_eq!(p.failure, None, "{p:?}");
        assert!(
            p.summary
                .ends_with("health of 1 task(s) on other nodes taken from Swarm's running state"),
            "{}",
            p.summary
        );
    }

    #[test]
    fn a_container_this_engine_could_not_inspect_fails() {
        let p = probe().judge(&service(vec![task(1, TaskHealth::Unknown)]));
        assert_eq!(
            p.failure.as_deref(),
            Some("task 1 health unknown (its container could not be inspected)")
        );
    }

    #[test]
    fn an_unhealthy_or_starting_task_fails() {
        let p = probe().judge(&service(vec![
            task(1, TaskHealth::Unhealthy("curl: (7) refused".to_owned())),
            task(2, TaskHealth::Starting),
        ]));
        assert_eq!(
            p.failure.as_deref(),
            Some("task 1 unhealthy: curl: (7) refused; task 2 health: starting")
        );
    }
}
