//! The state directory: the one place that knows where each record lives.
//!
//! ```text
//! <root>/releases/<version>.json     release manifest, written once
//! <root>/stacks/<env>/<version>.yml  rendered, digest-pinned stack that was applied
//! <root>/envs/<env>.json             what is live in an environment
//! <root>/ledger.jsonl                hash-chained event log
//! <root>/ledger.head                 signed head of the ledger (when a key is configured)
//! <root>/locks/<name>.lock           advisory locks (+ <name>.holder sidecars)
//! ```
//!
//! Directories are created with mode 0700 and files with 0600: records are not secret, but
//! nobody else should be able to rewrite history.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::digest::Digest;
use crate::fs::{FsError, IoContext};
use crate::ledger::{HeadSigner, Ledger, LedgerError};
use crate::lock::{self, LockError, LockGuard};
use crate::manifest::DigestChange;
use crate::name::{EnvName, Version};

/// How long record operations wait for a lock unless told otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why reading or writing a record failed. Every variant names the file or the object.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record {} is malformed: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("release {version} is not recorded ({} does not exist)", path.display())]
    NotRecorded { version: Version, path: PathBuf },
    #[error("invalid release manifest for {version}: {reason}")]
    InvalidManifest { version: Version, reason: String },
    #[error(
        "release {version} is already recorded in {} with different digests: {}",
        path.display(),
        changed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ManifestConflict {
        version: Version,
        path: PathBuf,
        changed: Vec<DigestChange>,
    },
    #[error(
        "release manifest {} was changed after it was recorded: ledger entry seq {seq} \
         recorded {recorded}, the file now hashes to {actual}",
        path.display()
    )]
    ManifestAltered {
        path: PathBuf,
        seq: u64,
        recorded: String,
        actual: Digest,
    },
    #[error(
        "release {version} was recorded in the ledger (seq {seq}) but {} is missing",
        path.display()
    )]
    ManifestMissing {
        version: Version,
        path: PathBuf,
        seq: u64,
    },
    /// A state directory that must already hold records does not exist.
    #[error("state directory {} does not exist: nothing was ever recorded there", path.display())]
    NoStateDir { path: PathBuf },
    /// The state directory's path names something that is not a directory.
    #[error("state directory {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("invalid pointer for environment {env}: {reason}")]
    InvalidEnvPointer { env: EnvName, reason: String },
    /// The ledger is damaged or refused an entry. Lock and I/O failures while using the
    /// ledger are reported as [`RecordError::Lock`] and [`RecordError::Fs`] instead, so
    /// callers can tell a broken ledger from an unavailable one.
    #[error(transparent)]
    Ledger(LedgerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// What kind of failure an error of this crate is; the CLI maps each to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong: a name, a version, a manifest that does not fit.
    Usage,
    /// A verdict about the records: they are damaged, altered or in conflict.
    Verdict,
    /// The records cannot be reached now: a lock held too long, a full or read-only disk.
    Infrastructure,
}

impl RecordError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RecordError::ManifestConflict { .. }
            | RecordError::ManifestAltered { .. }
            | RecordError::ManifestMissing { .. }
            | RecordError::Malformed { .. } => ErrorKind::Verdict,
            RecordError::Ledger(LedgerError::HeadSigning { .. }) => ErrorKind::Infrastructure,
            RecordError::Ledger(_) => ErrorKind::Verdict,
            RecordError::NotRecorded { .. }
            | RecordError::InvalidManifest { .. }
            | RecordError::InvalidEnvPointer { .. }
            | RecordError::NoStateDir { .. }
            | RecordError::NotADirectory { .. } => ErrorKind::Usage,
            RecordError::Lock(_) | RecordError::Fs(_) => ErrorKind::Infrastructure,
        }
    }

    /// The next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            RecordError::Malformed { .. } => Some(
                "records are written only by `release`: restore the file from a backup".to_owned(),
            ),
            RecordError::NotRecorded { version, .. } => {
                Some(format!("push release {version} first"))
            }
            RecordError::ManifestConflict { .. } => {
                Some("a version is immutable: push the new images under a new version".to_owned())
            }
            RecordError::ManifestAltered { .. } | RecordError::ManifestMissing { .. } => {
                Some("restore it from a backup".to_owned())
            }
            RecordError::NoStateDir { .. } => Some(
                "name the directory the pipeline records into (a project has none before its first push)"
                    .to_owned(),
            ),
            RecordError::NotADirectory { .. } => {
                Some("name a directory, or a path where one may be created".to_owned())
            }
            RecordError::Ledger(e) => e.hint(),
            RecordError::Lock(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<LedgerError> for RecordError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Lock(e) => Self::Lock(e),
            LedgerError::Fs(e) => Self::Fs(e),
            e => Self::Ledger(e),
        }
    }
}

/// Handle on a state directory. Holds no files open; every operation takes the locks it
/// needs, so any number of handles in any number of processes may be used at once.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    lock_timeout: Duration,
    head_signer: Option<Arc<HeadSigner>>,
}

impl StateDir {
    /// Opens `root`, creating it and its subdirectories (mode 0700) if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let state = Self {
            root: root.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            head_signer: None,
        };
        if state.root.exists() && !state.root.is_dir() {
            return Err(RecordError::NotADirectory { path: state.root });
        }
        for dir in [
            state.root.clone(),
            state.releases_dir(),
            state.root.join("stacks"),
            state.root.join("envs"),
            state.locks_dir(),
        ] {
            create_private_dir(&dir)?;
        }
        Ok(state)
    }

    /// Opens a state directory that must exist already: what reads records (an audit)
    /// must not take a mistyped path for a project that recorded nothing, nor leave a new
    /// empty directory behind.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let root = root.into();
        if !root.exists() {
            return Err(RecordError::NoStateDir { path: root });
        }
        Self::open(root)
    }

    /// How long record operations wait for a lock before failing with
    /// [`LockError::Timeout`].
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Signs the ledger head with `signer` after every append made through this handle
    /// (see [`crate::ledger::head`]); `None` leaves the head alone.
    pub fn with_head_signer(mut self, signer: Option<HeadSigner>) -> Self {
        self.head_signer = signer.map(Arc::new);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    pub fn release_path(&self, version: &Version) -> PathBuf {
        self.releases_dir().join(format!("{version}.json"))
    }

    pub fn stack_path(&self, env: &EnvName, version: &Version) -> PathBuf {
        self.root
            .join("stacks")
            .join(env.as_str())
            .join(format!("{version}.yml"))
    }

    pub fn env_path(&self, env: &EnvName) -> PathBuf {
        self.root.join("envs").join(format!("{env}.json"))
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.jsonl")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::new(self.ledger_path(), self.locks_dir(), self.lock_timeout)
            .signed_by(self.head_signer.clone())
    }

    /// Takes the exclusive lock `locks/<name>.lock`, waiting at most `timeout`. `purpose`
    /// is shown to whoever times out waiting for it. See [`crate::lock`] for lock order.
    pub fn lock(
        &self,
        name: &str,
        timeout: Duration,
        purpose: &str,
    ) -> Result<LockGuard, LockError> {
        lock::acquire(&self.locks_dir(), name, timeout, purpose)
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), FsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .fs("create directory", dir)?;
    // A directory that already existed keeps its mode; one that others can write to would
    // let anyone on the host rewrite history, so take their write access away.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).fs("stat", dir)?.permissions().mode();
    if mode & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7755))
            .fs("remove group and other write access from", dir)?;
    }
    Ok(())
}

/// Reads a whole record; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e)),
    }
}
