//! Manifest and blob media types, and the `Accept` list that asks for any of them.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The empty descriptor's media type: the config of an artifact with no config of its own.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest type we resolve and copy, most specific first. Sent on every manifest
/// request, so the registry never down-converts to schema 1 and the digest is of the bytes
/// that were pushed.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Whether a manifest of this media type lists other manifests (per platform).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Layers that the spec says must not be pushed anywhere (Windows base layers and the like).
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}
