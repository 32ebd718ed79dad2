//! `release rollback --env E [--to-version V]`: redeploy an earlier recorded release through
//! the same render, policy, apply and watch path as `release deploy`.

use crate::cli::{Global, RetireArgs, RollbackArgs};
use crate::exit::{Code, Failure};

use super::deploy::{Options, Target, run_deploy};
use super::stage;

pub async fn run(global: &Global, args: &RollbackArgs) -> Result<Code, Failure> {
    run_deploy(
        global,
        Target::Rollback(args.to_version.clone()),
        &Options {
            env: &args.env,
            timeout: args.timeout.as_deref(),
            lock_timeout: args.lock_timeout.as_deref(),
            junit: args.junit.as_deref(),
        },
    )
    .await
}

/// `release retire --env E [--now]`: the standby colour of a blue-green environment goes
/// once its window ended (or now).
pub async fn retire(global: &Global, args: &RetireArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    if env.strategy != config::Strategy::BlueGreen {
        return Err(pipeline::Error::usage(format!(
            "environment `{}` does not deploy blue-green: it has no previous colour to retire",
            args.env
        ))
        .into());
    }
    let env_name = verify::EnvName::parse(&args.env)?;
    let state = stage::state_dir(global, &config)?;
    let wait = super::deploy::duration(args.lock_timeout.as_deref(), "--lock-timeout")?
        .unwrap_or(pipeline::deploy::DEFAULT_LOCK_WAIT);
    let _lock = pipeline::stage::lock(
        &state,
        &env_name,
        wait,
        &format!("release retire --env {env_name}"),
    )
    .await?;
    let colours = state.read_colours(&env_name)?;
    let now = time::OffsetDateTime::now_utc();
    let Some(standby) = colours.standby.clone() else {
        if !global.json {
            println!("{env_name}: no previous colour is running");
        } else {
            super::print_json(&serde_json::json!({"env": env_name, "removed": null}))?;
        }
        return Ok(Code::Success);
    };
    let until = standby
        .until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    if !args.now && colours.expired(now).is_none() {
        if global.json {
            super::print_json(&serde_json::json!({
                "env": env_name, "removed": null,
                "standby": {"colour": standby.colour, "version": standby.version, "until": until},
            }))?;
        } else {
            println!(
                "{env_name}: colour {} ({}) stays for rollback until {until}",
                standby.colour, standby.version
            );
        }
        return Ok(Code::Success);
    }
    let engine = super::connect_compose_env(&config, &args.env).await?;
    let slots = pipeline::deploy::Slots {
        engine: &engine,
        swarm: env.orchestrator == config::Orchestrator::Swarm,
    };
    let reason = if args.now { "retired" } else { "window-ended" };
    let quiet = |_: engine::Progress<'_>| {};
    pipeline::deploy::retire(
        &stage::of(&config, &state, &quiet),
        &env_name,
        slots,
        env.compose_project(),
        &colours,
        reason,
    )
    .await?;
    if global.json {
        super::print_json(&serde_json::json!({
            "env": env_name,
            "removed": {"colour": standby.colour, "version": standby.version, "reason": reason},
        }))?;
    } else {
        println!(
            "{env_name}: removed colour {} ({}): {}",
            standby.colour,
            standby.version,
            reason.replace('-', " ")
        );
    }
    Ok(Code::Success)
}
