//! Filesystem vocabulary shared by the record modules: an I/O error that names its file and
//! what we were doing to it, and the small durable-write primitives every module needs.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// An I/O failure on a named file. The message carries the operation, the path and the OS
/// cause, because "permission denied" alone tells an operator nothing.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {error}", path.display())]
pub struct FsError {
    /// What we were doing, phrased to follow "cannot": `"read"`, `"create directory"`.
    pub op: &'static str,
    /// The file or directory involved.
    pub path: PathBuf,
    /// The OS error.
    pub error: io::Error,
}

impl FsError {
    pub(crate) fn new(op: &'static str, path: &Path, error: io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Attaches the operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn fs(self, op: &'static str, path: &Path) -> Result<T, FsError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn fs(self, op: &'static str, path: &Path) -> Result<T, FsError> {
        self.map_err(|error| FsError::new(op, path, error))
    }
}

/// Makes a rename or a new directory entry durable: on Linux a file's fsync does not persist
/// the directory entry that names it, so after a rename we fsync the directory too.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .fs("fsync directory", dir)
}

/// The directory holding `path`; `"."` for a bare file name.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `"sha256:<64 lowercase hex>"` of `bytes`, the form used in every record.
pub(crate) fn sha256_prefixed(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
