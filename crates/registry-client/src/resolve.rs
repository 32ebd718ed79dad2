//! Tag → digest, the one place that decides which bytes a reference names.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use crate::auth::Scope;
use crate::client::{Client, read_limited};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, RawManifest};
use crate::media::{MANIFEST_ACCEPT, is_index};
use crate::reference::Reference;
use crate::retry::retry;

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;

pub(crate) const DIGEST_HEADER: &str = "docker-content-digest";
/// Sent in answer to a manifest PUT by a registry that keeps referrers lists itself
/// (https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests-with-subject).
pub(crate) const OCI_SUBJECT: &str = "oci-subject";

/// What a reference resolved to.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// The reference as asked, normalised.
    pub reference: String,
    /// The digest of the top-level manifest (the index, for a multi-platform image).
    pub digest: Digest,
    pub media_type: String,
    /// Whether the digest comes from hashing the bytes (GET) rather than from the header.
    pub verified: bool,
    /// For an index: one entry per platform manifest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Descriptor>,
}

impl Client {
    /// Resolves `reference` to the digest of its top-level manifest: HEAD with the full
    /// Accept list; GET and hash the bytes when the header is missing, when the manifest is an
    /// index (to list its platforms), or when `verify` asks for it. Bytes win over headers:
    /// a disagreement is an error.
    pub async fn resolve(&self, reference: &Reference, verify: bool) -> Result<Resolved, Error> {
        let registry = self.registry(&reference.registry)?;
        let reg = &registry;
        let url = &reg.url(&format!(
            "{}/manifests/{}",
            reference.repository,
            reference.target()
        ));
        let scope = &Scope::pull(&reference.repository);
        let what = &format!("HEAD {}", reference);
        let (status, headers) = retry(&reg.policy, &reg.host, what, move || async move {
            let request = reg.http().head(url).header(ACCEPT, MANIFEST_ACCEPT);
            let response = reg.send(scope, &reference.repository, request).await?;
            Ok((response.status(), response.headers().clone()))
        })
        .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(not_found(reference));
        }
        if !status.is_success() {
            return Err(reg.protocol(format!("HEAD {reference} answered {status}")));
        }
        let header_digest = digest_header(&headers);
        let media_type = content_type(&headers);
        let need_bytes =
            verify || header_digest.is_none() || media_type.as_deref().is_none_or(is_index);
        if let (Some(digest), Some(media_type), false) = (&header_digest, &media_type, need_bytes) {
            check_pinned(reference, digest)?;
            return Ok(Resolved {
                reference: reference.to_string(),
                digest: digest.clone(),
                media_type: media_type.clone(),
                verified: false,
                platforms: Vec::new(),
            });
        }
        let raw = self.fetch_manifest(reference).await?;
        if let Some(header) = header_digest
            && header != raw.digest
        {
            return Err(Error::DigestMismatch {
                reference: reference.to_string(),
                expected: header,
                actual: raw.digest,
            });
        }
        let platforms = if is_index(&raw.media_type) {
            raw.doc().map_err(|m| reg.protocol(m))?.manifests
        } else {
            Vec::new()
        };
        Ok(Resolved {
            reference: reference.to_string(),
            digest: raw.digest,
            media_type: raw.media_type,
            verified: true,
            platforms,
        })
    }

    /// GETs a manifest's exact bytes and checks them against the header and the reference's
    /// digest, if any.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<RawManifest, Error> {
        self.fetch_manifest_as(reference, &Scope::pull(&reference.repository))
            .await
    }

    /// [`Client::fetch_manifest`] asking for `scope`, which must include pull on the
    /// reference's repository: a copy asks for everything it will need in one token.
    pub(crate) async fn fetch_manifest_as(
        &self,
        reference: &Reference,
        scope: &Scope,
    ) -> Result<RawManifest, Error> {
        Ok(self.fetch_manifest_headers(reference, scope).await?.0)
    }

    /// [`Client::fetch_manifest_as`], also returning the answer's headers (its `ETag`).
    pub(crate) async fn fetch_manifest_headers(
        &self,
        reference: &Reference,
        scope: &Scope,
    ) -> Result<(RawManifest, HeaderMap), Error> {
        let registry = self.registry(&reference.registry)?;
        let reg = &registry;
        let url = &reg.url(&format!(
            "{}/manifests/{}",
            reference.repository,
            reference.target()
        ));
        let what = &format!("GET {}", reference);
        let fetched = retry(&reg.policy, &reg.host, what, move || async move {
            let request = reg.http().get(url).header(ACCEPT, MANIFEST_ACCEPT);
            let response = reg.send(scope, &reference.repository, request).await?;
            let status = response.status();
            if !status.is_success() {
                return Ok(Err(status));
            }
            let headers = response.headers().clone();
            let body = read_limited(response, MANIFEST_LIMIT).await?;
            Ok(Ok((headers, body)))
        })
        .await?;
        let (headers, bytes) = match fetched {
            Ok(ok) => ok,
            Err(StatusCode::NOT_FOUND) => return Err(not_found(reference)),
            Err(status) => return Err(reg.protocol(format!("GET {reference} answered {status}"))),
        };
        let digest = Digest::of(&bytes);
        if let Some(header) = digest_header(&headers)
            && header != digest
        {
            return Err(Error::DigestMismatch {
                reference: reference.to_string(),
                expected: header,
                actual: digest,
            });
        }
        check_pinned(reference, &digest)?;
        let media_type = match content_type(&headers) {
            Some(t) if t != "application/json" => t,
            _ => serde_json::from_slice::<crate::manifest::ManifestDoc>(&bytes)
                .ok()
                .and_then(|d| d.media_type)
                .ok_or_else(|| reg.protocol(format!("{reference}: manifest has no media type")))?,
        };
        Ok((
            RawManifest {
                bytes,
                media_type,
                digest,
            },
            headers,
        ))
    }
}

fn check_pinned(reference: &Reference, digest: &Digest) -> Result<(), Error> {
    match &reference.digest {
        Some(expected) if expected != digest => Err(Error::DigestMismatch {
            reference: reference.to_string(),
            expected: expected.clone(),
            actual: digest.clone(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn not_found(reference: &Reference) -> Error {
    let (what, target) = match (&reference.digest, &reference.tag) {
        (Some(d), _) => ("digest", d.to_string()),
        (None, Some(t)) => ("tag", t.clone()),
        (None, None) => ("tag", "latest".to_owned()),
    };
    Error::NotFound {
        reference: reference.to_string(),
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        what,
        target,
    }
}

pub(crate) fn digest_header(headers: &HeaderMap) -> Option<Digest> {
    let value = headers.get(DIGEST_HEADER)?.to_str().ok()?;
    match Digest::parse(value.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::debug!("ignoring {DIGEST_HEADER}: {e}");
            None
        }
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or_default().trim();
    (!media.is_empty()).then(|| media.to_owned())
}
