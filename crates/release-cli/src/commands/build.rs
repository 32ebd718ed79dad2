//! `release build --version V [--service S]…`: build and tag `REGISTRY/REPO:V` through the
//! Engine API, with OCI labels saying what was built from where.

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
    let engine = super::connect_local().await?;
    let created = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| Failure::infrastructure(format!("cannot format the build time: {e}")))?;
    let revision = stage::git_commit(args.git_commit.as_deref());

    let mut built = Vec::new();
    for (name, service) in services {
        let image = format!(
            "{}:{}",
            stage::repository(&config, service),
            version.as_str()
        );
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
        };
        if !global.quiet {
            eprintln!("{name}: building {image}");
        }
        let quiet = global.quiet;
        let id = engine
            .build(&spec, |line| {
                if !quiet {
                    eprintln!("{name}: {line}");
                }
            })
            .await
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

/// Maps an engine image error to the exit code contract.
pub fn image_failure(service: &str, e: engine::ImageError) -> Failure {
    match &e {
        engine::ImageError::BuildFailed { output, .. } => {
            let tail = output.join("\n    ");
            Failure::new(Code::Negative, format!("service `{service}`: {e}"))
                .with_hint(format!("last build output:\n    {tail}"))
        }
        engine::ImageError::Context { .. } => Failure::usage(format!("service `{service}`: {e}"))
            .with_hint("check `context` and `dockerfile` of the service in release.toml"),
        _ if e.is_auth() => Failure::usage(format!("service `{service}`: {e}")).with_hint(
            "check RELEASE_REGISTRY_USERNAME and RELEASE_REGISTRY_PASSWORD (or `docker login` for the registry)",
        ),
        _ if e.is_infrastructure() => Failure::infrastructure(format!("service `{service}`: {e}")),
        _ => Failure::infrastructure(format!("service `{service}`: {e}")),
    }
}
