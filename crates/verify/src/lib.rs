//! The verifier: the records every stage trusts (release manifests, environment pointers,
//! rendered stacks, the hash-chained ledger) and, later, checks, gates and audit.
//!
//! Records live in a [`StateDir`]. Every file is written atomically ([`atomic`]), every
//! read-modify-write holds a file lock ([`lock`]), and every event is appended to the
//! [`Ledger`], whose hash chain makes after-the-fact edits detectable.

pub mod atomic;
pub mod audit;
pub mod check;
pub mod colours;
mod digest;
pub mod drift;
mod env;
pub mod evidence;
mod fs;
pub mod gate;
pub mod history;
pub mod junit;
pub mod ledger;
pub mod lock;
mod manifest;
mod name;
mod release;
mod state;

pub use digest::{Digest, DigestError};
pub use env::EnvPointer;
pub use fs::FsError;
pub use ledger::{
    BreakProblem, ChainBreak, Entry, EntryKind, EntryView, Event, EventError, Ledger, LedgerError,
    Recorded, TornTail, VerifyReport,
};
pub use lock::{LockError, LockGuard};
pub use manifest::{
    DigestChange, JenkinsBuild, RecordOutcome, RecordedRelease, ReleaseManifest, ServiceImage,
};
pub use name::{EnvName, NameError, ServiceName, Version, VersionPattern};
pub use state::{DEFAULT_LOCK_TIMEOUT, ErrorKind, RecordError, StateDir};
