//! What an environment's ledger history means for the next step: which version a rollback
//! returns to, and the event that records a version made live.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::env::EnvPointer;
use crate::ledger::{
    Deployed, Event, Evidence, Promoted, Recorded, RequestedRollback, RequestedTrigger,
};
use crate::manifest::JenkinsBuild;
use crate::name::{EnvName, NameError, ServiceName, Version};
use crate::state::{RecordError, StateDir};

/// Why the history names no rollback target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The history disagrees with the environment's pointer: the records were changed, or
    /// a write was lost.
    #[error("the ledger's history of {env} does not end at the recorded pointer ({current})")]
    Diverged { env: EnvName, current: String },
    /// Only one version was ever live.
    #[error("{env} has no earlier version to roll back to (live now: {current})")]
    NoEarlier { env: EnvName, current: String },
    #[error(transparent)]
    Name(#[from] NameError),
}

impl HistoryError {
    /// The next step for the user.
    pub fn hint(&self) -> String {
        match self {
            HistoryError::Diverged { .. } => {
                "run `release audit verify`, or name the version to return to".to_owned()
            }
            HistoryError::NoEarlier { .. } => "name the version to return to".to_owned(),
            HistoryError::Name(e) => e.hint(),
        }
    }
}

/// The version a rollback of `env` returns to: the one live before `current`. The ledger
/// is read as a stack of live versions: `deployed` and `promoted` push a version (an
/// environment reached by promotion has only `promoted` entries), a `rolled-back` to V pops
/// back to V. So A, B, C then two rollbacks give B, then A.
pub fn rollback_target(
    events: &[Recorded],
    env: &EnvName,
    current: Option<&EnvPointer>,
) -> Result<Version, HistoryError> {
    let mut live: Vec<&str> = Vec::new();
    for recorded in events {
        let made_live = match &recorded.event {
            Event::Deployed(p) if p.env == env.as_str() => Some(p.version.as_str()),
            Event::Promoted(p) if p.env == env.as_str() => Some(p.version.as_str()),
            Event::RolledBack(p) if p.env() == env.as_str() => {
                if let Some(to) = p.to_version() {
                    while live.last().is_some_and(|v| *v != to) {
                        live.pop();
                    }
                    if live.is_empty() {
                        live.push(to);
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(v) = made_live
            && live.last() != Some(&v)
        {
            live.push(v);
        }
    }
    let current = current.map(|p| p.version.to_string());
    let shown = || {
        current
            .clone()
            .unwrap_or_else(|| "nothing deployed".to_owned())
    };
    if live.last().copied() != current.as_deref() {
        return Err(HistoryError::Diverged {
            env: env.clone(),
            current: shown(),
        });
    }
    live.pop();
    let previous = live.pop().ok_or_else(|| HistoryError::NoEarlier {
        env: env.clone(),
        current: current.clone().unwrap_or_else(|| "nothing".to_owned()),
    })?;
    Ok(Version::parse(previous)?)
}

/// How a version was made live in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadeLive {
    /// `release deploy`.
    Deploy,
    /// `release rollback`.
    Rollback,
    /// `release promote`: passed the gate on this evidence, approved by this approver.
    Promote {
        approver: Option<String>,
        evidence: Evidence,
    },
}

/// A version made live: what every such ledger event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub env: EnvName,
    pub version: Version,
    pub previous_version: Option<Version>,
    /// Release service → the digest now running.
    pub digests: BTreeMap<ServiceName, Digest>,
    /// The services the deploy changed.
    pub changed: Vec<String>,
    /// sha256 of the rendered stack file applied.
    pub stack_sha256: Digest,
    pub jenkins: Option<JenkinsBuild>,
}

impl Live {
    /// Makes the version live in the records: the environment's pointer names it (with
    /// `actor` and now), then the ledger gets the event for `how`. Every path that makes a
    /// version live (a Swarm or Compose deploy, a blue-green switch, a switch back) calls
    /// this, so the pointer and the event never disagree on what they write.
    pub fn record(self, state: &StateDir, actor: &str, how: MadeLive) -> Result<(), RecordError> {
        let pointer = EnvPointer {
            env: self.env.clone(),
            version: self.version.clone(),
            digests: self.digests.clone(),
            updated: time::OffsetDateTime::now_utc(),
            actor: actor.to_owned(),
        };
        state.write_env(&pointer)?;
        state.ledger().append_event(actor, &self.event(how))?;
        Ok(())
    }

    /// The ledger event for `how`: `deployed`, `rolled-back` (requested) or `promoted`.
    pub fn event(self, how: MadeLive) -> Event {
        let Live {
            env,
            version,
            previous_version,
            digests,
            changed,
            stack_sha256,
            jenkins,
        } = self;
        match how {
            MadeLive::Deploy => Deployed {
                changed,
                digests,
                env: env.clone(),
                jenkins,
                previous_version,
                stack_sha256,
                version: version.clone(),
            }
            .into(),
            MadeLive::Rollback => RequestedRollback {
                changed,
                digests,
                env: env.clone(),
                from_version: previous_version.clone(),
                jenkins,
                previous_version,
                stack_sha256,
                to_version: version.clone(),
                trigger: RequestedTrigger::ReleaseRollback,
                version: version.clone(),
            }
            .into(),
            MadeLive::Promote { approver, evidence } => Promoted {
                approved_by: approver,
                changed,
                digests,
                env: env.clone(),
                evidence,
                jenkins,
                previous_version,
                stack_sha256,
                version: version.clone(),
            }
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;
    use crate::ledger::{FailureTrigger, RollbackAfterFailure};

    fn pointer(env: &EnvName, v: &str) -> EnvPointer {
        EnvPointer {
            env: env.clone(),
            version: Version::parse(v).unwrap(),
            digests: BTreeMap::new(),
            updated: time::OffsetDateTime::now_utc(),
            actor: "t".into(),
        }
    }

    fn live(env: &str, v: &str) -> Live {
        Live {
            env: EnvName::parse(env).unwrap(),
            version: Version::parse(v).unwrap(),
            previous_version: None,
            digests: BTreeMap::new(),
            changed: vec!["api".into()],
            stack_sha256: Digest::of(b"stack"),
            jenkins: None,
        }
    }

    #[test]
    fn rollback_walks_back_through_the_versions_that_were_live() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let env = EnvName::parse("dev").unwrap();
        let ledger = state.ledger();
        let append = |event: Event| {
            ledger.append_event("t", &event).unwrap();
        };
        let target = |current: &str| {
            rollback_target(
                &ledger.read_events().unwrap(),
                &env,
                Some(&pointer(&env, current)),
            )
            .map(|v| v.to_string())
        };
        append(live("dev", "1.0.0").event(MadeLive::Deploy));
        append(live("dev", "1.1.0").event(MadeLive::Deploy));
        append(live("prod", "9.9.9").event(MadeLive::Deploy));
        append(live("dev", "1.2.0").event(MadeLive::Deploy));
        assert_eq!(target("1.2.0").unwrap(), "1.1.0");
        // Both shapes of `rolled-back` return to `to`.
        append(live("dev", "1.1.0").event(MadeLive::Rollback));
        assert_eq!(target("1.1.0").unwrap(), "1.0.0");
        append(
            RollbackAfterFailure {
                env: crate::EnvName::parse("dev").unwrap(),
                from_version: crate::Version::parse("1.1.0").unwrap(),
                services: vec!["api".into()],
                to_version: Some(crate::Version::parse("1.0.0").unwrap()),
                trigger: FailureTrigger::DeployFailed,
            }
            .into(),
        );
        assert!(matches!(
            target("1.0.0"),
            Err(HistoryError::NoEarlier { .. })
        ));
        assert!(matches!(
            target("1.2.0"),
            Err(HistoryError::Diverged { .. })
        ));
    }

    /// `release rollback --env prod` read only `deployed` entries, and PROD is reached by
    /// `promote`, which records `promoted`: its history looked empty, so every rollback of
    /// PROD stopped with "does not end at the recorded pointer".
    #[test]
    fn rollback_of_an_environment_reached_by_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let env = EnvName::parse("prod").unwrap();
        let ledger = state.ledger();
        let promote = MadeLive::Promote {
            approver: Some("alice".into()),
            evidence: Evidence {
                attestations: Default::default(),
                checked_seq: Some(1),
                junit_sha256: None,
                source_env: EnvName::parse("dev").unwrap(),
            },
        };
        for v in ["1.0.0", "1.1.0"] {
            ledger
                .append_event("t", &live("prod", v).event(promote.clone()))
                .unwrap();
        }
        let events = ledger.read_events().unwrap();
        let target = rollback_target(&events, &env, Some(&pointer(&env, "1.1.0"))).unwrap();
        assert_eq!(target.as_str(), "1.0.0");
    }

    /// The rollback target read from a ledger written before payloads were typed
    /// (`tests/fixtures/state-v1`): dev went 1.0.0, 1.1.0, back to 1.0.0 by `release
    /// rollback`, and a failed 1.2.0 was rolled back to 1.0.0; prod was promoted to 1.1.0.
    #[test]
    fn rollback_reads_the_v1_ledger() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        std::fs::create_dir_all(root.join("envs")).unwrap();
        for file in ["ledger.jsonl", "envs/dev.json", "envs/prod.json"] {
            std::fs::copy(fixture.join(file), root.join(file)).unwrap();
        }
        let state = StateDir::open(&root).unwrap();
        let events = state.ledger().read_events().unwrap();
        let dev = EnvName::parse("dev").unwrap();
        let current = state.read_env(&dev).unwrap().unwrap();
        assert_eq!(current.version.as_str(), "1.0.0");
        assert!(matches!(
            rollback_target(&events, &dev, Some(&current)),
            Err(HistoryError::NoEarlier { .. })
        ));
        // Had the pointer stayed at 1.1.0, the history would not end there.
        let stale = pointer(&dev, "1.1.0");
        assert!(matches!(
            rollback_target(&events, &dev, Some(&stale)),
            Err(HistoryError::Diverged { .. })
        ));
        let prod = EnvName::parse("prod").unwrap();
        let current = state.read_env(&prod).unwrap().unwrap();
        assert!(matches!(
            rollback_target(&events, &prod, Some(&current)),
            Err(HistoryError::NoEarlier { .. })
        ));
    }

    /// Each way of making a version live records its own kind, with the same fields.
    #[test]
    fn a_version_made_live_is_recorded_as_its_kind() {
        use crate::ledger::EntryKind;
        assert_eq!(
            live("dev", "1.0.0").event(MadeLive::Deploy).kind(),
            EntryKind::Deployed
        );
        assert_eq!(
            live("dev", "1.0.0").event(MadeLive::Rollback).kind(),
            EntryKind::RolledBack
        );
        let Event::RolledBack(back) = live("dev", "1.0.0").event(MadeLive::Rollback) else {
            unreachable!()
        };
        assert_eq!(back.to_version(), Some("1.0.0"));
        let promoted = live("prod", "1.0.0").event(MadeLive::Promote {
            approver: Some("alice".into()),
            evidence: Evidence {
                attestations: Default::default(),
                checked_seq: Some(4),
                junit_sha256: None,
                source_env: EnvName::parse("dev").unwrap(),
            },
        });
        let Event::Promoted(p) = promoted else {
            unreachable!()
        };
        assert_eq!(p.approved_by.as_deref(), Some("alice"));
        assert_eq!(p.evidence.checked_seq, Some(4));
    }

    #[test]
    fn recording_a_version_made_live_writes_the_pointer_and_its_event_together() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let env = EnvName::parse("dev").unwrap();
        let mut made = live("dev", "1.2.0");
        made.digests
            .insert(ServiceName::parse("api").unwrap(), Digest::of(b"api image"));
        made.record(&state, "alice", MadeLive::Deploy).unwrap();
        let pointer = state.read_env(&env).unwrap().unwrap();
        assert_eq!(pointer.version.to_string(), "1.2.0");
        assert_eq!(pointer.actor, "alice");
        assert_eq!(pointer.digests["api"], Digest::of(b"api image"));
        let events = state.ledger().read_events().unwrap();
        let [recorded] = events.as_slice() else {
            panic!("one event expected, got {}", events.len());
        };
        let Event::Deployed(deployed) = &recorded.event else {
            panic!("expected `deployed`, got {:?}", recorded.event.kind());
        };
        assert_eq!(deployed.version, "1.2.0");
        assert_eq!(deployed.digests, pointer.digests);
    }
}
