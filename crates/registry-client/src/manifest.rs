//! The parts of image manifests and indexes we read: what they point at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A content descriptor, as the OCI image spec names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The type of an artifact (OCI image spec 1.1), as a referrers list names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor with no platform, artifact type or annotations.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest or an index; only the references are read, the bytes stay as they came.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    pub(crate) media_type: Option<String>,
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// A manifest as the registry served it: exact bytes, media type, digest of the bytes.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RawManifest {
    pub(crate) fn doc(&self) -> Result<ManifestDoc, String> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| format!("manifest {} is not valid JSON: {e}", self.digest))
    }

    /// What the manifest points at, read as resolve and copy read it: an index's child
    /// manifests, else the config and the layers. An entry point for the fuzz targets in
    /// `fuzz/`; not part of the API.
    #[doc(hidden)]
    pub fn references(&self) -> Result<Vec<Descriptor>, String> {
        let doc = self.doc()?;
        Ok(if crate::media::is_index(&self.media_type) {
            doc.manifests
        } else {
            doc.config.into_iter().chain(doc.layers).collect()
        })
    }
}
