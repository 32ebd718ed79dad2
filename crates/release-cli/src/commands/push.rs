//! `release push --version V`: push each service's image, confirm its digest against the
//! registry, and record the release manifest `releases/V.json` (immutable) in the ledger.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use verify::{Digest, RecordOutcome, ReleaseManifest, ServiceImage};

use super::stage;
use crate::cli::{Global, PushArgs};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Pushed {
    version: String,
    manifest: String,
    /// `recorded`, `unchanged` (same digests already recorded) or `ledger-completed`.
    outcome: &'static str,
    services: BTreeMap<String, String>,
    /// The digest of the manifest's artifact in the registry, when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<String>,
}

pub async fn run(global: &Global, args: &PushArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let version = stage::version(&config, &args.version)?;
    let services = stage::services(&config, &args.service)?;
    let state = stage::state_dir(global, &config)?;
    let engine = super::connect_local().await?;
    let registry = stage::registry_client(&config)?;
    let auth = push_auth(&config.registry.host).await?;

    let pushes = services.iter().map(|(name, service)| {
        let repository = config.repository(service);
        let engine = &engine;
        let auth = auth.as_ref();
        let tag = version.as_str();
        let quiet = global.quiet;
        let registry = &registry;
        async move {
            if !quiet {
                eprintln!("{name}: pushing {repository}:{tag}");
            }
            let digest = engine
                .push(&repository, tag, auth, |line| {
                    tracing::debug!("{name}: {line}")
                })
                .await
                .map_err(|e| super::build::image_failure(name, e))?;
            let digest = Digest::parse(&digest).map_err(|e| {
                Failure::infrastructure(format!("service `{name}`: the engine reported {e}"))
            })?;
            // Trust, but confirm: the registry must serve exactly what the engine pushed.
            let served = pipeline::stage::resolve_tag(registry, &repository, tag)
                .await
                .map_err(|e| Failure::from(e).with_context(name))?;
            if served != digest.as_str() {
                return Err(Failure::new(
                    Code::Negative,
                    format!(
                        "service `{name}`: the engine pushed {repository}:{tag} as {}, but the registry now serves {served}",
                        digest.as_str()
                    ),
                )
                .with_hint("another process pushed the same tag at the same time; push again under a new version"));
            }
            let platform = engine.image_platform(&format!("{repository}:{tag}")).await;
            if !quiet {
                eprintln!("{name}: pushed {repository}:{tag}@{}", digest.as_str());
            }
            Ok::<_, Failure>((
                (*name).clone(),
                ServiceImage {
                    repository,
                    tag: tag.to_owned(),
                    digest,
                    platform,
                },
            ))
        }
    });
    let images: BTreeMap<String, ServiceImage> = futures_util::future::join_all(pushes)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // The revision: the flag or GIT_COMMIT, else what `release build` stamped on the images.
    let mut git_commit = stage::git_commit(args.git_commit.as_deref());
    if git_commit.is_none()
        && let Some(image) = images.values().next()
    {
        let reference = format!("{}:{}", image.repository, image.tag);
        git_commit = engine
            .image_label(&reference, "org.opencontainers.image.revision")
            .await;
    }
    let manifest = ReleaseManifest {
        project: config.project.name.clone(),
        version: version.clone(),
        created: OffsetDateTime::now_utc(),
        git_commit,
        jenkins: stage::jenkins_build(),
        services: images,
    };
    // With keys configured, the manifest is also published next to the images, as the
    // bytes the file holds (or will hold), so an agent without this state directory can
    // fetch it by version; the `released` entry names the artifact.
    let artifact = if pipeline::evidence::publishes(&config) {
        let bytes = match std::fs::read(state.release_path(&version)) {
            Ok(bytes) => bytes,
            Err(_) => manifest
                .to_file_bytes()
                .map_err(|e| Failure::infrastructure(format!("cannot encode the manifest: {e}")))?,
        };
        let published =
            pipeline::evidence::publish_manifest(&registry, &config, version.as_str(), &bytes)
                .await
                .map_err(|e| {
                    let failure = crate::registry::failure(e, crate::registry::Surface::Stage);
                    Failure {
                        message: format!(
                            "cannot publish the release manifest of {}: {}",
                            version.as_str(),
                            failure.message
                        ),
                        ..failure
                    }
                })?;
        Some(published)
    } else {
        None
    };
    let outcome = state
        .record_published_release(&manifest, &stage::actor(), artifact.as_deref())
        .map_err(stage::record_failure)?;
    let outcome = match outcome {
        RecordOutcome::Recorded { .. } => "recorded",
        RecordOutcome::Unchanged { .. } => "unchanged",
        RecordOutcome::LedgerCompleted { .. } => "ledger-completed",
    };
    let path = state.release_path(&version);
    let report = Pushed {
        version: version.as_str().to_owned(),
        manifest: path.display().to_string(),
        outcome,
        services: manifest
            .services
            .iter()
            .map(|(name, image)| (name.clone(), image.digest.as_str().to_owned()))
            .collect(),
        artifact,
    };
    if global.json {
        super::print_json(&report)?;
    } else {
        for (name, image) in &manifest.services {
            println!(
                "{name}  {}:{}@{}",
                image.repository,
                image.tag,
                image.digest.as_str()
            );
        }
        match outcome {
            "unchanged" => println!(
                "release {} already recorded with these digests: {}",
                report.version, report.manifest
            ),
            _ => println!("release {} recorded: {}", report.version, report.manifest),
        }
    }
    Ok(Code::Success)
}

/// Credentials for the engine's push, found as every registry call of the toolchain finds
/// them ([`crate::registry::client`]): `RELEASE_REGISTRY_USERNAME`/`_PASSWORD` when
/// set, else the Docker config's entry for the registry (`config.json`, `credsStore`,
/// `credHelpers`), so an agent that only ran `docker login` can push. With neither, the
/// push goes out anonymous and fails with the registry's own 401 message.
async fn push_auth(server: &str) -> Result<Option<engine::PushAuth>, Failure> {
    use registry_client::Credentials;
    let credentials = match crate::registry::credentials_from_env() {
        Some(c) => c,
        None => Credentials::from_docker_config(server).await?,
    };
    Ok(to_push_auth(credentials, server))
}

fn to_push_auth(
    credentials: registry_client::Credentials,
    server: &str,
) -> Option<engine::PushAuth> {
    use registry_client::Credentials;
    match credentials {
        Credentials::Anonymous => None,
        Credentials::Basic { username, password } => Some(engine::PushAuth::Basic {
            username,
            password: password.expose().to_owned(),
            server: server.to_owned(),
        }),
        Credentials::IdentityToken(token) => Some(engine::PushAuth::IdentityToken {
            token: token.expose().to_owned(),
            server: server.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_credential_becomes_the_engine_s_push_auth() {
        use registry_client::{Credentials, Secret};
        assert!(to_push_auth(Credentials::Anonymous, "r.example.com").is_none());
        let basic = to_push_auth(
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
        let token = to_push_auth(
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
