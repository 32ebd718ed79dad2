//! The ledger: `ledger.jsonl`, an append-only, hash-chained log of everything the toolchain
//! did (released, deployed, checked, gate-refused, promoted, rolled back).
//!
//! One JSON object per line:
//! `{"seq":N,"time":"<RFC 3339 UTC>","actor":"…","kind":"…","payload":{…},"prev":"sha256:…"}`.
//! `seq` starts at 1 and equals the line number; `prev` is the sha256 of the previous line's
//! bytes (without the newline), [`GENESIS_PREV`] for the first. Editing, removing, inserting
//! or reordering any entry but the newest breaks the chain. Changes at the end are caught
//! by the signed head ([`head`]: `ledger.head`, rewritten after every append when the
//! ledger has a [`HeadSigner`], see [`Ledger::signed_by`]) and, also against a rollback of
//! the whole directory, by a head hash ([`VerifyReport::head`]) archived elsewhere.
//!
//! Appends are serialized by the `ledger` lock and written as one `write(2)` of the whole
//! line, then fsynced; an append reports success only after that fsync. A crash can still
//! cut a write short, leaving a *torn* last line with no newline: Linux checks for SIGKILL
//! between the page-cache chunks of one `write(2)` (seen on 6.18 with multi-megabyte
//! lines; for lines of a few hundred bytes the window is a few nanoseconds), and power loss
//! before the fsync can keep a prefix. That line was never acknowledged to anyone, but it is
//! evidence, so nothing removes it silently: reads and appends refuse with
//! [`LedgerError::Corrupt`], and an operator runs [`Ledger::recover_torn_tail`], which moves
//! the torn bytes to a side file and truncates only them.
//!
//! Payloads are typed: [`Event`] has one variant per [`EntryKind`], and the toolchain
//! writes entries only through [`Ledger::append_event`] and reads them back with
//! [`Entry::event`], [`EntryView::event`] or [`Ledger::read_events`]. The field names and
//! byte order of every payload are exactly those of the entries written before the types
//! existed, so old ledgers read and the chain of new ones is byte-for-byte the same.

mod chain;
mod entry;
mod event;
pub mod head;

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

pub use chain::{BreakProblem, ChainBreak, VerifyReport};
pub use entry::{Entry, EntryKind, GENESIS_PREV};
pub use event::{
    Checked, ColourRemoved, DeployFailed, Deployed, Event, EventError, Evidence, FailureTrigger,
    GateRefused, Promoted, Released, RequestedRollback, RequestedTrigger, RollbackAfterFailure,
    RolledBack, Switched,
};
pub use head::{HEAD_FILE, HEAD_PAYLOAD_TYPE, HeadCheck, HeadProblem, HeadSigner, SignedHead};

/// A ledger line as [`Ledger::scan`] sees it: typed header, raw JSON payload.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub seq: u64,
    pub time: OffsetDateTime,
    pub actor: &'a str,
    pub kind: EntryKind,
    /// The payload object as written, unparsed.
    pub payload: &'a str,
}

impl EntryView<'_> {
    /// The payload parsed into its typed event.
    pub fn event(&self) -> Result<Event, EventError> {
        Event::from_json(self.kind, self.payload).map_err(|e| EventError {
            seq: self.seq,
            kind: self.kind,
            reason: e.to_string(),
        })
    }
}

/// An entry read back with its payload typed, from [`Ledger::read_events`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub entry: Entry,
    pub event: Event,
}

use crate::atomic::{WriteOnce, write_once};
use crate::fs::{FsError, IoContext, fsync_dir, parent_dir};
use crate::lock::{self, LockError};

/// The name of the lock that serializes ledger access (`locks/ledger.lock`).
pub const LEDGER_LOCK: &str = "ledger";

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {} is corrupt at line {line}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("refusing to append to ledger {}: {reason}", path.display())]
    InvalidEntry { path: PathBuf, reason: String },
    #[error(
        "append to ledger {} failed ({error}) and the partial line could not be removed \
         ({rollback})",
        path.display()
    )]
    RollbackFailed {
        path: PathBuf,
        error: io::Error,
        rollback: io::Error,
    },
    #[error(
        "entry seq {seq} was appended to ledger {} but its head could not be signed or written: {reason}",
        path.display()
    )]
    HeadSigning {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl LedgerError {
    /// The next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            LedgerError::Corrupt { reason, .. } => Some(format!(
                "run `release audit verify`{}",
                if reason.contains("torn") {
                    ", then recover the torn tail"
                } else {
                    ""
                }
            )),
            LedgerError::RollbackFailed { .. } => {
                Some("the ledger now ends with a torn line: recover it before appending".to_owned())
            }
            LedgerError::Lock(e) => e.hint(),
            _ => None,
        }
    }
}

/// A torn last line moved aside by [`Ledger::recover_torn_tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Line number the torn bytes occupied.
    pub line: u64,
    pub bytes: u64,
    /// Where the torn bytes were preserved.
    pub saved_to: PathBuf,
}

/// Handle on `ledger.jsonl`; cheap to create, holds no file open.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    lock_dir: PathBuf,
    lock_timeout: Duration,
    head_signer: Option<Arc<HeadSigner>>,
}

impl Ledger {
    pub(crate) fn new(path: PathBuf, lock_dir: PathBuf, lock_timeout: Duration) -> Self {
        Self {
            path,
            lock_dir,
            lock_timeout,
            head_signer: None,
        }
    }

    /// This ledger, signing its head ([`head`]) with `signer` after every append.
    pub fn signed_by(mut self, signer: Option<Arc<HeadSigner>>) -> Self {
        self.head_signer = signer;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `ledger.head`, the signed head, next to the ledger.
    pub fn head_path(&self) -> PathBuf {
        self.path.with_file_name(HEAD_FILE)
    }

    /// Appends one typed event and returns its entry once it is durable. The way the
    /// toolchain writes: the payload is exactly the event's fields, its kind the event's.
    pub fn append_event(&self, actor: &str, event: &Event) -> Result<Entry, LedgerError> {
        let payload = event.to_value().map_err(|e| LedgerError::InvalidEntry {
            path: self.path.clone(),
            reason: format!("cannot encode the {} event: {e}", event.kind()),
        })?;
        self.append(event.kind(), actor, payload)
    }

    /// Appends one entry with an untyped payload and returns it once it is durable.
    /// [`Ledger::append_event`] is the typed way; this one accepts any JSON object, for
    /// tools and tests that write entries the typed events do not describe.
    ///
    /// Reads only the tail of the file to find the previous entry, so the cost does not grow
    /// with the ledger. Refuses with [`LedgerError::Corrupt`] if the current last line is
    /// torn or malformed: chaining onto bytes we cannot trust would hide the damage.
    pub fn append(
        &self,
        kind: EntryKind,
        actor: &str,
        payload: Value,
    ) -> Result<Entry, LedgerError> {
        let purpose = format!("append a {kind} entry to the ledger");
        let _lock = self.lock(&purpose)?;
        let existed = self.path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .fs("open", &self.path)?;
        let len = file.metadata().fs("stat", &self.path)?.len();
        let (seq, prev) = self.next_link(&file, len)?;
        let entry = Entry::encode(seq, OffsetDateTime::now_utc(), actor, kind, payload, prev)
            .map_err(|reason| LedgerError::InvalidEntry {
                path: self.path.clone(),
                reason,
            })?;
        let mut line = Vec::with_capacity(entry.raw().len() + 1);
        line.extend_from_slice(entry.raw());
        line.push(b'\n');
        // One write(2) of the whole line: on a local filesystem it either lands whole or,
        // if cut short, is rolled back here while we still hold the lock.
        let written = match file.write(&line) {
            Ok(n) if n == line.len() => file.sync_data(),
            // Cut short (a full disk or quota): finishing the line either completes it,
            // still under the lock, or yields the OS's reason (ENOSPC, EDQUOT, EFBIG) for
            // the message instead of a bare "short write"; either way a failure rolls back.
            Ok(n) => file.write_all(&line[n..]).and_then(|()| file.sync_data()),
            Err(e) => Err(e),
        };
        if let Err(error) = written {
            return Err(match file.set_len(len).and_then(|()| file.sync_data()) {
                Ok(()) => FsError {
                    op: "append to",
                    path: self.path.clone(),
                    error,
                }
                .into(),
                Err(rollback) => LedgerError::RollbackFailed {
                    path: self.path.clone(),
                    error,
                    rollback,
                },
            });
        }
        if !existed {
            fsync_dir(parent_dir(&self.path))?;
        }
        self.write_head(&entry)?;
        Ok(entry)
    }

    /// Signs and writes the head naming `entry`, still under the ledger lock, when this
    /// ledger has a signer. The entry is already durable: a failure here leaves the head
    /// one entry behind, which `audit verify` reports until the next append replaces it.
    fn write_head(&self, entry: &Entry) -> Result<(), LedgerError> {
        let Some(signer) = &self.head_signer else {
            return Ok(());
        };
        let head = SignedHead {
            seq: entry.seq,
            hash: crate::fs::sha256_prefixed(entry.raw()),
            entries: entry.seq,
        };
        let envelope = signer.sign(&head).map_err(|e| LedgerError::HeadSigning {
            path: self.path.clone(),
            seq: entry.seq,
            reason: e.to_string(),
        })?;
        // The entry is recorded either way: a head that cannot be written is reported as
        // such (an outage), never as an append that did not happen.
        crate::atomic::write_atomic(&self.head_path(), &envelope).map_err(|e| {
            LedgerError::HeadSigning {
                path: self.path.clone(),
                seq: entry.seq,
                reason: format!("cannot write {}: {e}", self.head_path().display()),
            }
        })?;
        Ok(())
    }

    /// Recomputes the chain like [`Ledger::scan`] and reads `ledger.head` under the same
    /// lock, so that the two describe one moment; `None` when there is no head file.
    pub fn scan_with_head(
        &self,
        mut on: impl FnMut(&EntryView<'_>) -> Result<(), String>,
    ) -> Result<(VerifyReport, Option<Vec<u8>>), LedgerError> {
        let _lock = self.lock("read the ledger")?;
        let report = self.walk(|view, _| {
            on(&EntryView {
                seq: view.seq,
                time: view.time,
                actor: &view.actor,
                kind: view.kind,
                payload: view.payload.get(),
            })
        })?;
        let head_path = self.head_path();
        let head = crate::state::read_optional(&head_path)?;
        Ok((report, head))
    }

    /// Every entry, in order. Strict: a torn or malformed line, or a broken link anywhere,
    /// is an error rather than a partial answer, because an audit built on part of a
    /// damaged ledger would be wrong without saying so. A missing ledger is empty.
    pub fn read_all(&self) -> Result<Vec<Entry>, LedgerError> {
        let _lock = self.lock("read the ledger")?;
        let mut entries = Vec::new();
        let report = self.walk(|view, raw| {
            entries.push(view.into_entry(raw.to_vec())?);
            Ok(())
        })?;
        match report.first_break {
            Some(b) => Err(self.corrupt(b.line, b.to_string())),
            None => Ok(entries),
        }
    }

    /// Every entry, in order, with its payload parsed into its [`Event`]; strict like
    /// [`Ledger::read_all`]. A payload that does not match its kind is
    /// [`LedgerError::Corrupt`], naming the entry's seq and kind.
    pub fn read_events(&self) -> Result<Vec<Recorded>, LedgerError> {
        self.read_all()?
            .into_iter()
            .map(|entry| match entry.event() {
                Ok(event) => Ok(Recorded { entry, event }),
                Err(e) => Err(self.invalid_event(&e)),
            })
            .collect()
    }

    /// The error for an entry of this ledger whose payload does not match its kind.
    pub fn invalid_event(&self, e: &EventError) -> LedgerError {
        self.corrupt(e.seq, e.to_string())
    }

    /// Recomputes the whole chain. Damage is reported in the [`VerifyReport`], not as an
    /// error; errors are only for not being able to read the ledger at all.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let _lock = self.lock("verify the ledger")?;
        self.walk(|_, _| Ok(()))
    }

    /// Recomputes the chain like [`Ledger::verify`], handing every well-formed line to `on`
    /// as an [`EntryView`] whose payload is still raw JSON: one pass, and no payload tree is
    /// built unless the caller builds one. Breaks are in the report; an `Err` from `on`
    /// marks that line malformed.
    pub fn scan(
        &self,
        mut on: impl FnMut(&EntryView<'_>) -> Result<(), String>,
    ) -> Result<VerifyReport, LedgerError> {
        let _lock = self.lock("read the ledger")?;
        self.walk(|view, _| {
            on(&EntryView {
                seq: view.seq,
                time: view.time,
                actor: &view.actor,
                kind: view.kind,
                payload: view.payload.get(),
            })
        })
    }

    /// The error for a report with a break, for callers that refuse a broken ledger.
    pub fn refuse_break(&self, report: &VerifyReport) -> Result<(), LedgerError> {
        match &report.first_break {
            Some(b) => Err(self.corrupt(b.line, b.to_string())),
            None => Ok(()),
        }
    }

    /// Moves a torn last line (one without a newline, left by a crash mid-append) to
    /// `ledger.jsonl.torn-<offset>-<sha256 prefix>` and truncates the ledger to the last
    /// complete line. Complete lines are never touched, even malformed ones. Returns `None`
    /// if the ledger does not end with a torn line.
    pub fn recover_torn_tail(&self) -> Result<Option<TornTail>, LedgerError> {
        let _lock = self.lock("recover a torn ledger tail")?;
        let file = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("open", &self.path, e).into()),
        };
        let len = file.metadata().fs("stat", &self.path)?.len();
        if len == 0 || last_byte(&file, len).fs("read", &self.path)? == b'\n' {
            return Ok(None);
        }
        let start = line_start(&file, len).fs("read", &self.path)?;
        let mut torn = vec![0; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut torn, start)
            .fs("read", &self.path)?;
        // Named by offset and content, so a retried recovery finds its own copy.
        let sha = crate::fs::sha256_prefixed(&torn);
        let saved_to = self.path.with_file_name(format!(
            "ledger.jsonl.torn-{start}-{}",
            &sha["sha256:".len()..][..16]
        ));
        if write_once(&saved_to, &torn)? == WriteOnce::AlreadyPresent
            && std::fs::read(&saved_to).fs("read", &saved_to)? != torn
        {
            return Err(FsError::new(
                "preserve torn bytes in",
                &saved_to,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a different file with this name exists",
                ),
            )
            .into());
        }
        file.set_len(start)
            .and_then(|()| file.sync_data())
            .fs("truncate torn tail of", &self.path)?;
        let line = count_newlines(&self.path)? + 1;
        tracing::warn!(
            ledger = %self.path.display(), line, bytes = torn.len(), saved_to = %saved_to.display(),
            "removed a torn ledger line left by an interrupted append"
        );
        Ok(Some(TornTail {
            line,
            bytes: torn.len() as u64,
            saved_to,
        }))
    }

    fn lock(&self, purpose: &str) -> Result<lock::LockGuard, LockError> {
        lock::acquire(&self.lock_dir, LEDGER_LOCK, self.lock_timeout, purpose)
    }

    fn walk(
        &self,
        on_entry: impl FnMut(entry::LineView<'_>, &[u8]) -> Result<(), String>,
    ) -> Result<VerifyReport, LedgerError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return chain::walk(io::empty(), on_entry)
                    .fs("read", &self.path)
                    .map_err(Into::into);
            }
            Err(e) => return Err(FsError::new("open", &self.path, e).into()),
        };
        Ok(chain::walk(BufReader::new(file), on_entry).fs("read", &self.path)?)
    }

    /// The seq and prev for the entry after the one ending at `len`.
    fn next_link(&self, file: &File, len: u64) -> Result<(u64, String), LedgerError> {
        if len == 0 {
            return Ok((1, GENESIS_PREV.to_owned()));
        }
        if last_byte(file, len).fs("read", &self.path)? != b'\n' {
            let line = count_newlines(&self.path)? + 1;
            return Err(self.corrupt(
                line,
                "torn last line (no newline): an earlier append was interrupted by a crash".into(),
            ));
        }
        let start = line_start(file, len - 1).fs("read", &self.path)?;
        let mut raw = vec![0; usize::try_from(len - 1 - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut raw, start).fs("read", &self.path)?;
        let hash = crate::fs::sha256_prefixed(&raw);
        match Entry::parse(raw) {
            Ok(last) => Ok((last.seq + 1, hash)),
            Err(reason) => Err(self.corrupt(count_newlines(&self.path)?, reason)),
        }
    }

    fn corrupt(&self, line: u64, reason: String) -> LedgerError {
        LedgerError::Corrupt {
            path: self.path.clone(),
            line,
            reason,
        }
    }
}

/// Parses one ledger line (without its newline) strictly, payload included, as every read
/// does. An entry point for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub fn parse_ledger_line(bytes: &[u8]) -> Result<(), String> {
    Entry::parse(bytes.to_vec()).map(drop)
}

/// Walks `bytes` as a whole `ledger.jsonl`, checking every line and link as
/// [`Ledger::read_all`] does, without a file or a lock. For the fuzz targets in `fuzz/`.
#[doc(hidden)]
pub fn verify_ledger_bytes(bytes: &[u8]) -> io::Result<VerifyReport> {
    chain::walk(bytes, |view, raw| view.into_entry(raw.to_vec()).map(drop))
}

fn last_byte(file: &File, len: u64) -> io::Result<u8> {
    let mut b = [0];
    file.read_exact_at(&mut b, len - 1)?;
    Ok(b[0])
}

/// Offset where the line that ends at `end` (exclusive, newline not included) starts.
/// Reads backwards in growing windows, so a long ledger costs one small read.
fn line_start(file: &File, end: u64) -> io::Result<u64> {
    let mut window: u64 = 4096;
    loop {
        let from = end.saturating_sub(window);
        let mut buf = vec![0; usize::try_from(end - from).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, from)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        if from == 0 {
            return Ok(0);
        }
        window = window.saturating_mul(2);
    }
}

/// Only on error paths: the line number of a problem found by reading the tail.
fn count_newlines(path: &Path) -> Result<u64, FsError> {
    let mut file = File::open(path).fs("open", path)?;
    let mut buf = vec![0; 64 * 1024];
    let mut count = 0;
    loop {
        let n = file.read(&mut buf).fs("read", path)?;
        if n == 0 {
            return Ok(count);
        }
        count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
