//! Atomic file writes: a reader (or a crash) sees the old bytes or the new bytes, never a mix.
//!
//! The recipe: write a temp file in the same directory (mode 0600, unique name), fsync it,
//! move it into place, fsync the directory. The temp file must live in the target directory
//! because `rename(2)` and `link(2)` are atomic only within one filesystem.
//!
//! A process killed between the fsync and the rename leaves a hidden temp file
//! (`.<name>.<pid>.<n>.tmp`) behind; it is never the record itself, and record listings skip
//! dot-files. Nothing here deletes such leftovers, because a live writer's temp file looks the
//! same.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fs::{FsError, IoContext, fsync_dir, parent_dir};

/// What [`write_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOnce {
    /// The file did not exist and now holds the given bytes.
    Created,
    /// The file already existed; it was not touched.
    AlreadyPresent,
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).fs("rename temp file onto", path);
    }
    fsync_dir(parent_dir(path))
}

/// Creates `path` with `bytes` only if it does not exist yet, atomically and durably.
///
/// For immutable records (release manifests): `link(2)` fails if the name is taken, so two
/// racing writers cannot both win and an existing record is never replaced, even by a
/// writer that does not hold the lock.
pub fn write_once(path: &Path, bytes: &[u8]) -> Result<WriteOnce, FsError> {
    let tmp = write_temp(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fsync_dir(parent_dir(path))?;
            Ok(WriteOnce::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(WriteOnce::AlreadyPresent),
        Err(e) => Err(e).fs("create", path),
    }
}

/// Writes and fsyncs a fresh temp file next to `path`; removes it again on failure.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, FsError> {
    let (mut file, tmp) = create_temp(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(e).fs("write temp file", &tmp);
    }
    Ok(tmp)
}

fn create_temp(path: &Path) -> Result<(File, PathBuf), FsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last_err = None;
    // A name can only collide with a leftover from a dead process that had our pid; a few
    // attempts with a fresh counter get past any such leftovers.
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{nanos:x}{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some((e, tmp)),
            Err(e) => return Err(e).fs("create temp file", &tmp),
        }
    }
    match last_err {
        Some((e, tmp)) => Err(e).fs("create temp file", &tmp),
        None => Err(io::Error::other("no temp file name tried")).fs("create temp file in", dir),
    }
}
