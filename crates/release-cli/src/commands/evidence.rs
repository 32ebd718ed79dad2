//! Signed evidence in the registry, as the stages use it: an environment's signing key and
//! trusted keys from `release.toml`, and the attestations attached to image manifests as
//! OCI 1.1 referrers (DSSE envelopes of in-toto statements, `verify::evidence`).
//!
//! `release check` attaches a test result, `release promote` reads DEV's test results for
//! its gate and attaches a verification summary, `release image verify` answers an
//! auditor from the registry alone.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use registry_client::{Client, Descriptor, Digest, Reference};
use verify::evidence::{
    Envelope, PublicKey, SigningKey, Statement, TrustStore, TrustedKey, VerificationSummary,
};

use crate::exit::Failure;
use config::{Config, Evidence};
use verify::ledger::HeadSigner;

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

/// Whose keys a block of keys holds, for messages: `who` ("environment `dev`", "the
/// ledger") signs `what` ("its evidence", "its head").
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner<'a> {
    pub who: &'a str,
    pub what: &'a str,
}

/// The signing key of environment `env`, when its config names one. A variable that is
/// unset or a PEM that is not a key is a usage error naming the variable or file, never
/// the key's text.
pub fn signer(config: &Config, env: &str) -> Result<Option<Signer>, Failure> {
    let Some(evidence) = config.environment(env)?.evidence.as_ref() else {
        return Ok(None);
    };
    let who = format!("environment `{env}`");
    let owner = KeyOwner {
        who: &who,
        what: "its evidence",
    };
    signer_of(config, evidence, owner)
}

/// The signing key a block of keys (an environment's evidence, `[ledger]`) names, if any.
/// A variable that is unset or a PEM that is not a key is a usage error naming the
/// variable or file, never the key's text.
pub fn signer_of(
    config: &Config,
    evidence: &Evidence,
    owner: KeyOwner<'_>,
) -> Result<Option<Signer>, Failure> {
    let KeyOwner { who, what } = owner;
    let (pem, from) = match (&evidence.signing_key_env, &evidence.signing_key_file) {
        (Some(var), _) => {
            let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
            let Some(value) = value else {
                return Err(Failure::usage(format!(
                    "{who} signs {what} with the key in ${var}, which is not set"
                ))
                .with_hint(format!(
                    "set {var} to the key's PEM (in Jenkins: withCredentials([string(credentialsId: …, variable: '{var}')]))"
                )));
            };
            (value, format!("${var}"))
        }
        (None, Some(file)) => {
            let path = config.dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Failure::usage(format!(
                    "cannot read the signing key of {who} at {}: {e}",
                    path.display()
                ))
            })?;
            (text, path.display().to_string())
        }
        (None, None) => return Ok(None),
    };
    let key = SigningKey::from_pem(&pem).map_err(|e| {
        Failure::usage(format!(
            "the signing key of {who} ({from}) is not usable: {e}"
        ))
        .with_hint("a PKCS#8 PEM Ed25519 or ECDSA P-256 key: `openssl genpkey -algorithm ed25519`")
    })?;
    // Validation requires a key id wherever a key is named.
    let key_id = evidence.key_id.clone().unwrap_or_default();
    Ok(Some(Signer { key_id, key }))
}

/// The keys environment `env` trusts, with their revocations; empty when it names none.
pub fn trust(config: &Config, env: &str) -> Result<TrustStore, Failure> {
    match config.environment(env)?.evidence.as_ref() {
        Some(evidence) => trust_of(config, evidence, &format!("environment `{env}`")),
        None => Ok(TrustStore::default()),
    }
}

/// The keys a block of keys trusts, with their revocations, read from their files; `who`
/// names the block's owner in messages.
pub fn trust_of(config: &Config, evidence: &Evidence, who: &str) -> Result<TrustStore, Failure> {
    let mut keys = Vec::new();
    for trusted in &evidence.trust {
        let path = config.dir.join(&trusted.public_key);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::usage(format!(
                "cannot read trusted key `{}` of {who} at {}: {e}",
                trusted.id,
                path.display()
            ))
        })?;
        let public = PublicKey::from_pem(&text).map_err(|e| {
            Failure::usage(format!(
                "trusted key `{}` of {who} ({}) is not a public key: {e}",
                trusted.id,
                path.display()
            ))
            .with_hint("export it with `openssl pkey -in KEY.pem -pubout`")
        })?;
        let mut key = TrustedKey::new(&trusted.id, public);
        key.revoked = trusted.revoked;
        key.environment = trusted.environment.clone();
        keys.push(key);
    }
    Ok(TrustStore::new(keys))
}

const LEDGER: KeyOwner<'static> = KeyOwner {
    who: "the ledger",
    what: "its head",
};

/// The key that signs the ledger head after every append, when `[ledger]` names one.
pub fn ledger_signer(config: &Config) -> Result<Option<HeadSigner>, Failure> {
    let Some(ledger) = config.ledger.as_ref() else {
        return Ok(None);
    };
    Ok(signer_of(config, ledger, LEDGER)?.map(|s| HeadSigner::new(&s.key_id, s.key)))
}

/// The keys `audit verify` accepts for the ledger head, when `[ledger]` lists any; `None`
/// leaves the head unchecked.
pub fn ledger_trust(config: &Config) -> Result<Option<TrustStore>, Failure> {
    match config.ledger.as_ref() {
        Some(ledger) if !ledger.trust.is_empty() => trust_of(config, ledger, LEDGER.who).map(Some),
        _ => Ok(None),
    }
}

/// One image an attestation is about: its repository (`REGISTRY/REPO`) and digest.
#[derive(Debug, Clone)]
pub struct Subject {
    pub service: String,
    pub repository: String,
    pub digest: String,
}

/// A signed envelope attached to one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    pub service: String,
    /// The image it is attached to, `REGISTRY/REPO@sha256:…`.
    pub subject: String,
    /// The attestation manifest's digest (the referrer).
    pub manifest: String,
}

/// Signs `statement` once, and attaches the envelope to every subject's manifest as an
/// OCI referrer. Returns the envelope's sha256 and where it went.
pub async fn attach(
    client: &Client,
    signer: &Signer,
    env: &str,
    statement: &Statement,
    subjects: &[Subject],
) -> Result<(String, Vec<Attached>), Failure> {
    let envelope = statement
        .sign(&signer.key, &signer.key_id)
        .map_err(|e| Failure::infrastructure(format!("cannot sign the statement: {e}")))?;
    let json = envelope.to_json();
    let envelope_digest = Digest::of(&json).as_str().to_owned();
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
) -> Result<Attached, Failure> {
    let image = pinned(subject)?;
    let manifest = client
        .fetch_manifest(&image)
        .await
        .map_err(registry_failure)?;
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
        .await
        .map_err(registry_failure)?;
    Ok(Attached {
        service: subject.service.clone(),
        subject: format!("{}@{}", subject.repository, subject.digest),
        manifest: pushed.digest.as_str().to_owned(),
    })
}

pub use verify::gate::Found;

/// The envelopes attached to `subject` whose predicate is `predicate` (every predicate
/// when `None`), as the referrers list names them; an artifact that is not one of ours is
/// left out.
pub async fn fetch(
    client: &Client,
    subject: &Subject,
    predicate: Option<&str>,
) -> Result<Vec<Found>, registry_client::Error> {
    let digest = Digest::parse(&subject.digest)?;
    let image = Reference::parse(&format!("{}@{digest}", subject.repository), None)?;
    let listed = client
        .referrers(&image, &digest, Some(ARTIFACT_TYPE))
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
                _ => Ok(Some((referrer.digest.as_str().to_owned(), Vec::new()))),
            };
            let manifest = match client.fetch_manifest(&at).await {
                Ok(m) => m,
                Err(e) => return unreadable(e),
            };
            let Some(layer) = envelope_layer(&manifest.bytes) else {
                return Ok(None);
            };
            match client.fetch_blob(image, &layer, ENVELOPE_LIMIT).await {
                Ok(bytes) => Ok::<_, registry_client::Error>(Some((
                    referrer.digest.as_str().to_owned(),
                    bytes.to_vec(),
                ))),
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

fn pinned(subject: &Subject) -> Result<Reference, Failure> {
    Reference::parse(&format!("{}@{}", subject.repository, subject.digest), None)
        .map_err(|e| Failure::usage(e.to_string()))
}

fn registry_failure(e: registry_client::Error) -> Failure {
    crate::registry::failure(e, crate::registry::Surface::Stage)
}

/// The subjects of a release in `config`'s registry: one per service digest.
pub fn subjects(config: &Config, digests: &BTreeMap<String, String>) -> Vec<Subject> {
    digests
        .iter()
        .filter_map(|(service, digest)| {
            let s = config.services.get(service)?;
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
) -> Result<(String, Vec<Attached>), Failure> {
    let mut statement = summary.to_statement("", "");
    statement.subject = statement_subjects(subjects);
    attach(client, signer, env, &statement, subjects).await
}

/// The in-toto subjects of `subjects`: `REGISTRY/REPO` with its sha256.
pub fn statement_subjects(subjects: &[Subject]) -> Vec<verify::evidence::ResourceDescriptor> {
    subjects
        .iter()
        .map(|s| verify::evidence::ResourceDescriptor::named(&s.repository, &s.digest))
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
) -> Result<String, registry_client::Error> {
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
    Ok(pushed.digest.as_str().to_owned())
}

/// The release manifest of `version` as published: the artifact's digest and the file's
/// bytes; `None` when the registry has none.
pub async fn fetch_manifest(
    client: &Client,
    config: &Config,
    version: &str,
) -> Result<Option<(String, Vec<u8>)>, registry_client::Error> {
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
    Ok(Some((manifest.digest.as_str().to_owned(), bytes.to_vec())))
}
