//! What an environment runs now, read from its own engine and flagged where it differs
//! from what a release should look like: a Swarm stack's services (replicas, pinned,
//! update state, nodes) or a Compose project's containers (state, health, and the digest
//! the records say it runs). `release status` renders it.

use serde::Serialize;
use verify::{EnvName, ServiceName, StateDir};

use crate::Error;
use config::Config;

#[derive(Debug, Serialize)]
pub struct SwarmStatus {
    pub env: EnvName,
    pub stack: String,
    pub docker_host: String,
    pub services: Vec<SwarmRow>,
    /// The Swarm's nodes, sorted by hostname.
    pub nodes: Vec<engine::Node>,
    /// Whether any service is flagged.
    pub flagged: bool,
}

#[derive(Debug, Serialize)]
pub struct SwarmRow {
    /// The service's name in release.toml, if the config knows it.
    pub service: Option<ServiceName>,
    /// The Swarm service name (`<stack>_<name>`), if it exists.
    pub swarm_service: Option<String>,
    pub image: Option<String>,
    pub pinned: bool,
    pub desired: u64,
    pub running: u64,
    pub update_state: Option<String>,
    /// The hostname of each running task's node, sorted.
    pub nodes: Vec<String>,
    /// What is wrong, in words; empty when nothing is.
    pub flags: Vec<String>,
}

/// A Swarm environment's stack (for blue-green, the colour the proxy serves).
pub async fn swarm(config: &Config, env: &str) -> Result<SwarmStatus, Error> {
    let (env_name, environment) = config.environment_entry(env)?;
    let engine = crate::stage::connect(config, env).await?;
    // A blue-green environment: the colour the proxy sends traffic to.
    let stack = crate::live::live_project(config, env)?
        .unwrap_or_else(|| format!("{}-blue", environment.stack));
    let live = engine.stack_services(&stack).await?;
    let placement = engine.placement(&stack).await?;

    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for (name, service) in &config.services {
        let stack_name = service.stack_service_name(name);
        let Some(state) = live.iter().find(|s| s.stack_service == stack_name) else {
            rows.push(SwarmRow {
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
        rows.push(swarm_row(Some(name.clone()), state, &placement));
    }
    for state in live.iter().filter(|s| !seen.contains(&s.name)) {
        rows.push(swarm_row(None, state, &placement));
    }
    Ok(SwarmStatus {
        flagged: rows.iter().any(|r| !r.flags.is_empty()),
        env: env_name.clone(),
        stack: stack.clone(),
        docker_host: engine.host().to_owned(),
        services: rows,
        nodes: placement.nodes,
    })
}

fn swarm_row(
    service: Option<ServiceName>,
    state: &engine::ServiceState,
    placement: &engine::Placement,
) -> SwarmRow {
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
    SwarmRow {
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

#[derive(Debug, Serialize)]
pub struct ComposeStatus {
    pub env: EnvName,
    pub project: String,
    pub docker_host: String,
    pub containers: Vec<ComposeRow>,
    /// Whether any container (or missing service) is flagged.
    pub flagged: bool,
}

#[derive(Debug, Serialize)]
pub struct ComposeRow {
    /// The service's name in release.toml, if the config knows it.
    pub service: Option<ServiceName>,
    /// The container, if the service has one.
    pub container: Option<String>,
    /// The image the container runs, pinned to the digest it really runs when known.
    pub image: Option<String>,
    pub pinned: bool,
    pub state: Option<String>,
    pub health: Option<String>,
    /// What is wrong, in words; empty when nothing is.
    pub flags: Vec<String>,
}

/// A Compose environment's project (for blue-green, the colour the proxy serves), judged
/// against the digests `state` records for it when this agent has records.
pub async fn compose(
    config: &Config,
    env: &str,
    state: Option<&StateDir>,
) -> Result<ComposeStatus, Error> {
    let (env_name, environment) = config.environment_entry(env)?;
    // A blue-green environment: the colour the proxy sends traffic to.
    let project = crate::live::live_project(config, env)?
        .unwrap_or_else(|| format!("{}-blue", environment.compose_project()));
    let engine = crate::stage::connect(config, env).await?;
    let containers = engine
        .compose_containers(&project)
        .await
        .map_err(|e| Error::from(e).with_env(env))?;
    // What the records say the environment runs, when this agent has them.
    let recorded = state
        .and_then(|state| state.read_env(env_name).ok().flatten())
        .map(|pointer| pointer.digests)
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
            rows.push(ComposeRow {
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
            rows.push(compose_row(Some(name.clone()), c, recorded.get(name)));
        }
    }
    for c in containers.iter().filter(|c| !seen.contains(&c.name)) {
        rows.push(compose_row(None, c, None));
    }
    Ok(ComposeStatus {
        flagged: rows.iter().any(|r| !r.flags.is_empty()),
        env: env_name.clone(),
        project,
        docker_host: engine.host().to_owned(),
        containers: rows,
    })
}

fn compose_row(
    service: Option<ServiceName>,
    c: &engine::ComposeContainer,
    recorded: Option<&verify::Digest>,
) -> ComposeRow {
    let image = c.running_image();
    let pinned = registry_client::PinnedImage::parse(&image).ok();
    let mut flags = Vec::new();
    match (&pinned, recorded) {
        (None, _) => flags.push("NOT PINNED: image has no digest".to_owned()),
        (Some(_), Some(want)) => {
            if let Some(verify::drift::Drift::Foreign { live }) =
                verify::drift::of_image(want, &image)
            {
                flags.push(format!(
                    "runs {}, the records say {want} (changed outside the tool)",
                    live.as_str()
                ));
            }
        }
        (Some(_), None) => {}
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
    ComposeRow {
        service,
        container: Some(c.name.clone()),
        pinned: pinned.is_some(),
        image: Some(image),
        state: Some(c.state.clone()),
        health: c.health.clone(),
        flags,
    }
}
