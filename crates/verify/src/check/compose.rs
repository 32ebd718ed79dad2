//! Compose checks, per service: every container of the service in the project is running,
//! healthy where it has a health check, on the digest recorded for the environment, and
//! an internal service publishes no port. The containers are read from the engine.

use std::sync::Arc;

use engine::{ComposeContainer, Endpoint, EngineError};

use super::Probed;
use super::lazy::LazyEngine;
use crate::digest::Digest;

/// The Compose project the checks of a run look at, with one engine connection for all.
#[derive(Debug)]
pub struct ComposeTarget {
    project: String,
    engine: LazyEngine,
}

impl ComposeTarget {
    pub fn new(endpoint: Endpoint, project: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            project: project.into(),
            engine: LazyEngine::new(endpoint),
        })
    }
}

/// One service of the project and what it must look like.
#[derive(Debug, Clone)]
pub struct ComposeProbe {
    pub target: Arc<ComposeTarget>,
    /// The service's name in the compose file.
    pub service: String,
    /// The digest recorded for the environment; `None`: reported, not judged.
    pub expected_digest: Option<Digest>,
    /// Declared internal: must publish no port.
    pub internal: bool,
}

impl ComposeProbe {
    pub(crate) fn target(&self) -> String {
        format!("compose {}/{}", self.target.project, self.service)
    }

    pub(crate) async fn attempt(&self) -> Probed {
        let engine = match self.target.engine.get().await {
            Ok(e) => e,
            Err(e) => return Probed::unreachable(e.to_string()),
        };
        let containers = match engine.compose_containers(&self.target.project).await {
            Ok(c) => c,
            Err(e @ (EngineError::Connect { .. } | EngineError::Unreachable { .. })) => {
                return Probed::unreachable(e.to_string());
            }
            Err(e) => return Probed::fail(e.to_string()),
        };
        if containers.is_empty() {
            return Probed::unreachable(format!(
                "compose project {} is not deployed: the engine runs none of its containers",
                self.target.project
            ));
        }
        judge(self, &containers)
    }
}

fn judge(probe: &ComposeProbe, containers: &[ComposeContainer]) -> Probed {
    let mine: Vec<&ComposeContainer> = containers
        .iter()
        .filter(|c| c.service == probe.service)
        .collect();
    if mine.is_empty() {
        return Probed::fail(format!(
            "service {} has no container in compose project {}",
            probe.service, probe.target.project
        ));
    }
    let mut problems = Vec::new();
    for c in &mine {
        match c.state.as_str() {
            "running" => {}
            other => problems.push(match c.exit_code {
                Some(code) if other == "exited" => format!("{} exited ({code})", c.name),
                _ => format!("{} {other}", c.name),
            }),
        }
        match c.health.as_deref() {
            Some("unhealthy") => problems.push(match &c.health_output {
                Some(o) => format!("{} unhealthy: {o}", c.name),
                None => format!("{} unhealthy", c.name),
            }),
            Some("starting") => problems.push(format!("{} health: starting", c.name)),
            _ => {}
        }
        if let Some(want) = &probe.expected_digest {
            let runs: Vec<&str> = c
                .repo_digests
                .iter()
                .filter_map(|d| registry_client::ImageName::split(d).digest)
                .collect();
            if !runs.contains(&want.as_str()) {
                problems.push(format!(
                    "{} runs {}, recorded {}",
                    c.name,
                    runs.first()
                        .map_or_else(|| format!("image {}", c.image_id), |d| short(d)),
                    short(want.as_str())
                ));
            }
        }
        if probe.internal && !c.published.is_empty() {
            problems.push(format!(
                "internal service's {} publishes port {}",
                c.name,
                c.published.join(", ")
            ));
        }
    }
    let running = mine.iter().filter(|c| c.state == "running").count();
    let digest = match &probe.expected_digest {
        Some(d) => format!("recorded digest {}", short(d.as_str())),
        None => "no digest recorded for the environment (not judged)".to_owned(),
    };
    let summary = format!("{running}/{} running, {digest}", mine.len());
    if problems.is_empty() {
        Probed {
            summary,
            ..Probed::default()
        }
    } else {
        let cause = problems.join("; ");
        Probed {
            summary: format!("{summary}: {cause}"),
            failure: Some(cause),
            ..Probed::default()
        }
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const E: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn container(service: &str, digest: &str) -> ComposeContainer {
        ComposeContainer {
            service: service.to_owned(),
            name: format!("p-{service}-1"),
            image: format!("r/t/{service}:1.0.0@{D}"),
            image_id: format!("sha256:{}", "c".repeat(64)),
            repo_digests: vec![format!("r/t/{service}@{digest}")],
            state: "running".to_owned(),
            exit_code: None,
            health: Some("healthy".to_owned()),
            health_output: None,
            published: Vec::new(),
        }
    }

    fn probe(service: &str, internal: bool) -> ComposeProbe {
        ComposeProbe {
            target: ComposeTarget::new(
                Endpoint::new("unix:///nonexistent.sock", None).unwrap(),
                "p",
            ),
            service: service.to_owned(),
            expected_digest: Some(Digest::parse(D).unwrap()),
            internal,
        }
    }

    #[test]
    fn a_service_passes_only_running_healthy_on_its_digest_and_internal_unpublished() {
        let ok = judge(&probe("api", false), &[container("api", D)]);
        assert_eq!(ok.failure, None, "{}", ok.summary);
        let foreign = judge(&probe("api", false), &[container("api", E)]);
        assert!(
            foreign
                .failure
                .as_deref()
                .unwrap()
                .contains("p-api-1 runs sha256:bbbbbbbbbbbb, recorded sha256:aaaaaaaaaaaa"),
            "{:?}",
            foreign.failure
        );
        let mut sick = container("api", D);
        sick.health = Some("unhealthy".into());
        sick.health_output = Some("exit 1: 503".into());
        let failure = judge(&probe("api", false), &[sick]).failure.unwrap();
        assert!(
            failure.contains("p-api-1 unhealthy: exit 1: 503"),
            "{failure}"
        );
        let mut exited = container("api", D);
        exited.state = "exited".into();
        exited.exit_code = Some(3);
        let failure = judge(&probe("api", false), &[exited]).failure.unwrap();
        assert!(failure.contains("p-api-1 exited (3)"), "{failure}");
        let mut publishing = container("redis", D);
        publishing.published = vec!["6379/tcp".into()];
        let failure = judge(&probe("redis", true), &[publishing]).failure.unwrap();
        assert!(failure.contains("publishes port 6379/tcp"), "{failure}");
        let none = judge(&probe("worker", false), &[container("api", D)]);
        assert!(
            none.failure
                .unwrap()
                .contains("service worker has no container in compose project p")
        );
    }
}
