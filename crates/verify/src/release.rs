//! Recording and reading release manifests: the `released` half of the records.

use std::path::Path;

use crate::atomic::{WriteOnce, write_once};
use crate::digest::Digest;
use crate::fs::IoContext;
use crate::ledger::{Entry, EntryKind, Event, Ledger, LedgerError, Released};
use crate::manifest::{RecordOutcome, RecordedRelease, ReleaseManifest};
use crate::name::Version;
use crate::state::{RecordError, StateDir, read_optional};

/// Serializes release recording across processes (`locks/releases.lock`).
const RELEASES_LOCK: &str = "releases";

impl StateDir {
    /// Records a release: writes `releases/<version>.json` once and appends a `released`
    /// ledger entry whose payload is
    /// `{"version", "manifest_sha256", "services": {name: digest}}`.
    ///
    /// Idempotent on digests: recording the same service digests again (a retried Jenkins
    /// stage, with a new `created` time) is [`RecordOutcome::Unchanged`]. Different digests
    /// for a recorded version are [`RecordError::ManifestConflict`] and nothing is written.
    /// If an earlier run wrote the manifest but died before its ledger entry, this run
    /// appends the entry ([`RecordOutcome::LedgerCompleted`]).
    pub fn record_release(
        &self,
        manifest: &ReleaseManifest,
        actor: &str,
    ) -> Result<RecordOutcome, RecordError> {
        self.record_published_release(manifest, actor, None)
    }

    /// [`StateDir::record_release`], the `released` entry naming `artifact`, the digest of
    /// the manifest's OCI artifact in the registry (whose bytes are
    /// [`ReleaseManifest::to_file_bytes`]).
    pub fn record_published_release(
        &self,
        manifest: &ReleaseManifest,
        actor: &str,
        artifact: Option<&Digest>,
    ) -> Result<RecordOutcome, RecordError> {
        let version = &manifest.version;
        manifest
            .check()
            .map_err(|reason| RecordError::InvalidManifest {
                version: version.clone(),
                reason,
            })?;
        let path = self.release_path(version);
        let _lock = self.lock(
            RELEASES_LOCK,
            self.lock_timeout(),
            &format!("record release {version}"),
        )?;
        let ledger = self.ledger();
        let entries = ledger.read_all()?;
        let released = released_entry(&ledger, &entries, version)?;

        let on_disk = match read_optional(&path)? {
            Some(bytes) => bytes,
            None => {
                if let Some((entry, _)) = released {
                    return Err(RecordError::ManifestMissing {
                        version: version.clone(),
                        path,
                        seq: entry.seq,
                    });
                }
                let bytes = manifest
                    .to_file_bytes()
                    .map_err(|e| RecordError::InvalidManifest {
                        version: version.clone(),
                        reason: e.to_string(),
                    })?;
                match write_once(&path, &bytes)? {
                    WriteOnce::Created => {
                        let manifest_sha256 = Digest::of(&bytes);
                        let entry =
                            match self.append_released(manifest, &manifest_sha256, actor, artifact)
                            {
                                Ok(entry) => entry,
                                Err(e) => {
                                    // The append failed (a full disk, a read-only ledger): if the
                                    // ledger surely has no entry for it, take the manifest back so a
                                    // failed push records nothing. (A crash here instead leaves it
                                    // for the next run to complete.)
                                    let in_ledger = ledger.read_all().and_then(|entries| {
                                        released_entry(&ledger, &entries, version)
                                            .map(|r| r.is_some())
                                    });
                                    if let Ok(false) = in_ledger {
                                        let _ = std::fs::remove_file(&path);
                                    }
                                    return Err(e);
                                }
                            };
                        return Ok(RecordOutcome::Recorded {
                            manifest_sha256,
                            entry,
                        });
                    }
                    // Only a writer ignoring the lock gets here; compare with what it wrote.
                    WriteOnce::AlreadyPresent => std::fs::read(&path).fs("read", &path)?,
                }
            }
        };

        let recorded = parse_manifest(&path, version, &on_disk)?;
        let changed = recorded.changes_to(manifest);
        if !changed.is_empty() {
            return Err(RecordError::ManifestConflict {
                version: version.clone(),
                path,
                changed,
            });
        }
        let manifest_sha256 = Digest::of(&on_disk);
        match released {
            Some((entry, recorded)) => {
                check_entry_matches(&path, entry.seq, &recorded, &manifest_sha256)?;
                Ok(RecordOutcome::Unchanged { manifest_sha256 })
            }
            None => {
                tracing::warn!(
                    version = %version,
                    "release manifest existed without a released ledger entry; appending it now"
                );
                let entry = self.append_released(&recorded, &manifest_sha256, actor, artifact)?;
                Ok(RecordOutcome::LedgerCompleted {
                    manifest_sha256,
                    entry,
                })
            }
        }
    }

    /// Reads a recorded manifest strictly (unknown fields, a bad digest, or a version that
    /// does not match the file name are errors) with the sha256 of its file bytes.
    pub fn load_release(&self, version: &Version) -> Result<RecordedRelease, RecordError> {
        let path = self.release_path(version);
        let bytes = read_optional(&path)?.ok_or_else(|| RecordError::NotRecorded {
            version: version.clone(),
            path: path.clone(),
        })?;
        Ok(RecordedRelease {
            manifest: parse_manifest(&path, version, &bytes)?,
            sha256: Digest::of(&bytes),
        })
    }

    /// Versions that have a manifest, sorted. Hidden files (temp files of interrupted
    /// writes) are skipped; a file whose name is not a valid version is an error.
    pub fn releases(&self) -> Result<Vec<Version>, RecordError> {
        let dir = self.releases_dir();
        let mut versions = Vec::new();
        for dirent in std::fs::read_dir(&dir).fs("list", &dir)? {
            let name = dirent.fs("list", &dir)?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let version = name
                .strip_suffix(".json")
                .and_then(|stem| Version::parse(stem).ok())
                .ok_or_else(|| RecordError::Malformed {
                    path: dir.join(name.as_ref()),
                    reason: "not a release manifest name (<version>.json)".into(),
                })?;
            versions.push(version);
        }
        versions.sort();
        Ok(versions)
    }

    fn append_released(
        &self,
        manifest: &ReleaseManifest,
        manifest_sha256: &Digest,
        actor: &str,
        artifact: Option<&Digest>,
    ) -> Result<Entry, RecordError> {
        let event = Released {
            artifact: artifact.cloned(),
            manifest_sha256: manifest_sha256.clone(),
            services: manifest.digests(),
            version: manifest.version.clone(),
        };
        Ok(self.ledger().append_event(actor, &event.into())?)
    }
}

fn parse_manifest(
    path: &Path,
    version: &Version,
    bytes: &[u8],
) -> Result<ReleaseManifest, RecordError> {
    let malformed = |reason: String| RecordError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let manifest: ReleaseManifest =
        serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if &manifest.version != version {
        return Err(malformed(format!(
            "it records version {}, but its file name says {version}",
            manifest.version
        )));
    }
    manifest.check().map_err(malformed)?;
    Ok(manifest)
}

/// The first `released` entry for `version`, with its typed payload. A `released` payload
/// that does not parse is an error naming its seq; other kinds are not looked at.
fn released_entry<'a>(
    ledger: &Ledger,
    entries: &'a [Entry],
    version: &Version,
) -> Result<Option<(&'a Entry, Released)>, LedgerError> {
    for entry in entries.iter().filter(|e| e.kind == EntryKind::Released) {
        match entry.event().map_err(|e| ledger.invalid_event(&e))? {
            Event::Released(r) if r.version == version.as_str() => return Ok(Some((entry, r))),
            _ => {}
        }
    }
    Ok(None)
}

fn check_entry_matches(
    path: &Path,
    seq: u64,
    released: &Released,
    actual: &Digest,
) -> Result<(), RecordError> {
    if &released.manifest_sha256 == actual {
        Ok(())
    } else {
        Err(RecordError::ManifestAltered {
            path: path.to_path_buf(),
            seq,
            recorded: released.manifest_sha256.as_str().to_owned(),
            actual: actual.clone(),
        })
    }
}
