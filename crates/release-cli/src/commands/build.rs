//! `release build --version V [--service S]…`: build and tag `REGISTRY/REPO:V` with
//! BuildKit (`docker buildx build`, see `engine::buildkit` for why) on the agent's engine,
//! with OCI labels saying what was built from where. The classic builder of the Engine API
//! builds only a service that sets `builder = "classic"`, or when buildx is missing; a
//! notice says so.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::stage;
use crate::cli::{BuildArgs, Global};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Built {
    service: String,
    image: String,
    id: String,
}

pub async fn run(global: &Global, args: &BuildArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let version = stage::version(&config, &args.version)?;
    let services = stage::services(&config, &args.service)?;
    // Every build secret must be there before anything is built (or the engine is asked).
    missing_inputs(&config, &services)?;
    let engine = super::connect_local().await?;
    let created = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| Failure::infrastructure(format!("cannot format the build time: {e}")))?;
    let revision = stage::git_commit(args.git_commit.as_deref());
    let wants_buildkit = services
        .iter()
        .any(|(_, s)| s.builder == config::Builder::Buildkit);
    let buildx = if wants_buildkit {
        engine::buildkit::buildx_available(engine.endpoint()).await
    } else {
        Err("no service asks for it".to_owned())
    };
    let progress = if crate::terminal::stderr_live() {
        engine::BuildProgress::Tty
    } else {
        engine::BuildProgress::Plain
    };

    let mut built = Vec::new();
    for (name, service) in services {
        let image = format!("{}:{}", config.repository(service), version.as_str());
        let mut labels = std::collections::BTreeMap::from([
            (
                "org.opencontainers.image.version".to_owned(),
                version.as_str().to_owned(),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                created.clone(),
            ),
            ("org.opencontainers.image.title".to_owned(), name.clone()),
        ]);
        if let Some(revision) = &revision {
            labels.insert(
                "org.opencontainers.image.revision".to_owned(),
                revision.clone(),
            );
        }
        if let Some(source) = &config.project.source {
            labels.insert("org.opencontainers.image.source".to_owned(), source.clone());
        }
        // VERSION is always offered, so a Dockerfile can stamp it; the config may override it.
        let mut build_args =
            std::collections::BTreeMap::from([("VERSION".to_owned(), version.as_str().to_owned())]);
        build_args.extend(service.build_args.clone());
        let spec = engine::BuildSpec {
            context: config.resolve(&service.context),
            dockerfile: service.dockerfile.clone(),
            tag: image.clone(),
            build_args,
            labels,
            target: service.target.clone(),
            secrets: service
                .secrets
                .iter()
                .map(|s| engine::BuildSecret {
                    id: s.id.clone(),
                    source: match (&s.env, &s.file) {
                        (Some(var), _) => engine::SecretSource::Env(var.clone()),
                        (None, file) => engine::SecretSource::File(absolute(
                            &config.resolve(file.as_deref().unwrap_or(Path::new(""))),
                        )),
                    },
                })
                .collect(),
            cache_from: service
                .cache_from
                .iter()
                .map(|c| cache_with_host(c, &config.registry.host))
                .collect(),
            cache_to: service
                .cache_to
                .as_deref()
                .map(|c| cache_with_host(c, &config.registry.host)),
            platform: service.platform.clone(),
        };
        let quiet = global.quiet;
        let classic = match (&service.builder, &buildx) {
            (config::Builder::Classic, _) => {
                eprintln!(
                    "{name}: notice: builder = \"classic\" in the config: building with the Engine API's classic builder (deprecated; no RUN --mount, heredocs or COPY --link)"
                );
                true
            }
            (config::Builder::Buildkit, Err(why)) => {
                if !spec.secrets.is_empty()
                    || !spec.cache_from.is_empty()
                    || spec.cache_to.is_some()
                    || spec.platform.is_some()
                {
                    return Err(Failure::infrastructure(format!(
                        "service `{name}` needs BuildKit (secrets, cache or platform), but {why}"
                    ))
                    .with_hint(
                        "install the Docker buildx plugin on this agent (Debian: docker-buildx)",
                    ));
                }
                eprintln!(
                    "{name}: notice: BuildKit is not available ({why}): building with the Engine API's classic builder"
                );
                true
            }
            (config::Builder::Buildkit, Ok(_)) => false,
        };
        if !quiet {
            eprintln!("{name}: building {image}");
        }
        let id = if classic {
            engine
                .build(&spec, |line| {
                    if !quiet {
                        eprintln!("{name}: {line}");
                    }
                })
                .await
        } else {
            let progress = if quiet {
                engine::BuildProgress::Plain
            } else {
                progress
            };
            engine
                .build_buildkit(&spec, progress, |line| {
                    if !quiet {
                        eprintln!("{} {name}: {line}", clock());
                    }
                })
                .await
        }
        .map_err(|e| image_failure(name, e))?;
        built.push(Built {
            service: name.clone(),
            image,
            id,
        });
    }

    if global.json {
        super::print_json(&serde_json::json!({ "version": version.as_str(), "built": built }))?;
    } else {
        for b in &built {
            println!("{}  {}  {}", b.service, b.image, b.id);
        }
    }
    Ok(Code::Success)
}

/// Every Dockerfile and build secret of `services` that is not there (an unset or empty
/// variable, a missing file): a config error listing them all, before anything is built. The values
/// are never read here; buildx reads them.
fn missing_inputs(
    config: &config::Config,
    services: &[(&String, &config::Service)],
) -> Result<(), Failure> {
    let mut missing = Vec::new();
    for (name, service) in services {
        let dockerfile = config.resolve(&service.context).join(&service.dockerfile);
        if !dockerfile.is_file() {
            missing.push(format!(
                "service `{name}`: Dockerfile {} does not exist",
                dockerfile.display()
            ));
        }
        if service.builder == config::Builder::Classic {
            continue;
        }
        for secret in &service.secrets {
            match (&secret.env, &secret.file) {
                (Some(var), _) => {
                    if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
                        missing.push(format!(
                            "service `{name}`: build secret `{}` reads environment variable {var}, which is not set",
                            secret.id
                        ));
                    }
                }
                (None, Some(file)) => {
                    let path = config.resolve(file);
                    if !path.is_file() {
                        missing.push(format!(
                            "service `{name}`: build secret `{}` reads {}, which does not exist",
                            secret.id,
                            path.display()
                        ));
                    }
                }
                (None, None) => {}
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let count = missing.len();
    Err(Failure::usage(format!(
        "{count} build input{} missing for {}; nothing was built",
        if count == 1 { " is" } else { "s are" },
        config.path.display()
    ))
    .with_details(missing)
    .with_hint("export each secret's variable (Jenkins: withCredentials) or create its file; paths are relative to the config file, `dockerfile` to the context"))
}

/// A cache spec of the config with the project's registry host before its `ref`.
fn cache_with_host(spec: &str, host: &str) -> String {
    spec.split(',')
        .map(|part| match part.trim().strip_prefix("ref=") {
            Some(reference) => format!("ref={host}/{reference}"),
            None => part.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `HH:MM:SS` UTC, the time stamp of a plain progress line.
fn clock() -> String {
    let now = OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// Maps an engine image error to the exit code contract.
pub fn image_failure(service: &str, e: engine::ImageError) -> Failure {
    match &e {
        engine::ImageError::BuildFailed { output, .. } => {
            let tail = output.join("\n    ");
            Failure::new(Code::Negative, format!("service `{service}`: {e}"))
                .with_hint(format!("last build output:\n    {tail}"))
        }
        engine::ImageError::Dockerfile { .. } => Failure::usage(format!("service `{service}`: {e}"))
            .with_hint("fix the Dockerfile at that line; `dockerfile` and `target` of the service are in release.toml"),
        engine::ImageError::Unsupported { .. } => Failure::usage(format!("service `{service}`: {e}"))
            .with_hint("the engine's own BuildKit exports a registry cache only on the containerd image store (daemon.json: \"features\": {\"containerd-snapshotter\": true}); on the classic store it exports cache only inline: set cache_to = \"type=inline\" and cache_from = [\"type=registry,ref=REPOSITORY:TAG\"] (see docs/build.md)"),
        engine::ImageError::Context { .. } => Failure::usage(format!("service `{service}`: {e}"))
            .with_hint("check `context` and `dockerfile` of the service in release.toml"),
        _ if e.is_auth() => Failure::usage(format!("service `{service}`: {e}")).with_hint(
            "check RELEASE_REGISTRY_USERNAME and RELEASE_REGISTRY_PASSWORD (or `docker login` for the registry)",
        ),
        _ if e.is_infrastructure() => Failure::infrastructure(format!("service `{service}`: {e}")),
        _ => Failure::infrastructure(format!("service `{service}`: {e}")),
    }
}
