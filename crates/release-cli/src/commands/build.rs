//! `release build --version V [--service S]…`: build and tag `REGISTRY/REPO:V` with
//! BuildKit (`docker buildx build`, see `engine::buildkit` for why) on the agent's engine,
//! with OCI labels saying what was built from where. The classic builder of the Engine API
//! builds only a service that sets `builder = "classic"`, or when buildx is missing; a
//! notice says so.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::stage;
use crate::cli::{BuildArgs, Global};
use crate::exit::{Code, Failure};

#[derive(Debug, Serialize)]
struct Built {
    service: verify::ServiceName,
    image: String,
    id: String,
}

pub async fn run(global: &Global, args: &BuildArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let version = stage::version(&config, &args.version)?;
    let services = stage::services(&config, &args.service)?;
    // Every Dockerfile and build secret must be there before anything is built (or the
    // engine is asked).
    let is_set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    pipeline::build::missing_inputs(&config, &services, is_set)?;
    let engine = super::connect_local().await?;
    let created = OffsetDateTime::now_utc().format(&Rfc3339).map_err(|e| {
        pipeline::Error::infrastructure(format!("cannot format the build time: {e}"))
    })?;
    let revision = stage::git_commit(args.git_commit.as_deref());
    let from = pipeline::build::Provenance {
        version: &version,
        created: &created,
        revision: revision.as_deref(),
    };
    let wants_buildkit = services
        .iter()
        .any(|(_, s)| s.builder == config::Builder::Buildkit);
    let buildx = if wants_buildkit {
        engine::buildkit::buildx_available(engine.endpoint()).await
    } else {
        Err("no service asks for it".to_owned())
    };
    let quiet = global.quiet;
    let progress = if crate::terminal::stderr_live() && !quiet {
        engine::BuildProgress::Tty
    } else {
        engine::BuildProgress::Plain
    };

    let mut built = Vec::new();
    for (name, service) in services {
        let spec = pipeline::build::spec(&config, name.as_str(), service, &from);
        let classic = pipeline::build::classic(name.as_str(), service, &spec, &buildx)?;
        if let Some(notice) = &classic {
            eprintln!("{notice}");
        }
        if !quiet {
            eprintln!("{name}: building {}", spec.tag);
        }
        let id = if classic.is_some() {
            engine
                .build(&spec, |line| {
                    if !quiet {
                        eprintln!("{name}: {line}");
                    }
                })
                .await
        } else {
            engine
                .build_buildkit(&spec, progress, |line| {
                    if !quiet {
                        eprintln!("{} {name}: {line}", clock());
                    }
                })
                .await
        }
        .map_err(|e| image_failure(&config, name, e))?;
        built.push(Built {
            service: name.clone(),
            image: spec.tag,
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

/// `HH:MM:SS` UTC, the time stamp of a plain progress line.
fn clock() -> String {
    let now = OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// A failed build or push of `service` ([`pipeline::build::image_error`]).
pub fn image_failure(
    config: &config::Config,
    service: &verify::ServiceName,
    e: engine::ImageError,
) -> Failure {
    pipeline::build::image_error(service, &config.registry.host, e).into()
}
