//! The promotion gate over real records: each condition decided from a ledger written
//! through `Ledger::append`, a live-Swarm observation and a registry observation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use verify::gate::{self, Observations};
use verify::ledger::{Checked, Deployed, Event, Released};
use verify::{Digest, ServiceName, StateDir};

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// The version every promotion here promotes.
static V1: std::sync::LazyLock<verify::Version> =
    std::sync::LazyLock::new(|| verify::Version::parse("1.0.0").unwrap());
/// The target of every promotion here.
static PROD: std::sync::LazyLock<verify::EnvName> =
    std::sync::LazyLock::new(|| verify::EnvName::parse("prod").unwrap());

/// The environment every promotion here promotes from.
static DEV: std::sync::LazyLock<verify::EnvName> =
    std::sync::LazyLock::new(|| verify::EnvName::parse("dev").unwrap());

fn digest(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

/// The one service of every release here.
fn api() -> ServiceName {
    ServiceName::parse("api").unwrap()
}

struct Story {
    _dir: tempfile::TempDir,
    state: StateDir,
}

impl Story {
    /// Released 1.0.0 (api → A), deployed to dev, checked green.
    fn green() -> Story {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let story = Story { _dir: dir, state };
        story.append(Released {
            artifact: None,
            manifest_sha256: digest(M),
            services: BTreeMap::from([(api(), digest(A))]),
            version: verify::Version::parse("1.0.0").unwrap(),
        });
        story.deploy("1.0.0", A);
        story.check(0);
        story
    }

    fn append(&self, event: impl Into<Event>) {
        self.state
            .ledger()
            .append_event("tester", &event.into())
            .unwrap();
    }

    fn deploy(&self, version: &str, image: &str) {
        self.append(Deployed {
            changed: vec!["api".into()],
            digests: BTreeMap::from([(api(), digest(image))]),
            env: verify::EnvName::parse("dev").unwrap(),
            jenkins: None,
            previous_version: None,
            stack_sha256: digest(M),
            version: verify::Version::parse(version).unwrap(),
        });
    }

    fn checked(&self, image: &str, failed: u64) {
        self.append(Checked {
            attestation: None,
            digests: BTreeMap::from([(api(), digest(image))]),
            env: verify::EnvName::parse("dev").unwrap(),
            failed,
            failed_checks: Vec::new(),
            jenkins: None,
            junit: None,
            junit_sha256: "sha256:junit".into(),
            passed: 3 - failed,
            seconds: 0.1,
            stack: "hestino-dev".into(),
            unreachable: false,
            version: Some(verify::Version::parse("1.0.0").unwrap()),
        });
    }

    fn check(&self, failed: u64) {
        self.checked(A, failed);
    }

    fn verdict(&self, tweak: impl FnOnce(&mut Observations<'_>)) -> gate::Verdict {
        let entries = self.state.ledger().read_events().unwrap();
        let mut o = observations(&entries);
        tweak(&mut o);
        gate::evaluate(&o)
    }
}

/// What a green promotion of 1.0.0 from dev to prod observes, over `entries`.
fn observations(entries: &[verify::Recorded]) -> Observations<'_> {
    Observations {
        version: &V1,
        target_env: &PROD,
        source_env: Some(&DEV),
        manifest: Ok((BTreeMap::from([(api(), digest(A))]), digest(M))),
        entries,
        live_source: Ok(BTreeMap::from([(api(), format!("r/api:1@{A}"))])),
        registry: BTreeMap::from([(api(), Ok(digest(A)))]),
        approval_required: true,
        approver: Some("alice"),
        attestations: None,
        manifest_artifact: None,
        source_updated_at: None,
    }
}

fn failed(verdict: &gate::Verdict) -> Vec<&str> {
    verdict.failures().map(|c| c.name.as_ref()).collect()
}

#[test]
fn a_green_release_passes_with_its_evidence() {
    let story = Story::green();
    let verdict = story.verdict(|_| {});
    assert!(verdict.passed(), "{verdict:#?}");
    assert_eq!(verdict.conditions.len(), 5);
    assert_eq!(verdict.evidence_seq, Some(3));
    assert_eq!(
        verdict.evidence_junit_sha256.as_deref(),
        Some("sha256:junit")
    );
}

#[test]
fn a_moved_tag_blocks() {
    let verdict = Story::green().verdict(|o| {
        o.registry.insert(api(), Ok(digest(B)));
    });
    assert_eq!(failed(&verdict), [gate::REGISTRY]);
    assert!(verdict.conditions[3].detail.contains("tag moved"));
}

#[test]
fn a_later_failing_check_revokes_the_pass() {
    let story = Story::green();
    story.check(1);
    assert_eq!(failed(&story.verdict(|_| {})), [gate::SOURCE_CHECKED]);
}

#[test]
fn a_check_before_the_latest_deploy_does_not_count() {
    let story = Story::green();
    story.deploy("1.0.0", A);
    let verdict = story.verdict(|_| {});
    assert_eq!(failed(&verdict), [gate::SOURCE_CHECKED]);
    assert!(
        verdict.conditions[2]
            .detail
            .contains("no check of `dev` after its deploy")
    );
}

#[test]
fn a_check_of_other_digests_does_not_count() {
    let story = Story::green();
    story.checked(B, 0);
    assert_eq!(failed(&story.verdict(|_| {})), [gate::SOURCE_CHECKED]);
}

#[test]
fn a_hand_updated_source_service_blocks() {
    let verdict = Story::green().verdict(|o| {
        o.live_source = Ok(BTreeMap::from([(api(), format!("r/api:1@{B}"))]));
    });
    assert_eq!(failed(&verdict), [gate::SOURCE_LIVE]);
}

#[test]
fn another_version_live_in_the_source_blocks() {
    let story = Story::green();
    story.deploy("1.1.0", B);
    let verdict = story.verdict(|_| {});
    assert_eq!(failed(&verdict), [gate::SOURCE_LIVE, gate::SOURCE_CHECKED]);
}

#[test]
fn missing_approval_blocks_only_where_required() {
    let story = Story::green();
    assert_eq!(
        failed(&story.verdict(|o| o.approver = None)),
        [gate::APPROVAL]
    );
    assert!(
        story
            .verdict(|o| {
                o.approver = None;
                o.approval_required = false;
            })
            .passed()
    );
}

#[test]
fn an_edited_manifest_blocks() {
    let verdict = Story::green().verdict(|o| {
        o.manifest = Ok((BTreeMap::from([(api(), digest(A))]), digest(B)));
    });
    assert_eq!(failed(&verdict), [gate::MANIFEST]);
}

#[test]
fn every_failure_is_listed_together() {
    let story = Story::green();
    story.check(2);
    let verdict = story.verdict(|o| {
        o.approver = None;
        o.registry.insert(api(), Err("registry unreachable".into()));
    });
    assert_eq!(
        failed(&verdict),
        [gate::SOURCE_CHECKED, gate::REGISTRY, gate::APPROVAL]
    );
}

/// A refused verdict records what the promotion asked and every failed condition; a
/// passing one names the evidence it relied on.
#[test]
fn a_verdict_records_its_refusal_or_its_evidence() {
    let story = Story::green();
    let verdict = story.verdict(|_| {});
    let evidence = verdict.evidence(&DEV);
    assert_eq!(evidence.checked_seq, Some(3));
    assert_eq!(evidence.junit_sha256.as_deref(), Some("sha256:junit"));
    assert_eq!(evidence.source_env, *DEV);

    let entries = story.state.ledger().read_events().unwrap();
    let mut o = observations(&entries);
    o.registry.insert(api(), Ok(digest(B)));
    o.approver = None;
    let refused = gate::evaluate(&o);
    let event = refused.refusal(&o, None);
    assert_eq!(event.env, "prod");
    assert_eq!(event.source_env.as_ref(), Some(&*DEV));
    assert_eq!(event.version, "1.0.0");
    assert_eq!(event.approved_by, None);
    assert_eq!(event.reasons.len(), 2, "{:?}", event.reasons);
    assert!(
        event.reasons[0].starts_with(gate::REGISTRY),
        "{:?}",
        event.reasons
    );
    assert!(
        event.reasons[1].starts_with("approval given"),
        "{:?}",
        event.reasons
    );
}
