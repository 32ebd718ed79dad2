//! What `release build` builds: each service's build spec (its tag, OCI labels, build
//! arguments, secrets and cache), which builder builds it, what must exist first, and what
//! a failed build or push means.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::{BuildSecret, BuildSpec, ImageError, SecretSource};
use verify::{ServiceName, Version};

use crate::{Error, Kind, Setting};
use config::{Builder, Config, Service};

/// What a build records about where it came from, the same for every service.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub version: &'a Version,
    /// The build's time, RFC 3339.
    pub created: &'a str,
    /// The commit built, when known.
    pub revision: Option<&'a str>,
}

/// The build of service `name`: `REGISTRY/REPO:VERSION`, with OCI labels saying what was
/// built from where, `VERSION` offered as a build argument (the config may override it),
/// paths resolved against the config's directory and cache refs in the project's registry.
pub fn spec(config: &Config, name: &str, service: &Service, from: &Provenance<'_>) -> BuildSpec {
    let version = from.version.as_str();
    let mut labels = BTreeMap::from([
        label("version", version),
        label("created", from.created),
        label("title", name),
    ]);
    if let Some(revision) = from.revision {
        labels.extend([label("revision", revision)]);
    }
    if let Some(source) = &config.project.source {
        labels.extend([label("source", source)]);
    }
    let mut build_args = BTreeMap::from([("VERSION".to_owned(), version.to_owned())]);
    build_args.extend(service.build_args.clone());
    let host = &config.registry.host;
    BuildSpec {
        context: config.resolve(&service.context),
        dockerfile: service.dockerfile.clone(),
        tag: format!("{}:{version}", config.repository(service)),
        build_args,
        labels,
        target: service.target.clone(),
        secrets: service
            .secrets
            .iter()
            .map(|s| BuildSecret {
                id: s.id.clone(),
                source: match (&s.env, &s.file) {
                    (Some(var), _) => SecretSource::Env(var.clone()),
                    (None, file) => SecretSource::File(absolute(
                        &config.resolve(file.as_deref().unwrap_or(Path::new(""))),
                    )),
                },
            })
            .collect(),
        cache_from: service
            .cache_from
            .iter()
            .map(|c| cache_with_host(c, host))
            .collect(),
        cache_to: service
            .cache_to
            .as_deref()
            .map(|c| cache_with_host(c, host)),
        platform: service.platform.clone(),
    }
}

fn label(key: &str, value: &str) -> (String, String) {
    (format!("org.opencontainers.image.{key}"), value.to_owned())
}

/// Whether service `name` builds with the Engine API's classic builder, and the notice
/// that says so: when its config asks for it, or when BuildKit is not available (`buildx`
/// says why) and the build needs nothing only BuildKit does.
pub fn classic(
    name: &str,
    service: &Service,
    spec: &BuildSpec,
    buildx: &Result<String, String>,
) -> Result<Option<String>, Error> {
    match (&service.builder, buildx) {
        (Builder::Classic, _) => Ok(Some(format!(
            "{name}: notice: builder = \"classic\" in the config: building with the Engine API's classic builder (deprecated; no RUN --mount, heredocs or COPY --link)"
        ))),
        (Builder::Buildkit, Err(why)) => {
            let needs_buildkit = !spec.secrets.is_empty()
                || !spec.cache_from.is_empty()
                || spec.cache_to.is_some()
                || spec.platform.is_some();
            if needs_buildkit {
                return Err(Error::infrastructure(format!(
                    "service `{name}` needs BuildKit (secrets, cache or platform), but {why}"
                ))
                .with_hint(
                    "install the Docker buildx plugin on this agent (Debian: docker-buildx)",
                ));
            }
            Ok(Some(format!(
                "{name}: notice: BuildKit is not available ({why}): building with the Engine API's classic builder"
            )))
        }
        (Builder::Buildkit, Ok(_)) => Ok(None),
    }
}

/// Every Dockerfile and build secret of `services` that is not there (a variable that
/// `is_set` denies, a missing file): a config error listing them all, before anything is
/// built. The values are never read here; buildx reads them.
pub fn missing_inputs(
    config: &Config,
    services: &[(&ServiceName, &Service)],
    is_set: impl Fn(&str) -> bool,
) -> Result<(), Error> {
    let mut dockerfiles = Vec::new();
    let mut secrets = Vec::new();
    for (name, service) in services {
        let dockerfile = config.resolve(&service.context).join(&service.dockerfile);
        if !dockerfile.is_file() {
            dockerfiles.push(format!(
                "service `{name}`: Dockerfile {} does not exist",
                dockerfile.display()
            ));
        }
        if service.builder == Builder::Classic {
            continue;
        }
        for secret in &service.secrets {
            let missing = match (&secret.env, &secret.file) {
                (Some(var), _) if !is_set(var) => {
                    format!("reads environment variable {var}, which is not set")
                }
                (None, Some(file)) => match config.resolve(file) {
                    path if path.is_file() => continue,
                    path => format!("reads {}, which does not exist", path.display()),
                },
                _ => continue,
            };
            secrets.push(format!(
                "service `{name}`: build secret `{}` {missing}",
                secret.id
            ));
        }
    }
    // The hint speaks of what is missing: a Dockerfile, a secret, or both.
    let mut hints = Vec::new();
    if !dockerfiles.is_empty() {
        hints.push("check `context` and `dockerfile` of the service (the context is relative to the config file, `dockerfile` to the context)");
    }
    if !secrets.is_empty() {
        hints.push("export each secret's variable (Jenkins: withCredentials) or create its file (relative to the config file)");
    }
    let missing: Vec<String> = dockerfiles.into_iter().chain(secrets).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let count = missing.len();
    Err(Error::usage(format!(
        "{count} build input{} missing for {}; nothing was built",
        if count == 1 { " is" } else { "s are" },
        config.path.display()
    ))
    .with_details(missing)
    .with_hint(hints.join("; ")))
}

/// A failed build or push of service `service`, to the registry `registry`: a build that
/// failed is a verdict on the source, a Dockerfile or context that cannot be used is the
/// config's, refused credentials are the caller's setting, the rest an outage.
pub fn image_error(
    service: &(impl std::fmt::Display + ?Sized),
    registry: &str,
    e: ImageError,
) -> Error {
    let message = format!("service `{service}`: {e}");
    match &e {
        ImageError::BuildFailed { output, .. } => Error::new(Kind::Negative, message)
            .with_hint(format!("last build output:\n    {}", output.join("\n    "))),
        ImageError::Dockerfile { .. } => Error::usage(message)
            .with_hint("fix the Dockerfile at that line; `dockerfile` and `target` of the service are in release.toml"),
        ImageError::Unsupported { .. } => Error::usage(message)
            .with_hint("the engine's own BuildKit exports a registry cache only on the containerd image store (daemon.json: \"features\": {\"containerd-snapshotter\": true}); on the classic store it exports cache only inline: set cache_to = \"type=inline\" and cache_from = [\"type=registry,ref=REPOSITORY:TAG\"] (see docs/build.md)"),
        ImageError::Context { .. } => Error::usage(message)
            .with_hint("check `context` and `dockerfile` of the service in release.toml"),
        _ if e.is_auth() => {
            let login = registry_client::Hint::Credentials {
                registry: registry.to_owned(),
            };
            Error::usage(message)
                .with_hint(login.to_string())
                .with_setting(Setting::Registry(login))
        }
        _ => Error::infrastructure(message),
    }
}

/// A cache spec of the config with the project's registry host before its `ref`.
pub fn cache_with_host(spec: &str, host: &str) -> String {
    spec.split(',')
        .map(|part| match part.trim().strip_prefix("ref=") {
            Some(reference) => format!("ref={host}/{reference}"),
            None => part.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_ref_gets_the_registry_host_and_the_rest_is_kept() {
        assert_eq!(
            cache_with_host(
                "type=registry, ref=shop/api:cache,mode=max",
                "r.example.com"
            ),
            "type=registry,ref=r.example.com/shop/api:cache,mode=max"
        );
        assert_eq!(
            cache_with_host("type=inline", "r.example.com"),
            "type=inline"
        );
    }

    #[test]
    fn refused_credentials_name_the_registry_setting_and_a_failed_build_is_a_verdict() {
        let auth = image_error(
            "api",
            "r.example.com",
            ImageError::PushFailed {
                image: "r.example.com/shop/api:1".into(),
                message: "unauthorized: authentication required".into(),
            },
        );
        assert_eq!(auth.kind, Kind::Usage);
        assert!(matches!(
            auth.setting,
            Some(Setting::Registry(registry_client::Hint::Credentials { ref registry })) if registry == "r.example.com"
        ));
        let failed = image_error(
            "api",
            "r.example.com",
            ImageError::BuildFailed {
                image: "r.example.com/shop/api:1".into(),
                step: "Step 3/7 : RUN make".into(),
                message: "exit code 1".into(),
                output: vec!["make: *** [all] Error 1".into()],
            },
        );
        assert_eq!(failed.kind, Kind::Negative);
        assert!(failed.message.starts_with("service `api`:"));
        assert!(failed.hint.unwrap().contains("make: *** [all] Error 1"));
    }
}
