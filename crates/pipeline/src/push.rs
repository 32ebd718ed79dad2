//! What `release push` does: push each service's image from the agent's engine, confirm
//! its digest against the registry, and record the release manifest `releases/V.json`
//! (immutable) with its `released` entry; with signing keys configured, publish the
//! manifest to the registry beside the images.

use std::collections::BTreeMap;

use engine::{Engine, Progress, PushAuth};
use registry_client::{Client, Credentials};
use serde::Serialize;
use verify::{Digest, RecordOutcome, ReleaseManifest, ServiceImage, ServiceName, Version};

use crate::{Error, Kind, Stage};
use config::Service;

/// A release pushed and recorded.
#[derive(Debug, Serialize)]
pub struct Pushed {
    pub version: String,
    /// The manifest file's path.
    pub manifest: String,
    /// `recorded`, `unchanged` (same digests already recorded) or `ledger-completed`.
    pub outcome: &'static str,
    /// What was pushed, by release service; `--json` shows each digest.
    #[serde(rename = "services", serialize_with = "digests")]
    pub images: BTreeMap<ServiceName, ServiceImage>,
    /// The digest of the manifest's artifact in the registry, when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Digest>,
}

/// Release service → digest, as `--json` shows what was pushed.
fn digests<S: serde::Serializer>(
    images: &BTreeMap<ServiceName, ServiceImage>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    let digests: BTreeMap<&str, &str> = images
        .iter()
        .map(|(name, image)| (name.as_str(), image.digest.as_str()))
        .collect();
    digests.serialize(s)
}

/// Pushes `services` at `version` (all at once), then records the release. The commit is
/// `git_commit`, else what `release build` stamped on the images.
pub async fn run(
    s: &Stage<'_>,
    engine: &Engine,
    registry: &Client,
    version: &Version,
    services: &[(&ServiceName, &Service)],
    auth: Option<&PushAuth>,
    git_commit: Option<String>,
) -> Result<Pushed, Error> {
    let pushes = services
        .iter()
        .map(|(name, service)| push_one(s, engine, registry, name, service, version, auth));
    let images: BTreeMap<ServiceName, ServiceImage> = futures_util::future::join_all(pushes)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut git_commit = git_commit;
    if git_commit.is_none()
        && let Some(image) = images.values().next()
    {
        let reference = format!("{}:{}", image.repository, image.tag);
        git_commit = engine
            .image_label(&reference, "org.opencontainers.image.revision")
            .await;
    }
    let manifest = ReleaseManifest {
        project: s.config.project.name.clone(),
        version: version.clone(),
        created: time::OffsetDateTime::now_utc(),
        git_commit,
        jenkins: s.jenkins.clone(),
        services: images,
    };
    // With keys configured, the manifest is also published next to the images, as the
    // bytes the file holds (or will hold), so an agent without this state directory can
    // fetch it by version; the `released` entry names the artifact.
    let artifact = if crate::evidence::publishes(s.config) {
        Some(publish(s, registry, &manifest).await?)
    } else {
        None
    };
    let outcome = s
        .state
        .record_published_release(&manifest, &s.actor, artifact.as_ref())?;
    Ok(Pushed {
        version: version.as_str().to_owned(),
        manifest: s.state.release_path(version).display().to_string(),
        outcome: match outcome {
            RecordOutcome::Recorded { .. } => "recorded",
            RecordOutcome::Unchanged { .. } => "unchanged",
            RecordOutcome::LedgerCompleted { .. } => "ledger-completed",
        },
        images: manifest.services,
        artifact,
    })
}

/// Pushes one service's `REPO:VERSION` and confirms the registry serves what the engine
/// pushed.
async fn push_one(
    s: &Stage<'_>,
    engine: &Engine,
    registry: &Client,
    name: &ServiceName,
    service: &Service,
    version: &Version,
    auth: Option<&PushAuth>,
) -> Result<(ServiceName, ServiceImage), Error> {
    let repository = s.config.repository(service);
    let tag = version.as_str();
    let say = |state: String| {
        (s.progress)(Progress {
            service: name.as_str(),
            state,
        })
    };
    say(format!("pushing {repository}:{tag}"));
    let digest = engine
        .push(&repository, tag, auth, |line| {
            tracing::debug!("{name}: {line}")
        })
        .await
        .map_err(|e| crate::build::image_error(name, &s.config.registry.host, e))?;
    let digest = Digest::parse(&digest)
        .map_err(|e| Error::infrastructure(format!("service `{name}`: the engine reported {e}")))?;
    // Trust, but confirm: the registry must serve exactly what the engine pushed.
    let served = crate::stage::resolve_tag(registry, &repository, tag)
        .await
        .map_err(|e| Error::from(e).with_service(name))?;
    if served != digest {
        return Err(Error::new(
            Kind::Negative,
            format!(
                "service `{name}`: the engine pushed {repository}:{tag} as {}, but the registry now serves {served}",
                digest.as_str()
            ),
        )
        .with_hint("another process pushed the same tag at the same time; push again under a new version"));
    }
    let platform = engine.image_platform(&format!("{repository}:{tag}")).await;
    say(format!("pushed {repository}:{tag}@{}", digest.as_str()));
    Ok((
        name.clone(),
        ServiceImage {
            repository,
            tag: tag.to_owned(),
            digest,
            platform,
        },
    ))
}

/// Publishes the release manifest: the file's bytes when it is recorded, else the bytes it
/// will hold.
async fn publish(
    s: &Stage<'_>,
    registry: &Client,
    manifest: &ReleaseManifest,
) -> Result<Digest, Error> {
    let version = &manifest.version;
    let bytes = match std::fs::read(s.state.release_path(version)) {
        Ok(bytes) => bytes,
        Err(_) => manifest
            .to_file_bytes()
            .map_err(|e| Error::infrastructure(format!("cannot encode the manifest: {e}")))?,
    };
    crate::evidence::publish_manifest(registry, s.config, version.as_str(), &bytes)
        .await
        .map_err(|e| {
            let what = format!(
                "cannot publish the release manifest of {}",
                version.as_str()
            );
            Error::from(e).prefixed(&what)
        })
}

/// The engine's push credentials for `server`, from the registry client's.
pub fn push_auth(credentials: Credentials, server: &str) -> Option<PushAuth> {
    match credentials {
        Credentials::Anonymous => None,
        Credentials::Basic { username, password } => Some(PushAuth::Basic {
            username,
            password: password.expose().to_owned(),
            server: server.to_owned(),
        }),
        Credentials::IdentityToken(token) => Some(PushAuth::IdentityToken {
            token: token.expose().to_owned(),
            server: server.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--json` shows each pushed service's digest, not the whole image record.
    #[test]
    fn the_pushed_report_shows_each_services_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = ServiceImage {
            repository: "r.example.com/shop/api".into(),
            tag: "1.0.0".into(),
            digest: Digest::parse(&digest).unwrap(),
            platform: Some("linux/amd64".into()),
        };
        let pushed = Pushed {
            version: "1.0.0".into(),
            manifest: "releases/1.0.0.json".into(),
            outcome: "recorded",
            images: BTreeMap::from([(ServiceName::parse("api").unwrap(), image)]),
            artifact: None,
        };
        assert_eq!(
            serde_json::to_string(&pushed).unwrap(),
            format!(
                r#"{{"version":"1.0.0","manifest":"releases/1.0.0.json","outcome":"recorded","services":{{"api":"{digest}"}}}}"#
            )
        );
    }

    #[test]
    fn every_kind_of_credential_becomes_the_engine_s_push_auth() {
        use registry_client::{Credentials, Secret};
        assert!(push_auth(Credentials::Anonymous, "r.example.com").is_none());
        let basic = push_auth(
            Credentials::Basic {
                username: "ci".into(),
                password: Secret::new("pw"),
            },
            "r.example.com",
        );
        assert!(matches!(
            basic,
            Some(engine::PushAuth::Basic { ref username, ref password, ref server })
                if username == "ci" && password == "pw" && server == "r.example.com"
        ));
        let token = push_auth(
            Credentials::IdentityToken(Secret::new("tok")),
            "r.example.com",
        );
        let shown = format!("{token:?}");
        assert!(
            shown.contains("IdentityToken") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
