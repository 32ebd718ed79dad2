//! `release deploy --env E --version V`, and the deploy behind `release rollback` and
//! `release promote`: the flags become a [`pipeline::Stage`] and [`pipeline::deploy::Options`],
//! [`pipeline::deploy::run`] does the deploy (see there for what it does and in which
//! order), and this module renders its report: a line or `--json` on stdout, JUnit, and
//! progress on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use engine::Progress;
use pipeline::deploy::{Deployed, Report};

pub use pipeline::deploy::Target;

use super::stage;
use crate::cli::{DeployArgs, Global};
use crate::exit::{Code, Failure};

/// The flags `deploy` and `rollback` share.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub env: &'a str,
    pub timeout: Option<&'a str>,
    pub lock_timeout: Option<&'a str>,
    pub junit: Option<&'a Path>,
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
    let deploy_options = pipeline::deploy::Options {
        env: options.env,
        timeout: duration(options.timeout, "--timeout")?,
        lock_wait: duration(options.lock_timeout, "--lock-timeout")?,
    };
    // The environment is checked before the state directory is opened.
    config.environment(options.env)?;
    let state = stage::state_dir(global, &config)?;
    let progress = progress_printer(global, started);
    let deployed = pipeline::deploy::run(
        &stage::of(&config, &state, &progress),
        target,
        &deploy_options,
    )
    .await?;
    write_outputs(global, options, &deployed)?;
    match deployed.failure {
        Some(failure) => Err(Failure::from(failure).reported()),
        None => Ok(Code::Success),
    }
}

fn duration(text: Option<&str>, flag: &str) -> Result<Option<Duration>, Failure> {
    text.map(|t| config::parse_duration(t).map_err(|e| Failure::usage(format!("{flag}: {e}"))))
        .transpose()
}

/// The report: JUnit when asked, then the `--json` document or, for people, a line (none
/// for a failed deploy: its error says it) and what a blue-green deploy left running.
fn write_outputs(global: &Global, options: &Options<'_>, d: &Deployed) -> Result<(), Failure> {
    let report = &d.report;
    if let Some(path) = options.junit {
        write_junit(path, report)?;
    }
    if global.json {
        return super::print_json(report);
    }
    if report.outcome != "deploy-failed" {
        let changed = report.services.iter().filter(|s| s.changed).count();
        let what = if report.outcome == "rolled-back" {
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
    if let Some(standby) = &d.standby {
        println!(
            "colour {} ({}) keeps running for `release rollback --env {}` until {}",
            standby.colour,
            standby.version,
            report.env,
            standby
                .until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
    }
    if let Some(back) = &d.switched_back {
        println!(
            "switched {} back to colour {} ({}) in {} ms",
            back.proxy_url,
            back.colour,
            back.version,
            back.reload.as_millis()
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

/// Progress on stderr. On an interactive terminal, one line per service redrawn in place;
/// in CI (`CI` or `JENKINS_URL` set), under `NO_COLOR` or `TERM=dumb`, or when stderr is not
/// a terminal, a plain line per state change with the seconds since the deploy started.
pub(super) fn progress_printer(
    global: &Global,
    started: Instant,
) -> impl Fn(Progress<'_>) + Sync + use<> {
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
}

#[cfg(test)]
mod junit_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use pipeline::deploy::ServiceReport;
    use std::path::PathBuf;

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
