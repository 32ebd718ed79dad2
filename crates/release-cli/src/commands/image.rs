//! `release image digest|copy`: registry plumbing for people debugging a pipeline.

use futures_util::StreamExt;
use registry_client::{Client, Reference};
use serde::Serialize;

use crate::cli::{Global, ImageArgs, ImageCommand, ImageCopyArgs, ImageDigestArgs};
use crate::exit::{Code, Failure};
use crate::registry::{self, Surface};

/// References resolved at once; the client bounds requests per registry further.
const RESOLVE_CONCURRENCY: usize = 64;

pub async fn run(global: &Global, args: &ImageArgs) -> Result<Code, Failure> {
    match &args.command {
        ImageCommand::Digest(digest_args) => {
            let (default_registry, client) = client(global, args)?;
            digest(global, &client, default_registry.as_deref(), digest_args).await
        }
        ImageCommand::Copy(copy_args) => {
            let (default_registry, client) = client(global, args)?;
            copy(global, &client, default_registry.as_deref(), copy_args).await
        }
        ImageCommand::Verify(verify_args) => super::verify_image::run(global, verify_args).await,
    }
}

/// A registry error worded for this command's flags.
fn failure(e: registry_client::Error) -> Failure {
    registry::failure(e, Surface::Image)
}

/// The default registry and the client. The config file is optional for these commands:
/// without one, `--registry`/`RELEASE_REGISTRY` names the default registry.
fn client(global: &Global, args: &ImageArgs) -> Result<(Option<String>, Client), Failure> {
    let project = if global.config.exists() {
        Some(super::load_config(global)?)
    } else {
        None
    };
    let default_registry = project
        .as_ref()
        .map(|p| p.registry.host.clone())
        .or_else(|| global.registry.clone());
    let credentials = if args.password_stdin {
        Some(registry::credentials_from_stdin(args.username.clone())?)
    } else {
        None
    };
    let client = registry::client(
        project.as_ref(),
        args.registry_ca.clone(),
        credentials,
        Surface::Image,
    )?;
    Ok((default_registry, client))
}

#[derive(Debug, Serialize)]
struct DigestReport {
    images: Vec<DigestRow>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DigestRow {
    /// The reference as given on the command line.
    input: String,
    #[serde(flatten)]
    resolved: registry_client::Resolved,
}

async fn digest(
    global: &Global,
    client: &Client,
    default_registry: Option<&str>,
    args: &ImageDigestArgs,
) -> Result<Code, Failure> {
    let references = args
        .references
        .iter()
        .map(|text| Ok((text, Reference::parse(text, default_registry)?)))
        .collect::<Result<Vec<_>, registry_client::Error>>()
        .map_err(failure)?;
    let results: Vec<_> =
        futures_util::stream::iter(references.iter())
            .map(|(text, reference)| async move {
                (*text, client.resolve(reference, args.verify).await)
            })
            .buffered(RESOLVE_CONCURRENCY)
            .collect()
            .await;

    let mut report = DigestReport {
        images: Vec::new(),
        errors: Vec::new(),
    };
    let mut failures: Vec<Failure> = Vec::new();
    for (text, result) in results {
        match result {
            Ok(resolved) => report.images.push(DigestRow {
                input: text.clone(),
                resolved,
            }),
            Err(e) => {
                let failure = failure(e);
                report.errors.push(failure.message.clone());
                failures.push(failure);
            }
        }
    }
    super::show(global, &report, |report| {
        let rows = report.images.iter();
        rows.map(|row| format!("{} {}\n", row.input, row.resolved.digest))
            .collect()
    })?;
    // Report every failure; exit with the most serious one.
    let worst = failures.iter().map(|f| f.code as u8).max();
    let Some(worst) = worst else {
        return Ok(Code::Success);
    };
    let mut chosen = None;
    for failure in failures {
        if failure.code as u8 == worst && chosen.is_none() {
            chosen = Some(failure);
        } else {
            eprintln!("{failure}");
        }
    }
    // The report above lists every failure.
    Err(chosen
        .unwrap_or_else(|| pipeline::Error::infrastructure("resolving failed").into())
        .reported())
}

async fn copy(
    global: &Global,
    client: &Client,
    default_registry: Option<&str>,
    args: &ImageCopyArgs,
) -> Result<Code, Failure> {
    let parse =
        |text: &str| Reference::parse(text, default_registry).map_err(|e| failure(e.into()));
    let (source, destination) = (parse(&args.source)?, parse(&args.destination)?);
    // Referrers come along (signed evidence, SBOMs): the evidence survives the move.
    let report = client
        .copy_with_referrers(&source, &destination)
        .await
        .map_err(failure)?;
    super::show(global, &report, |report| {
        format!(
            "{} -> {} {}\n{} blobs: {} mounted, {} already present, {} streamed ({} bytes uploaded); {} manifest(s) written, {} referrer(s) carried\n",
            report.source,
            report.destination,
            report.digest,
            report.blobs,
            report.blobs_mounted,
            report.blobs_present,
            report.blobs_streamed,
            report.bytes_uploaded,
            report.manifests,
            report.referrers
        )
    })?;
    Ok(Code::Success)
}
