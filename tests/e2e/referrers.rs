//! OCI 1.1 referrers through the `registry-client` library against the testbed's registries,
//! Distribution 2.8, which has no referrers API: artifacts are listed by the referrers tag
//! schema (an image index tagged `sha256-<hex>` of the subject), which these tests read
//! back through the library and over plain HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use registry_client::{
    Client, ClientConfig, Credentials, Descriptor, Digest, EMPTY_JSON, Error, Reference, Secret,
    Via, empty_descriptor, referrers_tag,
};
use release_e2e::Testbed;

use crate::image::{curl, pushed};

const SIGNATURE: &str = "application/vnd.example.signature.v1+json";
const SBOM: &str = "application/spdx+json";

fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn client(bed: &Testbed) -> Client {
    Client::new(ClientConfig {
        extra_ca: Some(bed.ca.clone()),
        credentials: Some(Credentials::Basic {
            username: bed.username.clone(),
            password: Secret::new(bed.password.clone()),
        }),
        ..ClientConfig::default()
    })
    .unwrap()
}

/// An image with two artifacts attached: a signature and an SBOM.
struct Attached {
    image: Reference,
    subject: Descriptor,
    signature: Descriptor,
    signature_bytes: Vec<u8>,
    sbom: Descriptor,
    sbom_bytes: Vec<u8>,
}

impl Attached {
    fn digests(&self) -> BTreeSet<Digest> {
        [self.signature.digest.clone(), self.sbom.digest.clone()].into()
    }
}

/// Pushes the demo image as `e2e/<name>:1.0.0` with docker, then a signature and an SBOM
/// whose subject is it (contents unique to this run, so every blob is uploaded).
fn attached(bed: &Testbed, client: &Client, name: &str) -> Attached {
    let (reference, digest) = pushed(bed, name, "api");
    let image = Reference::parse(&format!("{}/{reference}", bed.registry), None).unwrap();
    block(async {
        let raw = client
            .fetch_manifest(&image.pinned(Digest::parse(&digest).unwrap()))
            .await
            .unwrap();
        assert_eq!(raw.digest.as_str(), digest);
        let subject = Descriptor::new(
            raw.media_type.clone(),
            raw.digest.clone(),
            raw.bytes.len() as u64,
        );
        let signature_bytes = format!("{{\"signed\":\"{digest}\",\"by\":\"{name}\"}}").into_bytes();
        let signature = client
            .push_artifact(
                &image,
                &subject,
                SIGNATURE,
                &[(SIGNATURE, &signature_bytes)],
                BTreeMap::from([("org.example.signer".to_owned(), "ci".to_owned())]),
            )
            .await
            .unwrap();
        let sbom_bytes = format!(
            "{{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"{}\"}}",
            image.repository
        )
        .into_bytes();
        let sbom = client
            .push_artifact(
                &image,
                &subject,
                SBOM,
                &[(SBOM, &sbom_bytes)],
                BTreeMap::from([(
                    "org.opencontainers.image.created".to_owned(),
                    "2026-12-01T00:00:00Z".to_owned(),
                )]),
            )
            .await
            .unwrap();
        assert_ne!(signature.digest, sbom.digest);
        Attached {
            image,
            subject,
            signature,
            signature_bytes,
            sbom,
            sbom_bytes,
        }
    })
}

/// The HTTP status of a GET with the testbed's credentials (no `--fail`).
fn status(bed: &Testbed, url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&bed.ca)
        .args(["-u", &format!("{}:{}", bed.username, bed.password)])
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The fallback index of `subject` in `repository` at `registry`, over plain HTTP.
fn fallback_index(
    bed: &Testbed,
    registry: &str,
    repository: &str,
    subject: &Digest,
) -> serde_json::Value {
    let body = curl(
        bed,
        &[
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            &format!(
                "https://{registry}/v2/{repository}/manifests/{}",
                referrers_tag(subject)
            ),
        ],
    );
    serde_json::from_str(&body).unwrap()
}

fn index_digests(index: &serde_json::Value) -> BTreeSet<Digest> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Digest::parse(m["digest"].as_str().unwrap()).unwrap())
        .collect()
}

fn digests(descriptors: &[Descriptor]) -> BTreeSet<Digest> {
    descriptors.iter().map(|d| d.digest.clone()).collect()
}

#[test]
fn two_artifacts_are_listed_by_the_referrers_tag_and_filtered_by_type() {
    let bed = Testbed::up();
    let client = client(&bed);
    let a = attached(&bed, &client, "referrers-list");
    let repository = a.image.repository.clone();

    // The registry has no referrers API: the listing cannot have come from it.
    assert_eq!(
        status(
            &bed,
            &format!(
                "https://{}/v2/{repository}/referrers/{}",
                bed.registry, a.subject.digest
            )
        ),
        "404"
    );

    block(async {
        let all = client
            .referrers(&a.image, &a.subject.digest, None)
            .await
            .unwrap();
        assert_eq!(all.via, Via::TagSchema);
        assert_eq!(all.descriptors.len(), 2, "{:?}", all.descriptors);
        assert_eq!(digests(&all.descriptors), a.digests());
        // Listed with their artifact type and annotations, as push_artifact returned them.
        for pushed in [&a.signature, &a.sbom] {
            let listed = all
                .descriptors
                .iter()
                .find(|d| d.digest == pushed.digest)
                .unwrap();
            assert_eq!(listed, pushed);
            assert_eq!(
                listed.media_type,
                "application/vnd.oci.image.manifest.v1+json"
            );
        }
        assert_eq!(all.descriptors[0].artifact_type.as_deref(), Some(SIGNATURE));
        assert_eq!(all.descriptors[0].annotations["org.example.signer"], "ci");

        let sboms = client
            .referrers(&a.image, &a.subject.digest, Some(SBOM))
            .await
            .unwrap();
        assert_eq!(sboms.via, Via::TagSchema);
        assert_eq!(sboms.descriptors, vec![a.sbom.clone()]);
        let none = client
            .referrers(&a.image, &a.subject.digest, Some("application/x-none"))
            .await
            .unwrap();
        assert!(none.descriptors.is_empty(), "{:?}", none.descriptors);

        // A manifest nothing refers to has no referrers tag: an empty list, no error.
        let lonely = client
            .referrers(&a.image, &a.signature.digest, None)
            .await
            .unwrap();
        assert_eq!(lonely.via, Via::TagSchema);
        assert!(lonely.descriptors.is_empty());

        // Pushing the same artifact again writes the same manifest and keeps one entry.
        let again = client
            .push_artifact(
                &a.image,
                &a.subject,
                SBOM,
                &[(SBOM, &a.sbom_bytes)],
                a.sbom.annotations.clone(),
            )
            .await
            .unwrap();
        assert_eq!(again, a.sbom);
        let after = client
            .referrers(&a.image, &a.subject.digest, None)
            .await
            .unwrap();
        assert_eq!(after.descriptors.len(), 2, "{:?}", after.descriptors);
    });

    // Over plain HTTP, the fallback index at `sha256-<hex>` lists both artifacts.
    let index = fallback_index(&bed, &bed.registry, &repository, &a.subject.digest);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index_digests(&index), a.digests());
    let types: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(types, BTreeSet::from([SIGNATURE, SBOM]));

    // The artifact manifest as stored: OCI 1.1 with subject, artifactType, the empty config.
    let manifest: serde_json::Value = serde_json::from_str(&curl(
        &bed,
        &[
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!(
                "https://{}/v2/{repository}/manifests/{}",
                bed.registry, a.signature.digest
            ),
        ],
    ))
    .unwrap();
    assert_eq!(manifest["artifactType"], SIGNATURE);
    assert_eq!(manifest["subject"]["digest"], a.subject.digest.as_str());
    assert_eq!(manifest["subject"]["size"], a.subject.size);
    assert_eq!(
        manifest["subject"]["mediaType"],
        a.subject.media_type.as_str()
    );
    assert_eq!(
        manifest["config"],
        serde_json::to_value(empty_descriptor()).unwrap()
    );
    assert_eq!(manifest["annotations"]["org.example.signer"], "ci");
}

#[test]
fn fetch_blob_returns_the_exact_bytes_and_refuses_wrong_ones() {
    let bed = Testbed::up();
    let client = client(&bed);
    let a = attached(&bed, &client, "referrers-blob");
    block(async {
        let sbom = client
            .fetch_manifest(&a.image.pinned(a.sbom.digest.clone()))
            .await
            .unwrap();
        assert_eq!(sbom.digest, a.sbom.digest);
        let doc: serde_json::Value = serde_json::from_slice(&sbom.bytes).unwrap();
        let layer = Digest::parse(doc["layers"][0]["digest"].as_str().unwrap()).unwrap();
        assert_eq!(layer, Digest::of(&a.sbom_bytes));
        let bytes = client.fetch_blob(&a.image, &layer, 1 << 20).await.unwrap();
        assert_eq!(&bytes[..], &a.sbom_bytes[..]);

        let signature = Digest::of(&a.signature_bytes);
        let bytes = client
            .fetch_blob(&a.image, &signature, 1 << 20)
            .await
            .unwrap();
        assert_eq!(&bytes[..], &a.signature_bytes[..]);
        let empty = client
            .fetch_blob(&a.image, &empty_descriptor().digest, 16)
            .await
            .unwrap();
        assert_eq!(&empty[..], EMPTY_JSON);

        // Larger than the limit: refused.
        let small = client.fetch_blob(&a.image, &layer, 4).await.unwrap_err();
        assert!(small.to_string().contains("larger than 4 bytes"), "{small}");
        // Not in the repository.
        let missing = Digest::of(b"no such blob in this repository");
        match client.fetch_blob(&a.image, &missing, 1 << 20).await {
            Err(Error::BlobNotFound { digest, .. }) => assert_eq!(digest, missing),
            other => panic!("expected BlobNotFound, got {other:?}"),
        }
    });

    // A registry that serves other bytes than the digest names: refused, naming the digest.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed before the request ended");
            request.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nwrong")
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let lying = Client::new(ClientConfig {
        insecure: vec![host.clone()],
        credentials: Some(Credentials::Anonymous),
        ..ClientConfig::default()
    })
    .unwrap();
    let wanted = Digest::of(b"right");
    let repository = Reference::parse(&format!("{host}/e2e/lying:1"), None).unwrap();
    let e = block(lying.fetch_blob(&repository, &wanted, 1 << 20)).unwrap_err();
    let request = server.join().unwrap();
    assert!(
        request.starts_with(&format!("GET /v2/e2e/lying/blobs/{wanted} ")),
        "{request}"
    );
    match &e {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wanted);
            assert_eq!(actual, &Digest::of(b"wrong"));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(e.to_string().contains(wanted.as_str()), "{e}");
}

#[test]
fn copy_with_referrers_carries_them_to_another_repository_and_the_token_registry() {
    let bed = Testbed::up();
    let client = client(&bed);
    let a = attached(&bed, &client, "referrers-copy");
    let subject = &a.subject.digest;
    let at = |registry: &str, name: &str, tag: &str| {
        Reference::parse(&format!("{registry}/e2e/{}:{tag}", bed.unique(name)), None).unwrap()
    };
    let plain = at(&bed.registry, "referrers-plain", "2.0.0");
    let same_registry = at(&bed.registry, "referrers-dst", "2.0.0");
    let token = at(&bed.token_registry, "referrers-token-dst", "3.0.0");
    block(async {
        // A plain copy carries the image only.
        let report = client.copy(&a.image, &plain).await.unwrap();
        assert_eq!(&report.digest, subject);
        assert_eq!(report.referrers, 0);
        let listed = client.referrers(&plain, subject, None).await.unwrap();
        assert!(listed.descriptors.is_empty(), "{:?}", listed.descriptors);

        // Within the registry (blob mounts).
        let report = client
            .copy_with_referrers(&a.image, &same_registry)
            .await
            .unwrap();
        assert_eq!(&report.digest, subject);
        assert_eq!(report.referrers, 2);
        assert_eq!(report.manifests, 3);
        assert_eq!(report.bytes_uploaded, 0);
        let listed = client
            .referrers(&same_registry, subject, None)
            .await
            .unwrap();
        assert_eq!(listed.via, Via::TagSchema);
        assert_eq!(digests(&listed.descriptors), a.digests());
        let sboms = client
            .referrers(&same_registry, subject, Some(SBOM))
            .await
            .unwrap();
        assert_eq!(sboms.descriptors, vec![a.sbom.clone()]);
        // Their blobs came along.
        let bytes = client
            .fetch_blob(&same_registry, &Digest::of(&a.sbom_bytes), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&bytes[..], &a.sbom_bytes[..]);

        // Again: nothing listed twice.
        let report = client
            .copy_with_referrers(&a.image, &same_registry)
            .await
            .unwrap();
        assert_eq!(report.referrers, 2);
        let listed = client
            .referrers(&same_registry, subject, None)
            .await
            .unwrap();
        assert_eq!(listed.descriptors.len(), 2, "{:?}", listed.descriptors);

        // Across registries, to the token-auth one (blobs streamed).
        let report = client.copy_with_referrers(&a.image, &token).await.unwrap();
        assert_eq!(&report.digest, subject);
        assert_eq!(report.referrers, 2);
        assert!(report.blobs_streamed >= 3, "{report:?}");
        assert!(report.bytes_uploaded > 0, "{report:?}");
        let listed = client.referrers(&token, subject, None).await.unwrap();
        assert_eq!(listed.via, Via::TagSchema);
        assert_eq!(digests(&listed.descriptors), a.digests());
        let signatures = client
            .referrers(&token, subject, Some(SIGNATURE))
            .await
            .unwrap();
        assert_eq!(signatures.descriptors, vec![a.signature.clone()]);
        let bytes = client
            .fetch_blob(&token, &Digest::of(&a.signature_bytes), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&bytes[..], &a.signature_bytes[..]);
    });

    // Over plain HTTP at both destinations (the token registry shares the basic one's
    // storage, so its fallback index is readable there too).
    for destination in [&same_registry, &token] {
        let index = fallback_index(&bed, &bed.registry, &destination.repository, subject);
        assert_eq!(index_digests(&index), a.digests(), "{destination}");
    }
    assert_eq!(
        status(
            &bed,
            &format!(
                "https://{}/v2/{}/manifests/{}",
                bed.registry,
                plain.repository,
                referrers_tag(subject)
            )
        ),
        "404"
    );
}
