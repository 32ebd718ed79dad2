//! `release status --env E` for a Compose environment: each container of the project,
//! its state and health, and whether it runs the digest the records say the environment
//! runs (a container recreated from a moved tag behind the tool's back is flagged).

use serde::Serialize;
use verify::EnvName;

use crate::cli::{Global, StatusArgs};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Report {
    env: String,
    project: String,
    docker_host: String,
    containers: Vec<Row>,
    /// Whether any container (or missing service) is flagged.
    flagged: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    /// The service's name in release.toml, if the config knows it.
    service: Option<String>,
    /// The container, if the service has one.
    container: Option<String>,
    /// The image the container runs, pinned to the digest it really runs when known.
    image: Option<String>,
    pinned: bool,
    state: Option<String>,
    health: Option<String>,
    /// What is wrong, in words; empty when nothing is.
    flags: Vec<String>,
}

pub async fn run(global: &Global, args: &StatusArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    // A blue-green environment: the colour the proxy sends traffic to.
    let project = super::live_project(&config, &args.env)?
        .unwrap_or_else(|| format!("{}-blue", env.compose_project()));
    let engine = super::connect_compose_env(&config, &args.env).await?;
    let containers = engine
        .compose_containers(&project)
        .await
        .map_err(|e| Failure::from(e).with_env(&args.env))?;
    // What the records say the environment runs, when this agent has them.
    let recorded = super::stage::state_dir(global, &config)
        .ok()
        .and_then(|state| {
            state
                .read_env(&EnvName::parse(&args.env).ok()?)
                .ok()
                .flatten()
        })
        .map(|pointer| {
            pointer
                .digests
                .into_iter()
                .map(|(service, digest)| (service, digest.as_str().to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .unwrap_or_default();

    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for (name, service) in &config.services {
        let stack_name = service.stack_service_name(name);
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| c.service == stack_name)
            .collect();
        if mine.is_empty() {
            rows.push(Row {
                service: Some(name.clone()),
                container: None,
                image: None,
                pinned: false,
                state: None,
                health: None,
                flags: vec!["not deployed".to_owned()],
            });
        }
        for c in mine {
            seen.push(c.name.clone());
            rows.push(row(
                Some(name.clone()),
                c,
                recorded.get(name).map(String::as_str),
            ));
        }
    }
    for c in containers.iter().filter(|c| !seen.contains(&c.name)) {
        rows.push(row(None, c, None));
    }
    let report = Report {
        flagged: rows.iter().any(|r| !r.flags.is_empty()),
        env: args.env.clone(),
        project,
        docker_host: engine.host().to_owned(),
        containers: rows,
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

fn row(service: Option<String>, c: &engine::ComposeContainer, recorded: Option<&str>) -> Row {
    let image = c.running_image();
    let pinned = registry_client::PinnedImage::parse(&image).ok();
    let mut flags = Vec::new();
    match (&pinned, recorded) {
        (None, _) => flags.push("NOT PINNED: image has no digest".to_owned()),
        (Some(p), Some(want)) if p.digest().as_str() != want => flags.push(format!(
            "runs {}, the records say {want} (changed outside the tool)",
            p.digest().as_str()
        )),
        _ => {}
    }
    if c.state != "running" {
        flags.push(c.state.clone());
    }
    if c.health.as_deref() == Some("unhealthy") {
        flags.push("unhealthy".to_owned());
    }
    if service.is_none() {
        flags.push("not in release.toml".to_owned());
    }
    Row {
        service,
        container: Some(c.name.clone()),
        pinned: pinned.is_some(),
        image: Some(image),
        state: Some(c.state.clone()),
        health: c.health.clone(),
        flags,
    }
}

fn render(report: &Report) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut table = vec![
        [
            "SERVICE",
            "CONTAINER",
            "STATE",
            "HEALTH",
            "PINNED",
            "IMAGE",
            "FLAGS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in &report.containers {
        table.push(vec![
            dash(&r.service),
            dash(&r.container),
            dash(&r.state),
            dash(&r.health),
            if r.pinned { "yes" } else { "no" }.to_owned(),
            dash(&r.image),
            r.flags.join("; "),
        ]);
    }
    let mut out = format!(
        "env {} (compose project {} on {})\n",
        report.env, report.project, report.docker_host
    );
    out.push_str(&super::render_table(&table));
    let flagged = report
        .containers
        .iter()
        .filter(|r| !r.flags.is_empty())
        .count();
    out.push_str(&if flagged > 0 {
        format!(
            "{flagged} of {} containers flagged\n",
            report.containers.len()
        )
    } else {
        format!(
            "all {} containers pinned, running and on the recorded digests\n",
            report.containers.len()
        )
    });
    out
}
