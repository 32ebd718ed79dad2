//! Exclusive advisory locks that serialize every read-modify-write of the records.
//!
//! A lock is `flock(2)` on `locks/<name>.lock`. The kernel drops it when the holder exits,
//! however it exits, so a killed Jenkins build never leaves a stale lock behind. Lock files
//! are never deleted (deleting one would let two processes lock two different inodes).
//!
//! Waiting is bounded: after the timeout the error names the lock file and, from the
//! `locks/<name>.holder` sidecar the holder writes after acquiring, who holds it.
//!
//! Lock order, to rule out deadlock: locks are taken outermost first, in this order, and
//! never the other way round:
//!
//! 1. `deploy-<env>`: held by a deploy, rollback or promotion for its whole run (it is what
//!    makes two deploys to one environment wait for each other). Taken first, with nothing
//!    else held; no code takes it while holding another lock.
//! 2. `env-<env>` (an environment pointer's read-modify-write) or `releases` (recording a
//!    release manifest): short, and never both at once.
//! 3. `ledger`: innermost; taken inside any of the above, never while waiting for another.
//!
//! So a deploy may hold `deploy-<env>`, then `env-<env>`, then `ledger`; every other path
//! holds a prefix of such a chain.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fs::{FsError, IoContext};

/// Longest sleep between two attempts: short enough that a waiter notices a release quickly.
const MAX_POLL: Duration = Duration::from_millis(10);

/// Why a lock was not acquired.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "timed out after {waited:?} waiting for lock {}{}",
        path.display(),
        match holder { Some(h) => format!(" (held by {h})"), None => String::new() }
    )]
    Timeout {
        path: PathBuf,
        waited: Duration,
        /// The holder as it described itself, if its sidecar could be read.
        holder: Option<Box<Holder>>,
    },
    #[error("invalid lock name {name:?}: use letters, digits, '.', '-' and '_'")]
    BadName { name: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl LockError {
    /// The next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            LockError::Timeout { .. } => Some(
                "another `release` process is writing records: let it finish, or raise the lock \
                 timeout"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// Who holds a lock, as written to the `.holder` sidecar after acquiring it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// What the holder is doing, e.g. `record release 1.2.0`.
    pub purpose: String,
    /// RFC 3339 UTC time the lock was acquired.
    pub since: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on {} since {}: {}",
            self.pid, self.host, self.since, self.purpose
        )
    }
}

/// An acquired lock; dropping it releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    file: File,
    path: PathBuf,
    holder_path: PathBuf,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Remove the sidecar while still holding the lock, so we never delete the next
        // holder's description.
        let _ = fs::remove_file(&self.holder_path);
        let _ = FileExt::unlock(&self.file);
    }
}

/// Acquires `dir/<name>.lock`, polling for at most `timeout`.
pub(crate) fn acquire(
    dir: &Path,
    name: &str,
    timeout: Duration,
    purpose: &str,
) -> Result<LockGuard, LockError> {
    if !is_valid_name(name) {
        return Err(LockError::BadName {
            name: name.to_owned(),
        });
    }
    let path = dir.join(format!("{name}.lock"));
    let holder_path = dir.join(format!("{name}.holder"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .fs("open lock file", &path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !FileExt::try_lock_exclusive(&file).fs("lock", &path)? {
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(LockError::Timeout {
                holder: read_holder(&holder_path),
                path,
                waited,
            });
        }
        tracing::debug!(lock = %path.display(), ?waited, "waiting for lock");
        thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(MAX_POLL);
    }
    write_holder(&holder_path, purpose);
    Ok(LockGuard {
        file,
        path,
        holder_path,
    })
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Best effort: the sidecar only improves a timeout message, so failing to write it must
/// not fail the operation the lock protects. Not fsynced for the same reason.
fn write_holder(path: &Path, purpose: &str) {
    let holder = Holder {
        pid: std::process::id(),
        host: hostname(),
        purpose: purpose.to_owned(),
        since: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
    };
    let Ok(json) = serde_json::to_vec(&holder) else {
        return;
    };
    if let Err(e) = fs::write(path, json) {
        tracing::debug!(path = %path.display(), error = %e, "could not write lock holder");
    }
}

fn read_holder(path: &Path) -> Option<Box<Holder>> {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map(Box::new)
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned())
}
