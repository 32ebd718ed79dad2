//! Applying a rendered stack and knowing, through the Engine API, whether it converged.
//!
//! The stack is applied by the Docker CLI (`docker stack deploy`), the reference
//! compose-to-Swarm conversion. Everything after that is watched here:
//! 1. [`Engine::snapshot`] before applying: each service's spec, version, update status
//!    and task ids, so we can tell what the deploy changed and which tasks are new;
//! 2. [`Engine::watch`] every changed service at once until its new tasks run (healthy,
//!    since Swarm keeps a task with a health check in `starting` until it is) for the
//!    service's `update_config.monitor` window, or until it fails or the deadline passes.
//!    Each poll round also reads the Swarm's node list (once for all services): a node that
//!    is down or drained while it holds a watched task is reported at once, and a new task
//!    stranded on a down node fails the service within [`NODE_DOWN_GRACE`](crate::nodes::NODE_DOWN_GRACE) of the manager
//!    marking the node down, since Swarm's updater would wait for it indefinitely
//!    ([`crate::nodes`] explains why);
//! 3. [`Engine::roll_back`] the changed services on failure, through Swarm's server-side
//!    rollback (`rollback=previous`), and wait until the rollback converges.
//!
//! Server-side rollback rather than re-applying the previous stack file: Swarm restores
//! exactly the spec it ran before, including the registry credentials it was given with
//! `--with-registry-auth` (an inspected spec does not carry them), it honours each service's
//! `rollback_config`, and it works on the first deploy of a version even when no earlier
//! rendered stack is on record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{Service, ServiceSpec, ServiceUpdateStatusStateEnum, Task, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use futures_util::future::join_all;

use crate::endpoint::Endpoint;
use crate::nodes::{
    Node, NodeState, RollbackHeld, SeenNode, UNPLACED_GRACE, WatchedTask, judge_node_loss,
    rollback_held_by_lost_nodes,
};
use crate::swarm::{Engine, EngineError, STACK_NAMESPACE_LABEL};

/// Swarm's default `update_config.monitor` when a service sets none.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// How often service and task state is polled while watching.
const POLL: Duration = Duration::from_millis(250);
/// Bound on retries of a rollback request that lost a race with another writer.
const ROLLBACK_ATTEMPTS: u32 = 5;
/// Extra rollbacks when a racing Swarm-initiated rollback left the service on the new spec.
const MAX_ROLLBACK_RE_REQUESTS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot run `docker stack deploy` for stack {stack}: {source}")]
    Spawn {
        stack: String,
        source: std::io::Error,
    },
    #[error("`docker stack deploy` of stack {stack} failed (exit {code}): {output}")]
    Apply {
        stack: String,
        code: String,
        output: String,
    },
    #[error("`docker stack rm` of stack {stack} failed (exit {code}): {output}")]
    Remove {
        stack: String,
        code: String,
        output: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Attempts of `docker stack deploy` when Swarm refuses a service update as "update out
/// of sequence": the CLI read the service, then Swarm itself changed it (its own rollback
/// or update finishing, e.g. when a lost node comes back) before the CLI wrote, so the
/// write names a stale version (swarmkit's store rejects it, `ErrSequenceConflict`).
/// Applying the whole stack again reads the new version; seen on the testbed when a
/// promotion was re-run while Swarm finished a rollback.
const STACK_DEPLOY_ATTEMPTS: u32 = 4;
/// Pause between those attempts, times the attempt number.
const STACK_DEPLOY_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Runs `docker stack deploy --resolve-image never --with-registry-auth -c FILE STACK`
/// against `endpoint`, with the registry login the Docker CLI holds. No credential ever
/// appears on the command line. The child's engine variables are all set or removed
/// from `endpoint`, so it reaches the engine the caller watches and no other. An "update
/// out of sequence" refusal is retried (see [`STACK_DEPLOY_ATTEMPTS`]); `docker stack
/// deploy` is idempotent.
pub async fn stack_deploy(
    endpoint: &Endpoint,
    stack: &str,
    file: &Path,
) -> Result<(), DeployError> {
    let mut attempt = 1;
    loop {
        match stack_deploy_once(endpoint, stack, file).await {
            Err(DeployError::Apply { output, .. })
                if attempt < STACK_DEPLOY_ATTEMPTS && output.contains("update out of sequence") =>
            {
                tracing::warn!(
                    stack,
                    attempt,
                    "`docker stack deploy` raced a change Swarm made itself (update out of sequence); applying again"
                );
                tokio::time::sleep(STACK_DEPLOY_RETRY_DELAY * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn stack_deploy_once(
    endpoint: &Endpoint,
    stack: &str,
    file: &Path,
) -> Result<(), DeployError> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args([
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "--with-registry-auth",
    ])
    .arg("-c")
    .arg(file)
    .arg(stack);
    let failed = run_docker(endpoint, cmd)
        .await
        .map_err(|source| DeployError::Spawn {
            stack: stack.to_owned(),
            source,
        })?;
    failed.map_err(|f| DeployError::Apply {
        stack: stack.to_owned(),
        code: f.code,
        output: f.output,
    })
}

/// Runs `docker stack rm STACK` and waits, until `deadline`, for the stack's services and
/// containers to be gone (the CLI returns before they are), so that the name can be
/// deployed again.
pub async fn stack_rm(engine: &Engine, stack: &str, deadline: Instant) -> Result<(), DeployError> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(["stack", "rm", stack]);
    let failed = run_docker(engine.endpoint(), cmd)
        .await
        .map_err(|source| DeployError::Spawn {
            stack: stack.to_owned(),
            source,
        })?;
    failed.map_err(|f| DeployError::Remove {
        stack: stack.to_owned(),
        code: f.code,
        output: f.output,
    })?;
    // Services go first, their networks a little later: a deploy of the same name before
    // the networks are gone fails with "network … not found".
    let label = HashMap::from([(
        "label".to_owned(),
        vec![format!("{STACK_NAMESPACE_LABEL}={stack}")],
    )]);
    loop {
        let services_gone = engine
            .stack_tasks(stack)
            .await
            .map(|services| services.is_empty())
            .unwrap_or(false);
        let networks_gone = engine
            .docker()
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(label.clone()),
            }))
            .await
            .map(|n| n.is_empty())
            .unwrap_or(false);
        let gone = services_gone && networks_gone;
        if gone || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How a `docker` child that did not succeed ended.
pub(crate) struct ChildFailure {
    /// Its exit code, or "by signal".
    pub code: String,
    /// What it said: stderr, else stdout, trimmed.
    pub output: String,
}

/// Runs a `docker` child against `endpoint`: its `DOCKER_*` variables set or removed as
/// the endpoint says, the toolchain's `RELEASE_*` ones removed, no stdin, killed if the
/// caller is dropped. `Err` when it could not be started at all.
pub(crate) async fn run_docker(
    endpoint: &Endpoint,
    mut cmd: tokio::process::Command,
) -> std::io::Result<Result<(), ChildFailure>> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    endpoint.configure(&mut cmd);
    scrub_release_vars(&mut cmd);
    let out = cmd.output().await?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let mut output = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if output.is_empty() {
        output = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Ok(Err(ChildFailure {
        code: out
            .status
            .code()
            .map_or_else(|| "by signal".to_owned(), |c| c.to_string()),
        output,
    }))
}

/// Variables beside `RELEASE_*` that hold secrets: the signing keys a config names by
/// variable ([`keep_from_children`]).
static SECRET_VARS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps variable `name` out of every child process's environment, as every `RELEASE_*`
/// variable is: for secrets held in variables of the user's choosing (a signing key).
pub fn keep_from_children(name: &str) {
    let mut names = SECRET_VARS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// The variables of this process no child may see.
fn secret_vars() -> Vec<std::ffi::OsString> {
    let extra = SECRET_VARS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            let name = name.to_string_lossy();
            name.starts_with("RELEASE_") || extra.iter().any(|e| *e == name)
        })
        .collect()
}

/// Removes every `RELEASE_*` variable, and those [`keep_from_children`] names, from a
/// child's environment. The Docker CLI (and `ssh`) take what they need from their own
/// config; none of the toolchain's variables, `RELEASE_REGISTRY_PASSWORD` and signing
/// keys least of all, may reach them (or their plugins, or their /proc/PID/environ).
pub(crate) fn scrub_release_vars(cmd: &mut tokio::process::Command) {
    for name in secret_vars() {
        cmd.env_remove(name);
    }
}

/// [`scrub_release_vars`] for a synchronous child.
pub(crate) fn scrub_release_vars_std(cmd: &mut std::process::Command) {
    for name in secret_vars() {
        cmd.env_remove(name);
    }
}

/// One service as it was before a deploy.
#[derive(Debug, Clone)]
pub struct ServiceBefore {
    /// Full Swarm service name.
    pub name: String,
    pub image: String,
    task_template: serde_json::Value,
    update_status: Option<String>,
    tasks: HashSet<String>,
}

/// A stack's services before a deploy, keyed by their name in the stack file.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub services: BTreeMap<String, ServiceBefore>,
}

/// A service the deploy created or whose task template it changed: what gets watched.
#[derive(Debug, Clone)]
pub struct Change {
    /// The name in the stack file.
    pub service: String,
    /// Full Swarm service name.
    pub name: String,
    /// The image the new spec runs.
    pub image: String,
    /// `None` when the deploy created the service.
    pub before: Option<ServiceBefore>,
}

/// What a watched service did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New tasks ran (and stayed healthy) for the monitor window.
    Converged { after: Duration },
    /// The update failed; `cause` says how (task error, exit code, health output).
    Failed { cause: String },
    /// Still not converged at the deadline; `last` is the last observed state.
    TimedOut { last: String },
}

impl Outcome {
    pub fn is_converged(&self) -> bool {
        matches!(self, Outcome::Converged { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Converged { after } => {
                write!(f, "converged after {:.1}s", after.as_secs_f64())
            }
            Outcome::Failed { cause } => f.write_str(cause),
            Outcome::TimedOut { last } => {
                write!(f, "did not converge before the deadline ({last})")
            }
        }
    }
}

/// What one [`Engine::stack_apply`] found.
#[derive(Debug)]
pub struct StackApplied {
    /// The services the apply changed.
    pub changes: Vec<Change>,
    /// One per change, after the verdict.
    pub outcomes: Vec<Outcome>,
    /// Service → cause: failed changes first, then strays of untouched services.
    pub failed: Vec<(String, String)>,
    /// `docker stack deploy` refused and changed nothing.
    pub refused: Option<DeployError>,
}

/// A deploy's verdict: every service that failed, with its cause, the changed ones first.
///
/// Converged is not enough: `off_image` lists each service with a running task off its
/// pinned image (`Engine::off_image_tasks`, asked once every change converged). Such a
/// changed service fails (its outcome is replaced), and so does a service this deploy did
/// not change: a stray task of an untouched service is a failure too.
pub fn verdict(
    changes: &[Change],
    outcomes: &mut [Outcome],
    off_image: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut stray_unchanged = Vec::new();
    for (service, image) in off_image {
        let cause = format!("a running task runs {image}, not the pinned image");
        match changes.iter().position(|c| c.service == service) {
            Some(i) if i < outcomes.len() => outcomes[i] = Outcome::Failed { cause },
            _ => stray_unchanged.push((service, cause)),
        }
    }
    changes
        .iter()
        .zip(outcomes.iter())
        .filter(|(_, o)| !o.is_converged())
        .map(|(c, o)| (c.service.clone(), o.to_string()))
        .chain(stray_unchanged)
        .collect()
}

/// A state change of one service while watching, for progress output.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub service: &'a str,
    pub state: String,
}

impl Engine {
    /// Every service of `stack` with its spec and current task ids.
    pub async fn snapshot(&self, stack: &str) -> Result<Snapshot, EngineError> {
        let mut snapshot = Snapshot::default();
        for service in self.list_stack(stack).await? {
            let Some(spec) = service.spec.as_ref() else {
                continue;
            };
            let name = spec.name.clone().unwrap_or_default();
            let tasks = self
                .tasks(&name)
                .await?
                .into_iter()
                .filter_map(|t| t.id)
                .collect();
            snapshot.services.insert(
                stack_service_name(stack, &name),
                ServiceBefore {
                    image: spec_image(spec),
                    task_template: serde_json::to_value(&spec.task_template).unwrap_or_default(),
                    update_status: update_status_key(&service),
                    tasks,
                    name,
                },
            );
        }
        Ok(snapshot)
    }

    /// Applies `file` as stack `stack` with [`stack_deploy`] (`before`: the stack's
    /// [`Engine::snapshot`] beforehand), watches every change until `deadline`, and judges
    /// the outcome ([`verdict`], with each running task's image checked against `expected`
    /// once everything converged). Every deploy of a Swarm stack (in place, or a blue-green
    /// colour) is this.
    pub async fn stack_apply(
        &self,
        stack: &str,
        file: &Path,
        before: &Snapshot,
        expected: &BTreeMap<String, String>,
        deadline: Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<StackApplied, EngineError> {
        let applied = stack_deploy(self.endpoint(), stack, file).await;
        let changes = self.changes(stack, before).await?;
        let mut outcomes: Vec<Outcome> = match &applied {
            Ok(()) => self.watch(&changes, deadline, progress).await,
            Err(e) => changes
                .iter()
                .map(|_| Outcome::Failed {
                    cause: e.to_string(),
                })
                .collect(),
        };
        if let Err(e) = applied
            && changes.is_empty()
        {
            return Ok(StackApplied {
                changes,
                outcomes,
                failed: Vec::new(),
                refused: Some(e),
            });
        }
        // Converged is not enough: every running task must name the pinned image.
        let off_image = if outcomes.iter().all(Outcome::is_converged) {
            self.off_image_tasks(stack, expected).await?
        } else {
            Vec::new()
        };
        let failed = verdict(&changes, &mut outcomes, off_image);
        Ok(StackApplied {
            changes,
            outcomes,
            failed,
            refused: None,
        })
    }

    /// The services of `stack` that were created or whose task template changed since
    /// `before` was taken.
    pub async fn changes(
        &self,
        stack: &str,
        before: &Snapshot,
    ) -> Result<Vec<Change>, EngineError> {
        let mut changes = Vec::new();
        for service in self.list_stack(stack).await? {
            let Some(spec) = service.spec.as_ref() else {
                continue;
            };
            let name = spec.name.clone().unwrap_or_default();
            let short = stack_service_name(stack, &name);
            let previous = before.services.get(&short);
            let template = serde_json::to_value(&spec.task_template).unwrap_or_default();
            if previous.is_some_and(|p| p.task_template == template) {
                continue;
            }
            changes.push(Change {
                service: short,
                image: spec_image(spec),
                before: previous.cloned(),
                name,
            });
        }
        Ok(changes)
    }

    /// Watches every change at once until each converges, fails, or `deadline` passes.
    /// `progress` is called on every state change of a service, and with `failed: CAUSE`
    /// the moment a service's watch decides it failed: the other services may still be
    /// watched, and the caller's rollback starts only when every watch has ended.
    pub async fn watch(
        &self,
        changes: &[Change],
        deadline: Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Vec<Outcome> {
        let nodes = NodeWatch::default();
        join_all(changes.iter().map(|change| async {
            let outcome = self.watch_one(change, deadline, progress, &nodes).await;
            if let Outcome::Failed { cause } = &outcome {
                progress(Progress {
                    service: &change.service,
                    state: format!("failed: {cause}"),
                });
            }
            outcome
        }))
        .await
    }

    async fn watch_one(
        &self,
        change: &Change,
        deadline: Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
        nodes: &NodeWatch,
    ) -> Outcome {
        let start = Instant::now();
        let mut last = String::new();
        let mut stable_since: Option<Instant> = None;
        let empty = HashSet::new();
        let old_tasks = change.before.as_ref().map_or(&empty, |b| &b.tasks);
        let stale_status = change.before.as_ref().and_then(|b| b.update_status.clone());
        // When each task was first seen pending with an error (unplaced by the scheduler).
        let mut unplaced_since: HashMap<String, Instant> = HashMap::new();
        loop {
            let observed = self.observe(&change.name).await;
            let (service, tasks) = match observed {
                Ok(o) => o,
                Err(e) => {
                    // A transient API error is not a verdict; the deadline bounds retries.
                    tracing::warn!(service = %change.service, error = %e, "engine request failed; retrying");
                    if Instant::now() >= deadline {
                        return Outcome::TimedOut {
                            last: e.to_string(),
                        };
                    }
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let monitor = service
                .spec
                .as_ref()
                .and_then(|s| s.update_config.as_ref())
                .and_then(|u| u.monitor)
                .and_then(|ns| u64::try_from(ns).ok())
                .map_or(DEFAULT_MONITOR, Duration::from_nanos);
            // A status left over from an earlier update is not this deploy's.
            let status = service
                .update_status
                .as_ref()
                .filter(|_| update_status_key(&service) != stale_status)
                .and_then(|u| u.state);
            let desired = desired_tasks(&service, &tasks);
            let new: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.id.as_ref().is_some_and(|id| !old_tasks.contains(id)))
                .collect();
            let running_new = new.iter().filter(|t| is_running(t)).count() as u64;
            let running_old = tasks
                .iter()
                .filter(|t| t.id.as_ref().is_some_and(|id| old_tasks.contains(id)))
                .filter(|t| is_running(t))
                .count();
            let state = match status {
                Some(s) => s.to_string(),
                None => "starting".to_owned(),
            };
            let updating = status == Some(ServiceUpdateStatusStateEnum::UPDATING);
            let loss = match nodes.current(self).await {
                Some(seen) => {
                    let now = Instant::now();
                    let watched: Vec<WatchedTask> = tasks
                        .iter()
                        .map(|t| watched_task(t, old_tasks, &mut unplaced_since, now))
                        .collect();
                    let seen: Vec<SeenNode<'_>> = seen
                        .nodes
                        .iter()
                        .map(|node| SeenNode {
                            node,
                            down_for: seen.down_for(&node.id),
                        })
                        .collect();
                    judge_node_loss(&change.service, updating, &watched, &seen)
                }
                None => Default::default(),
            };
            let mut summary = format!("{state}, {running_new}/{desired} new tasks running");
            for notice in &loss.notices {
                // The notice names the service already; the progress row does too.
                let notice = notice
                    .strip_prefix(&format!("{}: ", change.service))
                    .unwrap_or(notice);
                summary.push_str("; ");
                summary.push_str(notice);
            }
            if summary != last {
                progress(Progress {
                    service: &change.service,
                    state: summary.clone(),
                });
                last = summary;
            }
            if matches!(
                status,
                Some(
                    ServiceUpdateStatusStateEnum::PAUSED
                        | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                        | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                        | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                )
            ) {
                let message = service
                    .update_status
                    .as_ref()
                    .and_then(|u| u.message.clone())
                    .unwrap_or_default();
                let task = self.failure_of(&new).await;
                let mut causes = vec![format!("update {state}: {message}"), task];
                causes.extend(loss.notices);
                return Outcome::Failed {
                    cause: join_causes(&causes),
                };
            }
            if let Some(failed) = new.iter().find(|t| is_failed(t)) {
                let mut causes = vec![self.describe_task(failed).await];
                causes.extend(loss.notices);
                return Outcome::Failed {
                    cause: join_causes(&causes),
                };
            }
            if let Some(cause) = loss.fail {
                return Outcome::Failed { cause };
            }
            // A global service with no task yet has not been scheduled, not converged.
            let scheduled = desired > 0 || is_replicated(&service);
            if running_new >= desired && running_old == 0 && scheduled {
                let since = *stable_since.get_or_insert_with(Instant::now);
                if !updating && since.elapsed() >= monitor {
                    return Outcome::Converged {
                        after: start.elapsed(),
                    };
                }
            } else {
                stable_since = None;
            }
            if Instant::now() >= deadline {
                let task = self.failure_of(&new).await;
                return Outcome::TimedOut {
                    last: join_causes(&[last, task]),
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Rolls every change back to its spec before the deploy and waits until all
    /// rollbacks converge. A service Swarm already rolled back itself is only waited for;
    /// a service the deploy created is removed (before the deploy it did not exist).
    /// Returns, per change, `Err(cause)` for a rollback that did not converge.
    pub async fn roll_back(
        &self,
        changes: &[Change],
        deadline: Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Vec<Result<(), String>> {
        join_all(
            changes
                .iter()
                .map(|change| self.roll_back_one(change, deadline, progress)),
        )
        .await
    }

    async fn roll_back_one(
        &self,
        change: &Change,
        deadline: Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), String> {
        let Some(before) = &change.before else {
            progress(Progress {
                service: &change.service,
                state: "removing: it did not exist before this deploy".to_owned(),
            });
            return self
                .docker()
                .delete_service(&change.name)
                .await
                .map_err(|e| format!("cannot remove service {}: {e}", change.name));
        };
        self.request_rollback(change, before, false).await?;
        let mut last = String::new();
        // Seen on the testbed (about 1 run in 2 for an unpullable image): the rollback
        // completes at once on a spec that is not the one recorded before the deploy, and
        // Swarm keeps no previous spec to roll back to. Seen twice in a row, the recorded
        // task template is put back explicitly; bounded.
        //
        // Why, from swarmkit's updater (`manager/orchestrator/update/updater.go`): with
        // `failure_action: rollback`, the updater of the failed update calls
        // `rollbackUpdate`, which sets `Spec = PreviousSpec` and `PreviousSpec = nil`
        // unless `UpdateStatus` is nil. Our `rollback=previous` request does not clear
        // `UpdateStatus` (it sets it to `rollback_started`), so when both rollbacks happen
        // the second swaps the first back: the service ends on the new spec with no
        // previous spec left, which only an explicit restore can undo.
        let mut settled_on_new = 0u32;
        let mut re_requests = 0u32;
        let mut unplaced_since: HashMap<String, Instant> = HashMap::new();
        let no_old = HashSet::new();
        loop {
            let (service, tasks) = self
                .observe(&change.name)
                .await
                .map_err(|e| e.to_string())?;
            let status = service.update_status.as_ref().and_then(|u| u.state);
            let desired = desired_tasks(&service, &tasks);
            let image_back =
                service.spec.as_ref().map(spec_image).as_deref() == Some(&before.image);
            let running: Vec<&Task> = tasks.iter().filter(|t| is_running(t)).collect();
            let on_previous = running
                .iter()
                .filter(|t| task_image(t) == Some(before.image.as_str()))
                .count() as u64;
            let state = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
            let summary =
                format!("rollback: {state}, {on_previous}/{desired} tasks on the previous image");
            if summary != last {
                progress(Progress {
                    service: &change.service,
                    state: summary.clone(),
                });
                last = summary;
            }
            if status == Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) {
                return Err(format!("rollback of {} paused: {last}", change.name));
            }
            let done = status != Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED);
            if done && image_back && on_previous >= desired && running.len() as u64 == on_previous {
                return Ok(());
            }
            // A task no remaining node can take holds Swarm's rollback until the node is
            // back (see `rollback_held_by_lost_nodes`): done as far as the nodes allow, or
            // stuck, but nothing to wait for.
            let now = Instant::now();
            let wanted: Vec<WatchedTask> = tasks
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .map(|t| watched_task(t, &no_old, &mut unplaced_since, now))
                .collect();
            if wanted.iter().any(|t| t.unplaced_for >= UNPLACED_GRACE)
                && let Ok(nodes) = self.nodes().await
            {
                let back = image_back && running.len() as u64 == on_previous;
                match rollback_held_by_lost_nodes(
                    desired.saturating_sub(on_previous),
                    back,
                    &wanted,
                    &nodes,
                ) {
                    Some(RollbackHeld::AsFarAsNodesAllow(note)) => {
                        progress(Progress {
                            service: &change.service,
                            state: format!(
                                "rollback: {on_previous}/{desired} tasks on the previous image; {note}"
                            ),
                        });
                        return Ok(());
                    }
                    Some(RollbackHeld::Stuck(note)) => {
                        return Err(format!(
                            "rollback of {} cannot proceed until the node is back: {note}; {last}",
                            change.name
                        ));
                    }
                    None => {}
                }
            }
            if status == Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) && !image_back {
                settled_on_new += 1;
                if settled_on_new >= 2 && re_requests < MAX_ROLLBACK_RE_REQUESTS {
                    re_requests += 1;
                    tracing::warn!(
                        service = %change.name,
                        "rollback completed on the new spec (a second rollback raced ours); \
                         rolling back again ({re_requests} of {MAX_ROLLBACK_RE_REQUESTS})"
                    );
                    self.request_rollback(change, before, true).await?;
                    settled_on_new = 0;
                }
            } else {
                settled_on_new = 0;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "rollback of {} did not converge: {last}",
                    change.name
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks Swarm to roll `change` back unless it is already rolling back or back; with
    /// `again`, also when a rollback of ours already completed (on the wrong spec).
    async fn request_rollback(
        &self,
        change: &Change,
        before: &ServiceBefore,
        again: bool,
    ) -> Result<(), String> {
        for attempt in 1..=ROLLBACK_ATTEMPTS {
            let (service, _) = self
                .observe(&change.name)
                .await
                .map_err(|e| e.to_string())?;
            let status = service.update_status.as_ref().and_then(|u| u.state);
            let spec = service.spec.clone().unwrap_or_default();
            let template = serde_json::to_value(&spec.task_template).unwrap_or_default();
            // Never ask twice: a second `rollback=previous` would swap back to the new spec.
            let ours = update_status_key(&service) != before.update_status;
            let rolling = matches!(
                status,
                Some(
                    ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                        | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                )
            );
            if (ours && rolling && !again) || template == before.task_template {
                return Ok(());
            }
            let version = service
                .version
                .as_ref()
                .and_then(|v| v.index)
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or_default();
            // As `docker service rollback` does: the current spec (ignored by the daemon),
            // and the registry credentials of the spec being restored.
            let (spec, options) = if again {
                // A rollback already completed on the wrong spec and Swarm has no previous
                // spec left: put the recorded task template back explicitly, with the
                // registry credentials of the current spec (same registry).
                let mut spec = spec;
                spec.task_template = serde_json::from_value(before.task_template.clone())
                    .map_err(|e| format!("cannot restore {}: {e}", change.name))?;
                let options = UpdateServiceOptions {
                    version,
                    rollback: None,
                    registry_auth_from: "spec".to_owned(),
                };
                (spec, options)
            } else {
                let options = UpdateServiceOptions {
                    version,
                    rollback: Some("previous".to_owned()),
                    registry_auth_from: "previous-spec".to_owned(),
                };
                (spec, options)
            };
            match self
                .docker()
                .update_service(&change.name, spec, options, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    // "update out of sequence": Swarm itself changed the service meanwhile.
                    tracing::warn!(
                        service = %change.name,
                        error = %e,
                        "rollback request attempt {attempt} of {ROLLBACK_ATTEMPTS} failed"
                    );
                    if attempt == ROLLBACK_ATTEMPTS {
                        return Err(format!("cannot roll back {}: {e}", change.name));
                    }
                    tokio::time::sleep(POLL * attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Running tasks of `stack` whose image is not the one `expected` names for their
    /// service (stack-file name → image). Returns `(service, task image)` pairs.
    pub async fn off_image_tasks(
        &self,
        stack: &str,
        expected: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let mut wrong = Vec::new();
        for service in self.list_stack(stack).await? {
            let name = service
                .spec
                .as_ref()
                .and_then(|s| s.name.clone())
                .unwrap_or_default();
            let short = stack_service_name(stack, &name);
            let Some(want) = expected.get(&short) else {
                continue;
            };
            for task in self.tasks(&name).await? {
                if is_running(&task) {
                    let image = task_image(&task).unwrap_or_default();
                    if image != want {
                        wrong.push((short.clone(), image.to_owned()));
                    }
                }
            }
        }
        Ok(wrong)
    }

    async fn list_stack(&self, stack: &str) -> Result<Vec<Service>, EngineError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{STACK_NAMESPACE_LABEL}={stack}")],
        )]);
        self.docker()
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: Some(false),
            }))
            .await
            .map_err(|source| self.request_error("list services", source))
    }

    async fn tasks(&self, service: &str) -> Result<Vec<Task>, EngineError> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        self.docker()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|source| self.request_error("list tasks", source))
    }

    async fn observe(&self, service: &str) -> Result<(Service, Vec<Task>), EngineError> {
        let inspected = self
            .docker()
            .inspect_service(service, None::<InspectServiceOptions>)
            .await
            .map_err(|source| self.request_error("inspect service", source))?;
        // The filter matches by name prefix too; keep this service's tasks only.
        let id = inspected.id.clone().unwrap_or_default();
        let tasks = self
            .tasks(service)
            .await?
            .into_iter()
            .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
            .collect();
        Ok((inspected, tasks))
    }

    /// The most telling failure among `tasks`: a failed task's error, exit code and the
    /// last health check output.
    async fn failure_of(&self, tasks: &[&Task]) -> String {
        let failed = tasks
            .iter()
            .filter(|t| is_failed(t) || t.status.as_ref().is_some_and(|s| s.err.is_some()))
            .max_by_key(|t| t.status.as_ref().and_then(|s| s.timestamp.clone()));
        match failed {
            Some(task) => self.describe_task(task).await,
            None => String::new(),
        }
    }

    async fn describe_task(&self, task: &Task) -> String {
        let status = task.status.clone().unwrap_or_default();
        let mut parts = Vec::new();
        let state = status
            .state
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        parts.push(format!(
            "task {} {state}",
            task.id.as_deref().map_or("?", |id| &id[..id.len().min(12)])
        ));
        if let Some(err) = status.err.filter(|e| !e.is_empty()) {
            parts.push(format!("error: {err}"));
        }
        let container = status.container_status.unwrap_or_default();
        if let Some(code) = container.exit_code.filter(|c| *c != 0) {
            parts.push(format!("exit code {code}"));
        }
        if let Some(id) = container.container_id.filter(|id| !id.is_empty())
            && let Some(health) = self.health_output(&id).await
        {
            parts.push(format!("health check: {health}"));
        }
        parts.join("; ")
    }

    /// The last health check output of a container, if this engine still has it (best
    /// effort: the container may be on another node or already removed).
    async fn health_output(&self, container: &str) -> Option<String> {
        let inspected = self
            .docker()
            .inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()?;
        let log = inspected.state?.health?.log?;
        let last = log.into_iter().rev().find(|r| r.exit_code != Some(0))?;
        let output = last.output.unwrap_or_default();
        let output = output.trim();
        Some(format!(
            "exit {}: {}",
            last.exit_code.unwrap_or(-1),
            if output.is_empty() {
                "(no output)"
            } else {
                output
            }
        ))
    }

    fn request_error(&self, what: &'static str, source: bollard::errors::Error) -> EngineError {
        EngineError::Request {
            host: self.host().to_owned(),
            what,
            source,
        }
    }
}

/// The Swarm's nodes as the watch of one deploy sees them: listed at most once per poll
/// round for all watched services together, and when each node was first seen down.
#[derive(Debug, Default)]
struct NodeWatch {
    last: tokio::sync::Mutex<Option<(Instant, Arc<SeenNodes>)>>,
}

#[derive(Debug)]
struct SeenNodes {
    nodes: Vec<Node>,
    down_since: HashMap<String, Instant>,
    at: Instant,
}

impl SeenNodes {
    fn down_for(&self, id: &str) -> Duration {
        self.down_since.get(id).map_or(Duration::ZERO, |since| {
            self.at.saturating_duration_since(*since)
        })
    }
}

impl NodeWatch {
    /// The node list of this poll round: the last one if it is younger than a poll
    /// interval, else a new one. `None` until a listing has succeeded; a failed listing
    /// keeps the last one (a node verdict waits, the deadline still bounds the watch).
    async fn current(&self, engine: &Engine) -> Option<Arc<SeenNodes>> {
        let mut last = self.last.lock().await;
        if let Some((at, seen)) = last.as_ref()
            && at.elapsed() < POLL
        {
            return Some(Arc::clone(seen));
        }
        let nodes = match engine.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the Swarm's nodes; retrying");
                return last.as_ref().map(|(_, seen)| Arc::clone(seen));
            }
        };
        let now = Instant::now();
        let earlier = last.as_ref().map(|(_, seen)| &seen.down_since);
        let down_since = nodes
            .iter()
            .filter(|n| n.state == NodeState::Down)
            .map(|n| {
                let since = earlier.and_then(|e| e.get(&n.id)).copied().unwrap_or(now);
                (n.id.clone(), since)
            })
            .collect();
        let seen = Arc::new(SeenNodes {
            nodes,
            down_since,
            at: now,
        });
        *last = Some((now, Arc::clone(&seen)));
        Some(seen)
    }
}

fn watched_task(
    task: &Task,
    old_tasks: &HashSet<String>,
    unplaced_since: &mut HashMap<String, Instant>,
    now: Instant,
) -> WatchedTask {
    let id = task.id.clone().unwrap_or_default();
    let state = task
        .status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(TaskState::NEW);
    let error = task
        .status
        .as_ref()
        .and_then(|s| s.err.clone())
        .filter(|e| !e.is_empty());
    let unplaced_for = if state == TaskState::PENDING && error.is_some() {
        now.saturating_duration_since(*unplaced_since.entry(id.clone()).or_insert(now))
    } else {
        unplaced_since.remove(&id);
        Duration::ZERO
    };
    WatchedTask {
        error,
        unplaced_for,
        new: !old_tasks.contains(&id),
        id,
        slot: task.slot.and_then(|s| u64::try_from(s).ok()),
        node_id: task.node_id.clone().filter(|n| !n.is_empty()),
        state,
    }
}

fn stack_service_name(stack: &str, name: &str) -> String {
    name.strip_prefix(stack)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(name)
        .to_owned()
}

fn spec_image(spec: &ServiceSpec) -> String {
    spec.task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn task_image(task: &Task) -> Option<&str> {
    task.spec
        .as_ref()?
        .container_spec
        .as_ref()?
        .image
        .as_deref()
}

/// Identifies one update: its state and start time.
fn update_status_key(service: &Service) -> Option<String> {
    service
        .update_status
        .as_ref()
        .map(|u| format!("{:?}@{:?}", u.state, u.started_at))
}

fn is_running(task: &Task) -> bool {
    task.desired_state == Some(TaskState::RUNNING)
        && task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
}

fn is_failed(task: &Task) -> bool {
    matches!(
        task.status.as_ref().and_then(|s| s.state),
        Some(TaskState::FAILED | TaskState::REJECTED)
    )
}

/// Replicas of a replicated service; for a global service, the tasks Swarm wants running.
fn desired_tasks(service: &Service, tasks: &[Task]) -> u64 {
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    match mode.and_then(|m| m.replicated.as_ref()) {
        Some(replicated) => replicated
            .replicas
            .and_then(|r| u64::try_from(r).ok())
            .unwrap_or(1),
        None if mode.is_some_and(|m| m.global.is_some()) => tasks
            .iter()
            .filter(|t| t.desired_state == Some(TaskState::RUNNING))
            .count() as u64,
        None => 1,
    }
}

fn is_replicated(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .is_some_and(|m| m.replicated.is_some())
}

fn join_causes(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn change(service: &str) -> Change {
        Change {
            service: service.to_owned(),
            name: format!("s_{service}"),
            image: format!("r.example.com/{service}:1@sha256:{}", "a".repeat(64)),
            before: None,
        }
    }

    #[test]
    fn the_verdict_lists_failed_changes_first_then_strays_of_untouched_services() {
        let changes = [change("api"), change("web")];
        let mut outcomes = vec![
            Outcome::Converged {
                after: Duration::from_secs(3),
            },
            Outcome::TimedOut {
                last: "updating, 1/2 new tasks running".to_owned(),
            },
        ];
        let failed = verdict(&changes, &mut outcomes, Vec::new());
        assert_eq!(
            failed,
            [(
                "web".to_owned(),
                "did not converge before the deadline (updating, 1/2 new tasks running)".to_owned()
            )]
        );

        // Every change converged, but a task of `api` and one of the untouched `db` run
        // something else than their pinned image: both fail, the changed one first.
        let mut outcomes = vec![
            Outcome::Converged {
                after: Duration::from_secs(3),
            };
            2
        ];
        let off = vec![
            ("db".to_owned(), "db:old".to_owned()),
            ("api".to_owned(), "api:old".to_owned()),
        ];
        let failed = verdict(&changes, &mut outcomes, off);
        assert_eq!(
            failed,
            [
                (
                    "api".to_owned(),
                    "a running task runs api:old, not the pinned image".to_owned()
                ),
                (
                    "db".to_owned(),
                    "a running task runs db:old, not the pinned image".to_owned()
                ),
            ]
        );
        assert!(
            !outcomes[0].is_converged(),
            "api's outcome is now a failure"
        );
        assert!(outcomes[1].is_converged());
    }
}
