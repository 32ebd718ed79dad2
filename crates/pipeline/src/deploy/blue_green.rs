//! The deploy of a `strategy = "blue-green"` environment, Compose or Swarm
//! (docs/blue-green.md).
//!
//! The release starts beside the live one as the idle colour (Compose project or Swarm
//! stack `NAME-blue` or `NAME-green`, each routed service on its colour's host port), is
//! judged like any deploy of its orchestrator, is checked through the proxy's preview
//! listener, and only then does the proxy send traffic to it. The colour that served
//! before keeps running for the rollback window. Every switch and every removal is a
//! ledger event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::proxy::{Proxy, Upstream};
use engine::{Change, Outcome, Progress, StackFile};
use verify::colours::{Colour, Colours};
use verify::ledger::{ColourRemoved, Switched};
use verify::{EnvName, EnvPointer};

use super::{Deployed, Plan, Standby, Summary, SwitchedBack};
use crate::checks;
use crate::stage::{self, Stage};
use crate::{Error, Kind};
use config::{BlueGreen, Config, Environment};

/// The rollback window when `blue_green.rollback_window` does not say.
const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// The wait after a reload when `blue_green.switch_settle` does not say: `nginx -s reload`
/// returns once the master is signalled, and on a loaded 2-core machine its old workers
/// were seen taking connections up to ~0.3 s later (scripts/bench/compose.sh).
const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

/// The proxy and the routes of one environment.
pub(crate) struct Switch<'a> {
    pub bg: &'a BlueGreen,
    pub proxy: Proxy,
    pub window: Duration,
    pub settle: Duration,
    /// Route → stack-file name of its service.
    names: Vec<String>,
    /// Where the proxy reaches a colour's ports.
    hosts: Vec<String>,
}

impl<'a> Switch<'a> {
    pub fn new(config: &'a Config, env: &'a Environment) -> Result<Self, Error> {
        let bg = env.blue_green.as_ref().ok_or_else(|| {
            Error::usage("the environment deploys blue-green but has no [blue_green] table")
        })?;
        let command = |c: &Option<Vec<String>>, default: &[&str]| {
            c.clone()
                .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
        };
        let window = match &bg.rollback_window {
            None => DEFAULT_WINDOW,
            Some(t) => config::parse_duration(t)
                .map_err(|e| Error::usage(format!("blue_green.rollback_window: {e}")))?,
        };
        let settle = match &bg.switch_settle {
            None => DEFAULT_SETTLE,
            Some(t) => config::parse_duration(t)
                .map_err(|e| Error::usage(format!("blue_green.switch_settle: {e}")))?,
        };
        Ok(Self {
            bg,
            settle,
            proxy: Proxy {
                upstream_file: config.resolve(&bg.upstream_file),
                test_command: command(&bg.test_command, &["nginx", "-t"]),
                reload_command: command(&bg.reload_command, &["nginx", "-s", "reload"]),
                dir: std::path::absolute(&config.dir).unwrap_or_else(|_| config.dir.clone()),
            },
            window,
            hosts: bg
                .upstream_hosts
                .clone()
                .unwrap_or_else(|| vec!["127.0.0.1".to_owned()]),
            names: bg
                .routes
                .iter()
                .map(|r| config.stack_name(&r.service).to_owned())
                .collect(),
        })
    }

    fn port(&self, i: usize, colour: Colour) -> u16 {
        let r = &self.bg.routes[i];
        colour.pick(r.blue, r.green)
    }

    /// Stack-file service → the `(host, container)` port it publishes in `colour`.
    fn published(&self, colour: Colour) -> BTreeMap<String, Vec<(u16, u16)>> {
        let mut out: BTreeMap<String, Vec<(u16, u16)>> = BTreeMap::new();
        for (i, r) in self.bg.routes.iter().enumerate() {
            out.entry(self.names[i].clone())
                .or_default()
                .push((self.port(i, colour), r.port));
        }
        out
    }

    /// The upstream file with `live` serving and `preview` behind the preview listener.
    fn upstreams(&self, env: &EnvName, live: Option<Colour>, preview: Option<Colour>) -> String {
        let name = |c: Option<Colour>| c.map_or("none", Colour::as_str);
        let comment = format!(
            "environment {env}: live {}, preview {}",
            name(live),
            name(preview)
        );
        let upstreams: Vec<Upstream> = self
            .bg
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| Upstream {
                name: r.upstream.clone(),
                live: live.map(|c| self.port(i, c)),
                preview: preview.map(|c| self.port(i, c)),
            })
            .collect();
        engine::proxy::render(&comment, &upstreams, &self.hosts)
    }

    async fn switch(
        &self,
        env: &EnvName,
        live: Option<Colour>,
        preview: Option<Colour>,
    ) -> Result<Duration, Error> {
        self.proxy
            .switch(&self.upstreams(env, live, preview))
            .await
            .map(|s| s.reload)
            .map_err(|e| {
                let hint = e.hint();
                Error::infrastructure(format!("environment {env}: {e}")).with_hint(hint)
            })
    }
}

/// Where the colours run: Compose projects or Swarm stacks named `NAME-blue` /
/// `NAME-green` on the environment's engine.
#[derive(Clone, Copy)]
pub struct Slots<'a> {
    pub engine: &'a engine::Engine,
    pub swarm: bool,
}

impl Slots<'_> {
    fn what(&self) -> &'static str {
        if self.swarm {
            "stack"
        } else {
            "compose project"
        }
    }

    /// How to look at colour `project` by hand.
    fn inspect(&self, project: &str) -> String {
        if self.swarm {
            format!("inspect with `docker stack ps {project}`")
        } else {
            format!("inspect with `docker compose -p {project} ps`")
        }
    }

    /// Starts `file` as `project` and judges it: each failed service and its cause.
    async fn up(
        &self,
        project: &str,
        file: &Path,
        expected: &BTreeMap<String, String>,
        timeout: Duration,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<BTreeMap<String, String>, Error> {
        let engine = self.engine;
        let deadline = Instant::now() + timeout;
        if self.swarm {
            let before = engine.snapshot(project).await?;
            let applied = engine
                .stack_apply(project, file, &before, expected, deadline, progress)
                .await?;
            if let Some(e) = applied.refused {
                return Ok(expected
                    .keys()
                    .map(|s| (s.clone(), e.to_string()))
                    .collect());
            }
            return Ok(applied.failed.into_iter().collect());
        }
        let engine::Applied {
            mut failed,
            refused,
        } = engine
            .compose_apply(project, file, expected, timeout)
            .await?;
        if let Some(e) = &refused
            && failed.is_empty()
        {
            for service in expected.keys() {
                failed.insert(service.clone(), e.to_string());
            }
        }
        Ok(failed)
    }

    /// Removes colour `project` (started from `file`, when it is on record).
    async fn down(&self, project: &str, file: &Path) -> Result<(), String> {
        if self.swarm {
            return engine::stack_rm(
                self.engine,
                project,
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .map_err(|e| e.to_string());
        }
        engine::compose_down(self.engine.endpoint(), project, file)
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether `project` still runs exactly `expected`: the causes when it does not.
    async fn runs(
        &self,
        project: &str,
        expected: &BTreeMap<String, String>,
    ) -> Result<(), Vec<String>> {
        if self.swarm {
            let listed = self
                .engine
                .stack_tasks(project)
                .await
                .map_err(|e| vec![e.to_string()])?;
            let mut causes: Vec<String> = expected
                .keys()
                .filter(|s| {
                    !listed
                        .iter()
                        .any(|l| &l.stack_service == *s && l.tasks.iter().any(|t| t.is_running()))
                })
                .map(|s| format!("service {s}: no running task"))
                .collect();
            let off = self
                .engine
                .off_image_tasks(project, expected)
                .await
                .map_err(|e| vec![e.to_string()])?;
            causes.extend(
                off.into_iter()
                    .map(|(s, image)| format!("service {s}: a running task runs {image}")),
            );
            return if causes.is_empty() {
                Ok(())
            } else {
                Err(causes)
            };
        }
        match self
            .engine
            .compose_converged(project, expected, Instant::now())
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(problems)) => Err(engine::compose::failures_of(&problems)
                .iter()
                .map(|(s, cause)| format!("service {s}: {cause}"))
                .collect()),
            Err(e) => Err(vec![e.to_string()]),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Deploys to the idle colour, with `images` (stack-file service → pinned image) in
/// `stack`.
pub(super) async fn deploy(
    c: &Plan<'_>,
    images: &BTreeMap<String, String>,
    stack: &StackFile,
) -> Result<Deployed, Error> {
    let sw = Switch::new(c.s.config, c.env)?;
    let engine = stage::connect(c.s.config, c.env_name.as_str()).await?;
    let swarm = c.env.orchestrator == config::Orchestrator::Swarm;
    if swarm {
        engine.require_swarm_manager().await?;
    }
    let slots = Slots {
        engine: &engine,
        swarm,
    };
    let name = c.env.compose_project();
    let actor = &c.s.actor;
    let append = |event: verify::ledger::Event| c.s.append(&event);
    let now = time::OffsetDateTime::now_utc();
    let mut colours = c.s.state.read_colours(c.env_name)?;
    if colours.expired(now).is_some() {
        colours = retire(c.s, c.env_name, slots, name, &colours, "window-ended").await?;
    }

    // A rollback to the colour that still runs is a switch of the proxy, nothing more.
    if c.rolling_back
        && let Some(standby) = colours.rollback_to(now).cloned()
        && &standby.version == c.version
    {
        return switch_back(c, &sw, slots, colours, standby.colour).await;
    }

    let idle = colours.idle();
    let project = idle.project(name);
    if colours.standby.as_ref().is_some_and(|s| s.colour == idle) {
        colours = retire(c.s, c.env_name, slots, name, &colours, "replaced").await?;
    }
    let live = colours.live.as_ref().map(|l| l.colour);
    let live_version = colours.live.as_ref().map(|l| l.version.clone());

    let yaml = stack
        .render_published(images, &sw.published(idle), swarm)
        .map_err(|e| Error::usage(e.to_string()))?;
    let stack_path = c.s.state.stack_path(c.env_name, c.version);
    let rendered = StackFile::parse(&stack_path, &yaml).map_err(|e| Error::usage(e.to_string()))?;
    super::check_policy(c.s.config, c.env_name.as_str(), &rendered)?;
    let stack_path =
        c.s.state
            .write_stack(c.env_name, c.version, yaml.as_bytes())?;
    let expected = rendered.images();
    let changes: Vec<Change> = expected
        .iter()
        .map(|(service, image)| Change {
            service: service.clone(),
            name: format!("{project}-{service}"),
            image: image.clone(),
            before: None,
        })
        .collect();
    let previous_version = c.previous.as_ref().map(|p| p.version.clone());
    let summary = |outcome, outcomes: &[Outcome]| {
        Summary {
            env: c.env,
            version: c.version,
            previous_version: &previous_version,
            outcome,
            stack_path: &stack_path,
            started: c.started,
            expected: &expected,
            changes: &changes,
            outcomes,
        }
        .report(c.env_name)
    };
    let failed = |failures: BTreeMap<String, String>| Failed {
        c,
        slots,
        project: &project,
        stack_path: &stack_path,
        idle,
        live,
        live_version: live_version.clone(),
        previous_version: previous_version.clone(),
        failures,
    };

    // 1. The idle colour starts and is judged like any deploy of its orchestrator.
    (c.s.progress)(Progress {
        service: "*",
        state: format!(
            "starting {} as colour {idle} ({} {project}); {} keeps serving",
            c.version,
            slots.what(),
            live.map_or("nothing".to_owned(), |l| l.to_string())
        ),
    });
    let failures = slots
        .up(&project, &stack_path, &expected, c.timeout, c.s.progress)
        .await?;
    let after = c.started.elapsed();
    let outcomes = |failures: &BTreeMap<String, String>| -> Vec<Outcome> {
        changes
            .iter()
            .map(|ch| match failures.get(&ch.service) {
                Some(cause) => Outcome::Failed {
                    cause: cause.clone(),
                },
                None => Outcome::Converged { after },
            })
            .collect()
    };
    if !failures.is_empty() {
        let report = summary("deploy-failed", &outcomes(&failures));
        return Ok(Deployed::failed(report, failed(failures).record().await));
    }

    // 2. Its checks, through the proxy's preview listener.
    if let Err(e) = sw.switch(c.env_name, live, Some(idle)).await {
        return Err(take_down(slots, &project, &stack_path, idle, e).await);
    }
    // Until the old workers stop taking connections, the preview listener may still answer
    // from the colour it served before (an older release could pass the checks).
    tokio::time::sleep(sw.settle).await;
    (c.s.progress)(Progress {
        service: "*",
        state: format!("checking colour {idle} through {}", sw.bg.preview_url),
    });
    // What the idle colour must run: the release's digests.
    let release_pointer = EnvPointer {
        env: c.env_name.clone(),
        version: c.version.clone(),
        digests: c.digests.clone(),
        updated: time::OffsetDateTime::now_utc(),
        actor: actor.clone(),
    };
    let report = checks::run_unrecorded(
        c.s.config,
        c.env_name.as_str(),
        Some((&sw.bg.proxy_url, &sw.bg.preview_url)),
        Some(&project),
        Some(&release_pointer),
    )
    .await?;
    let failures = check_failures(&report, "on the idle colour");
    if !failures.is_empty() {
        let report = summary("deploy-failed", &outcomes(&failures));
        return Ok(Deployed::failed(report, failed(failures).record().await));
    }

    // 3. The switch.
    let reload = match sw.switch(c.env_name, Some(idle), live).await {
        Ok(reload) => reload,
        Err(e) => return Err(take_down(slots, &project, &stack_path, idle, e).await),
    };
    (c.s.progress)(Progress {
        service: "*",
        state: format!(
            "switched {} to colour {idle} ({}) in {} ms",
            sw.bg.proxy_url,
            c.version,
            ms(reload)
        ),
    });
    append(
        Switched {
            env: c.env_name.clone(),
            from_colour: live.map(|l| l.to_string()),
            from_version: live_version.clone(),
            jenkins: c.s.jenkins.clone(),
            reload_ms: ms(reload),
            to_colour: idle.to_string(),
            trigger: "deploy".to_owned(),
            version: Some(c.version.clone()),
        }
        .into(),
    )?;

    // 4. The checks once more, through the proxy as the users reach it, once the old
    // workers no longer answer from the previous colour.
    tokio::time::sleep(sw.settle).await;
    let report = checks::run_unrecorded(
        c.s.config,
        c.env_name.as_str(),
        None,
        Some(&project),
        Some(&release_pointer),
    )
    .await?;
    let failures = check_failures(&report, "through the proxy after the switch");
    if !failures.is_empty() {
        if let Some(back) = live {
            let reload = sw.switch(c.env_name, Some(back), Some(idle)).await?;
            append(
                Switched {
                    env: c.env_name.clone(),
                    from_colour: Some(idle.to_string()),
                    from_version: Some(c.version.clone()),
                    jenkins: c.s.jenkins.clone(),
                    reload_ms: ms(reload),
                    to_colour: back.to_string(),
                    trigger: "checks-failed".to_owned(),
                    version: live_version.clone(),
                }
                .into(),
            )?;
        } else {
            sw.switch(c.env_name, None, Some(idle)).await?;
        }
        let report = summary("deploy-failed", &outcomes(&failures));
        return Ok(Deployed::failed(report, failed(failures).record().await));
    }

    // 5. The records: what the environment runs now, and the colours.
    c.record_live(previous_version.clone(), &changes, &yaml)?;
    let colours = colours.switched(
        idle,
        c.version.clone(),
        time::OffsetDateTime::now_utc(),
        sw.window,
    );
    c.s.state.write_colours(&colours)?;
    let report = summary(
        if c.rolling_back {
            "rolled-back"
        } else {
            "deployed"
        },
        &outcomes(&BTreeMap::new()),
    );
    Ok(Deployed {
        standby: colours.standby.as_ref().map(|standby| Standby {
            colour: standby.colour,
            version: standby.version.clone(),
            until: standby.until,
        }),
        ..Deployed::done(report)
    })
}

/// The proxy could not be switched to the idle colour, so it serves nothing: the colour
/// is taken down and the failure says so (the live colour is untouched).
async fn take_down(
    slots: Slots<'_>,
    project: &str,
    stack_path: &Path,
    idle: Colour,
    failure: Error,
) -> Error {
    let outcome = match slots.down(project, stack_path).await {
        Ok(()) => format!("colour {idle} removed, the live colour unchanged"),
        Err(e) => format!("and colour {idle} could not be removed: {e}"),
    };
    Error {
        message: format!("{}; {outcome}", failure.message),
        ..failure
    }
}

/// Each failed check's service → its cause.
fn check_failures(report: &verify::check::CheckReport, when: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for check in report.checks.iter().filter(|c| !c.passed) {
        let cause = format!(
            "check `{}` failed {when}: {}",
            check.name,
            check.message.as_deref().unwrap_or("failed")
        );
        out.entry(check.service.clone())
            .and_modify(|c| {
                c.push_str("; ");
                c.push_str(&cause);
            })
            .or_insert(cause);
    }
    out
}

/// A release that failed on its colour: the colour goes, the live one keeps serving.
struct Failed<'a, 'c> {
    c: &'a Plan<'c>,
    slots: Slots<'a>,
    project: &'a str,
    stack_path: &'a Path,
    idle: Colour,
    live: Option<Colour>,
    live_version: Option<verify::Version>,
    previous_version: Option<verify::Version>,
    failures: BTreeMap<String, String>,
}

impl Failed<'_, '_> {
    /// Removes the idle colour, records `deploy-failed`, `colour-removed` and
    /// `rolled-back`, and returns the exit-4 failure naming each service and its cause.
    async fn record(self) -> Error {
        let c = self.c;
        let env = c.env_name.clone();
        let message = match c.record_failed(self.failures.iter(), self.previous_version.clone()) {
            Ok(message) => message,
            Err(e) => return e,
        };
        (c.s.progress)(Progress {
            service: "*",
            state: format!(
                "removing colour {} ({} {})",
                self.idle,
                self.slots.what(),
                self.project
            ),
        });
        if let Err(e) = self.slots.down(self.project, self.stack_path).await {
            return Error::infrastructure(format!(
                "{message}; and colour {} could not be removed: {e}",
                self.idle
            ))
            .with_hint(self.slots.inspect(self.project));
        }
        let removed =
            c.s.append(
                &ColourRemoved {
                    colour: self.idle.to_string(),
                    env,
                    jenkins: c.s.jenkins.clone(),
                    reason: "failed".to_owned(),
                    version: c.version.clone(),
                }
                .into(),
            )
            .and_then(|()| {
                c.record_rolled_back(
                    self.failures.keys().cloned().collect(),
                    self.previous_version.clone(),
                )
            });
        if let Err(e) = removed {
            return e;
        }
        let serving = match (self.live, &self.live_version) {
            (Some(colour), Some(version)) => {
                format!("colour {colour} ({version}) kept serving")
            }
            _ => "nothing was serving, and nothing is".to_owned(),
        };
        Error::new(
            Kind::RolledBack,
            format!("{message}; colour {} removed, {serving}", self.idle),
        )
    }
}

/// `release rollback` while the previous colour still runs: it is judged on its recorded
/// file, and the proxy is switched back to it.
async fn switch_back(
    c: &Plan<'_>,
    sw: &Switch<'_>,
    slots: Slots<'_>,
    colours: Colours,
    to: Colour,
) -> Result<Deployed, Error> {
    let name = c.env.compose_project();
    let project = to.project(name);
    let file: PathBuf = c.s.state.stack_path(c.env_name, c.version);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::infrastructure(format!(
            "the rendered file of {} is not on record ({}: {e})",
            c.version,
            file.display()
        ))
    })?;
    let recorded = StackFile::parse(&file, &text).map_err(|e| Error::usage(e.to_string()))?;
    let expected = recorded.images();
    // It must still run what it ran: a colour changed behind the tool's back gets no traffic.
    if let Err(causes) = slots.runs(&project, &expected).await {
        return Err(Error::infrastructure(format!(
            "colour {to} of {} does not run {} as recorded: {}; the proxy was not switched",
            c.env_name,
            c.version,
            causes.join("; ")
        ))
        .with_hint(format!(
            "redeploy it with `release rollback --env {}` once colour {to} is removed (`release retire --env {} --now`)",
            c.env_name, c.env_name
        )));
    }
    let from = colours.live.as_ref().map(|l| l.colour);
    let from_version = colours.live.as_ref().map(|l| l.version.clone());
    let reload = sw.switch(c.env_name, Some(to), from).await?;
    let append = |event: verify::ledger::Event| c.s.append(&event);
    append(
        Switched {
            env: c.env_name.clone(),
            from_colour: from.map(|f| f.to_string()),
            from_version: from_version.clone(),
            jenkins: c.s.jenkins.clone(),
            reload_ms: ms(reload),
            to_colour: to.to_string(),
            trigger: "rollback".to_owned(),
            version: Some(c.version.clone()),
        }
        .into(),
    )?;
    // A switch back changes no service: the colour ran all along.
    c.record_live(from_version.clone(), &[], &text)?;
    let colours = colours.switched(
        to,
        c.version.clone(),
        time::OffsetDateTime::now_utc(),
        sw.window,
    );
    c.s.state.write_colours(&colours)?;
    let changes: Vec<Change> = Vec::new();
    let report = Summary {
        env: c.env,
        version: c.version,
        previous_version: &from_version,
        outcome: "rolled-back",
        stack_path: &file,
        started: c.started,
        expected: &expected,
        changes: &changes,
        outcomes: &[],
    }
    .report(c.env_name);
    Ok(Deployed {
        switched_back: Some(SwitchedBack {
            proxy_url: sw.bg.proxy_url.clone(),
            colour: to,
            version: c.version.clone(),
            reload,
        }),
        ..Deployed::done(report)
    })
}

/// Removes the standby colour (its window ended, or a new release takes its slot) and
/// records `colour-removed`; the record without it.
pub async fn retire(
    s: &Stage<'_>,
    env: &EnvName,
    slots: Slots<'_>,
    name: &str,
    colours: &Colours,
    reason: &str,
) -> Result<Colours, Error> {
    let state = s.state;
    let Some(standby) = &colours.standby else {
        return Ok(colours.clone());
    };
    let project = standby.colour.project(name);
    s.say(format!(
        "removing colour {} ({}, {} {project}): {}",
        standby.colour,
        standby.version,
        slots.what(),
        reason.replace('-', " ")
    ));
    let file = state.stack_path(env, &standby.version);
    // `down` reads the file for the project's networks; without it the project's
    // containers still go by their label.
    let file = if file.exists() {
        file
    } else {
        PathBuf::from("/dev/null")
    };
    slots.down(&project, &file).await.map_err(|e| {
        Error::infrastructure(format!(
            "colour {} of {env} could not be removed: {e}",
            standby.colour
        ))
    })?;
    s.append(
        &ColourRemoved {
            colour: standby.colour.to_string(),
            env: env.clone(),
            jenkins: s.jenkins.clone(),
            reason: reason.to_owned(),
            version: standby.version.clone(),
        }
        .into(),
    )?;
    let next = colours.without_standby();
    state.write_colours(&next)?;
    Ok(next)
}
