//! `release status --env E`: what the Swarm runs now for an environment's stack.

use serde::Serialize;

use crate::cli::{Global, StatusArgs};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Report {
    env: String,
    stack: String,
    docker_host: String,
    services: Vec<Row>,
    /// Whether any service is flagged.
    flagged: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    /// The service's name in release.toml, if the config knows it.
    service: Option<String>,
    /// The Swarm service name (`<stack>_<name>`), if it exists.
    swarm_service: Option<String>,
    image: Option<String>,
    pinned: bool,
    desired: u64,
    running: u64,
    update_state: Option<String>,
    /// What is wrong, in words; empty when nothing is.
    flags: Vec<String>,
}

pub async fn run(global: &Global, args: &StatusArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    let engine = super::connect_env(&config, &args.env).await?;
    let live = engine.stack_services(&env.stack).await?;

    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for (name, service) in &config.services {
        let stack_name = service.stack_service_name(name);
        let Some(state) = live.iter().find(|s| s.stack_service == stack_name) else {
            rows.push(Row {
                service: Some(name.clone()),
                swarm_service: None,
                image: None,
                pinned: false,
                desired: 0,
                running: 0,
                update_state: None,
                flags: vec!["not deployed".to_owned()],
            });
            continue;
        };
        seen.push(state.name.clone());
        rows.push(row(Some(name.clone()), state));
    }
    for state in live.iter().filter(|s| !seen.contains(&s.name)) {
        rows.push(row(None, state));
    }
    let report = Report {
        flagged: rows.iter().any(|r| !r.flags.is_empty()),
        env: args.env.clone(),
        stack: env.stack.clone(),
        docker_host: engine.host().to_owned(),
        services: rows,
    };
    if global.json {
        super::print_json(&report)?;
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.flagged {
        Code::Negative
    } else {
        Code::Success
    })
}

fn row(service: Option<String>, state: &engine::ServiceState) -> Row {
    let mut flags = Vec::new();
    if !state.pinned {
        flags.push("NOT PINNED: image has no digest".to_owned());
    }
    if state.running != state.desired {
        flags.push(format!(
            "{} of {} tasks running",
            state.running, state.desired
        ));
    }
    if let Some(update) = &state.update_state
        && matches!(
            update.as_str(),
            "paused" | "rollback_started" | "rollback_paused" | "rollback_completed"
        )
    {
        flags.push(format!("update {update}"));
    }
    if service.is_none() {
        flags.push("not in release.toml".to_owned());
    }
    Row {
        service,
        swarm_service: Some(state.name.clone()),
        image: Some(state.image.clone()),
        pinned: state.pinned,
        desired: state.desired,
        running: state.running,
        update_state: state.update_state.clone(),
        flags,
    }
}

fn render(report: &Report) -> String {
    let mut table = vec![["SERVICE", "REPLICAS", "PINNED", "IMAGE", "FLAGS"].map(str::to_owned)];
    for r in &report.services {
        let name = r
            .service
            .clone()
            .or_else(|| r.swarm_service.clone())
            .unwrap_or_default();
        table.push([
            name,
            format!("{}/{}", r.running, r.desired),
            if r.pinned { "yes" } else { "no" }.to_owned(),
            r.image.clone().unwrap_or_else(|| "-".to_owned()),
            r.flags.join("; "),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "env {} (stack {} on {})\n",
        report.env, report.stack, report.docker_host
    );
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let flagged = report
        .services
        .iter()
        .filter(|r| !r.flags.is_empty())
        .count();
    if flagged > 0 {
        out.push_str(&format!(
            "{flagged} of {} services flagged\n",
            report.services.len()
        ));
    } else {
        out.push_str(&format!(
            "all {} services pinned and converged\n",
            report.services.len()
        ));
    }
    out
}
