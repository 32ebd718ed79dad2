//! Answers for auditors, from the records alone: what was deployed where and when, by
//! whom, approved by whom, on what evidence; what was live at a moment; and whether the
//! ledger and the release manifests are still exactly what was written.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::evidence::TrustStore;
use crate::fs::sha256_prefixed;
use crate::ledger::head::{self, HeadCheck};
use crate::ledger::{Event, Recorded, RolledBack};
use crate::{
    Digest, EntryKind, EnvName, JenkinsBuild, Ledger, LedgerError, RecordError, ServiceName,
    StateDir, VerifyReport, Version,
};

/// One change of what an environment runs: a deploy, a promotion or a rollback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub kind: EntryKind,
    pub env: EnvName,
    pub version: Version,
    /// Service → digest that the environment ran from this event on.
    pub digests: BTreeMap<ServiceName, Digest>,
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
/// parsed, into their [`Event`]; one that does not match its kind is refused like a broken
/// line. The rollback of a failed deploy names only versions: its digests come from the
/// release manifest via `manifest_digests`.
pub fn deployments(
    ledger: &Ledger,
    query: Query<'_>,
    manifest_digests: impl Fn(&Version) -> Option<BTreeMap<ServiceName, Digest>>,
) -> Result<Vec<Deployment>, LedgerError> {
    // With `at`, only the latest candidate per env survives.
    let mut kept: Vec<(u64, OffsetDateTime, String, Event)> = Vec::new();
    let mut latest: BTreeMap<String, usize> = BTreeMap::new();
    let report = ledger.scan(|e| {
        if !matches!(
            e.kind,
            EntryKind::Deployed | EntryKind::Promoted | EntryKind::RolledBack
        ) || query.at.is_some_and(|at| e.time > at)
        {
            return Ok(());
        }
        let event = e.event().map_err(|err| err.to_string())?;
        let Some(env) = event.env() else {
            return Ok(());
        };
        if query.env.is_some_and(|want| want != env) {
            return Ok(());
        }
        let env = env.to_owned();
        let candidate = (e.seq, e.time, e.actor.to_owned(), event);
        match (query.at, latest.get(&env)) {
            (Some(_), Some(&i)) => kept[i] = candidate,
            (Some(_), None) => {
                latest.insert(env, kept.len());
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
        .filter_map(|(seq, time, actor, event)| {
            deployment(seq, time, actor, &event, &manifest_digests)
        })
        .collect())
}

/// Deployments among already-read entries (the gate reads the whole ledger anyway).
pub fn deployments_in(entries: &[Recorded]) -> Vec<Deployment> {
    entries
        .iter()
        .filter_map(|r| {
            let e = &r.entry;
            deployment(e.seq, e.time, e.actor.clone(), &r.event, &|_| None)
        })
        .collect()
}

fn deployment(
    seq: u64,
    time: OffsetDateTime,
    actor: String,
    event: &Event,
    manifest_digests: &impl Fn(&Version) -> Option<BTreeMap<ServiceName, Digest>>,
) -> Option<Deployment> {
    let jenkins = |j: &Option<JenkinsBuild>| j.as_ref().map(jenkins_value);
    let row = |env: &EnvName, version: &Version, digests, approver, jenkins, evidence| Deployment {
        seq,
        time,
        kind: event.kind(),
        env: env.clone(),
        version: version.clone(),
        digests,
        actor: actor.clone(),
        approver,
        jenkins,
        evidence,
    };
    match event {
        Event::Deployed(p) => Some(row(
            &p.env,
            &p.version,
            p.digests.clone(),
            None,
            jenkins(&p.jenkins),
            Some(p.stack_sha256.as_str().to_owned()),
        )),
        Event::Promoted(p) => Some(row(
            &p.env,
            &p.version,
            p.digests.clone(),
            p.approved_by.clone(),
            jenkins(&p.jenkins),
            p.evidence
                .junit_sha256
                .clone()
                .or_else(|| Some(p.stack_sha256.as_str().to_owned())),
        )),
        Event::RolledBack(RolledBack::Requested(p)) => Some(row(
            &p.env,
            &p.to_version,
            p.digests.clone(),
            None,
            jenkins(&p.jenkins),
            Some(p.stack_sha256.as_str().to_owned()),
        )),
        // A rollback after a failed deploy names only versions; nothing to return to is
        // not a deployment.
        Event::RolledBack(RolledBack::AfterFailedDeploy(p)) => {
            let version = p.to_version.as_ref()?;
            Some(row(
                &p.env,
                version,
                manifest_digests(version).unwrap_or_default(),
                None,
                None,
                None,
            ))
        }
        Event::Released(_)
        | Event::DeployFailed(_)
        | Event::Checked(_)
        | Event::GateRefused(_)
        | Event::Switched(_)
        | Event::ColourRemoved(_) => None,
    }
}

/// The Jenkins build as `audit` has always shown it: the payload's object, keys sorted.
fn jenkins_value(j: &JenkinsBuild) -> Value {
    serde_json::json!({
        "build_number": j.build_number,
        "build_url": j.build_url,
        "job_name": j.job_name,
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
    /// The signed head checked against the ledger's newest entry; `None` when no trusted
    /// ledger keys were given (the head is then not checked, and not in the JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_head: Option<HeadCheck>,
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
        self.chain_break.is_none()
            && self.manifest_problems.is_empty()
            && self.signed_head.as_ref().is_none_or(HeadCheck::is_valid)
    }
}

/// Recomputes the ledger's hash chain and every release manifest's sha256 against its
/// `released` entry; manifests the ledger never recorded are reported too. With
/// `head_trust`, the signed head ([`crate::ledger::head`]) must also be signed by one of
/// those keys and name the ledger's newest entry.
pub fn verify_records(
    state: &StateDir,
    head_trust: Option<&TrustStore>,
) -> Result<RecordsReport, RecordError> {
    let ledger = state.ledger();
    let mut recorded: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let (report, head_bytes): (VerifyReport, _) = ledger.scan_with_head(|e| {
        if e.kind == EntryKind::Released {
            match e.event().map_err(|err| err.to_string())? {
                Event::Released(r) => {
                    recorded.insert(
                        r.version.to_string(),
                        (e.seq, r.manifest_sha256.as_str().to_owned()),
                    );
                }
                other => return Err(format!("a released entry parsed as {other}")),
            }
        }
        Ok(())
    })?;
    let chain_break = report.first_break.as_ref().map(|b| ChainBreakReport {
        line: b.line,
        seq: b.seq,
        problem: b.problem.to_string(),
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
    let signed_head = head_trust.map(|trust| head::check(head_bytes.as_deref(), trust, &report));
    Ok(RecordsReport {
        signed_head,
        entries: report.lines,
        head: report.head,
        chain_break,
        manifests_checked: checked,
        manifest_problems: problems,
    })
}
