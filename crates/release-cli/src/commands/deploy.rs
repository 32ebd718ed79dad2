//! `release deploy --env E --version V`, and the deploy behind `release rollback` and
//! `release promote`: the flags become a [`pipeline::Stage`] and [`pipeline::deploy::Options`],
//! [`pipeline::deploy::run`] does the deploy (see there for what it does and in which
//! order), and this module renders its report: a line or `--json` on stdout, JUnit, and
//! progress on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline::deploy::Deployed;

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
    let config = super::load_config(global)?;
    let deploy_options = deploy_options(options)?;
    // The environment is checked before the state directory is opened.
    config.environment(options.env)?;
    let state = stage::state_dir(global, &config)?;
    // Progress on stderr, nothing on stdout: an error is a deploy that applied nothing, a
    // failure after applying something is in the `Deployed`.
    let progress = crate::progress::printer(global.quiet, Instant::now());
    let deployed = pipeline::deploy::run(
        &stage::of(&config, &state, &progress),
        target,
        &deploy_options,
    )
    .await?;
    write_outputs(global, options, &deployed)?;
    finish(deployed)
}

/// The deploy's settings from the flags: a duration that does not parse is a usage error
/// naming its flag.
pub fn deploy_options<'a>(options: &Options<'a>) -> Result<pipeline::deploy::Options<'a>, Failure> {
    Ok(pipeline::deploy::Options {
        env: options.env,
        timeout: duration(options.timeout, "--timeout")?,
        lock_wait: duration(options.lock_timeout, "--lock-timeout")?,
    })
}

/// The exit of a deploy whose report is printed: its failure, marked reported.
pub fn finish(deployed: Deployed) -> Result<Code, Failure> {
    match deployed.failure {
        Some(failure) => Err(Failure::from(failure).reported()),
        None => Ok(Code::Success),
    }
}

pub fn duration(text: Option<&str>, flag: &str) -> Result<Option<Duration>, pipeline::Error> {
    text.map(|t| {
        config::parse_duration(t).map_err(|e| pipeline::Error::usage(format!("{flag}: {e}")))
    })
    .transpose()
}

/// The report: JUnit when asked, then the `--json` document or, for people, a line (none
/// for a failed deploy: its error says it) and what a blue-green deploy left running.
pub fn write_outputs(global: &Global, options: &Options<'_>, d: &Deployed) -> Result<(), Failure> {
    let report = &d.report;
    if let Some(path) = options.junit {
        crate::junit::write(path, &[crate::junit::of_deploy(report)])?;
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
