//! The PROD gate: a version may enter an environment only with the exact digests that were
//! deployed to its source environment and passed the checks there.
//!
//! The gate is a pure function of what the caller observed (records, live Swarm, registry),
//! so every condition is decided in one place and tested without a testbed; the caller
//! gathers the observations and acts on the verdict.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::{Deployment, deployments_in};
use crate::ledger::{Checked, Event, Recorded};
use crate::{Digest, ServiceName};

/// Everything the gate looks at, gathered by the caller.
#[derive(Debug)]
pub struct Observations<'a> {
    pub version: &'a crate::Version,
    pub target_env: &'a crate::EnvName,
    /// `promote_from` of the target; `None` means the target is not a promotion target.
    pub source_env: Option<&'a crate::EnvName>,
    /// The release manifest's digests and its file's sha256, or why it could not be loaded.
    pub manifest: Result<(Digests, Digest), String>,
    /// The whole ledger, in order, payloads typed ([`crate::Ledger::read_events`]).
    pub entries: &'a [Recorded],
    /// What the source environment's Swarm services run now: release service → the image
    /// its service names, as the engine spells it (absent when it does not run); `Err`
    /// when the Swarm could not be read. Compared with [`crate::drift::compare`].
    pub live_source: Result<BTreeMap<ServiceName, String>, String>,
    /// What each service's tag resolves to in the registry now, or why it could not.
    pub registry: BTreeMap<ServiceName, Result<Digest, String>>,
    pub approval_required: bool,
    pub approver: Option<&'a str>,
    /// The source's signed test results in the registry, when the target trusts keys;
    /// `None` when it requires no signed evidence.
    pub attestations: Option<Attestations<'a>>,
    /// When the manifest is not in the records but was fetched from the registry: the
    /// digest of its artifact there.
    pub manifest_artifact: Option<Digest>,
    /// When the source's release services last changed, read from its Swarm (their
    /// `UpdatedAt`): what dates the signed evidence when this agent holds no record of
    /// the source's deploy.
    pub source_updated_at: Option<time::OffsetDateTime>,
}

/// One attestation as the registry gave it: the referrer's digest and the envelope.
pub type Found = (Digest, Vec<u8>);

/// Release service → digest: what a manifest names, and what the gate compares.
pub type Digests = BTreeMap<ServiceName, Digest>;

/// What the registry holds as signed evidence, and whom the target trusts.
#[derive(Debug)]
pub struct Attestations<'a> {
    pub trust: &'a crate::evidence::TrustStore,
    /// Release service → the attestations attached to its digest (the referrer's digest
    /// and the envelope's bytes), or why the registry could not be read.
    pub found: BTreeMap<ServiceName, Result<Vec<Found>, String>>,
}

/// One gate condition; each becomes a JUnit test case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub name: Cow<'static, str>,
    pub passed: bool,
    /// Why it passed or failed, one line.
    pub detail: String,
}

/// The verdict, with the evidence a promotion records.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub conditions: Vec<Condition>,
    /// The passing `checked` entry of the source environment the promotion relies on.
    pub evidence_seq: Option<u64>,
    pub evidence_junit_sha256: Option<String>,
    /// Release service → the signed test result the gate accepted for its digest (the
    /// referrer's digest), when the target requires signed evidence.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attestations: Digests,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.conditions.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Condition> {
        self.conditions.iter().filter(|c| !c.passed)
    }

    /// Each failed condition as one line, `NAME: DETAIL`.
    pub fn reasons(&self) -> Vec<String> {
        self.failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// What a promotion on this verdict relies on: the source's passing check.
    pub fn evidence(&self, source_env: &crate::EnvName) -> crate::ledger::Evidence {
        crate::ledger::Evidence {
            checked_seq: self.evidence_seq,
            junit_sha256: self.evidence_junit_sha256.clone(),
            source_env: source_env.clone(),
            attestations: self.attestations.clone(),
        }
    }

    /// The `gate-refused` ledger event of a verdict that failed.
    pub fn refusal(
        &self,
        observed: &Observations<'_>,
        jenkins: Option<crate::JenkinsBuild>,
    ) -> crate::ledger::GateRefused {
        crate::ledger::GateRefused {
            approved_by: observed.approver.map(str::to_owned),
            env: observed.target_env.clone(),
            jenkins,
            reasons: self.reasons(),
            source_env: observed.source_env.cloned(),
            version: observed.version.clone(),
        }
    }
}

pub const MANIFEST: &str = "release manifest is recorded and unaltered";
pub const SOURCE_LIVE: &str = "source environment runs exactly this release";
pub const SOURCE_CHECKED: &str = "source environment passed its checks after the deploy";
pub const REGISTRY: &str = "every tag still resolves to the recorded digest";
pub const APPROVAL: &str = "approval given";

pub fn evaluate(o: &Observations<'_>) -> Verdict {
    let mut conditions = Vec::new();
    let manifest = o.manifest.as_ref().ok();
    let digests = manifest.map(|(d, _)| d);

    conditions.push(manifest_condition(o));
    let Some(source) = o.source_env else {
        conditions.push(Condition {
            name: SOURCE_LIVE.into(),
            passed: false,
            detail: format!(
                "environment `{}` has no `promote_from`; it is not a promotion target",
                o.target_env
            ),
        });
        return Verdict {
            conditions,
            evidence_seq: None,
            evidence_junit_sha256: None,
            attestations: BTreeMap::new(),
        };
    };
    let history = deployments_in(o.entries);
    let last_deploy = history.iter().rev().find(|d| d.env == *source);
    // An agent without the source's records (another agent's state directory) decides
    // from the registry: the source's Swarm dates its deploy, its signed results stand
    // for its checks.
    let from_registry = last_deploy.is_none() && o.attestations.is_some();
    let not_before = match last_deploy {
        Some(d) if d.version == o.version.as_str() => Some(d.time),
        Some(_) => None,
        None => o.source_updated_at,
    };
    let mut signed = Vec::new();
    let mut attestations = BTreeMap::new();
    if let Some(found) = &o.attestations {
        for (condition, accepted) in signed_conditions(o, found, source, not_before, digests) {
            if let Some((service, attestation)) = accepted {
                attestations.insert(service, attestation);
            }
            signed.push(condition);
        }
    }
    let evidence = if from_registry {
        conditions.push(source_live_from_swarm(o, source, digests));
        let failed: Vec<&Condition> = signed.iter().filter(|c| !c.passed).collect();
        conditions.push(Condition {
            name: SOURCE_CHECKED.into(),
            passed: !signed.is_empty() && failed.is_empty(),
            detail: if signed.is_empty() {
                "no check of it in this agent's records, and no digest to look up signed results for".to_owned()
            } else if failed.is_empty() {
                format!(
                    "no check of `{source}` in this agent's records; its signed results in the registry stand for it ({} below)",
                    signed.len()
                )
            } else {
                format!(
                    "no check of `{source}` in this agent's records, and {} of its signed results below are refused",
                    failed.len()
                )
            },
        });
        None
    } else {
        conditions.push(source_live_condition(o, source, last_deploy, digests));
        let (checked, evidence) = checked_condition(o, source, last_deploy, digests);
        conditions.push(checked);
        evidence
    };
    conditions.push(registry_condition(o, digests));
    conditions.extend(signed);
    conditions.push(Condition {
        name: APPROVAL.into(),
        passed: !o.approval_required || o.approver.is_some_and(|a| !a.trim().is_empty()),
        detail: match (o.approval_required, o.approver) {
            (_, Some(a)) if !a.trim().is_empty() => format!("approved by {a}"),
            (true, _) => format!(
                "environment `{}` requires approval: pass --approved-by (Jenkins' input submitter)",
                o.target_env
            ),
            (false, _) => "not required".to_owned(),
        },
    });
    Verdict {
        conditions,
        evidence_seq: evidence.as_ref().map(|e| e.0),
        evidence_junit_sha256: evidence.and_then(|e| e.1),
        attestations,
    }
}

/// The name of the signed-evidence condition of one service.
pub fn signed_condition_name(source: &crate::EnvName, service: &ServiceName) -> String {
    format!("`{source}` signed a passing check of {service}")
}

/// One condition per release service: the registry holds a PASSED test result from the
/// source, signed by a key the target trusts, about exactly the service's digest, made
/// at or after the source's deploy of this version.
fn signed_conditions(
    o: &Observations<'_>,
    signed: &Attestations<'_>,
    source: &crate::EnvName,
    not_before: Option<time::OffsetDateTime>,
    digests: Option<&Digests>,
) -> Vec<(Condition, Option<(ServiceName, Digest)>)> {
    let Some(digests) = digests else {
        return Vec::new();
    };
    digests
        .iter()
        .map(|(service, digest)| {
            let name: Cow<'static, str> = Cow::Owned(signed_condition_name(source, service));
            let fail = |detail: String| {
                (
                    Condition {
                        name: name.clone(),
                        passed: false,
                        detail,
                    },
                    None,
                )
            };
            let Some(not_before) = not_before else {
                return fail(format!(
                    "no deploy of {} to `{source}` is known to date the evidence against",
                    o.version
                ));
            };
            let found = match signed.found.get(service) {
                Some(Ok(found)) => found,
                Some(Err(e)) => return fail(format!("cannot read the registry: {e}")),
                None => &Vec::new(),
            };
            let assessment = crate::evidence::evaluate_test_results(
                found,
                digest.as_str(),
                signed.trust,
                source.as_str(),
                not_before,
            );
            // The accepted attestation is one of `found`, named by its referrer's digest.
            let accepted = assessment.accepted.as_ref().and_then(|a| {
                let (referrer, _) = found.iter().find(|(d, _)| *d == a.attestation)?;
                Some((a, referrer))
            });
            match accepted {
                Some((accepted, referrer)) => (
                    Condition {
                        name: name.clone(),
                        passed: true,
                        detail: format!(
                            "attestation {} signed by `{}`, {} checks passed",
                            accepted.attestation,
                            accepted.keyid,
                            accepted.result.passed_tests.len()
                        ),
                    },
                    Some((service.clone(), referrer.clone())),
                ),
                None => fail(
                    assessment
                        .rejected
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        })
        .collect()
}

fn manifest_condition(o: &Observations<'_>) -> Condition {
    let fail = |detail: String| Condition {
        name: MANIFEST.into(),
        passed: false,
        detail,
    };
    let (_, sha) = match &o.manifest {
        Ok(m) => m,
        Err(e) => return fail(e.clone()),
    };
    let released = o.entries.iter().rev().find_map(|r| match &r.event {
        Event::Released(p) if p.version == *o.version => Some((r.entry.seq, &p.manifest_sha256)),
        _ => None,
    });
    match released {
        None => match &o.manifest_artifact {
            Some(artifact) => Condition {
                name: MANIFEST.into(),
                passed: true,
                detail: format!(
                    "not in this agent's records: fetched from the registry, artifact {artifact}"
                ),
            },
            None => fail(format!("no `released` ledger entry for {}", o.version)),
        },
        Some((seq, recorded)) if recorded != sha => fail(format!(
            "manifest hashes to {sha}, ledger entry seq {seq} recorded {recorded}"
        )),
        Some((seq, _)) => Condition {
            name: MANIFEST.into(),
            passed: true,
            detail: format!("sha256 matches ledger entry seq {seq}"),
        },
    }
}

fn source_live_condition(
    o: &Observations<'_>,
    source: &crate::EnvName,
    last_deploy: Option<&Deployment>,
    digests: Option<&Digests>,
) -> Condition {
    let fail = source_live_failed;
    match last_deploy {
        None => return fail(format!("nothing was ever deployed to `{source}`")),
        Some(d) if d.version != o.version.as_str() => {
            return fail(format!(
                "`{source}` last received {} (ledger seq {}), not {}",
                d.version, d.seq, o.version
            ));
        }
        Some(_) => {}
    }
    live_comparison(o, source, digests)
}

/// The source's Swarm against the release's digests.
fn live_comparison(
    o: &Observations<'_>,
    source: &crate::EnvName,
    digests: Option<&Digests>,
) -> Condition {
    let fail = source_live_failed;
    let Some(digests) = digests else {
        return fail("no manifest to compare with".to_owned());
    };
    let live = match &o.live_source {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot read `{source}` from the Swarm: {e}")),
    };
    use crate::drift::Drift;
    let mismatches: Vec<String> = crate::drift::compare(digests, live)
        .into_iter()
        .map(|(service, drift)| match drift {
            Drift::Foreign { live } => {
                format!("{service}: runs {live}, release has {}", digests[&service])
            }
            Drift::Unpinned { .. } => format!("{service}: runs an unpinned image"),
            Drift::NotRunning => format!("{service}: not running in `{source}`"),
        })
        .collect();
    if mismatches.is_empty() {
        Condition {
            name: SOURCE_LIVE.into(),
            passed: true,
            detail: format!(
                "`{source}` runs all {} digests of {}",
                digests.len(),
                o.version
            ),
        }
    } else {
        fail(mismatches.join("; "))
    }
}

fn source_live_failed(detail: String) -> Condition {
    Condition {
        name: SOURCE_LIVE.into(),
        passed: false,
        detail,
    }
}

/// What the source runs, from its Swarm alone: for an agent with no record of its deploy.
fn source_live_from_swarm(
    o: &Observations<'_>,
    source: &crate::EnvName,
    digests: Option<&Digests>,
) -> Condition {
    let mut condition = live_comparison(o, source, digests);
    if condition.passed {
        condition
            .detail
            .push_str(" (read from its Swarm; no deploy of it in this agent's records)");
    }
    condition
}

/// The last `checked` entry for the source after its latest deploy of the version decides:
/// a later failing check revokes an earlier pass.
fn checked_condition(
    o: &Observations<'_>,
    source: &crate::EnvName,
    last_deploy: Option<&Deployment>,
    digests: Option<&Digests>,
) -> (Condition, Option<(u64, Option<String>)>) {
    let fail = |detail: String| {
        (
            Condition {
                name: SOURCE_CHECKED.into(),
                passed: false,
                detail,
            },
            None,
        )
    };
    let Some(deploy) = last_deploy.filter(|d| d.version == o.version.as_str()) else {
        return fail(format!(
            "{} is not the version deployed in `{source}`",
            o.version
        ));
    };
    let last_check = o.entries.iter().rev().find_map(|r| match &r.event {
        Event::Checked(p) if r.entry.seq > deploy.seq && p.env == *source => Some((r.entry.seq, p)),
        _ => None,
    });
    let Some((seq, check)) = last_check else {
        return fail(format!(
            "no check of `{source}` after its deploy of {} (seq {}): run `release check --env {source}`",
            o.version, deploy.seq
        ));
    };
    let &Checked { failed, passed, .. } = check;
    let checked = &check.digests;
    if failed != 0 || passed == 0 {
        return fail(format!(
            "the last check of `{source}` (seq {seq}) did not pass: {passed} passed, {failed} failed"
        ));
    }
    if let Some(want) = digests {
        let differs: Vec<&ServiceName> = want
            .iter()
            .filter(|(s, d)| checked.get(*s) != Some(d))
            .map(|(s, _)| s)
            .collect();
        if !differs.is_empty() {
            return fail(format!(
                "the last check of `{source}` (seq {seq}) did not cover the release's digests of: {}",
                differs
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let junit = Some(check.junit_sha256.clone());
    (
        Condition {
            name: SOURCE_CHECKED.into(),
            passed: true,
            detail: format!(
                "check seq {seq} passed {passed} checks{}",
                junit
                    .as_deref()
                    .map(|j| format!(", JUnit {j}"))
                    .unwrap_or_default()
            ),
        },
        Some((seq, junit)),
    )
}

fn registry_condition(o: &Observations<'_>, digests: Option<&Digests>) -> Condition {
    let Some(digests) = digests else {
        return Condition {
            name: REGISTRY.into(),
            passed: false,
            detail: "no manifest to compare with".to_owned(),
        };
    };
    let problems: Vec<String> = digests
        .iter()
        .filter_map(|(service, want)| match o.registry.get(service) {
            Some(Ok(have)) if have == want => None,
            Some(Ok(have)) => Some(format!(
                "{service}: tag moved to {have}, release has {want}"
            )),
            Some(Err(e)) => Some(format!("{service}: {e}")),
            None => Some(format!("{service}: not resolved")),
        })
        .collect();
    Condition {
        name: REGISTRY.into(),
        passed: problems.is_empty(),
        detail: if problems.is_empty() {
            format!("{} tags resolve to the recorded digests", digests.len())
        } else {
            problems.join("; ")
        },
    }
}
