//! The typed payloads of ledger entries: one [`Event`] variant per [`EntryKind`].
//!
//! The field names are the wire format and must never change. Every struct declares its
//! fields in the byte order of their names, because entries were first written from
//! `serde_json::Value` objects, whose keys serialize sorted; declaring them sorted makes a
//! struct serialize to exactly those bytes, whichever way it is encoded. An `Option` field
//! that is always written (as `null` when empty) also reads as `None` when absent. Unknown
//! fields are ignored when reading, as they always were.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::entry::EntryKind;
use crate::digest::Digest;
use crate::manifest::JenkinsBuild;
use crate::name::{EnvName, ServiceName, Version};

/// A ledger entry's payload, typed by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Released(Released),
    Deployed(Deployed),
    DeployFailed(DeployFailed),
    RolledBack(RolledBack),
    Checked(Checked),
    GateRefused(GateRefused),
    Promoted(Promoted),
    Switched(Switched),
    ColourRemoved(ColourRemoved),
}

/// `switched`: a blue-green environment's proxy sends traffic to another colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switched {
    pub env: EnvName,
    /// The colour that served before, if any.
    #[serde(default)]
    pub from_colour: Option<String>,
    #[serde(default)]
    pub from_version: Option<Version>,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    /// The reload's wall time, in milliseconds.
    pub reload_ms: u64,
    pub to_colour: String,
    /// `deploy` (a new release passed its checks on the idle colour), `rollback` (back to
    /// the standby colour) or `checks-failed` (back after the checks through the proxy
    /// failed).
    pub trigger: String,
    /// The version served now. A switch back when nothing was live before wrote `""`:
    /// it reads as `None`, and `None` is written as `""`, so the bytes do not change.
    #[serde(with = "empty_is_none")]
    pub version: Option<Version>,
}

/// `colour-removed`: a blue-green colour's containers were removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColourRemoved {
    pub colour: String,
    pub env: EnvName,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    /// `window-ended`, `retired` (`release retire --now`), `replaced` (a new release
    /// takes its slot) or `failed` (a release that failed on the idle colour).
    pub reason: String,
    pub version: Version,
}

/// `released`: a release manifest was recorded (`release push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The digest of the release manifest's OCI artifact in the registry (its bytes are
    /// the file's), when it was published there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Digest>,
    /// sha256 of `releases/<version>.json` as written.
    pub manifest_sha256: Digest,
    /// Service → digest.
    pub services: BTreeMap<ServiceName, Digest>,
    pub version: Version,
}

/// `deployed`: `release deploy` converged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// Services whose spec the deploy changed, named as in the stack file (the
    /// orchestrator's names, which need not be release services).
    pub changed: Vec<String>,
    /// Service → digest the environment runs from now on.
    pub digests: BTreeMap<ServiceName, Digest>,
    pub env: EnvName,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    #[serde(default)]
    pub previous_version: Option<Version>,
    /// sha256 of the rendered stack file that was applied.
    pub stack_sha256: Digest,
    pub version: Version,
}

/// `promoted`: `release promote` passed its gate and the deploy converged. A deploy's
/// fields plus the approver and the evidence the gate relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promoted {
    #[serde(default)]
    pub approved_by: Option<String>,
    pub changed: Vec<String>,
    pub digests: BTreeMap<ServiceName, Digest>,
    pub env: EnvName,
    pub evidence: Evidence,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    #[serde(default)]
    pub previous_version: Option<Version>,
    pub stack_sha256: Digest,
    pub version: Version,
}

/// What a promotion relied on: the source environment's passing check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Seq of the passing `checked` entry.
    #[serde(default)]
    pub checked_seq: Option<u64>,
    /// sha256 of that check's JUnit XML.
    #[serde(default)]
    pub junit_sha256: Option<String>,
    pub source_env: EnvName,
    /// Service → the signed test result (its referrer's digest in the registry) the gate
    /// accepted, when the target requires signed evidence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attestations: BTreeMap<ServiceName, Digest>,
}

/// `deploy-failed`: a deploy did not converge (its rollback, if any, follows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployFailed {
    pub env: EnvName,
    /// Service (as the stack file names it) → why it failed.
    pub failures: BTreeMap<String, String>,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    #[serde(default)]
    pub previous_version: Option<Version>,
    pub version: Version,
}

/// `rolled-back`, in its two shapes, told apart by `trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RolledBack {
    /// `release rollback` converged (`"trigger": "release rollback"`): a deploy's fields.
    Requested(RequestedRollback),
    /// A failed deploy was rolled back (`"trigger": "deploy failed"`): versions and services.
    AfterFailedDeploy(RollbackAfterFailure),
}

/// A `release rollback` that converged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedRollback {
    pub changed: Vec<String>,
    pub digests: BTreeMap<ServiceName, Digest>,
    pub env: EnvName,
    /// The version live before (the same as `previous_version`).
    #[serde(default)]
    pub from_version: Option<Version>,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    #[serde(default)]
    pub previous_version: Option<Version>,
    pub stack_sha256: Digest,
    pub to_version: Version,
    pub trigger: RequestedTrigger,
    /// The version live now (the same as `to_version`).
    pub version: Version,
}

/// The automatic rollback of a failed deploy's changed services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackAfterFailure {
    pub env: EnvName,
    /// The version whose deploy failed.
    pub from_version: Version,
    /// The services rolled back, as the stack file names them.
    pub services: Vec<String>,
    /// The version live before the failed deploy; `None` if there was none.
    #[serde(default)]
    pub to_version: Option<Version>,
    pub trigger: FailureTrigger,
}

/// `"trigger": "release rollback"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestedTrigger {
    #[serde(rename = "release rollback")]
    ReleaseRollback,
}

/// `"trigger": "deploy failed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureTrigger {
    #[serde(rename = "deploy failed")]
    DeployFailed,
}

/// `checked`: `release check` ran an environment's checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    /// The sha256 of the signed test-result envelope attached to the checked images in
    /// the registry, when the environment signs its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Digest>,
    /// Service → digest recorded for the environment when it was checked.
    pub digests: BTreeMap<ServiceName, Digest>,
    pub env: EnvName,
    pub failed: u64,
    pub failed_checks: Vec<String>,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    /// Where the JUnit XML was written, if it was.
    #[serde(default)]
    pub junit: Option<String>,
    pub junit_sha256: String,
    pub passed: u64,
    pub seconds: f64,
    pub stack: String,
    pub unreachable: bool,
    /// The version recorded for the environment, if any.
    #[serde(default)]
    pub version: Option<Version>,
}

/// `gate-refused`: `release promote`'s gate refused; nothing was deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRefused {
    #[serde(default)]
    pub approved_by: Option<String>,
    pub env: EnvName,
    #[serde(default, with = "jenkins")]
    pub jenkins: Option<JenkinsBuild>,
    /// `<condition>: <detail>` for every failed condition.
    pub reasons: Vec<String>,
    /// The target's `promote_from`. A refusal of a target without one wrote `""`: it reads
    /// as `None`, and `None` is written as `""`.
    #[serde(with = "empty_is_none")]
    pub source_env: Option<EnvName>,
    pub version: Version,
}

/// A payload that does not match its entry's kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry seq {seq} ({kind}): payload is not a valid `{kind}` event: {reason}")]
pub struct EventError {
    pub seq: u64,
    pub kind: EntryKind,
    pub reason: String,
}

impl Event {
    /// The kind tag written beside the payload.
    pub fn kind(&self) -> EntryKind {
        match self {
            Self::Released(_) => EntryKind::Released,
            Self::Deployed(_) => EntryKind::Deployed,
            Self::DeployFailed(_) => EntryKind::DeployFailed,
            Self::RolledBack(_) => EntryKind::RolledBack,
            Self::Checked(_) => EntryKind::Checked,
            Self::GateRefused(_) => EntryKind::GateRefused,
            Self::Promoted(_) => EntryKind::Promoted,
            Self::Switched(_) => EntryKind::Switched,
            Self::ColourRemoved(_) => EntryKind::ColourRemoved,
        }
    }

    /// Parses the raw payload JSON of an entry of `kind`.
    pub fn from_json(kind: EntryKind, payload: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(payload);
        let event = Self::deserialize_kind(kind, &mut de)?;
        de.end()?;
        Ok(event)
    }

    /// Reads an already parsed payload of an entry of `kind`.
    pub fn from_value(kind: EntryKind, payload: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize_kind(kind, payload)
    }

    fn deserialize_kind<'de, D: Deserializer<'de>>(
        kind: EntryKind,
        de: D,
    ) -> Result<Self, D::Error> {
        Ok(match kind {
            EntryKind::Released => Self::Released(Deserialize::deserialize(de)?),
            EntryKind::Deployed => Self::Deployed(Deserialize::deserialize(de)?),
            EntryKind::DeployFailed => Self::DeployFailed(Deserialize::deserialize(de)?),
            EntryKind::RolledBack => Self::RolledBack(Deserialize::deserialize(de)?),
            EntryKind::Checked => Self::Checked(Deserialize::deserialize(de)?),
            EntryKind::GateRefused => Self::GateRefused(Deserialize::deserialize(de)?),
            EntryKind::Promoted => Self::Promoted(Deserialize::deserialize(de)?),
            EntryKind::Switched => Self::Switched(Deserialize::deserialize(de)?),
            EntryKind::ColourRemoved => Self::ColourRemoved(Deserialize::deserialize(de)?),
        })
    }

    /// The payload as a JSON value: what [`Ledger::append`](super::Ledger::append) writes.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::Released(p) => serde_json::to_value(p),
            Self::Deployed(p) => serde_json::to_value(p),
            Self::DeployFailed(p) => serde_json::to_value(p),
            Self::RolledBack(p) => serde_json::to_value(p),
            Self::Checked(p) => serde_json::to_value(p),
            Self::GateRefused(p) => serde_json::to_value(p),
            Self::Promoted(p) => serde_json::to_value(p),
            Self::Switched(p) => serde_json::to_value(p),
            Self::ColourRemoved(p) => serde_json::to_value(p),
        }
    }

    /// The payload's bytes, serialized straight from the typed struct.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::Released(p) => serde_json::to_string(p),
            Self::Deployed(p) => serde_json::to_string(p),
            Self::DeployFailed(p) => serde_json::to_string(p),
            Self::RolledBack(p) => serde_json::to_string(p),
            Self::Checked(p) => serde_json::to_string(p),
            Self::GateRefused(p) => serde_json::to_string(p),
            Self::Promoted(p) => serde_json::to_string(p),
            Self::Switched(p) => serde_json::to_string(p),
            Self::ColourRemoved(p) => serde_json::to_string(p),
        }
    }

    /// The environment the event happened in; `None` for `released`.
    pub fn env(&self) -> Option<&str> {
        match self {
            Self::Released(_) => None,
            Self::Deployed(p) => Some(p.env.as_str()),
            Self::DeployFailed(p) => Some(p.env.as_str()),
            Self::RolledBack(RolledBack::Requested(p)) => Some(p.env.as_str()),
            Self::RolledBack(RolledBack::AfterFailedDeploy(p)) => Some(p.env.as_str()),
            Self::Checked(p) => Some(p.env.as_str()),
            Self::GateRefused(p) => Some(p.env.as_str()),
            Self::Promoted(p) => Some(p.env.as_str()),
            Self::Switched(p) => Some(p.env.as_str()),
            Self::ColourRemoved(p) => Some(p.env.as_str()),
        }
    }
}

impl RolledBack {
    pub fn env(&self) -> &str {
        match self {
            Self::Requested(p) => p.env.as_str(),
            Self::AfterFailedDeploy(p) => p.env.as_str(),
        }
    }

    /// The version live after the rollback; `None` when a failed first deploy was rolled
    /// back to nothing.
    pub fn to_version(&self) -> Option<&str> {
        match self {
            Self::Requested(p) => Some(p.to_version.as_str()),
            Self::AfterFailedDeploy(p) => p.to_version.as_ref().map(Version::as_str),
        }
    }
}

impl<'de> Deserialize<'de> for RolledBack {
    /// Dispatches on `trigger`, so a payload of either shape that misses a field is
    /// reported with that field's name rather than as "no variant matched".
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Trigger {
            trigger: Option<String>,
        }
        let value = Value::deserialize(de)?;
        let trigger = Trigger::deserialize(&value).map_err(de::Error::custom)?;
        match trigger.trigger.as_deref() {
            Some("release rollback") => {
                shape(&value, "release rollback").map(RolledBack::Requested)
            }
            Some("deploy failed") => {
                shape(&value, "deploy failed").map(RolledBack::AfterFailedDeploy)
            }
            Some(other) => Err(de::Error::custom(format!(
                "unknown trigger {other:?}: expected \"release rollback\" or \"deploy failed\""
            ))),
            None => Err(de::Error::missing_field("trigger")),
        }
    }
}

fn shape<T: DeserializeOwned, E: de::Error>(value: &Value, trigger: &str) -> Result<T, E> {
    T::deserialize(value).map_err(|e| E::custom(format!("trigger {trigger:?}: {e}")))
}

impl From<Released> for Event {
    fn from(p: Released) -> Self {
        Self::Released(p)
    }
}

impl From<Deployed> for Event {
    fn from(p: Deployed) -> Self {
        Self::Deployed(p)
    }
}

impl From<DeployFailed> for Event {
    fn from(p: DeployFailed) -> Self {
        Self::DeployFailed(p)
    }
}

impl From<RolledBack> for Event {
    fn from(p: RolledBack) -> Self {
        Self::RolledBack(p)
    }
}

impl From<RequestedRollback> for Event {
    fn from(p: RequestedRollback) -> Self {
        Self::RolledBack(RolledBack::Requested(p))
    }
}

impl From<RollbackAfterFailure> for Event {
    fn from(p: RollbackAfterFailure) -> Self {
        Self::RolledBack(RolledBack::AfterFailedDeploy(p))
    }
}

impl From<Checked> for Event {
    fn from(p: Checked) -> Self {
        Self::Checked(p)
    }
}

impl From<GateRefused> for Event {
    fn from(p: GateRefused) -> Self {
        Self::GateRefused(p)
    }
}

impl From<Switched> for Event {
    fn from(p: Switched) -> Self {
        Self::Switched(p)
    }
}

impl From<ColourRemoved> for Event {
    fn from(p: ColourRemoved) -> Self {
        Self::ColourRemoved(p)
    }
}

impl From<Promoted> for Event {
    fn from(p: Promoted) -> Self {
        Self::Promoted(p)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().as_str())
    }
}

/// A name written as a string that may be empty: `""` is `None`.
mod empty_is_none {
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: AsRef<str>, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref().map_or("", AsRef::as_ref).serialize(s)
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err: std::fmt::Display>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// The Jenkins build as entries carry it: `{build_number, build_url, job_name}`, keys in
/// byte order (the release manifest writes the same struct in declaration order).
mod jenkins {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::manifest::JenkinsBuild;

    #[derive(Serialize)]
    struct Out<'a> {
        build_number: u64,
        build_url: &'a str,
        job_name: &'a str,
    }

    #[derive(Deserialize)]
    struct In {
        build_number: u64,
        build_url: String,
        job_name: String,
    }

    pub(super) fn serialize<S: Serializer>(
        build: &Option<JenkinsBuild>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        build
            .as_ref()
            .map(|b| Out {
                build_number: b.build_number,
                build_url: &b.build_url,
                job_name: &b.job_name,
            })
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<JenkinsBuild>, D::Error> {
        Ok(Option::<In>::deserialize(d)?.map(|b| JenkinsBuild {
            build_url: b.build_url,
            build_number: b.build_number,
            job_name: b.job_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn jenkins(n: u64) -> Option<JenkinsBuild> {
        Some(JenkinsBuild {
            build_url: format!("https://ci.example.com/job/hestino/{n}/"),
            build_number: n,
            job_name: "hestino/main".into(),
        })
    }

    fn digests() -> BTreeMap<ServiceName, Digest> {
        BTreeMap::from([
            (ServiceName::parse("api").unwrap(), d('a')),
            (ServiceName::parse("worker").unwrap(), d('b')),
        ])
    }

    /// Every event next to the `json!` its writer built before the types existed (copied
    /// from the writers of that time, insertion order and all): the bytes must be equal,
    /// both serialized straight from the struct and through a `Value` as `append` does,
    /// and the old bytes must read back into the same event.
    fn cases() -> Vec<(Event, Value)> {
        let previous_version: Option<crate::Version> =
            Some(crate::Version::parse("1.0.0").unwrap());
        let none: Option<String> = None;
        let first: Option<crate::Version> = None;
        let stack = d('5');
        // `release deploy`, and a deploy's fields as the base of rollback and promotion.
        let deploy_base = |jenkins: Option<JenkinsBuild>, previous: &Option<crate::Version>| {
            json!({
                "env": "dev",
                "version": "1.1.0",
                "digests": digests(),
                "previous_version": previous,
                "stack_sha256": stack.as_str(),
                "changed": ["api"],
                "jenkins": jenkins,
            })
        };
        let mut requested = deploy_base(None, &previous_version);
        requested["from_version"] = json!(previous_version);
        requested["to_version"] = json!("1.1.0");
        requested["trigger"] = json!("release rollback");
        let mut requested_first = deploy_base(jenkins(9), &first);
        requested_first["from_version"] = json!(none);
        requested_first["to_version"] = json!("1.1.0");
        requested_first["trigger"] = json!("release rollback");
        let mut promoted = deploy_base(jenkins(7), &first);
        promoted["approved_by"] = json!(Some("alice"));
        promoted["evidence"] = json!({
            "source_env": "dev",
            "checked_seq": Some(4u64),
            "junit_sha256": Some(d('4').as_str()),
        });
        let mut unapproved = deploy_base(None, &previous_version);
        unapproved["approved_by"] = json!(none);
        unapproved["evidence"] = json!({
            "source_env": "dev",
            "checked_seq": Option::<u64>::None,
            "junit_sha256": none,
        });
        let deployed =
            |jenkins: Option<JenkinsBuild>, previous: &Option<crate::Version>| Deployed {
                changed: vec!["api".into()],
                digests: digests(),
                env: crate::EnvName::parse("dev").unwrap(),
                jenkins,
                previous_version: previous.clone(),
                stack_sha256: stack.clone(),
                version: crate::Version::parse("1.1.0").unwrap(),
            };
        let promoted_event =
            |approved_by: Option<&str>, evidence, jenkins, previous: &Option<crate::Version>| {
                let Deployed {
                    changed,
                    digests,
                    env,
                    previous_version,
                    stack_sha256,
                    version,
                    ..
                } = deployed(None, previous);
                Promoted {
                    approved_by: approved_by.map(str::to_owned),
                    changed,
                    digests,
                    env,
                    evidence,
                    jenkins,
                    previous_version,
                    stack_sha256,
                    version,
                }
            };
        let requested_event = |jenkins, previous: &Option<crate::Version>| RequestedRollback {
            changed: vec!["api".into()],
            digests: digests(),
            env: crate::EnvName::parse("dev").unwrap(),
            from_version: previous.clone(),
            jenkins,
            previous_version: previous.clone(),
            stack_sha256: stack.clone(),
            to_version: crate::Version::parse("1.1.0").unwrap(),
            trigger: RequestedTrigger::ReleaseRollback,
            version: crate::Version::parse("1.1.0").unwrap(),
        };
        let services: serde_json::Map<String, Value> = digests()
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
            .collect();
        let failures: BTreeMap<&str, &str> = BTreeMap::from([("api", "exit 1: \"bad\" é\n")]);
        let failed_checks: Vec<&str> = vec!["api /health"];
        vec![
            (
                Released {
                    artifact: None,
                    manifest_sha256: d('1'),
                    services: digests(),
                    version: crate::Version::parse("1.1.0").unwrap(),
                }
                .into(),
                json!({
                    "version": "1.1.0",
                    "manifest_sha256": d('1').as_str(),
                    "services": services,
                }),
            ),
            (
                deployed(jenkins(3), &first).into(),
                deploy_base(jenkins(3), &first),
            ),
            (
                deployed(None, &previous_version).into(),
                deploy_base(None, &previous_version),
            ),
            (
                promoted_event(
                    Some("alice"),
                    Evidence {
                        attestations: BTreeMap::new(),
                        checked_seq: Some(4),
                        junit_sha256: Some(d('4').as_str().into()),
                        source_env: crate::EnvName::parse("dev").unwrap(),
                    },
                    jenkins(7),
                    &first,
                )
                .into(),
                promoted,
            ),
            (
                promoted_event(
                    None,
                    Evidence {
                        attestations: BTreeMap::new(),
                        checked_seq: None,
                        junit_sha256: None,
                        source_env: crate::EnvName::parse("dev").unwrap(),
                    },
                    None,
                    &previous_version,
                )
                .into(),
                unapproved,
            ),
            (requested_event(None, &previous_version).into(), requested),
            (requested_event(jenkins(9), &first).into(), requested_first),
            (
                RollbackAfterFailure {
                    env: crate::EnvName::parse("dev").unwrap(),
                    from_version: crate::Version::parse("1.2.0").unwrap(),
                    services: vec!["api".into(), "worker".into()],
                    to_version: previous_version.clone(),
                    trigger: FailureTrigger::DeployFailed,
                }
                .into(),
                json!({
                    "env": "dev",
                    "from_version": "1.2.0",
                    "to_version": previous_version,
                    "services": ["api", "worker"],
                    "trigger": "deploy failed",
                }),
            ),
            (
                RollbackAfterFailure {
                    env: crate::EnvName::parse("qa").unwrap(),
                    from_version: crate::Version::parse("1.2.0").unwrap(),
                    services: vec!["api".into()],
                    to_version: None,
                    trigger: FailureTrigger::DeployFailed,
                }
                .into(),
                json!({
                    "env": "qa",
                    "from_version": "1.2.0",
                    "to_version": none,
                    "services": ["api"],
                    "trigger": "deploy failed",
                }),
            ),
            (
                DeployFailed {
                    env: crate::EnvName::parse("dev").unwrap(),
                    failures: BTreeMap::from([("api".into(), "exit 1: \"bad\" é\n".into())]),
                    jenkins: jenkins(5),
                    previous_version: None,
                    version: crate::Version::parse("1.2.0").unwrap(),
                }
                .into(),
                json!({
                    "env": "dev",
                    "version": "1.2.0",
                    "previous_version": none,
                    "failures": failures,
                    "jenkins": jenkins(5),
                }),
            ),
            (
                Checked {
                    attestation: None,
                    digests: BTreeMap::from([(ServiceName::parse("api").unwrap(), d('a'))]),
                    env: crate::EnvName::parse("dev").unwrap(),
                    failed: 1,
                    failed_checks: vec!["api /health".into()],
                    jenkins: jenkins(6),
                    junit: Some("out/check.xml".into()),
                    junit_sha256: d('6').as_str().into(),
                    passed: 3,
                    seconds: 1.234_567_89,
                    stack: "hestino-dev".into(),
                    unreachable: false,
                    version: Some(crate::Version::parse("1.1.0").unwrap()),
                }
                .into(),
                json!({
                    "env": "dev",
                    "stack": "hestino-dev",
                    "version": Some("1.1.0"),
                    "digests": BTreeMap::from([("api".to_owned(), d('a').as_str().to_owned())]),
                    "passed": 3usize,
                    "failed": 1usize,
                    "failed_checks": failed_checks,
                    "unreachable": false,
                    "junit_sha256": d('6').as_str(),
                    "junit": Some("out/check.xml".to_owned()),
                    "seconds": 1.234_567_89f64,
                    "jenkins": jenkins(6),
                }),
            ),
            (
                Checked {
                    attestation: None,
                    digests: BTreeMap::new(),
                    env: crate::EnvName::parse("qa").unwrap(),
                    failed: 2,
                    failed_checks: vec![],
                    jenkins: None,
                    junit: None,
                    junit_sha256: d('7').as_str().into(),
                    passed: 0,
                    seconds: 10.0,
                    stack: "hestino-qa".into(),
                    unreachable: true,
                    version: None,
                }
                .into(),
                json!({
                    "env": "qa",
                    "stack": "hestino-qa",
                    "version": Option::<&str>::None,
                    "digests": BTreeMap::<String, String>::new(),
                    "passed": 0usize,
                    "failed": 2usize,
                    "failed_checks": Vec::<&str>::new(),
                    "unreachable": true,
                    "junit_sha256": d('7').as_str(),
                    "junit": none,
                    "seconds": 10.0f64,
                    "jenkins": Option::<JenkinsBuild>::None,
                }),
            ),
            (
                GateRefused {
                    approved_by: None,
                    env: crate::EnvName::parse("prod").unwrap(),
                    jenkins: jenkins(8),
                    reasons: vec!["approval given: required".into()],
                    source_env: Some(crate::EnvName::parse("dev").unwrap()),
                    version: crate::Version::parse("1.1.0").unwrap(),
                }
                .into(),
                json!({
                    "env": "prod",
                    "version": "1.1.0",
                    "source_env": "dev",
                    "approved_by": none,
                    "reasons": vec!["approval given: required".to_owned()],
                    "jenkins": jenkins(8),
                }),
            ),
        ]
    }

    #[test]
    fn every_event_serializes_to_the_bytes_written_before_the_types() {
        let cases = cases();
        let kinds: std::collections::BTreeSet<&str> =
            cases.iter().map(|(e, _)| e.kind().as_str()).collect();
        assert_eq!(kinds.len(), 7, "every kind is covered: {kinds:?}");
        for (event, old) in &cases {
            let old_bytes = serde_json::to_string(old).unwrap();
            assert_eq!(event.to_json().unwrap(), old_bytes, "{event}");
            assert_eq!(
                serde_json::to_string(&event.to_value().unwrap()).unwrap(),
                old_bytes,
                "{event}"
            );
            assert_eq!(&Event::from_json(event.kind(), &old_bytes).unwrap(), event);
            assert_eq!(&Event::from_value(event.kind(), old).unwrap(), event);
        }
    }

    #[test]
    fn both_rolled_back_shapes_read_and_tell_their_target() {
        let requested = r#"{"changed":[],"digests":{},"env":"dev","from_version":"1.1.0","jenkins":null,"previous_version":"1.1.0","stack_sha256":"sha256:5555555555555555555555555555555555555555555555555555555555555555","to_version":"1.0.0","trigger":"release rollback","version":"1.0.0"}"#;
        let after = r#"{"env":"dev","from_version":"1.2.0","services":["api"],"to_version":null,"trigger":"deploy failed"}"#;
        let Event::RolledBack(r) = Event::from_json(EntryKind::RolledBack, requested).unwrap()
        else {
            panic!("not a rollback");
        };
        assert!(matches!(r, RolledBack::Requested(_)));
        assert_eq!((r.env(), r.to_version()), ("dev", Some("1.0.0")));
        let Event::RolledBack(r) = Event::from_json(EntryKind::RolledBack, after).unwrap() else {
            panic!("not a rollback");
        };
        assert!(matches!(r, RolledBack::AfterFailedDeploy(_)));
        assert_eq!((r.env(), r.to_version()), ("dev", None));
        for (text, back) in [(requested, requested), (after, after)] {
            let event = Event::from_json(EntryKind::RolledBack, text).unwrap();
            assert_eq!(event.to_json().unwrap(), back);
        }
    }

    #[test]
    fn a_payload_that_does_not_match_its_kind_says_what_is_wrong() {
        let err = |kind, text: &str| Event::from_json(kind, text).unwrap_err().to_string();
        assert!(err(EntryKind::Deployed, r#"{"env":"dev"}"#).contains("missing field `changed`"));
        let e = err(
            EntryKind::RolledBack,
            r#"{"env":"dev","from_version":"1","trigger":"deploy failed"}"#,
        );
        assert!(
            e.contains("deploy failed") && e.contains("missing field `services`"),
            "{e}"
        );
        assert!(
            err(EntryKind::RolledBack, r#"{"env":"dev","trigger":"chaos"}"#)
                .contains("unknown trigger \"chaos\"")
        );
        assert!(err(EntryKind::RolledBack, r#"{"env":"dev"}"#).contains("missing field `trigger`"));
        let e = EventError {
            seq: 7,
            kind: EntryKind::Checked,
            reason: "missing field `env`".into(),
        };
        assert_eq!(
            e.to_string(),
            "entry seq 7 (checked): payload is not a valid `checked` event: missing field `env`"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_nullable_fields_may_be_absent() {
        let text = r#"{"manifest_sha256":"sha256:1111111111111111111111111111111111111111111111111111111111111111","services":{},"version":"1.0.0","later":true}"#;
        assert!(matches!(
            Event::from_json(EntryKind::Released, text).unwrap(),
            Event::Released(_)
        ));
        let text = r#"{"env":"prod","reasons":[],"source_env":"dev","version":"1.0.0"}"#;
        let Event::GateRefused(g) = Event::from_json(EntryKind::GateRefused, text).unwrap() else {
            panic!("not a gate refusal");
        };
        assert_eq!((g.approved_by, g.jenkins), (None, None));
    }

    /// The environment and version fields are `EnvName` and `Version`: a ledger line
    /// naming an environment or version the grammar refuses does not read as an event.
    /// The one empty version ever written, a switch back when nothing was live before,
    /// reads as `None` and is written back as the same bytes.
    #[test]
    fn names_in_events_are_typed_and_the_empty_version_of_a_switch_back_keeps_its_bytes() {
        let text = r#"{"env":"prod","from_colour":"blue","from_version":"1.1.0","jenkins":null,"reload_ms":12,"to_colour":"green","trigger":"checks-failed","version":""}"#;
        let event = Event::from_json(EntryKind::Switched, text).unwrap();
        let Event::Switched(switched) = &event else {
            panic!("not a switch");
        };
        assert_eq!(switched.version, None);
        assert_eq!(switched.env.as_str(), "prod");
        assert_eq!(event.to_json().unwrap(), text);
        let named = text.replace(r#""version":"""#, r#""version":"1.0.0""#);
        let Event::Switched(switched) = Event::from_json(EntryKind::Switched, &named).unwrap()
        else {
            panic!("not a switch");
        };
        assert_eq!(
            switched.version.as_ref().map(Version::as_str),
            Some("1.0.0")
        );
        let shouting = text.replace(r#""env":"prod""#, r#""env":"PROD""#);
        let e = Event::from_json(EntryKind::Switched, &shouting).unwrap_err();
        assert!(e.to_string().contains("PROD"), "{e}");
        let bad = named.replace(r#""version":"1.0.0""#, r#""version":"1.0 0""#);
        assert!(Event::from_json(EntryKind::Switched, &bad).is_err());
    }

    #[test]
    fn a_refusal_of_a_target_without_promote_from_reads_its_empty_source_as_none_and_keeps_its_bytes()
     {
        let text = r#"{"approved_by":null,"env":"dev","jenkins":null,"reasons":["source environment runs exactly this release: environment `dev` has no `promote_from`; it is not a promotion target"],"source_env":"","version":"1.0.0"}"#;
        let event = Event::from_json(EntryKind::GateRefused, text).unwrap();
        let Event::GateRefused(refused) = &event else {
            panic!("not a refusal");
        };
        assert_eq!(refused.source_env, None);
        assert_eq!(event.to_json().unwrap(), text);
        let named = text.replace(r#""source_env":"""#, r#""source_env":"staging""#);
        let Event::GateRefused(refused) = Event::from_json(EntryKind::GateRefused, &named).unwrap()
        else {
            panic!("not a refusal");
        };
        assert_eq!(
            refused.source_env.as_ref().map(EnvName::as_str),
            Some("staging")
        );
        let bad = text.replace(r#""source_env":"""#, r#""source_env":"Dev""#);
        assert!(Event::from_json(EntryKind::GateRefused, &bad).is_err());
    }
}
