//! Copy or retag an image, byte for byte: the destination ends up with the source's digest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, IF_MATCH, LOCATION};
use serde::Serialize;

use crate::auth::Scope;
use crate::client::{Client, Registry};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, RawManifest};
use crate::media::{is_index, is_non_distributable};
use crate::reference::Reference;
use crate::resolve::{OCI_SUBJECT, digest_header};
use crate::retry::{Fail, retry};

/// Blobs streamed at once per image (each holds a bounded buffer and a connection).
const BLOB_CONCURRENCY: usize = 4;
/// Blob mounts at once per image: no bytes move, so only the registry's request bound
/// (`ClientConfig::concurrency`) limits them.
const MOUNT_CONCURRENCY: usize = 64;

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    /// The top-level digest, identical at source and destination.
    pub digest: Digest,
    pub media_type: String,
    /// Manifests written (platform manifests of an index, then the top one).
    pub manifests: usize,
    /// Distinct blobs the image refers to.
    pub blobs: usize,
    /// Found at the destination (same repository, or a HEAD after a declined mount or before
    /// a cross-registry upload): nothing sent.
    pub blobs_present: usize,
    /// Linked from the source repository by a cross-repository mount: nothing sent. Within
    /// one registry blobs are mounted without asking first, so this also counts blobs the
    /// destination already linked (the registry answers those mounts with 201 too).
    pub blobs_mounted: usize,
    /// Streamed from the source registry.
    pub blobs_streamed: usize,
    /// Blob bytes sent to the destination registry, retries included.
    pub bytes_uploaded: u64,
    /// Referrers of the image (artifacts whose `subject` is its top-level manifest) copied
    /// with it; their manifests and blobs are in the counts above. Always 0 for
    /// [`Client::copy`], which copies none.
    pub referrers: usize,
}

#[derive(Default)]
struct Counters {
    manifests: AtomicUsize,
    blobs: AtomicUsize,
    present: AtomicUsize,
    mounted: AtomicUsize,
    streamed: AtomicUsize,
    bytes: Arc<AtomicU64>,
}

enum BlobOutcome {
    Present,
    Mounted,
    Streamed,
}

impl Client {
    /// Copies `source` to `destination` preserving the digest: raw manifest PUTs with the
    /// original media type; within a repository nothing but the manifest; across repositories
    /// of one registry, blob mounts; across registries, streamed blobs, skipping those the
    /// destination has. Confirms the destination digest afterwards: from the registry's
    /// answer to the manifest PUT, or by a HEAD when that answer does not name a digest.
    ///
    /// Referrers of the image (signatures, SBOMs) are not copied; see
    /// [`Client::copy_with_referrers`].
    pub async fn copy(
        &self,
        source: &Reference,
        destination: &Reference,
    ) -> Result<CopyReport, Error> {
        Ok(self.copy_image(source, destination).await?.0)
    }

    /// [`Client::copy`], also returning the registry's answer to the top-level PUT.
    pub(crate) async fn copy_image(
        &self,
        source: &Reference,
        destination: &Reference,
    ) -> Result<(CopyReport, Put), Error> {
        // Within one registry, ask once for everything the copy needs (pull on the source,
        // pull and push on the destination): one token serves every request that follows.
        let scope = if source.registry == destination.registry {
            Scope::mount(&destination.repository, &source.repository)
        } else {
            Scope::pull(&source.repository)
        };
        let top = self.fetch_manifest_as(source, &scope).await?;
        if let Some(wanted) = &destination.digest
            && wanted != &top.digest
        {
            return Err(Error::DigestMismatch {
                reference: destination.to_string(),
                expected: wanted.clone(),
                actual: top.digest,
            });
        }
        let counters = Counters::default();
        let dst_registry = self.registry(&destination.registry)?;
        if is_index(&top.media_type) {
            let doc = top.doc().map_err(|m| dst_registry.protocol(m))?;
            for child in doc.manifests {
                let child_source = by_digest(source, &child.digest);
                let raw = self.fetch_manifest_as(&child_source, &scope).await?;
                if is_index(&raw.media_type) {
                    return Err(dst_registry
                        .protocol(format!("{child_source}: nested indexes are not supported")));
                }
                self.copy_blobs(source, destination, &raw, &counters)
                    .await?;
                self.put_manifest(&dst_registry, &by_digest(destination, &raw.digest), &raw)
                    .await?;
                counters.manifests.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.copy_blobs(source, destination, &top, &counters)
                .await?;
        }
        let put = self
            .put_manifest(&dst_registry, &plain(destination), &top)
            .await?;
        counters.manifests.fetch_add(1, Ordering::Relaxed);

        // The registry names the digest of what it stored in its answer to the PUT
        // (`Docker-Content-Digest`, compared in `put_manifest`). Only a registry that leaves
        // the header out costs one more round trip: a HEAD of the destination. A HEAD would
        // not guard against a concurrent re-tag either: one a moment after it goes unseen.
        if !put.confirmed {
            let check = self.resolve(&plain(destination), false).await?;
            if check.digest != top.digest {
                return Err(Error::DigestMismatch {
                    reference: destination.to_string(),
                    expected: top.digest,
                    actual: check.digest,
                });
            }
        }
        let report = CopyReport {
            source: source.to_string(),
            destination: destination.to_string(),
            digest: top.digest,
            media_type: top.media_type,
            manifests: counters.manifests.load(Ordering::Relaxed),
            blobs: counters.blobs.load(Ordering::Relaxed),
            blobs_present: counters.present.load(Ordering::Relaxed),
            blobs_mounted: counters.mounted.load(Ordering::Relaxed),
            blobs_streamed: counters.streamed.load(Ordering::Relaxed),
            bytes_uploaded: counters.bytes.load(Ordering::Relaxed),
            referrers: 0,
        };
        Ok((report, put))
    }

    async fn copy_blobs(
        &self,
        source: &Reference,
        destination: &Reference,
        manifest: &RawManifest,
        counters: &Counters,
    ) -> Result<(), Error> {
        let registry = self.registry(&destination.registry)?;
        let doc = manifest.doc().map_err(|m| registry.protocol(m))?;
        let blobs: BTreeMap<Digest, Descriptor> = doc
            .config
            .into_iter()
            .chain(doc.layers)
            .filter(|d| !is_non_distributable(&d.media_type))
            .map(|d| (d.digest.clone(), d))
            .collect();
        counters.blobs.fetch_add(blobs.len(), Ordering::Relaxed);
        let concurrency = if source.registry == destination.registry {
            MOUNT_CONCURRENCY
        } else {
            BLOB_CONCURRENCY
        };
        futures_util::stream::iter(blobs.into_values().map(Ok))
            .try_for_each_concurrent(concurrency, |blob| async move {
                let outcome = self
                    .copy_blob(source, destination, &blob, &counters.bytes)
                    .await?;
                let counter = match outcome {
                    BlobOutcome::Present => &counters.present,
                    BlobOutcome::Mounted => &counters.mounted,
                    BlobOutcome::Streamed => &counters.streamed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .await
    }

    async fn copy_blob(
        &self,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
        bytes: &Arc<AtomicU64>,
    ) -> Result<BlobOutcome, Error> {
        if source.registry == destination.registry && source.repository == destination.repository {
            return Ok(BlobOutcome::Present);
        }
        let registry = self.registry(&destination.registry)?;
        let dst = &registry;
        let same_registry = source.registry == destination.registry;
        let scope = &if same_registry {
            Scope::mount(&destination.repository, &source.repository)
        } else {
            Scope::push(&destination.repository)
        };
        let repository = destination.repository.as_str();
        let digest = &blob.digest;

        // Same registry: mount straight away. A mount of a blob the destination already
        // links answers 201 too, so a HEAD first would only add a round trip per blob.
        if same_registry {
            let mount_url = &format!(
                "{}?mount={digest}&from={}",
                dst.url(&format!("{repository}/blobs/uploads/")),
                source.repository
            );
            let (status, location) = retry(
                &dst.policy,
                &dst.host,
                &format!("mount blob {digest}"),
                move || async move {
                    let response = dst
                        .send(
                            scope,
                            repository,
                            dst.http().post(mount_url).header(CONTENT_LENGTH, 0),
                        )
                        .await?;
                    let location = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    Ok((response.status(), location))
                },
            )
            .await?;
            match status {
                StatusCode::CREATED => {
                    tracing::debug!(%digest, from = %source.repository, to = repository, "blob mounted");
                    return Ok(BlobOutcome::Mounted);
                }
                // The registry declined to mount (the source repository does not link the blob)
                // and opened an upload session instead: close it, so no half-open upload
                // lingers, then look at the destination and stream only if it lacks the blob.
                StatusCode::ACCEPTED => {
                    if let Some(location) = location {
                        let url = dst.join(&location)?;
                        let closed = dst.send(scope, repository, dst.http().delete(url)).await;
                        tracing::debug!(%digest, closed = closed.is_ok(), "mount declined; upload session closed");
                    }
                }
                other => {
                    return Err(dst.protocol(format!(
                        "mount of blob {digest} into {repository} answered {other}"
                    )));
                }
            }
        }
        if blob_present(dst, scope, repository, digest).await? {
            return Ok(BlobOutcome::Present);
        }

        self.stream_blob(source, dst, repository, blob, bytes)
            .await?;
        Ok(BlobOutcome::Streamed)
    }

    /// Streams one blob from the source into a new upload at the destination (monolithic PUT
    /// with a streamed body, so memory stays bounded). A retry restarts the whole upload.
    async fn stream_blob(
        &self,
        source: &Reference,
        dst: &Registry,
        repository: &str,
        blob: &Descriptor,
        bytes: &Arc<AtomicU64>,
    ) -> Result<(), Error> {
        let src_registry = self.registry(&source.registry)?;
        let src = &src_registry;
        let digest = &blob.digest;
        let src_url = &src.url(&format!("{}/blobs/{digest}", source.repository));
        let src_scope = &Scope::pull(&source.repository);
        let dst_scope = &Scope::push(repository);
        retry(
            &dst.policy,
            &dst.host,
            &format!("upload blob {digest} to {repository}"),
            move || async move {
                let response = src
                    .send(src_scope, &source.repository, src.bulk().get(src_url))
                    .await?;
                if response.status() == StatusCode::NOT_FOUND {
                    return Err(Fail::Fatal(Error::BlobNotFound {
                        registry: source.registry.clone(),
                        repository: source.repository.clone(),
                        digest: digest.clone(),
                    }));
                }
                if !response.status().is_success() {
                    return Err(src
                        .protocol(format!("GET blob {digest} answered {}", response.status()))
                        .into());
                }
                let counter = bytes.clone();
                let body = response.bytes_stream().inspect(move |chunk| {
                    if let Ok(chunk) = chunk {
                        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                });
                upload(
                    dst,
                    dst_scope,
                    repository,
                    digest,
                    blob.size,
                    reqwest::Body::wrap_stream(body),
                )
                .await
            },
        )
        .await
    }

    /// PUTs `raw` as `destination`. `confirmed` when the registry's answer names the digest
    /// it stored (it equals `raw`'s, or this is an error).
    pub(crate) async fn put_manifest(
        &self,
        dst: &Registry,
        destination: &Reference,
        raw: &RawManifest,
    ) -> Result<Put, Error> {
        self.put_manifest_if(dst, destination, raw, None)
            .await?
            .ok_or_else(|| {
                dst.protocol(format!(
                    "PUT manifest {destination} answered 412 without a precondition"
                ))
            })
    }

    /// [`Client::put_manifest`], sent with `If-Match: if_match` when given. `Ok(None)` when
    /// the registry refuses the precondition (412: the manifest changed since it was read).
    pub(crate) async fn put_manifest_if(
        &self,
        dst: &Registry,
        destination: &Reference,
        raw: &RawManifest,
        if_match: Option<&str>,
    ) -> Result<Option<Put>, Error> {
        let url = &dst.url(&format!(
            "{}/manifests/{}",
            destination.repository,
            destination.target()
        ));
        let scope = &Scope::push(&destination.repository);
        let repository = destination.repository.as_str();
        let (status, headers, body) = retry(
            &dst.policy,
            &dst.host,
            &format!("PUT manifest {destination}"),
            move || async move {
                let mut request = dst
                    .http()
                    .put(url)
                    .header(CONTENT_TYPE, raw.media_type.as_str())
                    .body(raw.bytes.clone());
                if let Some(tag) = if_match {
                    request = request.header(IF_MATCH, tag);
                }
                let response = dst.send(scope, repository, request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = if status.is_success() {
                    String::new()
                } else {
                    response.text().await.unwrap_or_default()
                };
                Ok((status, headers, body))
            },
        )
        .await?;
        if status == StatusCode::PRECONDITION_FAILED && if_match.is_some() {
            return Ok(None);
        }
        if status != StatusCode::CREATED {
            let body: String = body.chars().take(300).collect();
            return Err(dst.protocol(format!(
                "PUT manifest {destination} answered {status}: {body}"
            )));
        }
        let confirmed = match digest_header(&headers) {
            Some(written) if written != raw.digest => {
                return Err(Error::DigestMismatch {
                    reference: destination.to_string(),
                    expected: raw.digest.clone(),
                    actual: written,
                });
            }
            Some(_) => true,
            None => false,
        };
        Ok(Some(Put {
            confirmed,
            subject: headers.contains_key(OCI_SUBJECT),
        }))
    }
}

/// The registry's answer to a manifest PUT.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Put {
    /// The answer named the digest it stored (equal to the one sent).
    pub(crate) confirmed: bool,
    /// The answer carried `OCI-Subject`: the registry keeps the referrers list of the
    /// manifest's subject itself (it has the referrers API), no fallback tag is needed.
    pub(crate) subject: bool,
}

/// Whether `repository` at `dst` links the blob `digest` (HEAD; 404 is `false`).
pub(crate) async fn blob_present(
    dst: &Registry,
    scope: &Scope,
    repository: &str,
    digest: &Digest,
) -> Result<bool, Error> {
    let blob_url = &dst.url(&format!("{repository}/blobs/{digest}"));
    let status = retry(
        &dst.policy,
        &dst.host,
        &format!("HEAD blob {digest} in {repository}"),
        move || async move {
            Ok(dst
                .send(scope, repository, dst.http().head(blob_url))
                .await?
                .status())
        },
    )
    .await?;
    if status.is_success() {
        tracing::debug!(%digest, repository, "blob already present");
        return Ok(true);
    }
    if status != StatusCode::NOT_FOUND {
        return Err(dst.protocol(format!(
            "HEAD blob {digest} in {repository} answered {status}"
        )));
    }
    Ok(false)
}

/// One monolithic blob upload (one try): POST to open the session, PUT of the whole body
/// with `?digest=`. The registry checks the digest of what it received.
pub(crate) async fn upload(
    dst: &Registry,
    scope: &Scope,
    repository: &str,
    digest: &Digest,
    size: u64,
    body: reqwest::Body,
) -> Result<(), Fail> {
    let uploads = dst.url(&format!("{repository}/blobs/uploads/"));
    let start = dst
        .send(
            scope,
            repository,
            dst.bulk().post(uploads).header(CONTENT_LENGTH, 0),
        )
        .await?;
    let location = match (
        start.status(),
        start.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
    ) {
        (StatusCode::ACCEPTED, Some(location)) => location.to_owned(),
        (status, _) => {
            return Err(dst
                .protocol(format!(
                    "starting an upload to {repository} answered {status}"
                ))
                .into());
        }
    };
    let mut url = dst.join(&location)?;
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    let put = dst
        .bulk()
        .put(url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, size)
        .body(body);
    let done = dst.send(scope, repository, put).await?;
    match done.status() {
        StatusCode::CREATED => Ok(()),
        status => Err(dst
            .protocol(format!(
                "finishing the upload of {digest} to {repository} answered {status}"
            ))
            .into()),
    }
}

/// `reference`'s repository at `digest`, without a tag.
pub(crate) fn by_digest(reference: &Reference, digest: &Digest) -> Reference {
    Reference {
        tag: None,
        digest: Some(digest.clone()),
        ..reference.clone()
    }
}

/// The destination as written: by tag when it has one (the digest is checked separately).
fn plain(reference: &Reference) -> Reference {
    match &reference.tag {
        Some(_) => Reference {
            digest: None,
            ..reference.clone()
        },
        None => reference.clone(),
    }
}
