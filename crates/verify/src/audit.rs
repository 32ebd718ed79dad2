//! Answers for auditors, from the records alone: what was deployed where and when, by
//! whom, approved by whom, on what evidence; what was live at a moment; and whether the
//! ledger and the release manifests are still exactly what was written.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::fs::sha256_prefixed;
use crate::{Entry, EntryKind, RecordError, StateDir, VerifyReport};

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

/// Every deployment in ledger order. Digests missing from an entry's payload (a rollback
/// names only versions) are taken from the release manifest via `manifest_digests`.
pub fn deployments(
    entries: &[Entry],
    manifest_digests: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Vec<Deployment> {
    entries
        .iter()
        .filter_map(|entry| deployment(entry, &manifest_digests))
        .collect()
}

fn deployment(
    entry: &Entry,
    manifest_digests: &impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Option<Deployment> {
    let p = &entry.payload;
    let version = match entry.kind {
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
        seq: entry.seq,
        time: entry.time,
        kind: entry.kind,
        env: p["env"].as_str()?.to_owned(),
        version: version.to_owned(),
        digests,
        actor: entry.actor.clone(),
        approver: text(&p["approved_by"]),
        jenkins: Some(p["jenkins"].clone()).filter(|j| !j.is_null()),
        evidence: text(&p["evidence"]["junit_sha256"])
            .or_else(|| text(&p["junit_sha256"]))
            .or_else(|| text(&p["stack_sha256"])),
    })
}

/// What `env` ran at `at`: the last deployment to it at or before that moment.
pub fn live_at<'a>(
    deployments: &'a [Deployment],
    env: &str,
    at: OffsetDateTime,
) -> Option<&'a Deployment> {
    deployments
        .iter()
        .rev()
        .find(|d| d.env == env && d.time <= at)
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
    let ledger = state.ledger();
    let report: VerifyReport = ledger.verify()?;
    let chain_break = report.first_break.as_ref().map(|b| ChainBreakReport {
        line: b.line,
        seq: b.seq,
        problem: b.to_string(),
    });
    let mut problems = Vec::new();
    let mut checked = 0;
    if chain_break.is_none() {
        let mut recorded: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for entry in ledger.read_all()? {
            if entry.kind != EntryKind::Released {
                continue;
            }
            if let (Some(v), Some(sha)) = (
                entry.payload["version"].as_str(),
                entry.payload["manifest_sha256"].as_str(),
            ) {
                recorded.insert(v.to_owned(), (entry.seq, sha.to_owned()));
            }
        }
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
