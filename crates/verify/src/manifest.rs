//! The release manifest (`releases/<version>.json`): which image digest each service of a
//! release is. Written once by `release push`; every later deploy and promotion pins these
//! digests, so a manifest never changes after it is recorded.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::digest::Digest;
use crate::ledger::Entry;
use crate::name::{ServiceName, Version};

/// A recorded release. Field names are the file format; unknown fields are refused when
/// reading, so a hand-edited or foreign file is not half-understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// The project, e.g. `hestino`.
    pub project: String,
    pub version: Version,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub git_commit: Option<String>,
    pub jenkins: Option<JenkinsBuild>,
    /// Service name → the image pushed for it.
    pub services: BTreeMap<ServiceName, ServiceImage>,
}

/// The Jenkins build that produced a release, for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsBuild {
    pub build_url: String,
    pub build_number: u64,
    pub job_name: String,
}

/// One service's image: where it lives and the digest the registry confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceImage {
    /// Repository including the registry host, e.g. `127.0.0.1:5443/hestino/api`.
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    /// `os/arch[/variant]` when the image is single-platform.
    pub platform: Option<String>,
}

impl ReleaseManifest {
    /// Service name → digest: the identity of a release, and what the gate, `audit` and
    /// the evidence compare with what runs.
    pub fn digests(&self) -> BTreeMap<ServiceName, Digest> {
        self.services
            .iter()
            .map(|(name, image)| (name.clone(), image.digest.clone()))
            .collect()
    }

    /// Parses a manifest file's bytes strictly, as [`crate::StateDir::load_release`] does
    /// (less the check against the file name): unknown fields, a bad digest or version, an
    /// empty project or no services are errors. Also the entry point of the fuzz targets.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReleaseManifest, String> {
        let manifest: ReleaseManifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks what serde cannot: a manifest must name its project and at least one service.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.project.trim().is_empty() {
            return Err("project is empty".into());
        }
        if self.services.is_empty() {
            return Err("it lists no services".into());
        }
        for (name, image) in &self.services {
            if image.repository.trim().is_empty() || image.tag.trim().is_empty() {
                return Err(format!(
                    "service {name}: repository and tag must not be empty"
                ));
            }
        }
        Ok(())
    }

    /// The file bytes: pretty JSON with a trailing newline.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The services whose digest differs between `self` (recorded) and `attempted`,
    /// including services present in only one of them.
    pub(crate) fn changes_to(&self, attempted: &ReleaseManifest) -> Vec<DigestChange> {
        let (old, new) = (self.digests(), attempted.digests());
        let names: std::collections::BTreeSet<&ServiceName> =
            old.keys().chain(new.keys()).collect();
        names
            .into_iter()
            .filter(|name| old.get(*name) != new.get(*name))
            .map(|name| DigestChange {
                service: name.clone(),
                recorded: old.get(name).cloned(),
                attempted: new.get(name).cloned(),
            })
            .collect()
    }
}

/// A recorded manifest as read back, with the sha256 of its exact file bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRelease {
    pub manifest: ReleaseManifest,
    /// sha256 of the file; the `released` ledger entry carries the same value.
    pub sha256: Digest,
}

/// What [`StateDir::record_release`](crate::StateDir::record_release) did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// The manifest was written and a `released` entry appended.
    Recorded {
        manifest_sha256: Digest,
        entry: Entry,
    },
    /// The same digests were already recorded; nothing was written.
    Unchanged { manifest_sha256: Digest },
    /// The manifest was already on disk with the same digests but its `released` entry was
    /// missing (a previous run stopped between the two writes); the entry was appended now,
    /// for the manifest as it is on disk.
    LedgerCompleted {
        manifest_sha256: Digest,
        entry: Entry,
    },
}

/// One service whose digest differs from what is recorded. `None` means the service is
/// absent on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChange {
    pub service: ServiceName,
    pub recorded: Option<Digest>,
    pub attempted: Option<Digest>,
}

impl fmt::Display for DigestChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |d: &Option<Digest>| match d {
            Some(d) => d.to_string(),
            None => "(absent)".to_owned(),
        };
        write!(
            f,
            "{}: recorded {}, now {}",
            self.service,
            side(&self.recorded),
            side(&self.attempted)
        )
    }
}
