//! What a deploy does, in order: render the digest-pinned stack, check policy, apply it,
//! watch every changed service converge, roll back on failure, record the outcome. It is
//! the same for `release deploy`, `release rollback` ([`Target::Rollback`]) and `release
//! promote` once its gate passed ([`Target::Promote`]). An environment with `promote_from`
//! accepts a plain deploy from no one: PROD is reached only through the gate.
//!
//! A Swarm environment deploys in place here; a Compose one in [`compose`]; a blue-green
//! one (either orchestrator) in [`blue_green`].
//!
//! Locks: `deploy-<env>` is held for the whole deploy, so two deploys to one environment
//! never interleave, while deploys to different environments run in parallel. It is the
//! outermost lock: pointer and ledger writes take theirs while it is held, never the other
//! way round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Change, Outcome, StackFile};
use serde::Serialize;
use verify::colours::Colour;
use verify::history::MadeLive;
use verify::ledger::{DeployFailed, Evidence, FailureTrigger, RollbackAfterFailure};
use verify::{EnvName, EnvPointer, ServiceName, StateDir, Version};

use crate::stage::{self, Stage};
use crate::{Error, Kind};
use config::{self, Config};

mod blue_green;
mod compose;

pub use blue_green::{Slots, retire};

/// How long a deploy waits for another deploy to the same environment by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);
/// Deadline for converging when neither the caller nor `deploy_timeout` says.
const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);

/// What to deploy: a named version, or (for `release rollback`) an earlier recorded one.
#[derive(Debug, Clone)]
pub enum Target {
    Deploy(String),
    /// `None`: the version live before the current one.
    Rollback(Option<String>),
    /// A version whose promotion gate passed; recorded as `promoted` with the approver and
    /// the evidence the gate relied on.
    Promote {
        version: String,
        approver: Option<String>,
        evidence: Evidence,
    },
}

impl Target {
    /// How a deploy of this target makes its version live, for its ledger event.
    pub fn made_live(&self) -> MadeLive {
        match self {
            Target::Rollback(_) => MadeLive::Rollback,
            Target::Promote {
                approver, evidence, ..
            } => MadeLive::Promote {
                approver: approver.clone(),
                evidence: evidence.clone(),
            },
            Target::Deploy(_) => MadeLive::Deploy,
        }
    }
}

/// What the shared part of a deploy settled before any engine is touched: the version,
/// its digests and what the environment ran before. The Compose and blue-green deploys
/// start from it.
pub(crate) struct Plan<'a> {
    pub s: &'a Stage<'a>,
    pub env: &'a config::Environment,
    pub env_name: &'a EnvName,
    pub target: &'a Target,
    /// The environment's pointer before the deploy.
    pub previous: Option<EnvPointer>,
    pub version: &'a Version,
    /// Release service → the digest the environment will run.
    pub digests: BTreeMap<ServiceName, verify::Digest>,
    pub timeout: Duration,
    pub started: Instant,
    pub rolling_back: bool,
}

impl Plan<'_> {
    /// Records the plan's version as live ([`verify::history::Live::record`]): `previous`
    /// was live before, `changed` are the services the deploy changed, `file` the
    /// rendered file now applied.
    fn record_live(
        &self,
        previous: Option<verify::Version>,
        changed: &[Change],
        file: &str,
    ) -> Result<(), Error> {
        verify::history::Live {
            env: self.env_name.clone(),
            version: self.version.clone(),
            previous_version: previous,
            digests: self.digests.clone(),
            changed: changed.iter().map(|c| c.service.clone()).collect(),
            stack_sha256: verify::Digest::of(file.as_bytes()),
            jenkins: self.s.jenkins.clone(),
        }
        .record(self.s.state, &self.s.actor, self.target.made_live())?;
        Ok(())
    }

    /// Records `deploy-failed` with each failed service's cause (`previous` was live
    /// before); the failure's message, naming them in `failed`'s order.
    fn record_failed<'f>(
        &self,
        failed: impl Iterator<Item = (&'f String, &'f String)> + Clone,
        previous: Option<verify::Version>,
    ) -> Result<String, Error> {
        self.s.append(
            &DeployFailed {
                env: self.env_name.clone(),
                failures: failed
                    .clone()
                    .map(|(s, c)| (s.clone(), c.clone()))
                    .collect(),
                jenkins: self.s.jenkins.clone(),
                previous_version: previous,
                version: self.version.clone(),
            }
            .into(),
        )?;
        let causes: Vec<String> = failed
            .map(|(service, cause)| format!("service {service}: {cause}"))
            .collect();
        Ok(format!(
            "deploy of {} to {} failed: {}",
            self.version,
            self.env_name,
            causes.join("; ")
        ))
    }

    /// Records that `services` went back to `previous` after the failure.
    fn record_rolled_back(
        &self,
        services: Vec<String>,
        previous: Option<verify::Version>,
    ) -> Result<(), Error> {
        self.s.append(
            &RollbackAfterFailure {
                env: self.env_name.clone(),
                from_version: self.version.clone(),
                services,
                to_version: previous,
                trigger: FailureTrigger::DeployFailed,
            }
            .into(),
        )
    }
}

/// The failure of a deploy that was rolled back: `message` (what failed), which
/// services went back, and to what.
fn rolled_back(message: &str, services: &[String], previous: Option<&str>) -> Error {
    Error::new(
        Kind::RolledBack,
        format!(
            "{message}; rolled back {} to {}",
            services.join(", "),
            previous.unwrap_or("the state before the deploy")
        ),
    )
}

/// How a deploy runs.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub env: &'a str,
    /// Deadline for converging; `None`: the environment's `deploy_timeout`, else 5 minutes.
    pub timeout: Option<Duration>,
    /// How long to wait for another deploy to the same environment; `None`: 5 minutes.
    pub lock_wait: Option<Duration>,
}

/// What a deploy did. `failure` is set when it failed after something was applied: the
/// report says what, and the failure why (a deploy that stopped before applying anything
/// has no report, only an error).
#[derive(Debug)]
pub struct Deployed {
    pub report: Report,
    /// A blue-green deploy's previous colour, kept for a rollback until its window ends.
    pub standby: Option<Standby>,
    /// A rollback that switched the proxy back to the colour still running.
    pub switched_back: Option<SwitchedBack>,
    pub failure: Option<Error>,
}

/// The previous colour of a blue-green environment and until when it stays.
#[derive(Debug, Clone)]
pub struct Standby {
    pub colour: Colour,
    pub version: Version,
    pub until: time::OffsetDateTime,
}

/// The proxy switched back to a colour that still ran.
#[derive(Debug, Clone)]
pub struct SwitchedBack {
    pub proxy_url: String,
    pub colour: Colour,
    pub version: Version,
    pub reload: Duration,
}

impl Deployed {
    fn done(report: Report) -> Self {
        Self {
            report,
            standby: None,
            switched_back: None,
            failure: None,
        }
    }

    fn failed(report: Report, failure: Error) -> Self {
        Self {
            failure: Some(failure),
            ..Self::done(report)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub env: EnvName,
    pub stack: String,
    pub version: Version,
    pub previous_version: Option<Version>,
    /// `deployed`, `rolled-back` (a `release rollback` that converged) or `deploy-failed`.
    pub outcome: &'static str,
    pub rendered_stack: PathBuf,
    pub seconds: f64,
    pub services: Vec<ServiceReport>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    /// The service's name in the stack file.
    pub service: String,
    pub image: String,
    pub changed: bool,
    /// `converged`, `unchanged`, `failed`, `timed-out`.
    pub result: &'static str,
    pub cause: Option<String>,
    pub seconds: f64,
}

/// Deploys `target` to `options.env`: see the module documentation.
pub async fn run(s: &Stage<'_>, target: Target, options: &Options<'_>) -> Result<Deployed, Error> {
    let started = Instant::now();
    let config = s.config;
    let env = config.environment(options.env)?.clone();
    let env_name = EnvName::parse(options.env)?;
    let timeout = match (options.timeout, &env.deploy_timeout) {
        (Some(t), _) => t,
        (None, Some(text)) => config::parse_duration(text)
            .map_err(|e| Error::usage(format!("deploy_timeout: {e}")))?,
        (None, None) => DEFAULT_DEPLOY_TIMEOUT,
    };
    let lock_wait = options.lock_wait.unwrap_or(DEFAULT_LOCK_WAIT);
    if let (Target::Deploy(v), Some(from)) = (&target, &env.promote_from) {
        return Err(Error::usage(format!(
            "environment `{env_name}` receives releases only through the promotion gate (promote_from = \"{from}\")"
        ))
        .with_hint(format!(
            "run `release promote --version {v} --to {env_name}` once {v} passed its checks in `{from}`"
        )));
    }
    let state = s.state;

    // Policy on the rendered stack needs the release, which a rollback only knows after
    // reading the records; both happen under the lock so nothing moves in between.
    let purpose = match &target {
        Target::Deploy(v) => format!("release deploy --env {env_name} --version {v}"),
        Target::Rollback(_) => format!("release rollback --env {env_name}"),
        Target::Promote { version, .. } => {
            format!("release promote --version {version} --to {env_name}")
        }
    };
    let _lock = stage::lock(state, &env_name, lock_wait, &purpose).await?;

    let previous = state.read_env(&env_name)?;
    let (version, rolling_back) = match &target {
        Target::Deploy(v) | Target::Promote { version: v, .. } => {
            (stage::version(config, v)?, false)
        }
        Target::Rollback(to) => (
            rollback_target(config, state, &env_name, previous.as_ref(), to.as_deref())?,
            true,
        ),
    };
    let release = state.load_release(&version)?.manifest;

    let stack = config
        .stacks
        .get(options.env)
        .ok_or_else(|| Error::usage(format!("environment {env_name} has no stack file loaded")))?;
    let images = pinned_images(config, stack, &release);
    // Release service → the digest this environment will run: what the records name.
    let digests: BTreeMap<ServiceName, verify::Digest> = release
        .services
        .iter()
        .filter(|(name, _)| images.contains_key(config.stack_name(name.as_str())))
        .map(|(name, image)| (name.clone(), image.digest.clone()))
        .collect();
    let plan = Plan {
        s,
        env: &env,
        env_name: &env_name,
        target: &target,
        previous: previous.clone(),
        version: &version,
        digests,
        timeout,
        started,
        rolling_back,
    };
    if env.strategy == config::Strategy::BlueGreen {
        return blue_green::deploy(&plan, &images, stack).await;
    }
    let yaml = stack
        .render(&images)
        .map_err(|e| Error::usage(e.to_string()))?;
    let stack_path = state.stack_path(&env_name, &version);
    let rendered = StackFile::parse(&stack_path, &yaml).map_err(|e| Error::usage(e.to_string()))?;
    check_policy(config, options.env, &rendered)?;
    let stack_path = state.write_stack(&env_name, &version, yaml.as_bytes())?;

    if env.orchestrator == config::Orchestrator::Compose {
        return compose::deploy(&plan, &yaml, &rendered, &stack_path).await;
    }
    let engine = stage::connect(config, options.env).await?;
    engine.require_swarm_manager().await?;
    let before = engine.snapshot(&env.stack).await?;
    let progress = s.progress;
    s.say(format!(
        "applying {} to stack {} ({})",
        version,
        env.stack,
        stack_path.display()
    ));
    let expected = rendered.images();
    let deadline = Instant::now() + timeout;
    let engine::StackApplied {
        changes,
        outcomes,
        failed,
        refused,
    } = engine
        .stack_apply(
            &env.stack,
            &stack_path,
            &before,
            &expected,
            deadline,
            progress,
        )
        .await?;
    if let Some(e) = refused {
        return Err(Error::infrastructure(e.to_string()));
    }
    let previous_version = previous.as_ref().map(|p| p.version.clone());
    let summary = |outcome| {
        Summary {
            env: &env,
            version: &version,
            previous_version: &previous_version,
            outcome,
            stack_path: &stack_path,
            started,
            expected: &expected,
            changes: &changes,
            outcomes: &outcomes,
        }
        .report(&env_name)
    };

    if failed.is_empty() {
        plan.record_live(previous_version.clone(), &changes, &yaml)?;
        return Ok(Deployed::done(summary(if rolling_back {
            "rolled-back"
        } else {
            "deployed"
        })));
    }

    // Failed: recorded, then every changed service rolled back.
    let message =
        plan.record_failed(failed.iter().map(|(s, c)| (s, c)), previous_version.clone())?;
    let rollback_deadline = Instant::now() + timeout;
    let results = engine
        .roll_back(&changes, rollback_deadline, progress)
        .await;
    let stuck: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    let rolled: Vec<String> = changes.iter().map(|c| c.service.clone()).collect();
    if stuck.is_empty() && !changes.is_empty() {
        plan.record_rolled_back(rolled.clone(), previous_version.clone())?;
    }
    let report = summary("deploy-failed");
    if !stuck.is_empty() {
        let failure = Error::infrastructure(format!(
            "{message}; and the rollback did not converge: {}",
            stuck.join("; ")
        ))
        .with_hint(format!(
            "inspect with `release status --env {env_name}` and `docker service ps`"
        ));
        return Ok(Deployed::failed(report, failure));
    }
    if changes.is_empty() {
        // Nothing to roll back: the live stack is not what the records would claim.
        let failure = Error::new(Kind::Negative, message)
            .with_hint(format!("compare with `release status --env {env_name}`"));
        return Ok(Deployed::failed(report, failure));
    }
    Ok(Deployed::failed(
        report,
        rolled_back(
            &message,
            &rolled,
            previous_version.as_ref().map(verify::Version::as_str),
        ),
    ))
}

/// What a finished deploy knows, for its report.
pub(crate) struct Summary<'a> {
    env: &'a config::Environment,
    version: &'a Version,
    previous_version: &'a Option<verify::Version>,
    outcome: &'static str,
    stack_path: &'a Path,
    started: Instant,
    expected: &'a BTreeMap<String, String>,
    changes: &'a [Change],
    outcomes: &'a [Outcome],
}

impl Summary<'_> {
    /// The report of a deploy that ended as `self.outcome` says.
    pub(crate) fn report(self, env: &EnvName) -> Report {
        let s = self;
        let services: Vec<ServiceReport> = s
            .expected
            .iter()
            .map(|(name, image)| {
                let watched = s
                    .changes
                    .iter()
                    .zip(s.outcomes)
                    .find(|(c, _)| &c.service == name);
                let (result, cause, seconds) = match watched {
                    None => ("unchanged", None, 0.0),
                    Some((_, Outcome::Converged { after })) => {
                        ("converged", None, after.as_secs_f64())
                    }
                    Some((_, o @ Outcome::Failed { .. })) => ("failed", Some(o.to_string()), 0.0),
                    Some((_, o @ Outcome::TimedOut { .. })) => {
                        ("timed-out", Some(o.to_string()), 0.0)
                    }
                };
                ServiceReport {
                    service: name.clone(),
                    image: image.clone(),
                    changed: watched.is_some(),
                    result,
                    cause,
                    seconds,
                }
            })
            .collect();
        Report {
            env: env.clone(),
            // A Compose environment reports its project here.
            stack: match s.env.orchestrator {
                config::Orchestrator::Swarm => s.env.stack.clone(),
                config::Orchestrator::Compose => s.env.compose_project().to_owned(),
            },
            version: s.version.clone(),
            previous_version: s.previous_version.clone(),
            outcome: s.outcome,
            rendered_stack: s.stack_path.to_owned(),
            seconds: s.started.elapsed().as_secs_f64(),
            services,
        }
    }
}

/// Service name in the stack file → `REPO:TAG@sha256:…` for every service of the release
/// that the stack runs.
fn pinned_images(
    config: &Config,
    stack: &StackFile,
    release: &verify::ReleaseManifest,
) -> BTreeMap<String, String> {
    release
        .services
        .iter()
        .filter_map(|(name, image)| {
            let in_stack = config.stack_name(name);
            if stack.service(in_stack).is_none() {
                tracing::warn!(service = %name, "release service is not in the stack file; not deployed");
                return None;
            }
            Some((
                in_stack.to_owned(),
                format!("{}:{}@{}", image.repository, image.tag, image.digest),
            ))
        })
        .collect()
}

/// The deploy-time policy, on the stack exactly as it would be applied: every problem is
/// listed, nothing is applied if there is one. Config loading has already refused shared
/// secrets; replicas and ports are checked again here because they are cheap and this is
/// the last look before the Swarm.
pub(crate) fn check_policy(config: &Config, env: &str, rendered: &StackFile) -> Result<(), Error> {
    use engine::PolicyProblem as P;
    let problems: Vec<String> = rendered
        .policy_problems(&|name| config.rules_of(name), true)
        .into_iter()
        .map(|problem| match problem {
            P::NoImage { service } => format!("service `{service}` has no image"),
            P::Latest { service, image } => {
                format!("service `{service}`: image `{image}` uses the `latest` tag")
            }
            P::Unpinned { service, image } => format!(
                "service `{service}`: image `{image}` is not pinned by digest (the release does not build it; pin it as REPO:TAG@sha256:… in the stack file)"
            ),
            P::TooManyReplicas {
                service,
                replicas,
                max,
            } => format!("service `{service}`: {replicas} replicas, above its limit of {max}"),
            P::InternalPublishes { service, .. } => {
                format!("service `{service}` is internal but publishes a port")
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "policy refuses the stack for {env} ({} problem{}), nothing was deployed:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
    ))
    .with_details(problems))
}

/// The version `release rollback` returns to: `--to-version`, else the one live before the
/// current one ([`verify::history::rollback_target`]).
fn rollback_target(
    config: &Config,
    state: &StateDir,
    env: &EnvName,
    current: Option<&EnvPointer>,
    to: Option<&str>,
) -> Result<Version, Error> {
    if let Some(to) = to {
        return crate::stage::version(config, to);
    }
    let events = state.ledger().read_events()?;
    verify::history::rollback_target(&events, env, current).map_err(|e| {
        let hint = e.hint();
        let code = match e {
            verify::history::HistoryError::Diverged { .. } => Kind::Negative,
            _ => Kind::Usage,
        };
        Error::new(code, e.to_string())
            .with_hint(hint)
            .with_setting(crate::Setting::RollbackTarget)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CONFIG: &str = r#"
[project]
name = "t"
[registry]
host = "r.example.com"
[services.api]
repository = "t/api"
context = "."
[services.worker]
repository = "t/worker"
context = "."
max_replicas = 1
[environments.dev]
stack = "t-dev"
stack_file = "stack.yml"
"#;

    fn config(dir: &Path, stack: &str) -> Config {
        std::fs::write(dir.join("stack.yml"), stack).unwrap();
        Config::parse(&dir.join("release.toml"), CONFIG.to_owned(), None).unwrap()
    }

    #[test]
    fn policy_lists_every_unpinned_image_of_the_rendered_stack() {
        let dir = tempfile::tempdir().unwrap();
        let pinned = format!("r.example.com/t/api:1.0.0@sha256:{}", "a".repeat(64));
        let stack = format!(
            "services:\n  api:\n    image: {pinned}\n  worker:\n    image: r.example.com/t/worker:1.0.0\n  \
             side:\n    image: r.example.com/side:2\n"
        );
        let config = config(dir.path(), &stack);
        let rendered = StackFile::parse(Path::new("s.yml"), &stack).unwrap();
        let err = check_policy(&config, "dev", &rendered).unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        assert!(err.message.contains("2 problems"), "{}", err.message);
        assert_eq!(
            err.details,
            [
                "service `side`: image `r.example.com/side:2` is not pinned by digest (the release does not build it; pin it as REPO:TAG@sha256:… in the stack file)",
                "service `worker`: image `r.example.com/t/worker:1.0.0` is not pinned by digest (the release does not build it; pin it as REPO:TAG@sha256:… in the stack file)",
            ]
        );
        assert!(!err.details.iter().any(|d| d.contains("`api`")));
    }
}
