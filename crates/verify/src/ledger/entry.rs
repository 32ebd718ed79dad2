//! One ledger line: its typed fields and the exact bytes it was read from.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::fs::sha256_prefixed;

/// `prev` of the first entry: there is no previous line to hash.
pub const GENESIS_PREV: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Serialized in kebab-case (`deploy-failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    Released,
    Deployed,
    DeployFailed,
    RolledBack,
    Checked,
    GateRefused,
    Promoted,
    Switched,
    ColourRemoved,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Released => "released",
            Self::Deployed => "deployed",
            Self::DeployFailed => "deploy-failed",
            Self::RolledBack => "rolled-back",
            Self::Checked => "checked",
            Self::GateRefused => "gate-refused",
            Self::Promoted => "promoted",
            Self::Switched => "switched",
            Self::ColourRemoved => "colour-removed",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ledger entry. It keeps the bytes it was read from (or written as), because the chain
/// hashes exactly the bytes on disk, never a re-serialization of the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the ledger, 1-based and gap-free: entry `n` is line `n`.
    pub seq: u64,
    /// When it was appended, UTC.
    pub time: OffsetDateTime,
    /// Who caused it, e.g. `jenkins:hestino/main#42` or a user name.
    pub actor: String,
    pub kind: EntryKind,
    /// Kind-specific details; always a JSON object.
    pub payload: Value,
    /// `sha256:<hex>` of the previous line's bytes (without its newline), or [`GENESIS_PREV`].
    pub prev: String,
    raw: Vec<u8>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    actor: &'a str,
    kind: EntryKind,
    payload: &'a Value,
    prev: &'a str,
}

/// A line checked for shape, its payload left as unparsed JSON: walking a long ledger
/// (verify, audit) allocates a payload tree only for the entries a caller wants.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineView<'a> {
    pub(crate) seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) time: OffsetDateTime,
    #[serde(borrow)]
    pub(crate) actor: Cow<'a, str>,
    pub(crate) kind: EntryKind,
    #[serde(borrow)]
    pub(crate) payload: &'a RawValue,
    #[serde(borrow)]
    pub(crate) prev: Cow<'a, str>,
}

impl LineView<'_> {
    /// The full entry, payload parsed; `raw` are the line's bytes.
    pub(crate) fn into_entry(self, raw: Vec<u8>) -> Result<Entry, String> {
        let payload: Value = serde_json::from_str(self.payload.get())
            .map_err(|e| format!("payload is not JSON: {e}"))?;
        Ok(Entry {
            seq: self.seq,
            time: self.time,
            actor: self.actor.into_owned(),
            kind: self.kind,
            payload,
            prev: self.prev.into_owned(),
            raw,
        })
    }
}

impl Entry {
    /// The payload parsed into its typed event.
    pub fn event(&self) -> Result<super::Event, super::EventError> {
        super::Event::from_value(self.kind, &self.payload).map_err(|e| super::EventError {
            seq: self.seq,
            kind: self.kind,
            reason: e.to_string(),
        })
    }

    /// The line's bytes as on disk, without the newline.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// `sha256:<hex>` of [`Entry::raw`]: what the next entry's `prev` must be.
    pub fn hash(&self) -> String {
        sha256_prefixed(&self.raw)
    }

    /// Builds a new entry and its line bytes. `Err` says why the fields are unacceptable.
    pub(crate) fn encode(
        seq: u64,
        time: OffsetDateTime,
        actor: &str,
        kind: EntryKind,
        payload: Value,
        prev: String,
    ) -> Result<Self, String> {
        check_actor(actor)?;
        check_payload(&payload)?;
        let raw = serde_json::to_vec(&LineOut {
            seq,
            time,
            actor,
            kind,
            payload: &payload,
            prev: &prev,
        })
        .map_err(|e| format!("cannot encode entry: {e}"))?;
        Ok(Self {
            seq,
            time,
            actor: actor.to_owned(),
            kind,
            payload,
            prev,
            raw,
        })
    }

    /// Parses one line (without its newline) strictly: every field present, no unknown
    /// field, well-formed values. `Err` says what is wrong with the line.
    pub(crate) fn parse(raw: Vec<u8>) -> Result<Self, String> {
        let view = Self::view(&raw)?;
        let copy = raw.clone();
        view.into_entry(copy)
    }

    /// Checks one line (without its newline) strictly, leaving the payload unparsed.
    pub(crate) fn view(raw: &[u8]) -> Result<LineView<'_>, String> {
        // serde_json tolerates surrounding whitespace (a CRLF conversion, say); a ledger
        // line is exactly one object and nothing else.
        if raw.first() != Some(&b'{') || raw.last() != Some(&b'}') {
            return Err("a line must be exactly one JSON object, without surrounding bytes".into());
        }
        let line: LineView<'_> =
            serde_json::from_slice(raw).map_err(|e| format!("not a ledger entry: {e}"))?;
        if line.seq == 0 {
            return Err("seq is 0; sequence numbers start at 1".into());
        }
        if !line.time.offset().is_utc() {
            return Err(format!("time has offset {}, not UTC", line.time.offset()));
        }
        check_actor(&line.actor)?;
        if !line.payload.get().starts_with('{') {
            return Err("payload is not a JSON object".into());
        }
        check_hash(&line.prev)?;
        Ok(line)
    }
}

fn check_actor(actor: &str) -> Result<(), String> {
    if actor.trim().is_empty() {
        Err("actor is empty; every entry must say who caused it".into())
    } else {
        Ok(())
    }
}

fn check_payload(payload: &Value) -> Result<(), String> {
    if payload.is_object() {
        Ok(())
    } else {
        Err("payload is not a JSON object".into())
    }
}

fn check_hash(prev: &str) -> Result<(), String> {
    crate::digest::Digest::parse(prev)
        .map(drop)
        .map_err(|_| format!("prev {prev:?} is not sha256: followed by 64 lowercase hex digits"))
}
