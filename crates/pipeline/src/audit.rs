//! What `release audit` answers from the records, and `audit --live`'s comparison of the
//! records with what the engines and the registry hold now.

use std::collections::BTreeMap;

use serde::Serialize;
use verify::audit::{self, Deployment};
use verify::{Digest, EnvName, ServiceName, StateDir, Version};

use crate::Error;
use config::Config;

/// Deployments matching `query`, digests completed from the release manifests.
pub fn deployments(state: &StateDir, query: audit::Query<'_>) -> Result<Vec<Deployment>, Error> {
    let manifest_digests = |version: &Version| {
        let recorded = state.load_release(version).ok()?;
        Some(recorded.manifest.digests())
    };
    Ok(audit::deployments(
        &state.ledger(),
        query,
        manifest_digests,
    )?)
}

/// One service that does not run what was recorded, or whose tag moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub env: EnvName,
    pub service: ServiceName,
    pub recorded: Option<Digest>,
    pub live: Option<Digest>,
    pub problem: String,
}

/// `audit --live`: how many recorded services were compared, and each that drifted.
#[derive(Debug, Clone, Serialize)]
pub struct LiveAudit {
    pub compared: usize,
    pub drift: Vec<Drift>,
}

/// Compares what each environment (`env`, else every one) runs now, Swarm services or
/// Compose containers, and what the registry's tags name, with the latest recorded
/// deployment; `service` narrows it to one release service.
pub async fn live(
    config: &Config,
    state: &StateDir,
    registry: &registry_client::Client,
    env: Option<&str>,
    service: Option<&str>,
) -> Result<LiveAudit, Error> {
    let now = time::OffsetDateTime::now_utc();
    let deployments = deployments(state, audit::Query { env, at: Some(now) })?;
    let envs: Vec<&EnvName> = match env {
        Some(e) => vec![config.environment_entry(e)?.0],
        None => config.environments.keys().collect(),
    };
    let mut drift = Vec::new();
    let mut compared = 0;
    for env_name in envs {
        // With `at`, the query keeps only the latest deployment per environment.
        let Some(recorded) = deployments.iter().find(|d| d.env == *env_name) else {
            continue;
        };
        let (live, _) = crate::live::live_images(config, env_name.as_str()).await?;
        let manifest = state.load_release(&recorded.version).ok();
        let selected: BTreeMap<ServiceName, Digest> = recorded
            .digests
            .iter()
            .filter(|(name, _)| service.is_none_or(|s| s == name.as_str()))
            .map(|(name, digest)| (name.clone(), digest.clone()))
            .collect();
        compared += selected.len();
        // What each selected release service runs now.
        let running: BTreeMap<ServiceName, String> = live
            .into_iter()
            .filter(|(name, _)| selected.contains_key(name))
            .collect();
        let mut live_drift: BTreeMap<ServiceName, verify::drift::Drift> =
            verify::drift::compare(&selected, &running)
                .into_iter()
                .collect();
        let drifted = |name: &ServiceName, recorded: &Digest, live, problem| Drift {
            env: env_name.clone(),
            service: name.clone(),
            recorded: Some(recorded.clone()),
            live,
            problem,
        };
        for (name, digest) in &selected {
            // The registry too: a tag that moved since the release no longer names what runs.
            if let Some(image) = manifest
                .as_ref()
                .and_then(|m| m.manifest.services.get(name.as_str()))
            {
                let served = crate::stage::resolve_tag(registry, &image.repository, &image.tag)
                    .await
                    .map_err(|e| Error::from(e).with_service(name))?;
                if &served != digest {
                    let problem = format!(
                        "tag {}:{} moved in the registry",
                        image.repository, image.tag
                    );
                    drift.push(drifted(name, digest, Some(served), problem));
                }
            }
            use verify::drift::Drift as D;
            let (problem, live_digest) = match live_drift.remove(name) {
                None => continue,
                Some(D::NotRunning) => ("service is not running".to_owned(), None),
                Some(D::Unpinned { image }) => (format!("runs unpinned image {image}"), None),
                Some(D::Foreign { live }) => ("runs a different digest".to_owned(), Some(live)),
            };
            drift.push(drifted(name, digest, live_digest, problem));
        }
    }
    Ok(LiveAudit { compared, drift })
}
