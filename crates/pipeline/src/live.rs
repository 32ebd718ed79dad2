//! Which Compose project or Swarm stack serves an environment now: its own, or for a
//! blue-green environment the colour the proxy's upstream file sends live traffic to. The
//! file is what the proxy was last told, whatever the records say; status, checks, audit
//! and the gate all read the environment through this.

use std::collections::BTreeMap;
use std::path::Path;

use verify::ServiceName;
use verify::colours::Colour;

use crate::Error;
use config::{BlueGreen, Config};

/// The colour the upstream file at `upstream_file` sends live traffic to: the colour whose
/// port the first route's upstream names (`None`: it sends it nowhere yet).
pub fn live_colour(bg: &BlueGreen, upstream_file: &Path) -> Option<Colour> {
    let route = bg.routes.first()?;
    let text = std::fs::read_to_string(upstream_file).unwrap_or_default();
    let port = engine::proxy::live_port(&text, &route.upstream)?;
    [Colour::Blue, Colour::Green]
        .into_iter()
        .find(|c| port == c.pick(route.blue, route.green))
}

/// The Compose project or Swarm stack that serves environment `env` (`None` when a
/// blue-green environment's proxy sends traffic nowhere yet).
pub fn live_project(config: &Config, env: &str) -> Result<Option<String>, Error> {
    let environment = config.environment(env)?;
    let name = environment.compose_project();
    if environment.strategy != config::Strategy::BlueGreen {
        return Ok(Some(name.to_owned()));
    }
    let Some(bg) = &environment.blue_green else {
        return Ok(None);
    };
    let upstream_file = config.resolve(&bg.upstream_file);
    Ok(live_colour(bg, &upstream_file).map(|c| c.project(name)))
}

/// What each release service of environment `env` runs now, read from its own engine
/// (never from the records): the image its Swarm service names, or, for Compose, the image
/// its running containers run, pinned to the digest they really run. Running containers
/// of one service that disagree are all named, comma-separated, which no comparison takes
/// for one pinned image: a half-updated service is never taken for the release. Also when
/// the Swarm services last changed (their newest `UpdatedAt`; `None` for Compose).
pub async fn live_images(
    config: &Config,
    env: &str,
) -> Result<(BTreeMap<ServiceName, String>, Option<time::OffsetDateTime>), Error> {
    let environment = config.environment(env)?;
    let stack_names = config
        .services
        .iter()
        .map(|(name, service)| (name.clone(), service.stack_service_name(name).to_owned()));
    if environment.orchestrator == config::Orchestrator::Compose {
        let engine = crate::stage::connect(config, env).await?;
        let containers = match live_project(config, env)? {
            Some(project) => engine
                .compose_containers(&project)
                .await
                .map_err(|e| Error::from(e).with_env(env))?,
            None => Vec::new(),
        };
        let images = stack_names
            .filter_map(|(name, stack_name)| {
                let running: std::collections::BTreeSet<String> = containers
                    .iter()
                    .filter(|c| c.service == stack_name && c.state == "running")
                    .map(engine::ComposeContainer::running_image)
                    .collect();
                (!running.is_empty())
                    .then(|| (name, running.into_iter().collect::<Vec<_>>().join(", ")))
            })
            .collect();
        return Ok((images, None));
    }
    let engine = crate::stage::connect(config, env).await?;
    let Some(stack) = live_project(config, env)? else {
        return Ok((BTreeMap::new(), None));
    };
    let live = engine.stack_services(&stack).await?;
    let mut updated = None;
    let images = stack_names
        .filter_map(|(name, stack_name)| {
            let state = live.iter().find(|s| s.stack_service == stack_name)?;
            let at = state.updated_at.as_deref().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            updated = updated.max(at);
            Some((name, state.image.clone()))
        })
        .collect();
    Ok((images, updated))
}
