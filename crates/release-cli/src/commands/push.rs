//! `release push --version V`: push each service's image, confirm its digest against the
//! registry, and record the release manifest `releases/V.json` (immutable) in the ledger.

use super::stage;
use crate::cli::{Global, PushArgs};
use crate::exit::{Code, Failure};

pub async fn run(global: &Global, args: &PushArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let version = stage::version(&config, &args.version)?;
    let services = stage::services(&config, &args.service)?;
    let state = stage::state_dir(global, &config)?;
    let engine = super::connect_local().await?;
    let registry = stage::registry_client(&config)?;
    let auth = push_auth(&config.registry.host).await?;
    let quiet = global.quiet;
    let progress = |p: engine::Progress<'_>| {
        if !quiet {
            eprintln!("{}: {}", p.service, p.state);
        }
    };
    // The revision: the flag or GIT_COMMIT, else what `release build` stamped on the images.
    let git_commit = stage::git_commit(args.git_commit.as_deref());
    let on = stage::of(&config, &state, &progress);
    let pushed = pipeline::push::run(
        &on,
        &engine,
        &registry,
        &version,
        &services,
        auth.as_ref(),
        git_commit,
    )
    .await?;
    if global.json {
        super::print_json(&pushed)?;
    } else {
        for (name, image) in &pushed.images {
            println!(
                "{name}  {}:{}@{}",
                image.repository,
                image.tag,
                image.digest.as_str()
            );
        }
        match pushed.outcome {
            "unchanged" => println!(
                "release {} already recorded with these digests: {}",
                pushed.version, pushed.manifest
            ),
            _ => println!("release {} recorded: {}", pushed.version, pushed.manifest),
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
    let credentials = match crate::registry::credentials_from_env() {
        Some(c) => c,
        None => registry_client::Credentials::from_docker_config(server).await?,
    };
    Ok(pipeline::push::push_auth(credentials, server))
}
