//! `release deploy --env E --version V`: render the digest-pinned stack, check policy, apply
//! it, watch every changed service converge, roll back on failure, record the outcome.
//!
//! `release rollback` goes through the same path ([`run_deploy`] with [`Target::Rollback`]),
//! and so does `release promote` once its gate passed ([`Target::Promote`]). An
//! environment with `promote_from` accepts a plain deploy from no one: PROD is reached
//! only through the gate.
//!
//! Locks: `deploy-<env>` is held for the whole deploy, so two deploys to one environment
//! never interleave, while deploys to different environments run in parallel. It is the
//! outermost lock: pointer and ledger writes take theirs while it is held, never the other
//! way round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Change, Outcome, Progress, StackFile};
use serde::Serialize;
use verify::history::MadeLive;
use verify::ledger::{DeployFailed, Evidence, FailureTrigger, RollbackAfterFailure};
use verify::{EnvName, EnvPointer, LockError, StateDir, Version};

use super::stage;
use crate::cli::{DeployArgs, Global};
use crate::exit::{Code, Failure};
use config::{self, Config};

mod blue_green;
mod compose;

pub(crate) use blue_green::{Slots, live_colour, retire};

/// How long a deploy waits for another deploy to the same environment by default.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);
/// Deadline for converging when neither `--timeout` nor `deploy_timeout` says.
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

/// The options `deploy` and `rollback` share.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub env: &'a str,
    pub timeout: Option<&'a str>,
    pub lock_timeout: Option<&'a str>,
    pub junit: Option<&'a Path>,
}

#[derive(Debug, Serialize)]
struct Report {
    env: String,
    stack: String,
    version: String,
    previous_version: Option<String>,
    /// `deployed`, `rolled-back` (a `release rollback` that converged) or `deploy-failed`.
    outcome: &'static str,
    rendered_stack: PathBuf,
    seconds: f64,
    services: Vec<ServiceReport>,
}

#[derive(Debug, Serialize)]
struct ServiceReport {
    service: String,
    image: String,
    changed: bool,
    /// `converged`, `unchanged`, `failed`, `timed-out`.
    result: &'static str,
    cause: Option<String>,
    seconds: f64,
}

pub async fn run(global: &Global, args: &DeployArgs) -> Result<Code, Failure> {
    run_deploy(
        global,
        Target::Deploy(args.version.clone()),
        &Options {
            env: &args.env,
            timeout: args.timeout.as_deref(),
            lock_timeout: args.lock_timeout.as_deref(),
            junit: args.junit.as_deref(),
        },
    )
    .await
}

pub async fn run_deploy(
    global: &Global,
    target: Target,
    options: &Options<'_>,
) -> Result<Code, Failure> {
    let started = Instant::now();
    let config = super::load_config(global)?;
    let env = config.environment(options.env)?.clone();
    let env_name = EnvName::parse(options.env)?;
    let timeout = duration(
        options.timeout.or(env.deploy_timeout.as_deref()),
        DEFAULT_DEPLOY_TIMEOUT,
        "--timeout",
    )?;
    let lock_wait = duration(options.lock_timeout, DEFAULT_LOCK_WAIT, "--lock-timeout")?;
    if let (Target::Deploy(v), Some(from)) = (&target, &env.promote_from) {
        return Err(Failure::usage(format!(
            "environment `{env_name}` receives releases only through the promotion gate (promote_from = \"{from}\")"
        ))
        .with_hint(format!(
            "run `release promote --version {v} --to {env_name}` once {v} passed its checks in `{from}`"
        )));
    }
    let state = stage::state_dir(global, &config)?;

    // Policy on the rendered stack needs the release, which a rollback only knows after
    // reading the records; both happen under the lock so nothing moves in between.
    let purpose = match &target {
        Target::Deploy(v) => format!("release deploy --env {env_name} --version {v}"),
        Target::Rollback(_) => format!("release rollback --env {env_name}"),
        Target::Promote { version, .. } => {
            format!("release promote --version {version} --to {env_name}")
        }
    };
    let _lock = lock(&state, &env_name, lock_wait, &purpose).await?;

    let previous = state.read_env(&env_name).map_err(stage::record_failure)?;
    let (version, rolling_back) = match &target {
        Target::Deploy(v) | Target::Promote { version: v, .. } => {
            (stage::version(&config, v)?, false)
        }
        Target::Rollback(to) => (
            rollback_target(&config, &state, &env_name, previous.as_ref(), to.as_deref())?,
            true,
        ),
    };
    let release = state
        .load_release(&version)
        .map_err(stage::record_failure)?
        .manifest;

    let stack = config.stacks.get(options.env).ok_or_else(|| {
        Failure::usage(format!("environment {env_name} has no stack file loaded"))
    })?;
    let images = pinned_images(&config, stack, &release);
    // Release service → the digest this environment will run: what the records name.
    let digests: BTreeMap<String, verify::Digest> = release
        .services
        .iter()
        .filter(|(name, _)| images.contains_key(stack_name(&config, name)))
        .map(|(name, image)| (name.clone(), image.digest.clone()))
        .collect();
    if env.strategy == config::Strategy::BlueGreen {
        let progress = progress_printer(global, started);
        return blue_green::deploy(blue_green::Ctx {
            global,
            options,
            config: &config,
            env: &env,
            env_name: &env_name,
            target: &target,
            state: &state,
            previous,
            version: &version,
            digests,
            images: &images,
            stack,
            timeout,
            started,
            rolling_back,
            progress: &progress,
        })
        .await;
    }
    let yaml = stack
        .render(&images)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let stack_path = state.stack_path(&env_name, &version);
    let rendered =
        StackFile::parse(&stack_path, &yaml).map_err(|e| Failure::usage(e.to_string()))?;
    check_policy(&config, options.env, &rendered)?;
    let stack_path = state
        .write_stack(&env_name, &version, yaml.as_bytes())
        .map_err(stage::record_failure)?;

    if env.orchestrator == config::Orchestrator::Compose {
        let progress = progress_printer(global, started);
        return compose::deploy(compose::Ctx {
            global,
            options,
            config: &config,
            env: &env,
            env_name: &env_name,
            target: &target,
            state: &state,
            previous,
            version: &version,
            digests,
            yaml: &yaml,
            rendered: &rendered,
            stack_path: &stack_path,
            timeout,
            started,
            rolling_back,
            progress: &progress,
        })
        .await;
    }
    let engine = super::connect_env(&config, options.env).await?;
    engine.require_swarm_manager().await?;
    let before = engine.snapshot(&env.stack).await?;
    let progress = progress_printer(global, started);
    progress(Progress {
        service: "*",
        state: format!(
            "applying {} to stack {} ({})",
            version,
            env.stack,
            stack_path.display()
        ),
    });
    let deadline = Instant::now() + timeout;
    let applied = engine::stack_deploy(engine.endpoint(), &env.stack, &stack_path).await;
    let changes = engine.changes(&env.stack, &before).await?;
    let mut outcomes: Vec<Outcome> = match &applied {
        Ok(()) => engine.watch(&changes, deadline, &progress).await,
        Err(e) => changes
            .iter()
            .map(|_| Outcome::Failed {
                cause: e.to_string(),
            })
            .collect(),
    };
    if let Err(e) = &applied
        && changes.is_empty()
    {
        return Err(Failure::infrastructure(e.to_string()));
    }

    // Converged is not enough: every running task must name the pinned image.
    let expected = rendered.images();
    let off_image = if outcomes.iter().all(Outcome::is_converged) {
        engine.off_image_tasks(&env.stack, &expected).await?
    } else {
        Vec::new()
    };
    let failed = engine::verdict(&changes, &mut outcomes, off_image);
    let actor = stage::actor();
    let previous_version = previous.as_ref().map(|p| p.version.to_string());
    let ledger = state.ledger();

    let code = if failed.is_empty() {
        verify::history::Live {
            env: env_name.clone(),
            version: version.clone(),
            previous_version: previous_version.clone(),
            digests,
            changed: changes.iter().map(|c| c.service.clone()).collect(),
            stack_sha256: verify::Digest::of(yaml.as_bytes()),
            jenkins: stage::jenkins_build(),
        }
        .record(&state, &actor, target.made_live())
        .map_err(stage::record_failure)?;
        Code::Success
    } else {
        let failures: BTreeMap<String, String> = failed.iter().cloned().collect();
        let event = DeployFailed {
            env: env_name.to_string(),
            failures,
            jenkins: stage::jenkins_build(),
            previous_version: previous_version.clone(),
            version: version.to_string(),
        };
        ledger
            .append_event(&actor, &event.into())
            .map_err(|e| stage::record_failure(e.into()))?;
        let rollback_deadline = Instant::now() + timeout;
        let results = engine
            .roll_back(&changes, rollback_deadline, &progress)
            .await;
        let stuck: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        let rolled: Vec<&str> = changes.iter().map(|c| c.service.as_str()).collect();
        if stuck.is_empty() && !changes.is_empty() {
            let event = RollbackAfterFailure {
                env: env_name.to_string(),
                from_version: version.to_string(),
                services: rolled.iter().map(|s| (*s).to_owned()).collect(),
                to_version: previous_version.clone(),
                trigger: FailureTrigger::DeployFailed,
            };
            ledger
                .append_event(&actor, &event.into())
                .map_err(|e| stage::record_failure(e.into()))?;
        }
        let causes: Vec<String> = failed
            .iter()
            .map(|(service, cause)| format!("service {service}: {cause}"))
            .collect();
        let message = format!(
            "deploy of {version} to {env_name} failed: {}",
            causes.join("; ")
        );
        write_outputs(
            global,
            options,
            Summary {
                env: &env,
                version: &version,
                previous_version: &previous_version,
                outcome: "deploy-failed",
                stack_path: &stack_path,
                started,
                expected: &expected,
                changes: &changes,
                outcomes: &outcomes,
            },
        )?;
        if !stuck.is_empty() {
            return Err(Failure::infrastructure(format!(
                "{message}; and the rollback did not converge: {}",
                stuck.join("; ")
            ))
            .with_hint(format!(
                "inspect with `release status --env {env_name}` and `docker service ps`"
            )));
        }
        if changes.is_empty() {
            // Nothing to roll back: the live stack is not what the records would claim.
            return Err(Failure::new(Code::Negative, message)
                .with_hint(format!("compare with `release status --env {env_name}`")));
        }
        return Err(Failure::new(
            Code::RolledBack,
            format!(
                "{message}; rolled back {} to {}",
                rolled.join(", "),
                previous_version
                    .as_deref()
                    .unwrap_or("the state before the deploy")
            ),
        ));
    };
    write_outputs(
        global,
        options,
        Summary {
            env: &env,
            version: &version,
            previous_version: &previous_version,
            outcome: if rolling_back {
                "rolled-back"
            } else {
                "deployed"
            },
            stack_path: &stack_path,
            started,
            expected: &expected,
            changes: &changes,
            outcomes: &outcomes,
        },
    )?;
    Ok(code)
}

struct Summary<'a> {
    env: &'a config::Environment,
    version: &'a Version,
    previous_version: &'a Option<String>,
    outcome: &'static str,
    stack_path: &'a Path,
    started: Instant,
    expected: &'a BTreeMap<String, String>,
    changes: &'a [Change],
    outcomes: &'a [Outcome],
}

fn write_outputs(global: &Global, options: &Options<'_>, s: Summary<'_>) -> Result<(), Failure> {
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
                Some((_, Outcome::Converged { after })) => ("converged", None, after.as_secs_f64()),
                Some((_, o @ Outcome::Failed { .. })) => ("failed", Some(o.to_string()), 0.0),
                Some((_, o @ Outcome::TimedOut { .. })) => ("timed-out", Some(o.to_string()), 0.0),
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
    let report = Report {
        env: options.env.to_owned(),
        // A Compose environment reports its project here.
        stack: match s.env.orchestrator {
            config::Orchestrator::Swarm => s.env.stack.clone(),
            config::Orchestrator::Compose => s.env.compose_project().to_owned(),
        },
        version: s.version.to_string(),
        previous_version: s.previous_version.clone(),
        outcome: s.outcome,
        rendered_stack: s.stack_path.to_owned(),
        seconds: s.started.elapsed().as_secs_f64(),
        services,
    };
    if let Some(path) = options.junit {
        write_junit(path, &report)?;
    }
    if global.json {
        super::print_json(&report)?;
    } else if s.outcome != "deploy-failed" {
        let changed = report.services.iter().filter(|s| s.changed).count();
        let what = if s.outcome == "rolled-back" {
            format!("{} rolled back to {}", report.env, report.version)
        } else {
            format!("deployed {} to {}", report.version, report.env)
        };
        println!(
            "{what} (stack {}): {changed} of {} services changed, converged in {:.1}s",
            report.stack,
            report.services.len(),
            report.seconds
        );
    }
    Ok(())
}

/// One JUnit test case per service of the rendered stack (`classname` `deploy.<env>`), in
/// the shape every stage writes (`verify::junit`).
fn write_junit(path: &Path, report: &Report) -> Result<(), Failure> {
    use verify::junit::{self, Case, Suite};
    let classname = junit::classname(&["deploy", &report.env]);
    let cases = report
        .services
        .iter()
        .map(|s| Case {
            classname: classname.clone(),
            name: format!("{} runs {}", s.service, s.image),
            seconds: s.seconds,
            failure: match s.result {
                "converged" | "unchanged" => None,
                other => {
                    let cause = s.cause.clone().unwrap_or_else(|| other.to_owned());
                    Some(junit::Failure {
                        kind: other.to_owned(),
                        message: cause.clone(),
                        details: cause,
                    })
                }
            },
            output: Some(s.result.to_owned()),
        })
        .collect();
    let suite = Suite {
        name: format!("deploy {} to {}", report.version, report.env),
        timestamp: stage::started_ago(report.seconds),
        cases,
    };
    stage::write_junit_suites(path, &[suite])
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
            let in_stack = stack_name(config, name);
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

/// A release service's name in the stack file.
fn stack_name<'a>(config: &'a Config, service: &'a str) -> &'a str {
    config
        .services
        .get(service)
        .map_or(service, |s| s.stack_service_name(service))
}

/// The deploy-time policy, on the stack exactly as it would be applied: every problem is
/// listed, nothing is applied if there is one. Config loading has already refused shared
/// secrets; replicas and ports are checked again here because they are cheap and this is
/// the last look before the Swarm.
fn check_policy(config: &Config, env: &str, rendered: &StackFile) -> Result<(), Failure> {
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
    Err(Failure::usage(format!(
        "policy refuses the stack for {env} ({} problem{}), nothing was deployed:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
    ))
    .with_details(problems))
}

pub(super) async fn lock(
    state: &StateDir,
    env: &EnvName,
    wait: Duration,
    purpose: &str,
) -> Result<verify::LockGuard, Failure> {
    let state = state.clone();
    let name = format!("deploy-{env}");
    let purpose = purpose.to_owned();
    let env = env.clone();
    tokio::task::spawn_blocking(move || state.lock(&name, wait, &purpose))
        .await
        .map_err(|e| Failure::infrastructure(format!("lock task failed: {e}")))?
        .map_err(|e| match e {
            LockError::Timeout { .. } => {
                Failure::infrastructure(format!("another deploy to {env} is running: {e}"))
                    .with_hint("let it finish, or wait longer with --lock-timeout")
            }
            other => Failure::infrastructure(other.to_string()),
        })
}

/// The version `release rollback` returns to: `--to-version`, else the one live before the
/// current one ([`verify::history::rollback_target`]).
fn rollback_target(
    config: &Config,
    state: &StateDir,
    env: &EnvName,
    current: Option<&EnvPointer>,
    to: Option<&str>,
) -> Result<Version, Failure> {
    if let Some(to) = to {
        return stage::version(config, to);
    }
    let events = state
        .ledger()
        .read_events()
        .map_err(|e| stage::record_failure(e.into()))?;
    verify::history::rollback_target(&events, env, current).map_err(|e| {
        let hint = format!("{} (--to-version)", e.hint());
        let code = match e {
            verify::history::HistoryError::Diverged { .. } => Code::Negative,
            _ => Code::Usage,
        };
        Failure::new(code, e.to_string()).with_hint(hint)
    })
}

fn duration(text: Option<&str>, default: Duration, what: &str) -> Result<Duration, Failure> {
    match text {
        None => Ok(default),
        Some(t) => config::parse_duration(t).map_err(|e| Failure::usage(format!("{what}: {e}"))),
    }
}

/// Progress on stderr. On an interactive terminal, one line per service redrawn in place;
/// in CI (`CI` or `JENKINS_URL` set), under `NO_COLOR` or `TERM=dumb`, or when stderr is not
/// a terminal, a plain line per state change with the seconds since the deploy started.
fn progress_printer(global: &Global, started: Instant) -> impl Fn(Progress<'_>) + Sync + use<> {
    let quiet = global.quiet;
    let in_place = crate::terminal::stderr_live();
    let board = std::sync::Mutex::new(Board::default());
    move |p: Progress<'_>| {
        if quiet {
            return;
        }
        let seconds = started.elapsed().as_secs_f64();
        if in_place {
            // Rows longer than the terminal would wrap and throw the redraw off by a line.
            let width = terminal_size::terminal_size_of(std::io::stderr())
                .map_or(80, |(w, _)| usize::from(w.0));
            let mut board = board.lock().unwrap_or_else(|e| e.into_inner());
            eprint!("{}", board.update(p.service, &p.state, seconds, width));
        } else {
            eprintln!("deploy: [{seconds:>5.1}s] {}: {}", p.service, p.state);
        }
    }
}

/// The in-place progress block: a row per service in order of first appearance.
#[derive(Debug, Default)]
struct Board {
    rows: Vec<(String, String, f64)>,
    drawn: usize,
}

impl Board {
    /// Records `service`'s new state; returns the text that redraws the whole block over the
    /// one drawn before (cursor up, then each row cleared and written, cut to `width - 1`
    /// characters so that no row wraps).
    fn update(&mut self, service: &str, state: &str, seconds: f64, width: usize) -> String {
        match self.rows.iter_mut().find(|r| r.0 == service) {
            Some(row) => {
                row.1 = state.to_owned();
                row.2 = seconds;
            }
            None => self
                .rows
                .push((service.to_owned(), state.to_owned(), seconds)),
        }
        let pad = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for (name, state, at) in &self.rows {
            let row = format!("deploy: {name:<pad$}  [{at:>5.1}s] {state}");
            let row = crate::terminal::cut_to_width(&row, width.saturating_sub(1).max(20));
            out.push_str(&format!("\r\x1b[2K{row}\n"));
        }
        self.drawn = self.rows.len();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_terminal_board_redraws_every_service_in_place() {
        let mut board = Board::default();
        let first = board.update("api", "updating", 0.5, 120);
        assert_eq!(first, "\r\x1b[2Kdeploy: api  [  0.5s] updating\n");
        let second = board.update("admin-app", "updating", 0.6, 120);
        assert!(second.starts_with("\x1b[1A"), "{second:?}");
        let third = board.update("api", "converged", 7.31, 120);
        assert_eq!(
            third,
            "\x1b[2A\r\x1b[2Kdeploy: api        [  7.3s] converged\n\r\x1b[2Kdeploy: admin-app  [  0.6s] updating\n"
        );
        // A narrow terminal: rows are cut, never wrapped.
        let narrow = board.update("api", &"x".repeat(200), 8.0, 40);
        for row in narrow.split('\n').filter(|r| !r.is_empty()) {
            let visible = row.rsplit("\x1b[2K").next().unwrap();
            assert!(visible.chars().count() <= 39, "{visible:?}");
        }
    }

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
        assert_eq!(err.code, Code::Usage);
        assert!(err.message.contains("2 problems"), "{}", err.message);
        assert_eq!(
            err.details,
            [
                "service `side`: image `r.example.com/side:2` is not pinned by digest (the release does not build it; pin it as REPO:TAG@sha256:… in the stack file)",
                "service `worker`: image `r.example.com/t/worker:1.0.0` is not pinned by digest (the release does not build it; pin it as REPO:TAG@sha256:… in the stack file)",
            ]
        );
        let shown = err.to_string();
        assert!(shown.contains("\n  service `side`"), "{shown}");
        assert!(!shown.contains("`api`"), "{shown}");
    }
}

#[cfg(test)]
mod junit_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn junit_has_one_case_per_service_with_the_failure_cause() {
        let service = |name: &str, result, cause: Option<&str>| ServiceReport {
            service: name.to_owned(),
            image: format!("r.example.com/t/{name}:1.2.0@sha256:{}", "a".repeat(64)),
            changed: true,
            result,
            cause: cause.map(str::to_owned),
            seconds: 1.5,
        };
        let report = Report {
            env: "dev".into(),
            stack: "t-dev".into(),
            version: "1.2.0".into(),
            previous_version: Some("1.1.0".into()),
            outcome: "deploy-failed",
            rendered_stack: PathBuf::from("stacks/dev/1.2.0.yml"),
            seconds: 9.0,
            services: vec![
                service(
                    "api",
                    "failed",
                    Some("task x failed; exit code 3; health check: exit 1: unhealthy"),
                ),
                service("worker", "converged", None),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy.xml");
        write_junit(&path, &report).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        insta::with_settings!({filters => vec![(r#"timestamp="[^"]*""#, r#"timestamp="[time]""#)]}, {
            insta::assert_snapshot!(xml);
        });
    }
}
