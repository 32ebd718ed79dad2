//! Signed evidence in the registry: attestations attached to image manifests as OCI 1.1
//! referrers (DSSE envelopes of in-toto statements, `verify::evidence`), and release
//! manifests published as OCI artifacts.
//!
//! `release check` attaches a test result ([`crate::checks::check`]), `release promote`
//! reads the source's test results for its gate and attaches a verification summary, and
//! `release image verify` answers an auditor from the registry alone. The keys are the
//! caller's to read: this crate is given a [`Signer`] and a trust store.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use registry_client::{Client, Descriptor, Digest, Reference};
use verify::ServiceName;
use verify::evidence::{Envelope, SigningKey, Statement, VerificationSummary};

use crate::Error;
use config::Config;

/// The `artifactType` of an attestation manifest: an in-toto statement in a DSSE envelope.
pub const ARTIFACT_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The media type of the envelope, the attestation manifest's one layer.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation naming the statement's predicate type, so a reader can pick the
/// attestations it wants from the referrers list without fetching each.
pub const PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The annotation naming the environment that signed.
pub const ENVIRONMENT_ANNOTATION: &str = "dev.release.environment";
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// Attestations fetched at once for one image.
const FETCH_CONCURRENCY: usize = 8;
/// The most an envelope may weigh: a statement about a release is a few kilobytes.
const ENVELOPE_LIMIT: usize = 4 << 20;

/// An environment's signing key and the id its signatures carry.
pub struct Signer {
    pub key_id: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, {:?})", self.key_id, self.key)
    }
}

/// One image an attestation is about: its repository (`REGISTRY/REPO`) and digest.
#[derive(Debug, Clone)]
pub struct Subject {
    pub service: ServiceName,
    pub repository: String,
    pub digest: Digest,
}

/// A signed envelope attached to one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    pub service: ServiceName,
    /// The image it is attached to, `REGISTRY/REPO@sha256:…`.
    pub subject: String,
    /// The attestation manifest's digest (the referrer).
    pub manifest: Digest,
}

/// Signs `statement` once, and attaches the envelope to every subject's manifest as an
/// OCI referrer. Returns the envelope's sha256 and where it went.
pub async fn attach(
    client: &Client,
    signer: &Signer,
    env: &str,
    statement: &Statement,
    subjects: &[Subject],
) -> Result<(Digest, Vec<Attached>), Error> {
    let envelope = statement
        .sign(&signer.key, &signer.key_id)
        .map_err(|e| Error::infrastructure(format!("cannot sign the statement: {e}")))?;
    let json = envelope.to_json();
    let envelope_digest = Digest::of(&json);
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let annotations = BTreeMap::from([
        (
            PREDICATE_ANNOTATION.to_owned(),
            statement.predicate_type.clone(),
        ),
        (ENVIRONMENT_ANNOTATION.to_owned(), env.to_owned()),
        (CREATED_ANNOTATION.to_owned(), created),
    ]);
    // Every image at once: each attachment is a few round trips of its own.
    let attached = futures_util::future::try_join_all(
        subjects
            .iter()
            .map(|subject| attach_one(client, subject, &json, annotations.clone())),
    )
    .await?;
    Ok((envelope_digest, attached))
}

/// Attaches `envelope` to `subject`'s manifest.
async fn attach_one(
    client: &Client,
    subject: &Subject,
    envelope: &[u8],
    annotations: BTreeMap<String, String>,
) -> Result<Attached, Error> {
    let image = pinned(subject)?;
    let manifest = client.fetch_manifest(&image).await?;
    let descriptor = Descriptor::new(
        &manifest.media_type,
        manifest.digest.clone(),
        manifest.bytes.len() as u64,
    );
    let pushed = client
        .push_artifact(
            &image,
            &descriptor,
            ARTIFACT_TYPE,
            &[(ENVELOPE_MEDIA_TYPE, envelope)],
            annotations,
        )
        .await?;
    Ok(Attached {
        service: subject.service.clone(),
        subject: format!("{}@{}", subject.repository, subject.digest),
        manifest: pushed.digest,
    })
}

pub use verify::gate::Found;

/// The envelopes attached to `REPOSITORY@DIGEST` whose predicate is `predicate` (every predicate
/// when `None`), as the referrers list names them; an artifact that is not one of ours is
/// left out.
pub async fn fetch(
    client: &Client,
    repository: &str,
    digest: &Digest,
    predicate: Option<&str>,
) -> Result<Vec<Found>, registry_client::Error> {
    let image = Reference::parse(&format!("{repository}@{digest}"), None)?;
    let listed = client
        .referrers(&image, digest, Some(ARTIFACT_TYPE))
        .await?;
    let wanted = listed.descriptors.iter().filter(|referrer| {
        predicate.is_none_or(|wanted| {
            referrer
                .annotations
                .get(PREDICATE_ANNOTATION)
                .is_none_or(|p| p == wanted)
        })
    });
    // A few at once, in the listing's order: each is a manifest and a blob to fetch.
    let fetched: Vec<Option<Found>> = futures_util::stream::iter(wanted.map(|referrer| {
        let image = &image;
        async move {
            let at = Reference {
                digest: Some(referrer.digest.clone()),
                tag: None,
                ..image.clone()
            };
            // A referrer that cannot be read (gone, altered, too large) is refused by the
            // policy as malformed, named, and does not hide the others; an outage is an
            // outage.
            let unreadable = |e: registry_client::Error| match e.kind() {
                registry_client::ErrorKind::Infrastructure | registry_client::ErrorKind::Auth => {
                    Err(e)
                }
                _ => Ok(Some((referrer.digest.clone(), Vec::new()))),
            };
            let manifest = match client.fetch_manifest(&at).await {
                Ok(m) => m,
                Err(e) => return unreadable(e),
            };
            let Some(layer) = envelope_layer(&manifest.bytes) else {
                return Ok(None);
            };
            match client.fetch_blob(image, &layer, ENVELOPE_LIMIT).await {
                Ok(bytes) => {
                    Ok::<_, registry_client::Error>(Some((referrer.digest.clone(), bytes.to_vec())))
                }
                Err(e) => unreadable(e),
            }
        }
    }))
    .buffered(FETCH_CONCURRENCY)
    .try_collect()
    .await?;
    Ok(fetched.into_iter().flatten().collect())
}

/// The digest of the envelope layer of an attestation manifest.
fn envelope_layer(manifest: &[u8]) -> Option<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    doc.get("layers")?
        .as_array()?
        .iter()
        .find(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some(ENVELOPE_MEDIA_TYPE))
        .and_then(|l| l.get("digest")?.as_str())
        .and_then(|d| Digest::parse(d).ok())
}

fn pinned(subject: &Subject) -> Result<Reference, Error> {
    Reference::parse(&format!("{}@{}", subject.repository, subject.digest), None)
        .map_err(|e| Error::usage(e.to_string()))
}

/// The subjects of a release in `config`'s registry: one per service digest.
pub fn subjects(config: &Config, digests: &BTreeMap<ServiceName, Digest>) -> Vec<Subject> {
    digests
        .iter()
        .filter_map(|(service, digest)| {
            let s = config.services.get(service.as_str())?;
            Some(Subject {
                service: service.clone(),
                repository: config.repository(s),
                digest: digest.clone(),
            })
        })
        .collect()
}

/// A signed verification summary, attached to every promoted image.
pub async fn attach_summary(
    client: &Client,
    signer: &Signer,
    env: &str,
    summary: &VerificationSummary,
    subjects: &[Subject],
) -> Result<(Digest, Vec<Attached>), Error> {
    let mut statement = summary.to_statement("", "");
    statement.subject = statement_subjects(subjects);
    attach(client, signer, env, &statement, subjects).await
}

/// The in-toto subjects of `subjects`: `REGISTRY/REPO` with its sha256.
pub fn statement_subjects(subjects: &[Subject]) -> Vec<verify::evidence::ResourceDescriptor> {
    subjects
        .iter()
        .map(|s| verify::evidence::ResourceDescriptor::named(&s.repository, s.digest.as_str()))
        .collect()
}

/// Reads an envelope's statement, for display.
pub fn statement_of(json: &[u8]) -> Option<(Envelope, Statement)> {
    let envelope = Envelope::from_json(json).ok()?;
    let statement = Statement::from_envelope(&envelope).ok()?;
    Some((envelope, statement))
}

/// The `artifactType` of a release manifest published to the registry.
pub const MANIFEST_ARTIFACT_TYPE: &str =
    "application/vnd.dreamconsistency.release.manifest.v1+json";
/// Release manifests are a few kilobytes.
const MANIFEST_LIMIT: usize = 1 << 20;

/// Whether any environment signs or trusts evidence: only then are release manifests
/// published, so a project without keys pushes nothing but its images.
pub fn publishes(config: &Config) -> bool {
    config.environments.values().any(|e| e.evidence.is_some())
}

/// Where the release manifests are published: `REGISTRY/PROJECT/releases:VERSION`.
fn manifest_reference(config: &Config, version: &str) -> Result<Reference, registry_client::Error> {
    Ok(Reference::parse(
        &format!(
            "{}/{}/releases:{version}",
            config.registry.host, config.project.name
        ),
        None,
    )?)
}

/// Publishes a release manifest (the file's exact bytes) as an OCI artifact tagged with
/// its version; returns the artifact manifest's digest.
pub async fn publish_manifest(
    client: &Client,
    config: &Config,
    version: &str,
    bytes: &[u8],
) -> Result<Digest, registry_client::Error> {
    let reference = manifest_reference(config, version)?;
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.version".to_owned(),
        version.to_owned(),
    )]);
    let pushed = client
        .push_tagged_artifact(
            &reference,
            MANIFEST_ARTIFACT_TYPE,
            &[(MANIFEST_ARTIFACT_TYPE, bytes)],
            annotations,
        )
        .await?;
    Ok(pushed.digest)
}

/// The release manifest of `version` as published: the artifact's digest and the file's
/// bytes; `None` when the registry has none.
pub async fn fetch_manifest(
    client: &Client,
    config: &Config,
    version: &str,
) -> Result<Option<(Digest, Vec<u8>)>, registry_client::Error> {
    let reference = manifest_reference(config, version)?;
    let manifest = match client.fetch_manifest(&reference).await {
        Ok(m) => m,
        Err(e) if e.kind() == registry_client::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let doc: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
    let layer = doc
        .get("layers")
        .and_then(|l| l.as_array())
        .and_then(|l| {
            l.iter().find(|l| {
                l.get("mediaType").and_then(|m| m.as_str()) == Some(MANIFEST_ARTIFACT_TYPE)
            })
        })
        .and_then(|l| l.get("digest")?.as_str())
        .and_then(|d| Digest::parse(d).ok());
    let Some(layer) = layer else {
        return Ok(None);
    };
    let bytes = client
        .fetch_blob(&reference, &layer, MANIFEST_LIMIT)
        .await?;
    Ok(Some((manifest.digest, bytes.to_vec())))
}
