//! `release status --env E`: what the Swarm runs now for an environment's stack, and on
//! which nodes.

use serde::Serialize;

use crate::cli::{Global, StatusArgs};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Report {
    env: String,
    stack: String,
    docker_host: String,
    services: Vec<Row>,
    /// The Swarm's nodes, sorted by hostname.
    nodes: Vec<engine::Node>,
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
    /// The hostname of each running task's node, sorted.
    nodes: Vec<String>,
    /// What is wrong, in words; empty when nothing is.
    flags: Vec<String>,
}

pub async fn run(global: &Global, args: &StatusArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    if env.orchestrator == config::Orchestrator::Compose {
        return super::status_compose::run(global, args).await;
    }
    let engine = super::connect_env(&config, &args.env).await?;
    // A blue-green environment: the colour the proxy sends traffic to.
    let stack =
        super::live_project(&config, &args.env)?.unwrap_or_else(|| format!("{}-blue", env.stack));
    let live = engine.stack_services(&stack).await?;
    let placement = engine.placement(&stack).await?;

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
                nodes: Vec::new(),
                flags: vec!["not deployed".to_owned()],
            });
            continue;
        };
        seen.push(state.name.clone());
        rows.push(row(Some(name.clone()), state, &placement));
    }
    for state in live.iter().filter(|s| !seen.contains(&s.name)) {
        rows.push(row(None, state, &placement));
    }
    let report = Report {
        flagged: rows.iter().any(|r| !r.flags.is_empty()),
        env: args.env.clone(),
        stack: stack.clone(),
        docker_host: engine.host().to_owned(),
        services: rows,
        nodes: placement.nodes,
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

fn row(
    service: Option<String>,
    state: &engine::ServiceState,
    placement: &engine::Placement,
) -> Row {
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
        nodes: placement
            .services
            .get(&state.name)
            .cloned()
            .unwrap_or_default(),
        flags,
    }
}

fn render(report: &Report) -> String {
    let mut table = vec![
        ["SERVICE", "REPLICAS", "PINNED", "NODES", "IMAGE", "FLAGS"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for r in &report.services {
        let name = r
            .service
            .clone()
            .or_else(|| r.swarm_service.clone())
            .unwrap_or_default();
        table.push(vec![
            name,
            format!("{}/{}", r.running, r.desired),
            if r.pinned { "yes" } else { "no" }.to_owned(),
            hosts(&r.nodes),
            r.image.clone().unwrap_or_else(|| "-".to_owned()),
            r.flags.join("; "),
        ]);
    }
    let mut out = format!(
        "env {} (stack {} on {})\n",
        report.env, report.stack, report.docker_host
    );
    out.push_str(&super::render_table(&table));
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
    out.push('\n');
    let mut nodes = vec![
        ["NODE", "STATE", "AVAILABILITY", "ROLE", "ADDRESS"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for n in &report.nodes {
        let role = if n.leader {
            format!("{} (leader)", n.role.as_str())
        } else {
            n.role.as_str().to_owned()
        };
        nodes.push(vec![
            n.hostname.clone(),
            n.state.as_str().to_owned(),
            n.availability.as_str().to_owned(),
            role,
            if n.addr.is_empty() {
                "-".to_owned()
            } else {
                n.addr.clone()
            },
        ]);
    }
    out.push_str(&super::render_table(&nodes));
    let unavailable: Vec<String> = report
        .nodes
        .iter()
        .filter_map(|n| n.loss().map(|how| format!("{} {how}", n.hostname)))
        .collect();
    if unavailable.is_empty() {
        out.push_str(&format!(
            "all {} nodes ready and active\n",
            report.nodes.len()
        ));
    } else {
        out.push_str(&format!(
            "{} of {} nodes not available for tasks: {}\n",
            unavailable.len(),
            report.nodes.len(),
            unavailable.join(", ")
        ));
    }
    out
}

/// `prod-1, prod-2 (2)`: each node once, with its task count when more than one.
fn hosts(nodes: &[String]) -> String {
    if nodes.is_empty() {
        return "-".to_owned();
    }
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for n in nodes {
        match counted.iter_mut().find(|(h, _)| h == n) {
            Some((_, c)) => *c += 1,
            None => counted.push((n, 1)),
        }
    }
    counted
        .iter()
        .map(|(h, c)| {
            if *c > 1 {
                format!("{h} ({c})")
            } else {
                (*h).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use engine::{Availability, Node, NodeState, Role};

    fn report() -> Report {
        let node = |n: u8, state, availability, role, leader| Node {
            id: format!("id{n}"),
            hostname: format!("prod-{n}"),
            role,
            state,
            availability,
            addr: format!("198.18.0.1{n}"),
            leader,
        };
        let row = |service: &str, running, nodes: &[&str], flags: &[&str]| Row {
            service: Some(service.to_owned()),
            swarm_service: Some(format!("hestino-prod_{service}")),
            image: Some(format!("r.example.com/hestino/{service}:1.4.0@sha256:aaaa")),
            pinned: true,
            desired: 3,
            running,
            update_state: Some("completed".to_owned()),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        };
        Report {
            env: "prod".to_owned(),
            stack: "hestino-prod".to_owned(),
            docker_host: "tcp://198.18.0.11:2376".to_owned(),
            services: vec![
                row("admin-app", 3, &["prod-1", "prod-2", "prod-2"], &[]),
                row("api", 2, &["prod-1", "prod-2"], &["2 of 3 tasks running"]),
            ],
            nodes: vec![
                node(
                    1,
                    NodeState::Ready,
                    Availability::Active,
                    Role::Manager,
                    true,
                ),
                node(
                    2,
                    NodeState::Ready,
                    Availability::Drain,
                    Role::Worker,
                    false,
                ),
                node(
                    3,
                    NodeState::Down,
                    Availability::Active,
                    Role::Worker,
                    false,
                ),
            ],
            flagged: true,
        }
    }

    #[test]
    fn status_shows_where_tasks_run_and_the_nodes() {
        insta::assert_snapshot!(render(&report()));
    }

    #[test]
    fn the_json_document_lists_nodes_and_placement() {
        let json = serde_json::to_value(report()).unwrap();
        assert_eq!(
            json["services"][0]["nodes"],
            serde_json::json!(["prod-1", "prod-2", "prod-2"])
        );
        assert_eq!(
            json["nodes"][0],
            serde_json::json!({
                "id": "id1", "hostname": "prod-1", "role": "manager", "state": "ready",
                "availability": "active", "addr": "198.18.0.11", "leader": true
            })
        );
    }
}
