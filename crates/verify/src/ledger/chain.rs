//! Walking the ledger line by line and checking every link of the hash chain.

use std::fmt;
use std::io::{self, BufRead};

use super::entry::{Entry, GENESIS_PREV, LineView};
use crate::fs::sha256_prefixed;

/// The result of [`Ledger::verify`](super::Ledger::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete (newline-terminated) lines read.
    pub lines: u64,
    /// `sha256:<hex>` of the last complete line; `None` for an empty ledger. Archive it
    /// outside the state directory: the chain cannot detect an edit of, or the removal of,
    /// the newest entries, but a changed head can.
    pub head: Option<String>,
    /// The first line where the chain does not hold, if any.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Where and how the chain first fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based line number in `ledger.jsonl`.
    pub line: u64,
    /// The seq written on that line, when the line parses.
    pub seq: Option<u64>,
    pub problem: BreakProblem,
}

/// How a link fails. An entry whose own bytes were edited shows up as a `PrevMismatch` on
/// the *next* line (its own bytes no longer hash to what its successor recorded), unless
/// the edit made the line unparseable (`Malformed`) or it is the last entry (then only the
/// head hash changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakProblem {
    /// The file ends with a line that has no newline: an append was cut short by a crash.
    Torn { bytes: u64 },
    /// The line is not a valid entry.
    Malformed { reason: String },
    /// The line's seq is not the next number: entries were removed, reordered or inserted.
    SeqMismatch { expected: u64, found: u64 },
    /// The line's prev is not the hash of the line before it.
    PrevMismatch { expected: String, found: String },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (seq {seq}): {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

impl fmt::Display for BreakProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Torn { bytes } => write!(
                f,
                "torn last line ({bytes} bytes, no newline): an append was interrupted by a crash"
            ),
            Self::Malformed { reason } => write!(f, "malformed entry: {reason}"),
            Self::SeqMismatch { expected, found } => write!(
                f,
                "seq is {found}, expected {expected}: entries were removed, reordered or inserted"
            ),
            Self::PrevMismatch { expected, found } => write!(
                f,
                "prev is {found} but the previous line hashes to {expected}: the previous \
                 entry was altered, or entries were removed or reordered"
            ),
        }
    }
}

/// Reads every line, checks each link, and hands each well-formed line (its view and its
/// bytes) to `on_entry` (also lines after a break, which callers that care about breaks
/// discard). Returning `Err` from `on_entry` records the line as malformed.
pub(crate) fn walk(
    mut reader: impl BufRead,
    mut on_entry: impl FnMut(LineView<'_>, &[u8]) -> Result<(), String>,
) -> io::Result<VerifyReport> {
    let mut report = VerifyReport {
        lines: 0,
        head: None,
        first_break: None,
    };
    let mut expected_prev = GENESIS_PREV.to_owned();
    let mut expected_seq = 1;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let line = report.lines + 1;
        let mut note = |seq, problem| {
            if report.first_break.is_none() {
                report.first_break = Some(ChainBreak { line, seq, problem });
            }
        };
        if buf.pop() != Some(b'\n') {
            note(None, BreakProblem::Torn { bytes: n as u64 });
            break;
        }
        let hash = sha256_prefixed(&buf);
        match Entry::view(&buf) {
            Err(reason) => note(None, BreakProblem::Malformed { reason }),
            Ok(view) => {
                let seq = view.seq;
                if seq != expected_seq {
                    let problem = BreakProblem::SeqMismatch {
                        expected: expected_seq,
                        found: seq,
                    };
                    note(Some(seq), problem);
                } else if view.prev != expected_prev {
                    let problem = BreakProblem::PrevMismatch {
                        expected: expected_prev.clone(),
                        found: view.prev.clone().into_owned(),
                    };
                    note(Some(seq), problem);
                }
                if let Err(reason) = on_entry(view, &buf) {
                    note(Some(seq), BreakProblem::Malformed { reason });
                }
            }
        }
        report.lines = line;
        expected_seq = line + 1;
        expected_prev.clone_from(&hash);
        report.head = Some(hash);
    }
    Ok(report)
}
