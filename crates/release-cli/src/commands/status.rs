//! `release status --env E`: what the environment runs now ([`pipeline::status`]), as a
//! table or `--json`; exit 1 when anything is flagged. A Swarm stack is shown with its
//! services and nodes, a Compose project with its containers.

use pipeline::status::{ComposeStatus, SwarmStatus};

use crate::cli::{Global, StatusArgs};
use crate::exit::{Code, Failure};

pub async fn run(global: &Global, args: &StatusArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    let flagged = if env.orchestrator == config::Orchestrator::Compose {
        // What the records say the environment runs, when this agent has them.
        let state = super::stage::state_dir(global, &config).ok();
        let report = pipeline::status::compose(&config, &args.env, state.as_ref()).await?;
        super::show(global, &report, render_compose)?;
        report.flagged
    } else {
        let report = pipeline::status::swarm(&config, &args.env).await?;
        super::show(global, &report, render_swarm)?;
        report.flagged
    };
    Ok(if flagged {
        Code::Negative
    } else {
        Code::Success
    })
}

fn render_swarm(report: &SwarmStatus) -> String {
    let mut table = vec![super::header(&[
        "SERVICE", "REPLICAS", "PINNED", "NODES", "IMAGE", "FLAGS",
    ])];
    for r in &report.services {
        let name = r
            .service
            .as_ref()
            .map(ToString::to_string)
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
    let flagged = report.services.iter().filter(|r| !r.flags.is_empty());
    let total = report.services.len();
    out.push_str(&tally(
        flagged.count(),
        total,
        "services",
        "pinned and converged",
    ));
    out.push('\n');
    let mut nodes = vec![super::header(&[
        "NODE",
        "STATE",
        "AVAILABILITY",
        "ROLE",
        "ADDRESS",
    ])];
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

/// The line under a table: `N of M NOUN flagged`, or `all M NOUN FINE`.
fn tally(flagged: usize, total: usize, noun: &str, fine: &str) -> String {
    if flagged > 0 {
        format!("{flagged} of {total} {noun} flagged\n")
    } else {
        format!("all {total} {noun} {fine}\n")
    }
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

fn render_compose(report: &ComposeStatus) -> String {
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let mut table = vec![super::header(&[
        "SERVICE",
        "CONTAINER",
        "STATE",
        "HEALTH",
        "PINNED",
        "IMAGE",
        "FLAGS",
    ])];
    for r in &report.containers {
        table.push(vec![
            dash(r.service.as_ref().map(verify::ServiceName::as_str)),
            dash(r.container.as_deref()),
            dash(r.state.as_deref()),
            dash(r.health.as_deref()),
            if r.pinned { "yes" } else { "no" }.to_owned(),
            dash(r.image.as_deref()),
            r.flags.join("; "),
        ]);
    }
    let mut out = format!(
        "env {} (compose project {} on {})\n",
        report.env, report.project, report.docker_host
    );
    out.push_str(&super::render_table(&table));
    let flagged = report.containers.iter().filter(|r| !r.flags.is_empty());
    let total = report.containers.len();
    let fine = "pinned, running and on the recorded digests";
    out.push_str(&tally(flagged.count(), total, "containers", fine));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use engine::{Availability, Node, NodeState, Role};
    use pipeline::status::SwarmRow;

    fn report() -> SwarmStatus {
        let node = |n: u8, state, availability, role, leader| Node {
            id: format!("id{n}"),
            hostname: format!("prod-{n}"),
            role,
            state,
            availability,
            addr: format!("198.18.0.1{n}"),
            leader,
        };
        let row = |service: &str, running, nodes: &[&str], flags: &[&str]| SwarmRow {
            service: Some(verify::ServiceName::parse(service).unwrap()),
            swarm_service: Some(format!("hestino-prod_{service}")),
            image: Some(format!("r.example.com/hestino/{service}:1.4.0@sha256:aaaa")),
            pinned: true,
            desired: 3,
            running,
            update_state: Some("completed".to_owned()),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        };
        SwarmStatus {
            env: "prod".parse().unwrap(),
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
        insta::assert_snapshot!(render_swarm(&report()));
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
