//! The Swarm's nodes, and what a lost node means for a rolling update being watched.
//!
//! [`Engine::nodes`] lists the nodes as the manager sees them: hostname, role, state
//! (`ready`, `down`, `unknown`, `disconnected`), availability (`active`, `pause`,
//! `drain`), the address the node talks to the manager from, and which manager leads.
//!
//! [`judge_node_loss`] is the decision [`Engine::watch`](crate::Engine::watch) takes for
//! every watched service on each poll round, from what swarmkit does when a node is lost
//! during an update (see `docs/swarm.md` for the full account):
//!
//! - **Down** (the node stopped heartbeating): the manager marks it `down` only after the
//!   heartbeat grace, 3 × the 5 s heartbeat period (`manager/dispatcher/nodes.go`
//!   `nodeStore.Heartbeat`, `manager/dispatcher/dispatcher.go` `register`'s `expireFunc` →
//!   `markNodeNotReady`). Its tasks keep their last reported state: the dispatcher moves
//!   them to `orphaned` only after `defaultNodeDownPeriod`, 24 h
//!   (`moveTasksToOrphaned`). The replicated orchestrator shuts them down and starts
//!   replacements on the remaining nodes at once (`manager/orchestrator/replicated/
//!   tasks.go` `handleNodeChange` → `restartTasksByNodeID`, `restart.Supervisor.Restart`).
//!   But the updater waits, with no timeout, for the very task it created to reach
//!   `running` (`manager/orchestrator/update/updater.go` `Updater.updateTask`): a new task
//!   that had not reached `running` when its node died never will, so that update never
//!   completes, even with every replica running elsewhere. That is a failure now, not at
//!   the deadline. A new task that was already running when its node died has released the
//!   updater, which finishes on the remaining nodes: the watch keeps waiting.
//!   A new task the remaining nodes cannot take (`pending`, "no suitable node") while a
//!   node holding the service's tasks is down is waited for likewise: a failure after
//!   [`UNPLACED_GRACE`].
//! - **Drained**: the node's agent is alive and stops its tasks, which end as `shutdown`;
//!   that ends the updater's wait, and replacements start on the remaining nodes. Swarm
//!   itself decides whether a task of this update stopped within its monitor window is a
//!   failure (`Updater.Run`'s `failureTriggersAction`): the watch keeps waiting and, if the
//!   update pauses or rolls back, says which node was drained. A new task the other nodes
//!   cannot take while a node is drained fails after [`UNPLACED_GRACE`], as for a down
//!   node.
//! - **The rollback** with a node down or drained can be held the same way; it is done as
//!   far as the nodes allow per [`rollback_held_by_lost_nodes`].
//! - **Unknown / disconnected**: not yet a verdict (the node may come back, or be marked
//!   down): reported, and waited for.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState as ApiNodeState, TaskState,
};
use bollard::query_parameters::{ListNodesOptions, ListServicesOptions, ListTasksOptions};
use serde::Serialize;

use crate::swarm::{Engine, EngineError, STACK_NAMESPACE_LABEL};

/// How long a new task may sit, not yet running, on a node the manager has marked down
/// before the watch declares the update failed.
///
/// Waiting longer cannot help: swarmkit's `Updater.updateTask` waits for that task with no
/// timeout, and the dispatcher moves it out of its last state (to `orphaned`) only after
/// `defaultNodeDownPeriod`, 24 h. The node is marked down only after 3 missed 5 s
/// heartbeats (about 15 s of silence), so it is not a blip either. The few seconds cover
/// the manager's own reaction to the `down` write (the orchestrator shutting the node's
/// tasks down and creating replacements, batched by the dispatcher every 100 ms) and the
/// node and task lists being read in separate requests, so the failure reports a settled
/// picture: about a dozen 250 ms poll rounds.
pub const NODE_DOWN_GRACE: Duration = Duration::from_secs(3);

/// How long a new task may stay unplaced (`pending`, "no suitable node"), while a node
/// holding the service's tasks is down, before the watch declares the update failed.
///
/// Swarm's scheduler keeps such a task pending and retries it on every node change
/// (`manager/scheduler/scheduler.go` `noSuitableNode`), and the updater waits for it like
/// for any other (`Updater.updateTask`): with a node gone, the remaining nodes may lack room
/// for it (a host-mode port already taken on each, `max_replicas_per_node`, resources).
/// But the same error is also normal for a moment during a healthy update, while old
/// tasks stop and release their ports: that takes up to their stop grace period, 10 s by
/// default (`api/defaults/service.go`). So: that, plus [`NODE_DOWN_GRACE`].
pub const UNPLACED_GRACE: Duration = Duration::from_secs(13);

/// A node's state as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Ready,
    /// The node missed its heartbeats; the manager considers it gone.
    Down,
    /// A manager just took over and has not heard from the node yet.
    Unknown,
    /// The node's agent is looking for another manager.
    Disconnected,
}

/// Whether the scheduler may place tasks on a node, as its operator set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    /// No new tasks; running ones stay.
    Pause,
    /// No tasks: running ones are shut down and rescheduled elsewhere.
    Drain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

/// One node of the Swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub state: NodeState,
    pub availability: Availability,
    /// The node's address as the manager sees it (`Status.Addr`): where its host-mode
    /// published ports are reached.
    pub addr: String,
    /// The manager currently leading the Swarm.
    pub leader: bool,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Down => "down",
            Self::Unknown => "unknown",
            Self::Disconnected => "disconnected",
        }
    }
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pause => "pause",
            Self::Drain => "drain",
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manager => "manager",
            Self::Worker => "worker",
        }
    }
}

impl Node {
    /// How the node is lost to its tasks, if it is: `down`, `drained`, `unknown`,
    /// `disconnected`.
    pub fn loss(&self) -> Option<&'static str> {
        match (self.state, self.availability) {
            (NodeState::Down, _) => Some("down"),
            (_, Availability::Drain) => Some("drained"),
            (NodeState::Unknown, _) => Some("in state unknown"),
            (NodeState::Disconnected, _) => Some("disconnected"),
            _ => None,
        }
    }
}

impl Engine {
    /// Every node of the Swarm, sorted by hostname. Needs a manager.
    pub async fn nodes(&self) -> Result<Vec<Node>, EngineError> {
        let nodes = self
            .docker()
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|source| self.node_request("list nodes", source))?;
        let mut nodes: Vec<Node> = nodes.into_iter().map(node).collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        Ok(nodes)
    }
}

/// Where a stack runs: the Swarm's nodes, and the nodes each service's running tasks are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub nodes: Vec<Node>,
    /// Full Swarm service name → the hostname of each running task's node, sorted (a
    /// hostname appears once per task there).
    pub services: BTreeMap<String, Vec<String>>,
}

impl Engine {
    /// The Swarm's nodes and where the running tasks of `stack`'s services run.
    pub async fn placement(&self, stack: &str) -> Result<Placement, EngineError> {
        let nodes = self.nodes().await?;
        let services = self
            .docker()
            .list_services(Some(ListServicesOptions {
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{STACK_NAMESPACE_LABEL}={stack}")],
                )])),
                status: Some(false),
            }))
            .await
            .map_err(|source| self.node_request("list services", source))?;
        let names: HashMap<String, String> = services
            .into_iter()
            .filter_map(|s| Some((s.id?, s.spec?.name?)))
            .collect();
        let mut placed: BTreeMap<String, Vec<String>> = names
            .values()
            .map(|name| (name.clone(), Vec::new()))
            .collect();
        if names.is_empty() {
            return Ok(Placement {
                nodes,
                services: placed,
            });
        }
        let tasks = self
            .docker()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([
                    ("service".to_owned(), names.keys().cloned().collect()),
                    ("desired-state".to_owned(), vec!["running".to_owned()]),
                ])),
            }))
            .await
            .map_err(|source| self.node_request("list tasks", source))?;
        let hostnames: HashMap<&str, &str> = nodes
            .iter()
            .map(|n| (n.id.as_str(), n.hostname.as_str()))
            .collect();
        for task in tasks {
            let running = task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
            // The service filter also matches by prefix: keep the stack's own services.
            let Some(name) = task.service_id.as_ref().and_then(|id| names.get(id)) else {
                continue;
            };
            let Some(node_id) = task.node_id.as_deref().filter(|_| running) else {
                continue;
            };
            let host = hostnames
                .get(node_id)
                .map_or_else(|| short_id(node_id).to_owned(), |h| (*h).to_owned());
            placed.entry(name.clone()).or_default().push(host);
        }
        for hosts in placed.values_mut() {
            hosts.sort();
        }
        Ok(Placement {
            nodes,
            services: placed,
        })
    }

    fn node_request(&self, what: &'static str, source: bollard::errors::Error) -> EngineError {
        EngineError::Request {
            host: self.host().to_owned(),
            what,
            source,
        }
    }
}

fn node(n: bollard::models::Node) -> Node {
    let spec = n.spec.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    let id = n.id.unwrap_or_default();
    let hostname = n
        .description
        .and_then(|d| d.hostname)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| id.chars().take(12).collect());
    Node {
        hostname,
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => Role::Manager,
            _ => Role::Worker,
        },
        state: match status.state {
            Some(ApiNodeState::READY) => NodeState::Ready,
            Some(ApiNodeState::DOWN) => NodeState::Down,
            Some(ApiNodeState::DISCONNECTED) => NodeState::Disconnected,
            _ => NodeState::Unknown,
        },
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            _ => Availability::Active,
        },
        addr: status.addr.unwrap_or_default(),
        leader: n.manager_status.and_then(|m| m.leader).unwrap_or_default(),
        id,
    }
}

/// One task of a watched service, as [`judge_node_loss`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedTask {
    pub id: String,
    pub slot: Option<u64>,
    pub node_id: Option<String>,
    /// The last state the task's node reported.
    pub state: TaskState,
    /// Created during this deploy (not among the service's tasks before it).
    pub new: bool,
    /// Swarm's error for the task (the scheduler's "no suitable node (…)" for one it
    /// cannot place).
    pub error: Option<String>,
    /// How long the watch has seen the task pending with an error (zero otherwise).
    pub unplaced_for: Duration,
}

/// A node as the watch saw it, with how long it has been seen down.
#[derive(Debug, Clone)]
pub struct SeenNode<'a> {
    pub node: &'a Node,
    /// Zero when the node is not down (or was first seen down this round).
    pub down_for: Duration,
}

/// What a lost node means for one watched service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeLoss {
    /// One line per lost node holding (or that held, in this deploy) a task of the
    /// service: `node prod-2 is down; 1 task there`.
    pub notices: Vec<String>,
    /// Set when Swarm will not finish the update: the cause, naming the node and tasks.
    pub fail: Option<String>,
}

/// A rollback that a lost node holds up, as [`rollback_held_by_lost_nodes`] judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackHeld {
    /// Every running task is back on the previous spec and every missing one waits for a
    /// node: rolled back as far as the remaining nodes allow. The note names the nodes.
    AsFarAsNodesAllow(String),
    /// Swarm's rollback itself waits for a task no remaining node can take, with tasks
    /// still on the new spec: it cannot proceed until the node is back.
    Stuck(String),
}

/// Whether a rollback is held up by a lost node: a task Swarm wants running has been
/// unplaced (`pending`, "no suitable node") for [`UNPLACED_GRACE`] while a node is down
/// or drained. `None`: keep waiting.
///
/// Swarm's rollback is an update too (`Updater.updateTask` waits for each new task with no
/// timeout), so with a node gone and no room for a replica on the others (a host-mode port
/// taken on each, `max_replicas_per_node`), it stays `rollback_started` until the node
/// comes back: waiting longer changes nothing. `missing` is how many desired tasks are not
/// running on the previous spec; `back` whether the spec and every running task are on
/// the previous image.
pub fn rollback_held_by_lost_nodes(
    missing: u64,
    back: bool,
    tasks: &[WatchedTask],
    nodes: &[Node],
) -> Option<RollbackHeld> {
    let lost: Vec<String> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Down || n.availability == Availability::Drain)
        .map(|n| format!("{} is {}", n.hostname, n.loss().unwrap_or("lost")))
        .collect();
    let unplaced: Vec<&WatchedTask> = tasks
        .iter()
        .filter(|t| t.state == TaskState::PENDING && t.unplaced_for >= UNPLACED_GRACE)
        .collect();
    if lost.is_empty() || unplaced.is_empty() {
        return None;
    }
    let error = unplaced
        .iter()
        .find_map(|t| t.error.as_deref())
        .unwrap_or("no suitable node");
    let note = format!(
        "{} cannot be placed while node {}: {error}",
        match unplaced.len() {
            1 => "1 task".to_owned(),
            n => format!("{n} tasks"),
        },
        lost.join(", node ")
    );
    Some(if back && unplaced.len() as u64 >= missing {
        RollbackHeld::AsFarAsNodesAllow(note)
    } else {
        RollbackHeld::Stuck(note)
    })
}

/// Relates the nodes to one service's tasks. `updating` is whether the service's update
/// of this deploy is still in progress (`update_status.state == updating`).
pub fn judge_node_loss(
    service: &str,
    updating: bool,
    tasks: &[WatchedTask],
    nodes: &[SeenNode<'_>],
) -> NodeLoss {
    let by_id: HashMap<&str, &SeenNode<'_>> =
        nodes.iter().map(|n| (n.node.id.as_str(), n)).collect();
    let mut loss = NodeLoss::default();
    let mut causes = Vec::new();
    // Per lost node, in the order of `nodes` (sorted by hostname).
    for seen in nodes {
        let Some(how) = seen.node.loss() else {
            continue;
        };
        let here: Vec<&WatchedTask> = tasks
            .iter()
            .filter(|t| t.node_id.as_deref() == Some(seen.node.id.as_str()))
            // This deploy's tasks, and earlier ones the node still held (not finished).
            .filter(|t| t.new || !is_final(t.state))
            .collect();
        if here.is_empty() {
            continue;
        }
        let count = match here.len() {
            1 => "1 task there".to_owned(),
            n => format!("{n} tasks there"),
        };
        loss.notices.push(format!(
            "{service}: node {} is {how}; {count}",
            seen.node.hostname
        ));
        if seen.node.state != NodeState::Down || !updating {
            continue;
        }
        // The updater's own task, stuck where the dead node left it.
        let stuck: Vec<&&WatchedTask> = here
            .iter()
            .filter(|t| t.new && !reached_running(t.state))
            .collect();
        if stuck.is_empty() || seen.down_for < NODE_DOWN_GRACE {
            continue;
        }
        let listed: Vec<String> = stuck
            .iter()
            .map(|t| {
                let slot = t.slot.map(|s| format!(" (slot {s})")).unwrap_or_default();
                format!("task {}{slot} {}", short_id(&t.id), t.state)
            })
            .collect();
        causes.push(format!(
            "node {} ({}) went down during the update, leaving {} of this deploy short of \
             running there: {}",
            seen.node.hostname,
            seen.node.addr,
            if stuck.len() == 1 {
                "1 new task".to_owned()
            } else {
                format!("{} new tasks", stuck.len())
            },
            listed.join(", ")
        ));
    }
    // A new task the remaining nodes cannot take, once a down node held the service's
    // tasks, or while a node is drained (its tasks have stopped by then: the operator took
    // its capacity away, and the scheduler retries only when a node changes).
    let down_here = nodes.iter().any(|seen| {
        seen.node.state == NodeState::Down
            && tasks.iter().any(|t| {
                t.node_id.as_deref() == Some(seen.node.id.as_str()) && (t.new || !is_final(t.state))
            })
    });
    let drained = nodes
        .iter()
        .any(|seen| seen.node.availability == Availability::Drain);
    // While Swarm still updates, old tasks may be stopping and releasing ports: wait out
    // their stop grace. Once its update is done (a new task that reached running on the
    // node before it died released the updater, and the orchestrator's replacement is left
    // to the scheduler), nothing else is in flight that could free a node: a replacement
    // with no node is stuck until the node returns, and waiting longer cannot help.
    let grace = if updating {
        UNPLACED_GRACE
    } else {
        NODE_DOWN_GRACE
    };
    let unplaced: Vec<&WatchedTask> = tasks
        .iter()
        .filter(|t| t.new && t.state == TaskState::PENDING && t.error.is_some())
        .filter(|t| t.unplaced_for >= grace)
        .collect();
    if (down_here || drained) && !unplaced.is_empty() {
        let lost: Vec<String> = nodes
            .iter()
            .filter_map(|n| match (n.node.state, n.node.availability) {
                (NodeState::Down, _) => Some(format!("{} down", n.node.hostname)),
                (_, Availability::Drain) => Some(format!("{} drained", n.node.hostname)),
                _ => None,
            })
            .collect();
        causes.push(format!(
            "with node {}, the remaining nodes cannot take {}: {}",
            lost.join(", node "),
            if unplaced.len() == 1 {
                "1 new task".to_owned()
            } else {
                format!("{} new tasks", unplaced.len())
            },
            unplaced
                .iter()
                .map(|t| {
                    let slot = t.slot.map(|s| format!(" (slot {s})")).unwrap_or_default();
                    format!(
                        "task {}{slot} pending for {}s: {}",
                        short_id(&t.id),
                        t.unplaced_for.as_secs(),
                        t.error.as_deref().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // A task on a node the manager no longer lists (removed with `docker node rm --force`)
    // is lost as well, and equally waited for.
    let gone: Vec<&WatchedTask> = tasks
        .iter()
        .filter(|t| t.new && !reached_running(t.state))
        .filter(|t| {
            t.node_id
                .as_deref()
                .is_some_and(|id| !id.is_empty() && !by_id.contains_key(id))
        })
        .collect();
    if updating && !gone.is_empty() && !nodes.is_empty() {
        causes.push(format!(
            "{} new task(s) of this deploy were on a node that left the Swarm: {}",
            gone.len(),
            gone.iter()
                .map(|t| format!("task {} {}", short_id(&t.id), t.state))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !causes.is_empty() {
        causes.push(
            "Swarm's updater waits for those tasks and will not finish the update on the \
             remaining nodes"
                .to_owned(),
        );
        loss.fail = Some(causes.join("; "));
    }
    loss
}

/// Whether a task got to `running` or past it; spelled out rather than compared, since
/// swarmkit's order (`api/types.proto` `TaskState`) is a protocol fact, not a Rust one.
fn reached_running(state: TaskState) -> bool {
    !matches!(
        state,
        TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY
            | TaskState::STARTING
    )
}

/// A state a task never leaves.
fn is_final(state: TaskState) -> bool {
    reached_running(state) && state != TaskState::RUNNING
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, state: NodeState, availability: Availability) -> Node {
        Node {
            id: id.to_owned(),
            hostname: format!("prod-{id}"),
            role: Role::Worker,
            state,
            availability,
            addr: format!("198.18.0.1{id}"),
            leader: false,
        }
    }

    fn task(id: &str, node: &str, state: TaskState, new: bool) -> WatchedTask {
        WatchedTask {
            id: id.to_owned(),
            slot: Some(2),
            node_id: Some(node.to_owned()),
            state,
            new,
            error: None,
            unplaced_for: Duration::ZERO,
        }
    }

    fn seen(node: &Node, down_for: Duration) -> SeenNode<'_> {
        SeenNode { node, down_for }
    }

    #[test]
    fn a_new_task_stuck_on_a_down_node_fails_once_the_grace_has_passed() {
        let ready = node("1", NodeState::Ready, Availability::Active);
        let down = node("3", NodeState::Down, Availability::Active);
        let tasks = [
            task("new1", "1", TaskState::RUNNING, true),
            // The updater's task, preparing when the node died; the orchestrator has set
            // it to shut down and started a replacement, which is running.
            task("new2", "3", TaskState::PREPARING, true),
            task("repl2", "1", TaskState::RUNNING, true),
        ];
        let early = judge_node_loss(
            "api",
            true,
            &tasks,
            &[
                seen(&ready, Duration::ZERO),
                seen(&down, Duration::from_secs(1)),
            ],
        );
        assert_eq!(early.notices, ["api: node prod-3 is down; 1 task there"]);
        assert_eq!(early.fail, None, "within the grace: {early:?}");

        let late = judge_node_loss(
            "api",
            true,
            &tasks,
            &[seen(&ready, Duration::ZERO), seen(&down, NODE_DOWN_GRACE)],
        );
        let cause = late.fail.unwrap_or_default();
        assert!(
            cause.starts_with(
                "node prod-3 (198.18.0.13) went down during the update, leaving 1 new task of \
                 this deploy short of running there: task new2 (slot 2) preparing"
            ),
            "{cause}"
        );
        assert!(cause.ends_with("will not finish the update on the remaining nodes"));
    }

    #[test]
    fn a_down_node_whose_tasks_had_reached_running_keeps_the_watch_waiting() {
        let ready = node("1", NodeState::Ready, Availability::Active);
        let down = node("2", NodeState::Down, Availability::Active);
        let tasks = [
            // Running when its node died: the updater had moved on; Swarm replaced it.
            task("new1", "2", TaskState::RUNNING, true),
            task("repl1", "1", TaskState::RUNNING, true),
            task("new2", "1", TaskState::RUNNING, true),
            // An old task of the node that finished long ago is not "there".
            task("old0", "2", TaskState::SHUTDOWN, false),
        ];
        let loss = judge_node_loss(
            "api",
            true,
            &tasks,
            &[
                seen(&ready, Duration::ZERO),
                seen(&down, Duration::from_secs(60)),
            ],
        );
        assert_eq!(loss.notices, ["api: node prod-2 is down; 1 task there"]);
        assert_eq!(loss.fail, None);
    }

    #[test]
    fn a_drained_node_is_reported_and_left_to_swarm() {
        let drained = node("2", NodeState::Ready, Availability::Drain);
        let tasks = [
            task("new1", "2", TaskState::STARTING, true),
            task("old1", "2", TaskState::RUNNING, false),
        ];
        let loss = judge_node_loss(
            "api",
            true,
            &tasks,
            &[seen(&drained, Duration::from_secs(60))],
        );
        assert_eq!(loss.notices, ["api: node prod-2 is drained; 2 tasks there"]);
        assert_eq!(
            loss.fail, None,
            "the agent stops them: the updater is not stuck"
        );
    }

    #[test]
    fn a_new_task_the_remaining_nodes_cannot_take_fails_after_the_unplaced_grace() {
        // Seen on a 3-node testbed: 3 replicas with a host-mode port, one node down; the
        // third new task has no node with the port free.
        let ready = node("1", NodeState::Ready, Availability::Active);
        let down = node("3", NodeState::Down, Availability::Active);
        let pending = |unplaced_for| WatchedTask {
            node_id: None,
            error: Some("no suitable node (host-mode port already in use on 2 nodes)".to_owned()),
            unplaced_for,
            ..task("new1", "", TaskState::PENDING, true)
        };
        let held = task("old2", "3", TaskState::RUNNING, false);
        let judge = |t: WatchedTask| {
            judge_node_loss(
                "web",
                true,
                &[t, held.clone()],
                &[
                    seen(&ready, Duration::ZERO),
                    seen(&down, Duration::from_secs(20)),
                ],
            )
        };
        assert_eq!(judge(pending(Duration::from_secs(5))).fail, None);
        let cause = judge(pending(UNPLACED_GRACE)).fail.unwrap_or_default();
        assert!(
            cause.starts_with(
                "with node prod-3 down, the remaining nodes cannot take 1 new task: task new1 \
                 (slot 2) pending for 13s: no suitable node (host-mode port already in use on 2 \
                 nodes)"
            ),
            "{cause}"
        );
    }

    /// Seen on the testbed: the new task on prod-3 had reached running when prod-3 died, so
    /// Swarm completed the update; the orchestrator's replacement for that slot has no
    /// node (`max_replicas_per_node: 1`, two nodes left) and the deploy waited out its
    /// deadline.
    #[test]
    fn a_replacement_unplaceable_after_the_update_completed_fails_after_the_node_down_grace() {
        let ready = node("1", NodeState::Ready, Availability::Active);
        let down = node("3", NodeState::Down, Availability::Active);
        let replacement = |unplaced_for| WatchedTask {
            node_id: None,
            error: Some("no suitable node (max replicas per node limit exceed)".to_owned()),
            unplaced_for,
            ..task("new4", "", TaskState::PENDING, true)
        };
        let lost = task("new3", "3", TaskState::RUNNING, true);
        let judge = |t: WatchedTask| {
            judge_node_loss(
                "api",
                false,
                &[t, lost.clone()],
                &[
                    seen(&ready, Duration::ZERO),
                    seen(&down, Duration::from_secs(8)),
                ],
            )
        };
        assert_eq!(judge(replacement(Duration::from_secs(1))).fail, None);
        let cause = judge(replacement(NODE_DOWN_GRACE)).fail.unwrap_or_default();
        assert!(
            cause.starts_with("with node prod-3 down, the remaining nodes cannot take 1 new task"),
            "{cause}"
        );
    }

    #[test]
    fn a_new_task_unplaceable_while_a_node_is_drained_fails_after_the_unplaced_grace() {
        // Seen on the 3-node testbed: 3 replicas, `max_replicas_per_node: 1`, prod-3
        // drained during the update; the drained node's tasks have all stopped.
        let ready = node("1", NodeState::Ready, Availability::Active);
        let drained = node("3", NodeState::Ready, Availability::Drain);
        let pending = |unplaced_for| WatchedTask {
            node_id: None,
            error: Some("no suitable node (max replicas per node limit exceed)".to_owned()),
            unplaced_for,
            ..task("new3", "", TaskState::PENDING, true)
        };
        let stopped = task("old3", "3", TaskState::SHUTDOWN, false);
        let judge = |t: WatchedTask| {
            judge_node_loss(
                "api",
                true,
                &[t, stopped.clone()],
                &[seen(&ready, Duration::ZERO), seen(&drained, Duration::ZERO)],
            )
        };
        assert_eq!(judge(pending(Duration::from_secs(5))).fail, None);
        let cause = judge(pending(UNPLACED_GRACE)).fail.unwrap_or_default();
        assert!(
            cause.starts_with(
                "with node prod-3 drained, the remaining nodes cannot take 1 new task: task \
                 new3 (slot 2) pending for 13s"
            ),
            "{cause}"
        );
    }

    #[test]
    fn a_rollback_held_by_a_lost_node_is_judged_after_the_unplaced_grace() {
        // Seen on the 3-node testbed: 3 replicas, `max_replicas_per_node: 1`, prod-3
        // drained; Swarm's own rollback stays `rollback_started` with a task pending.
        let ready = node("1", NodeState::Ready, Availability::Active);
        let drained = node("3", NodeState::Ready, Availability::Drain);
        let pending = |unplaced_for| WatchedTask {
            node_id: None,
            error: Some("no suitable node (max replicas per node limit exceed)".to_owned()),
            unplaced_for,
            ..task("t3", "", TaskState::PENDING, true)
        };
        let nodes = [ready.clone(), drained];
        let note = "1 task cannot be placed while node prod-3 is drained: no suitable node \
                    (max replicas per node limit exceed)";
        assert_eq!(
            rollback_held_by_lost_nodes(1, true, &[pending(Duration::from_secs(5))], &nodes),
            None
        );
        // 2 of 3 back on the previous image, the third waits for a node: done.
        assert_eq!(
            rollback_held_by_lost_nodes(1, true, &[pending(UNPLACED_GRACE)], &nodes),
            Some(RollbackHeld::AsFarAsNodesAllow(note.to_owned()))
        );
        // Tasks still on the new image behind the pending one: Swarm's rollback is stuck.
        assert_eq!(
            rollback_held_by_lost_nodes(3, false, &[pending(UNPLACED_GRACE)], &nodes),
            Some(RollbackHeld::Stuck(note.to_owned()))
        );
        assert_eq!(
            rollback_held_by_lost_nodes(2, true, &[pending(UNPLACED_GRACE)], &nodes),
            Some(RollbackHeld::Stuck(note.to_owned()))
        );
        // Every node there: the scheduler will place it, keep waiting.
        assert_eq!(
            rollback_held_by_lost_nodes(1, true, &[pending(UNPLACED_GRACE)], &[ready]),
            None
        );
    }

    #[test]
    fn a_completed_update_is_not_failed_by_a_later_node_loss() {
        let down = node("3", NodeState::Down, Availability::Active);
        let tasks = [task("new1", "3", TaskState::ASSIGNED, true)];
        let loss = judge_node_loss("api", false, &tasks, &[seen(&down, Duration::from_secs(9))]);
        assert_eq!(loss.notices.len(), 1);
        assert_eq!(loss.fail, None);
    }

    #[test]
    fn nodes_without_tasks_of_the_service_are_not_mentioned() {
        let down = node("3", NodeState::Down, Availability::Active);
        let unknown = node("4", NodeState::Unknown, Availability::Active);
        let tasks = [task("new1", "1", TaskState::RUNNING, true)];
        let loss = judge_node_loss(
            "api",
            true,
            &tasks,
            &[
                seen(&down, Duration::from_secs(9)),
                seen(&unknown, Duration::ZERO),
            ],
        );
        assert_eq!(loss, NodeLoss::default());
    }

    #[test]
    fn a_task_on_a_node_removed_from_the_swarm_fails_too() {
        let ready = node("1", NodeState::Ready, Availability::Active);
        let tasks = [task("new1", "9", TaskState::PREPARING, true)];
        let loss = judge_node_loss("api", true, &tasks, &[seen(&ready, Duration::ZERO)]);
        assert!(
            loss.fail
                .as_deref()
                .is_some_and(|c| c.contains("left the Swarm: task new1 preparing")),
            "{loss:?}"
        );
    }
}
