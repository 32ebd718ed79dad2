//! Manifest and index JSON as a registry serves it: a body and its `Content-Type`, read
//! through `RawManifest::references` (what resolve and copy read).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use registry_client::{Digest, RawManifest, media};

#[derive(Debug, Arbitrary)]
enum MediaType {
    OciIndex,
    OciManifest,
    DockerList,
    DockerManifest,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    media_type: MediaType,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let media_type = match input.media_type {
        MediaType::OciIndex => media::OCI_INDEX.to_owned(),
        MediaType::OciManifest => media::OCI_MANIFEST.to_owned(),
        MediaType::DockerList => media::DOCKER_MANIFEST_LIST.to_owned(),
        MediaType::DockerManifest => media::DOCKER_MANIFEST.to_owned(),
        MediaType::Other(s) => s,
    };
    let raw = RawManifest {
        bytes: bytes::Bytes::copy_from_slice(input.body),
        digest: Digest::of(input.body),
        media_type,
    };
    if let Ok(descriptors) = raw.references() {
        for d in descriptors {
            // Every digest that came out of the JSON is a valid one.
            assert!(Digest::parse(d.digest.as_str()).is_ok());
            let _ = media::is_non_distributable(&d.media_type);
            if let Some(p) = d.platform {
                let _ = p.to_string();
            }
        }
    }
});
