//! Answers for auditors, from the records alone: what was deployed where and when, by
//! whom, approved by whom, on what evidence; what was live at a moment; and whether the
//! ledger and the release manifests are still exactly what was written.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::fs::sha256_prefixed;
use crate::{Entry, EntryKind, Ledger, LedgerError, RecordError, StateDir, VerifyReport};

/// One change of what an environment runs: a deploy, a promotion or a rollback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub kind: EntryKind,
    pub env: String,
    pub version: String,
    /// Service → digest that the environment ran from this event on.
    pub digests: BTreeMap<String, String>,
    pub actor: String,
    pub approver: Option<String>,
    /// The Jenkins build (`{build_url, build_number, job_name}`), when one acted.
    pub jenkins: Option<Value>,
    /// The hash of the evidence: for a promotion, the JUnit of the passing source check;
    /// for a deploy, the rendered stack that was applied.
    pub evidence: Option<String>,
}

/// Which deployments [`deployments`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// Only this environment.
    pub env: Option<&'a str>,
    /// Only what was live at this moment: the last deployment at or before it, per env.
    pub at: Option<OffsetDateTime>,
}

/// Deployments in ledger order, read in one pass that also checks the whole hash chain (a
/// broken ledger is refused, never partially trusted). Only matching entries' payloads are
/// parsed. Digests missing from a payload (a rollback may name only versions) come from the
/// release manifest via `manifest_digests`.
pub fn deployments(
    ledger: &Ledger,
    query: Query<'_>,
    manifest_digests: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Result<Vec<Deployment>, LedgerError> {
    #[derive(serde::Deserialize)]
    struct EnvOnly<'a> {
        #[serde(borrow)]
        env: Option<Cow<'a, str>>,
    }
    // Candidates keep their raw payload; with `at`, only the latest per env survives.
    let mut kept: Vec<(u64, OffsetDateTime, EntryKind, String, String)> = Vec::new();
    let mut latest: BTreeMap<String, usize> = BTreeMap::new();
    let report = ledger.scan(|e| {
        if !matches!(
            e.kind,
            EntryKind::Deployed | EntryKind::Promoted | EntryKind::RolledBack
        ) || query.at.is_some_and(|at| e.time > at)
        {
            return Ok(());
        }
        let env: EnvOnly<'_> =
            serde_json::from_str(e.payload).map_err(|err| format!("payload: {err}"))?;
        let Some(env) = env.env else { return Ok(()) };
        if query.env.is_some_and(|want| want != env) {
            return Ok(());
        }
        let candidate = (
            e.seq,
            e.time,
            e.kind,
            e.actor.to_owned(),
            e.payload.to_owned(),
        );
        match (query.at, latest.get(env.as_ref())) {
            (Some(_), Some(&i)) => kept[i] = candidate,
            (Some(_), None) => {
                latest.insert(env.into_owned(), kept.len());
                kept.push(candidate);
            }
            (None, _) => kept.push(candidate),
        }
        Ok(())
    })?;
    ledger.refuse_break(&report)?;
    kept.sort_by_key(|c| c.0);
    Ok(kept
        .into_iter()
        .filter_map(|(seq, time, kind, actor, payload)| {
            let payload: Value = serde_json::from_str(&payload).ok()?;
            deployment(seq, time, kind, actor, &payload, &manifest_digests)
        })
        .collect())
}

/// Deployments among already-read entries (the gate reads the whole ledger anyway).
pub fn deployments_in(entries: &[Entry]) -> Vec<Deployment> {
    entries
        .iter()
        .filter_map(|e| {
            deployment(e.seq, e.time, e.kind, e.actor.clone(), &e.payload, &|_| {
                None
            })
        })
        .collect()
}

fn deployment(
    seq: u64,
    time: OffsetDateTime,
    kind: EntryKind,
    actor: String,
    p: &Value,
    manifest_digests: &impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Option<Deployment> {
    let version = match kind {
        EntryKind::Deployed | EntryKind::Promoted => p["version"].as_str()?,
        EntryKind::RolledBack => p["to_version"].as_str().or_else(|| p["version"].as_str())?,
        _ => return None,
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let digests = match p["digests"].as_object() {
        Some(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        None => manifest_digests(version).unwrap_or_default(),
    };
    Some(Deployment {
        seq,
        time,
        kind,
        env: p["env"].as_str()?.to_owned(),
        version: version.to_owned(),
        digests,
        actor,
        approver: text(&p["approved_by"]),
        jenkins: Some(p["jenkins"].clone()).filter(|j| !j.is_null()),
        evidence: text(&p["evidence"]["junit_sha256"])
            .or_else(|| text(&p["junit_sha256"]))
            .or_else(|| text(&p["stack_sha256"])),
    })
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct RecordsReport {
    pub entries: u64,
    pub head: Option<String>,
    /// The first place the hash chain fails, as `(line, seq, problem)`.
    pub chain_break: Option<ChainBreakReport>,
    pub manifests_checked: usize,
    pub manifest_problems: Vec<ManifestProblem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainBreakReport {
    pub line: u64,
    pub seq: Option<u64>,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestProblem {
    pub version: String,
    /// The `released` entry that recorded it, if any.
    pub seq: Option<u64>,
    pub problem: String,
}

impl RecordsReport {
    pub fn is_intact(&self) -> bool {
        self.chain_break.is_none() && self.manifest_problems.is_empty()
    }
}

/// Recomputes the ledger's hash chain and every release manifest's sha256 against its
/// `released` entry; manifests the ledger never recorded are reported too.
pub fn verify_records(state: &StateDir) -> Result<RecordsReport, RecordError> {
    #[derive(serde::Deserialize)]
    struct Released<'a> {
        #[serde(borrow)]
        version: Option<Cow<'a, str>>,
        #[serde(borrow)]
        manifest_sha256: Option<Cow<'a, str>>,
    }
    let ledger = state.ledger();
    let mut recorded: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let report: VerifyReport = ledger.scan(|e| {
        if e.kind == EntryKind::Released {
            let r: Released<'_> =
                serde_json::from_str(e.payload).map_err(|err| format!("payload: {err}"))?;
            if let (Some(v), Some(sha)) = (r.version, r.manifest_sha256) {
                recorded.insert(v.into_owned(), (e.seq, sha.into_owned()));
            }
        }
        Ok(())
    })?;
    let chain_break = report.first_break.as_ref().map(|b| ChainBreakReport {
        line: b.line,
        seq: b.seq,
        problem: b.to_string(),
    });
    let mut problems = Vec::new();
    let mut checked = 0;
    if chain_break.is_none() {
        for (version, (seq, expected)) in &recorded {
            let path = state.releases_dir().join(format!("{version}.json"));
            checked += 1;
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let actual = sha256_prefixed(&bytes);
                    if &actual != expected {
                        problems.push(ManifestProblem {
                            version: version.clone(),
                            seq: Some(*seq),
                            problem: format!(
                                "{} hashes to {actual}, the ledger recorded {expected}",
                                path.display()
                            ),
                        });
                    }
                }
                Err(e) => problems.push(ManifestProblem {
                    version: version.clone(),
                    seq: Some(*seq),
                    problem: format!("{} cannot be read: {e}", path.display()),
                }),
            }
        }
        for version in state.releases()? {
            if !recorded.contains_key(version.as_str()) {
                problems.push(ManifestProblem {
                    version: version.as_str().to_owned(),
                    seq: None,
                    problem: "manifest on disk has no `released` ledger entry".to_owned(),
                });
            }
        }
    }
    Ok(RecordsReport {
        entries: report.lines,
        head: report.head,
        chain_break,
        manifests_checked: checked,
        manifest_problems: problems,
    })
}
