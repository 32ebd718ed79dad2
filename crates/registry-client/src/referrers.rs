//! OCI 1.1 referrers: artifacts (signatures, SBOMs, attestations) attached to an image by
//! their manifest's `subject`, pushed, listed and copied with the image.
//!
//! A registry with the referrers API keeps the list of a subject's referrers itself and
//! says so by answering a manifest PUT with `OCI-Subject`
//! (<https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests-with-subject>).
//! A registry without it (Distribution 2.8, for one) gets the referrers tag schema instead
//! (<https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#referrers-tag-schema>):
//! the client keeps an image index tagged `<alg>-<hex>` of the subject's digest, one entry
//! per referrer, and readers fall back to that tag when `GET /v2/<name>/referrers/<digest>`
//! answers 404.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, HeaderMap, LINK};
use serde::Serialize;

use crate::auth::Scope;
use crate::client::{Client, Registry, read_limited};
use crate::copy::{CopyReport, blob_present, by_digest, upload};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, ManifestDoc, RawManifest};
use crate::media::{OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, is_index};
use crate::reference::Reference;
use crate::retry::{Fail, retry};

/// The content of the empty descriptor: the JSON object `{}` (2 bytes), the config of an
/// artifact that has none of its own
/// (<https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md#guidance-for-an-empty-descriptor>).
pub const EMPTY_JSON: &[u8] = b"{}";

/// Referrers lists (a page of the API, or the fallback index) larger than this are refused.
const INDEX_LIMIT: usize = 4 << 20;
/// Pages of the referrers API followed at most (`Link: <…>; rel="next"`).
const MAX_PAGES: usize = 64;
/// Read-merge-write rounds on the fallback index before giving up on a busy subject.
const INDEX_ROUNDS: usize = 5;

const FILTERS_APPLIED: &str = "oci-filters-applied";

/// Where a referrers list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The registry's referrers API (`GET /v2/<name>/referrers/<digest>`).
    Api,
    /// The fallback index at the referrers tag (`sha256-<hex>`); empty when the tag is absent.
    TagSchema,
}

/// The artifacts whose `subject` is one manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Referrers {
    /// One per referrer manifest, with its `artifactType` and annotations.
    pub descriptors: Vec<Descriptor>,
    pub via: Via,
}

/// The tag of the fallback referrers index of `subject`: its digest with `:` replaced by
/// `-` (`sha256-<hex>`).
pub fn referrers_tag(subject: &Digest) -> String {
    subject.as_str().replacen(':', "-", 1)
}

/// The exact bytes of an OCI 1.1 image manifest for an artifact: `artifactType`, the
/// empty descriptor as config, `layers` (the empty descriptor when there are none, as the
/// image spec advises), `subject` reduced to media type, digest and size, and the
/// annotations when there are any.
pub(crate) fn artifact_manifest(
    subject: Option<&Descriptor>,
    artifact_type: &str,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest<'a> {
        schema_version: u32,
        media_type: &'static str,
        artifact_type: &'a str,
        config: Descriptor,
        layers: Vec<Descriptor>,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<Descriptor>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: &'a BTreeMap<String, String>,
    }
    let empty = empty_descriptor();
    let layers = if layers.is_empty() {
        vec![empty.clone()]
    } else {
        layers.to_vec()
    };
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type,
        config: empty,
        layers,
        subject: subject.map(|s| Descriptor::new(s.media_type.clone(), s.digest.clone(), s.size)),
        annotations,
    })
}

/// The empty descriptor: `application/vnd.oci.empty.v1+json`, the digest of `{}`, size 2.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(OCI_EMPTY, Digest::of(EMPTY_JSON), EMPTY_JSON.len() as u64)
}

/// The fallback index with `referrer` added: a new index when there is none (`existing`
/// is `None`), `Ok(None)` when it already lists a manifest of that digest (nothing to
/// write: adding the same referrer twice keeps one entry). Every other field and entry of
/// the existing index is kept.
pub(crate) fn merge_referrer(
    existing: Option<&[u8]>,
    referrer: &Descriptor,
) -> Result<Option<Vec<u8>>, String> {
    let entry = serde_json::to_value(referrer).map_err(|e| e.to_string())?;
    let mut index = match existing {
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
        }),
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(|e| format!("the referrers index is not valid JSON: {e}"))?,
    };
    let object = index
        .as_object_mut()
        .ok_or("the referrers index is not a JSON object")?;
    let manifests = object
        .entry("manifests")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("the referrers index's `manifests` is not an array")?;
    let listed = manifests
        .iter()
        .any(|m| m.get("digest").and_then(|d| d.as_str()) == Some(referrer.digest.as_str()));
    if listed {
        return Ok(None);
    }
    manifests.push(entry);
    serde_json::to_vec(&index)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `descriptors` of `artifact_type` only, when one is asked for.
fn filter(descriptors: Vec<Descriptor>, artifact_type: Option<&str>) -> Vec<Descriptor> {
    match artifact_type {
        None => descriptors,
        Some(wanted) => descriptors
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(wanted))
            .collect(),
    }
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            next.then(|| target.to_owned())
        })
}

/// `repository` (its registry and repository, tag and digest ignored) at `tag`.
fn at_tag(repository: &Reference, tag: String) -> Reference {
    Reference {
        tag: Some(tag),
        digest: None,
        ..repository.clone()
    }
}

impl Client {
    /// Uploads `bytes` as a blob of `repository` (its registry and repository; tag and
    /// digest are ignored) unless the repository already links it (HEAD first): one
    /// monolithic upload, POST then PUT with the digest, which the registry checks.
    pub async fn push_blob(
        &self,
        repository: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Descriptor, Error> {
        let registry = self.registry(&repository.registry)?;
        let dst = &registry;
        let digest = &Digest::of(bytes);
        let descriptor = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
        let scope = &Scope::push(&repository.repository);
        let name = repository.repository.as_str();
        if blob_present(dst, scope, name, digest).await? {
            return Ok(descriptor);
        }
        let body = &Bytes::copy_from_slice(bytes);
        retry(
            &dst.policy,
            &dst.host,
            &format!("upload blob {digest} to {name}"),
            move || async move {
                upload(
                    dst,
                    scope,
                    name,
                    digest,
                    body.len() as u64,
                    reqwest::Body::from(body.clone()),
                )
                .await
            },
        )
        .await?;
        Ok(descriptor)
    }

    /// Pushes an artifact attached to `subject` (the descriptor of a manifest in the same
    /// repository): the empty config blob `{}`, one blob per layer, then an OCI 1.1 image
    /// manifest with `artifactType` and `subject`, PUT by digest as the exact bytes built.
    /// When the registry's answer lacks `OCI-Subject` (it has no referrers API), the
    /// subject's fallback index at the referrers tag is updated to list the artifact.
    /// Returns the artifact manifest's descriptor, with its artifact type and annotations,
    /// as a referrers list shows it.
    pub async fn push_artifact(
        &self,
        repository: &Reference,
        subject: &Descriptor,
        artifact_type: &str,
        layers: &[(&str, &[u8])],
        annotations: BTreeMap<String, String>,
    ) -> Result<Descriptor, Error> {
        let registry = self.registry(&repository.registry)?;
        let (raw, descriptor) = self
            .artifact_parts(
                repository,
                Some(subject),
                artifact_type,
                layers,
                annotations,
            )
            .await?;
        // By digest: the registry checks that the bytes hash to the digest in the URL, and
        // `put_manifest` that the digest it names in its answer is the same.
        let put = self
            .put_manifest(&registry, &by_digest(repository, &raw.digest), &raw)
            .await?;
        if !put.subject {
            self.list_in_referrers_tag(&registry, repository, &subject.digest, &descriptor)
                .await?;
        }
        Ok(descriptor)
    }

    /// Pushes an artifact about nothing (no `subject`) under `repository`'s tag, e.g. a
    /// release manifest under its version: the empty config, one blob per layer, then the
    /// OCI 1.1 image manifest with `artifactType`, PUT by tag as the exact bytes built.
    /// Returns the manifest's descriptor.
    pub async fn push_tagged_artifact(
        &self,
        repository: &Reference,
        artifact_type: &str,
        layers: &[(&str, &[u8])],
        annotations: BTreeMap<String, String>,
    ) -> Result<Descriptor, Error> {
        let registry = self.registry(&repository.registry)?;
        if repository.tag.is_none() {
            return Err(registry.protocol(format!(
                "an artifact of {} needs a tag to be pushed under",
                repository.name()
            )));
        }
        let (raw, descriptor) = self
            .artifact_parts(repository, None, artifact_type, layers, annotations)
            .await?;
        self.put_manifest(&registry, repository, &raw).await?;
        Ok(descriptor)
    }

    /// The blobs of an artifact pushed, and its manifest built: the exact bytes and the
    /// descriptor a referrers list shows.
    async fn artifact_parts(
        &self,
        repository: &Reference,
        subject: Option<&Descriptor>,
        artifact_type: &str,
        layers: &[(&str, &[u8])],
        annotations: BTreeMap<String, String>,
    ) -> Result<(RawManifest, Descriptor), Error> {
        let registry = self.registry(&repository.registry)?;
        // The config and the layers at once: a round trip each, not one after another.
        let config = self.push_blob(repository, EMPTY_JSON, OCI_EMPTY);
        let blobs = futures_util::future::try_join_all(
            layers
                .iter()
                .map(|(media_type, bytes)| self.push_blob(repository, bytes, media_type)),
        );
        let (_, pushed) = futures_util::future::try_join(config, blobs).await?;
        let bytes = artifact_manifest(subject, artifact_type, &pushed, &annotations)
            .map_err(|e| registry.protocol(format!("cannot encode the artifact manifest: {e}")))?;
        let raw = RawManifest {
            digest: Digest::of(&bytes),
            media_type: OCI_MANIFEST.to_owned(),
            bytes: bytes.into(),
        };
        let descriptor = Descriptor {
            artifact_type: Some(artifact_type.to_owned()),
            annotations,
            ..Descriptor::new(OCI_MANIFEST, raw.digest.clone(), raw.bytes.len() as u64)
        };
        Ok((raw, descriptor))
    }

    /// Adds `referrer` to the fallback index of `subject` in `repository`, unless it is
    /// listed already: read the index at the referrers tag (none yet is an empty list),
    /// merge, PUT it back under the tag, then read it again to see the entry.
    ///
    /// Two writers adding referrers of one subject at once race: both read the same
    /// index, and the second PUT drops the entry of the first. When the registry sends an
    /// `ETag` with the index, the PUT carries `If-Match` and a registry that honours it
    /// refuses the stale write (412), which starts another round. Distribution 2.8 sends an
    /// `ETag` but ignores `If-Match`, so there the read-back after the PUT is the guard:
    /// a writer that does not find its entry merges again, up to [`INDEX_ROUNDS`] rounds.
    /// This narrows the race but cannot close it (a writer that dropped another's entry
    /// after that one's read-back leaves it out); the distribution spec offers nothing
    /// stronger for registries without the referrers API.
    async fn list_in_referrers_tag(
        &self,
        registry: &Registry,
        repository: &Reference,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<(), Error> {
        let tag = at_tag(repository, referrers_tag(subject));
        let scope = Scope::push(&repository.repository);
        for round in 1..=INDEX_ROUNDS {
            let current = self.fetch_referrers_index(&tag, &scope).await?;
            let etag = current
                .as_ref()
                .and_then(|(_, headers)| headers.get(ETAG))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let existing = current.as_ref().map(|(raw, _)| &raw.bytes[..]);
            let Some(bytes) = merge_referrer(existing, referrer)
                .map_err(|m| registry.protocol(format!("{tag}: {m}")))?
            else {
                tracing::debug!(%tag, digest = %referrer.digest, "referrer already listed");
                return Ok(());
            };
            let raw = RawManifest {
                digest: Digest::of(&bytes),
                media_type: OCI_INDEX.to_owned(),
                bytes: bytes.into(),
            };
            let written = self
                .put_manifest_if(registry, &tag, &raw, etag.as_deref())
                .await?;
            if written.is_none() {
                tracing::debug!(%tag, round, "referrers index changed since read (412)");
                continue;
            }
            // The read-back: our entry must be there, whoever wrote last.
            let after = self.fetch_referrers_index(&tag, &scope).await?;
            let listed = match &after {
                Some((raw, _)) => merge_referrer(Some(&raw.bytes), referrer)
                    .map_err(|m| registry.protocol(format!("{tag}: {m}")))?
                    .is_none(),
                None => false,
            };
            if listed {
                tracing::debug!(%tag, digest = %referrer.digest, "referrer listed");
                return Ok(());
            }
            tracing::debug!(%tag, round, "referrers index lost our entry to another writer");
        }
        Err(registry.protocol(format!(
            "{tag}: the referrers index kept changing under {INDEX_ROUNDS} rounds of \
             read, merge and write; {} is not listed",
            referrer.digest
        )))
    }

    /// The fallback index at `tag` and the answer's headers; `None` when the tag does not
    /// exist. A tag there that is not an index is an error.
    async fn fetch_referrers_index(
        &self,
        tag: &Reference,
        scope: &Scope,
    ) -> Result<Option<(RawManifest, HeaderMap)>, Error> {
        match self.fetch_manifest_headers(tag, scope).await {
            Ok((raw, headers)) => {
                if !is_index(&raw.media_type) {
                    let registry = self.registry(&tag.registry)?;
                    return Err(registry.protocol(format!(
                        "{tag}: the referrers tag names a {}, not an image index",
                        raw.media_type
                    )));
                }
                Ok(Some((raw, headers)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The referrers of `subject` in `repository` (tag and digest ignored), of
    /// `artifact_type` only when given: from the referrers API when the registry has it
    /// (filtered here when its answer lacks `OCI-Filters-Applied: artifactType`), else
    /// from the fallback index at the referrers tag (no tag: no referrers).
    pub async fn referrers(
        &self,
        repository: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, Error> {
        let registry = self.registry(&repository.registry)?;
        let scope = Scope::pull(&repository.repository);
        if let Some((descriptors, filtered)) = self
            .referrers_api(&registry, repository, subject, artifact_type, &scope)
            .await?
        {
            let descriptors = if filtered {
                descriptors
            } else {
                filter(descriptors, artifact_type)
            };
            return Ok(Referrers {
                descriptors,
                via: Via::Api,
            });
        }
        let tag = at_tag(repository, referrers_tag(subject));
        let descriptors = match self.fetch_referrers_index(&tag, &scope).await? {
            None => Vec::new(),
            Some((raw, _)) => raw.doc().map_err(|m| registry.protocol(m))?.manifests,
        };
        Ok(Referrers {
            descriptors: filter(descriptors, artifact_type),
            via: Via::TagSchema,
        })
    }

    /// Every page of `GET /v2/<name>/referrers/<digest>` and whether the registry applied
    /// the artifact type filter; `None` when the first page is a 404 (no referrers API).
    async fn referrers_api(
        &self,
        reg: &Registry,
        repository: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
        scope: &Scope,
    ) -> Result<Option<(Vec<Descriptor>, bool)>, Error> {
        let name = repository.repository.as_str();
        let mut url = reg.join(&reg.url(&format!("{name}/referrers/{subject}")))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut descriptors = Vec::new();
        let mut filtered = artifact_type.is_some();
        for page in 0..MAX_PAGES {
            let what = format!("GET referrers of {subject} in {name}");
            let current = &url;
            let (status, headers, body) =
                retry(&reg.policy, &reg.host, &what, move || async move {
                    let request = reg.http().get(current.clone()).header(ACCEPT, OCI_INDEX);
                    let response = reg.send(scope, name, request).await?;
                    let status = response.status();
                    let headers = response.headers().clone();
                    if !status.is_success() {
                        return Ok::<_, Fail>((status, headers, Bytes::new()));
                    }
                    let body = read_limited(response, INDEX_LIMIT).await?;
                    Ok((status, headers, body))
                })
                .await?;
            if status == StatusCode::NOT_FOUND && page == 0 {
                tracing::debug!(registry = %reg.host, "no referrers API (404); using the referrers tag");
                return Ok(None);
            }
            if !status.is_success() {
                return Err(reg.protocol(format!("{what} answered {status}")));
            }
            let doc: ManifestDoc = serde_json::from_slice(&body)
                .map_err(|e| reg.protocol(format!("{what}: not an image index: {e}")))?;
            descriptors.extend(doc.manifests);
            let applied = headers
                .get_all(FILTERS_APPLIED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|f| f.trim() == "artifactType");
            filtered &= applied;
            match next_link(&headers) {
                Some(next) => {
                    let joined = reg.join(&next)?;
                    // The next page is asked with this registry's credentials: never of
                    // another origin.
                    if joined.origin() != url.origin() {
                        return Err(reg.protocol(format!(
                            "{what}: the next page is on another origin ({})",
                            joined.origin().ascii_serialization()
                        )));
                    }
                    url = joined;
                }
                None => return Ok(Some((descriptors, filtered))),
            }
        }
        Err(reg.protocol(format!(
            "referrers of {subject} in {name}: more than {MAX_PAGES} pages"
        )))
    }

    /// GETs the blob `digest` of `repository`, at most `limit` bytes, and checks that the
    /// bytes hash to `digest`: a mismatch is [`Error::DigestMismatch`] naming it.
    pub async fn fetch_blob(
        &self,
        repository: &Reference,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let registry = self.registry(&repository.registry)?;
        let reg = &registry;
        let name = repository.repository.as_str();
        let url = &reg.url(&format!("{name}/blobs/{digest}"));
        let scope = &Scope::pull(name);
        let what = format!("GET blob {digest} in {name}");
        let fetched = retry(&reg.policy, &reg.host, &what, move || async move {
            let response = reg.send(scope, name, reg.bulk().get(url)).await?;
            let status = response.status();
            if !status.is_success() {
                return Ok(Err(status));
            }
            Ok(Ok(read_limited(response, limit).await?))
        })
        .await?;
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(StatusCode::NOT_FOUND) => {
                return Err(Error::BlobNotFound {
                    registry: repository.registry.clone(),
                    repository: name.to_owned(),
                    digest: digest.clone(),
                });
            }
            Err(status) => return Err(reg.protocol(format!("{what} answered {status}"))),
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                reference: format!("{}@{digest}", repository.name()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// [`Client::copy`], then every referrer of the image's top-level manifest (as
    /// [`Client::referrers`] lists them at the source): each referrer manifest with its
    /// blobs, by digest, and its entry in the destination's referrers list. A destination
    /// without the referrers API gets its fallback index rebuilt entry by entry, as
    /// [`Client::push_artifact`] maintains it; one with the API lists them itself. The
    /// report counts the referrers, and their manifests and blobs with the image's.
    /// Referrers of referrers (a signature of an SBOM) are not followed.
    pub async fn copy_with_referrers(
        &self,
        source: &Reference,
        destination: &Reference,
    ) -> Result<CopyReport, Error> {
        let (mut report, _) = self.copy_image(source, destination).await?;
        let subject = report.digest.clone();
        let listed = self.referrers(source, &subject, None).await?;
        let registry = self.registry(&destination.registry)?;
        for referrer in &listed.descriptors {
            let (copied, put) = self
                .copy_image(
                    &by_digest(source, &referrer.digest),
                    &by_digest(destination, &referrer.digest),
                )
                .await?;
            if !put.subject {
                self.list_in_referrers_tag(&registry, destination, &subject, referrer)
                    .await?;
            }
            report.manifests += copied.manifests;
            report.blobs += copied.blobs;
            report.blobs_present += copied.blobs_present;
            report.blobs_mounted += copied.blobs_mounted;
            report.blobs_streamed += copied.blobs_streamed;
            report.bytes_uploaded += copied.bytes_uploaded;
            report.referrers += 1;
        }
        tracing::debug!(
            %subject,
            referrers = report.referrers,
            via = ?listed.via,
            "referrers copied"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::new(crate::media::DOCKER_MANIFEST, Digest::of(b"image"), 1234)
    }

    fn referrer(n: u8, artifact_type: &str) -> Descriptor {
        Descriptor {
            artifact_type: Some(artifact_type.to_owned()),
            annotations: BTreeMap::from([("n".to_owned(), n.to_string())]),
            ..Descriptor::new(OCI_MANIFEST, Digest::of(&[n]), 500 + u64::from(n))
        }
    }

    #[test]
    fn the_empty_descriptor_is_the_spec_one() {
        let empty = empty_descriptor();
        assert_eq!(empty.media_type, "application/vnd.oci.empty.v1+json");
        assert_eq!(empty.size, 2);
        assert_eq!(
            empty.digest.as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn the_referrers_tag_is_alg_dash_hex() {
        let digest = Digest::of(b"image");
        let tag = referrers_tag(&digest);
        assert_eq!(tag, format!("sha256-{}", digest.hex()));
        assert_eq!(tag.len(), 71);
        // A valid tag for the reference parser.
        let reference = Reference::parse(&format!("r.example/a/b:{tag}"), None).unwrap();
        assert_eq!(reference.tag.as_deref(), Some(tag.as_str()));
    }

    #[test]
    fn artifact_manifest_has_subject_artifact_type_and_the_empty_config() {
        let layer = Descriptor::new("application/spdx+json", Digest::of(b"sbom"), 4);
        let annotations = BTreeMap::from([(
            "org.opencontainers.image.created".to_owned(),
            "2026-01-01T00:00:00Z".to_owned(),
        )]);
        let mut subject = subject();
        subject.platform = Some(crate::manifest::Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        });
        let bytes = artifact_manifest(
            Some(&subject),
            "application/vnd.example.sbom",
            std::slice::from_ref(&layer),
            &annotations,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.example.sbom",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2
                },
                "layers": [{
                    "mediaType": "application/spdx+json",
                    "digest": layer.digest.as_str(),
                    "size": 4
                }],
                "subject": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "digest": subject.digest.as_str(),
                    "size": 1234
                },
                "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
            })
        );
        // As the crate reads manifests back: the config and the one layer.
        let raw = RawManifest {
            digest: Digest::of(&bytes),
            media_type: OCI_MANIFEST.into(),
            bytes: bytes.into(),
        };
        let refs = raw.references().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0], empty_descriptor());
    }

    #[test]
    fn an_artifact_without_layers_has_the_empty_descriptor_as_its_layer() {
        let bytes =
            artifact_manifest(Some(&subject()), "application/x", &[], &BTreeMap::new()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["layers"], serde_json::json!([empty_descriptor()]));
        assert!(json.get("annotations").is_none(), "{json}");
    }

    #[test]
    fn merging_into_no_index_makes_one_and_the_same_referrer_twice_is_listed_once() {
        let first = referrer(1, "application/vnd.example.sig");
        let index = merge_referrer(None, &first).unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], OCI_INDEX);
        assert_eq!(json["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(
            json["manifests"][0]["artifactType"],
            "application/vnd.example.sig"
        );
        assert_eq!(json["manifests"][0]["annotations"]["n"], "1");

        assert_eq!(merge_referrer(Some(&index), &first).unwrap(), None);

        let second = referrer(2, "application/vnd.example.sbom");
        let both = merge_referrer(Some(&index), &second).unwrap().unwrap();
        assert_eq!(merge_referrer(Some(&both), &first).unwrap(), None);
        assert_eq!(merge_referrer(Some(&both), &second).unwrap(), None);
        let doc: ManifestDoc = serde_json::from_slice(&both).unwrap();
        assert_eq!(doc.manifests, vec![first, second]);
    }

    #[test]
    fn merging_keeps_what_the_index_had() {
        let existing = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "annotations": {"kept": "yes"},
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": Digest::of(b"x").as_str(),
                           "size": 9, "artifactType": "t", "future": 1}]
        })
        .to_string();
        let merged = merge_referrer(Some(existing.as_bytes()), &referrer(3, "u"))
            .unwrap()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(json["annotations"]["kept"], "yes");
        assert_eq!(json["manifests"][0]["future"], 1);
        assert_eq!(json["manifests"].as_array().unwrap().len(), 2);
        assert!(merge_referrer(Some(b"[1]"), &referrer(3, "u")).is_err());
        assert!(merge_referrer(Some(b"{\"manifests\": 3}"), &referrer(3, "u")).is_err());
    }

    #[test]
    fn filter_keeps_the_asked_artifact_type() {
        let all = vec![referrer(1, "a"), referrer(2, "b"), referrer(3, "a")];
        assert_eq!(filter(all.clone(), None).len(), 3);
        let a = filter(all, Some("a"));
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|d| d.artifact_type.as_deref() == Some("a")));
    }

    #[test]
    fn next_link_reads_rel_next() {
        let mut headers = HeaderMap::new();
        assert_eq!(next_link(&headers), None);
        headers.insert(
            LINK,
            "</v2/a/referrers/sha256:00?n=10&last=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/a/referrers/sha256:00?n=10&last=x")
        );
        headers.insert(LINK, "<https://x/prev>; rel=\"prev\"".parse().unwrap());
        assert_eq!(next_link(&headers), None);
    }

    /// A registry on loopback that answers each connection with the next of `answers`
    /// (status line and headers, body); returns its `host:port` and, when joined, the
    /// request lines it received.
    fn registry(answers: Vec<(String, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (head, body) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0);
                    request.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                // Read the request's body too, so closing leaves nothing unread (a reset).
                let end = text.find("\r\n\r\n").unwrap() + 4;
                let length: usize = text
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while request.len() < end + length {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0);
                    request.extend_from_slice(&buf[..n]);
                }
                seen.push(text.lines().next().unwrap_or_default().to_owned());
                let answer = format!(
                    "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (host, server)
    }

    fn loopback_config(host: &str) -> crate::ClientConfig {
        crate::ClientConfig {
            insecure: vec![host.to_owned()],
            credentials: Some(crate::Credentials::Anonymous),
            ..crate::ClientConfig::default()
        }
    }

    fn loopback_client(host: &str) -> Client {
        Client::new(loopback_config(host)).unwrap()
    }

    fn index_of(descriptors: &[Descriptor]) -> String {
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
            .to_string()
    }

    #[tokio::test]
    async fn the_referrers_api_is_paged_and_filtered_here_when_the_registry_did_not() {
        let subject = Digest::of(b"image");
        let (x1, y, x2) = (referrer(1, "x"), referrer(2, "y"), referrer(3, "x"));
        let next = format!("/v2/a/referrers/{subject}?artifactType=x&last=2");
        let (host, server) = registry(vec![
            (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {OCI_INDEX}\r\nLink: <{next}>; rel=\"next\""
                ),
                index_of(&[x1.clone(), y]),
            ),
            (
                format!("HTTP/1.1 200 OK\r\nContent-Type: {OCI_INDEX}"),
                index_of(std::slice::from_ref(&x2)),
            ),
        ]);
        let client = loopback_client(&host);
        let repository = Reference::parse(&format!("{host}/a:1"), None).unwrap();
        let listed = client
            .referrers(&repository, &subject, Some("x"))
            .await
            .unwrap();
        assert_eq!(listed.via, Via::Api);
        assert_eq!(listed.descriptors, vec![x1, x2]);
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            vec![
                format!("GET /v2/a/referrers/{subject}?artifactType=x HTTP/1.1"),
                format!("GET {next} HTTP/1.1"),
            ]
        );
    }

    #[tokio::test]
    async fn a_filter_the_registry_applied_is_trusted() {
        let subject = Digest::of(b"image");
        // The registry says it filtered; what it sends is what is listed.
        let (host, server) = registry(vec![(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {OCI_INDEX}\r\nOCI-Filters-Applied: artifactType"
            ),
            index_of(&[referrer(1, "y")]),
        )]);
        let client = loopback_client(&host);
        let repository = Reference::parse(&format!("{host}/a:1"), None).unwrap();
        let listed = client
            .referrers(&repository, &subject, Some("x"))
            .await
            .unwrap();
        assert_eq!(listed.via, Via::Api);
        assert_eq!(listed.descriptors.len(), 1);
        server.join().unwrap();
    }

    #[tokio::test]
    async fn no_referrers_api_and_no_referrers_tag_is_an_empty_list() {
        let subject = Digest::of(b"image");
        let (host, server) = registry(vec![
            ("HTTP/1.1 404 Not Found".to_owned(), String::new()),
            ("HTTP/1.1 404 Not Found".to_owned(), String::new()),
        ]);
        let client = loopback_client(&host);
        let repository = Reference::parse(&format!("{host}/a:1"), None).unwrap();
        let listed = client.referrers(&repository, &subject, None).await.unwrap();
        assert_eq!(listed.via, Via::TagSchema);
        assert!(listed.descriptors.is_empty());
        let seen = server.join().unwrap();
        assert_eq!(
            seen[1],
            format!("GET /v2/a/manifests/{} HTTP/1.1", referrers_tag(&subject))
        );
    }

    #[tokio::test]
    async fn a_registry_that_answers_oci_subject_gets_no_referrers_tag() {
        let subject = subject();
        let (host, server) = registry(vec![
            // HEAD of the empty blob: present.
            ("HTTP/1.1 200 OK".to_owned(), String::new()),
            (
                format!("HTTP/1.1 201 Created\r\nOCI-Subject: {}", subject.digest),
                String::new(),
            ),
        ]);
        let client = Client::new(crate::ClientConfig {
            retry: crate::RetryPolicy {
                attempts: 1,
                ..crate::RetryPolicy::default()
            },
            ..loopback_config(&host)
        })
        .unwrap();
        let repository = Reference::parse(&format!("{host}/a:1"), None).unwrap();
        let pushed = client
            .push_artifact(&repository, &subject, "x", &[], BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(pushed.artifact_type.as_deref(), Some("x"));
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            vec![
                format!("HEAD /v2/a/blobs/{} HTTP/1.1", empty_descriptor().digest),
                format!("PUT /v2/a/manifests/{} HTTP/1.1", pushed.digest),
            ]
        );
    }

    #[test]
    fn a_descriptor_without_artifact_fields_serialises_as_before() {
        let d = Descriptor::new(OCI_MANIFEST, Digest::of(b"x"), 1);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
        let back: Descriptor = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }
}
