//! The promotion gate over real records: each condition decided from a ledger written
//! through `Ledger::append`, a live-Swarm observation and a registry observation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::json;
use verify::gate::{self, Observations};
use verify::{EntryKind, StateDir};

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

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
        story.append(
            EntryKind::Released,
            json!({"version": "1.0.0", "manifest_sha256": M, "services": {"api": A}}),
        );
        story.append(
            EntryKind::Deployed,
            json!({"env": "dev", "version": "1.0.0", "digests": {"api": A}}),
        );
        story.check(0);
        story
    }

    fn append(&self, kind: EntryKind, payload: serde_json::Value) {
        self.state.ledger().append(kind, "tester", payload).unwrap();
    }

    fn check(&self, failed: u64) {
        self.append(
            EntryKind::Checked,
            json!({"env": "dev", "version": "1.0.0", "digests": {"api": A}, "passed": 3 - failed, "failed": failed, "junit_sha256": "sha256:junit"}),
        );
    }

    fn verdict(&self, tweak: impl FnOnce(&mut Observations<'_>)) -> gate::Verdict {
        let entries = self.state.ledger().read_all().unwrap();
        let mut o = Observations {
            version: "1.0.0",
            target_env: "prod",
            source_env: Some("dev"),
            manifest: Ok((
                BTreeMap::from([("api".to_owned(), A.to_owned())]),
                M.to_owned(),
            )),
            entries: &entries,
            live_source: Ok(BTreeMap::from([("api".to_owned(), Some(A.to_owned()))])),
            registry: BTreeMap::from([("api".to_owned(), Ok(A.to_owned()))]),
            approval_required: true,
            approver: Some("alice"),
        };
        tweak(&mut o);
        gate::evaluate(&o)
    }
}

fn failed(verdict: &gate::Verdict) -> Vec<&'static str> {
    verdict.failures().map(|c| c.name).collect()
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
        o.registry.insert("api".into(), Ok(B.into()));
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
    story.append(
        EntryKind::Deployed,
        json!({"env": "dev", "version": "1.0.0", "digests": {"api": A}}),
    );
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
    story.append(
        EntryKind::Checked,
        json!({"env": "dev", "digests": {"api": B}, "passed": 3, "failed": 0}),
    );
    assert_eq!(failed(&story.verdict(|_| {})), [gate::SOURCE_CHECKED]);
}

#[test]
fn a_hand_updated_source_service_blocks() {
    let verdict = Story::green().verdict(|o| {
        o.live_source = Ok(BTreeMap::from([("api".to_owned(), Some(B.to_owned()))]));
    });
    assert_eq!(failed(&verdict), [gate::SOURCE_LIVE]);
}

#[test]
fn another_version_live_in_the_source_blocks() {
    let story = Story::green();
    story.append(
        EntryKind::Deployed,
        json!({"env": "dev", "version": "1.1.0", "digests": {"api": B}}),
    );
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
        o.manifest = Ok((
            BTreeMap::from([("api".to_owned(), A.to_owned())]),
            B.to_owned(),
        ));
    });
    assert_eq!(failed(&verdict), [gate::MANIFEST]);
}

#[test]
fn every_failure_is_listed_together() {
    let story = Story::green();
    story.check(2);
    let verdict = story.verdict(|o| {
        o.approver = None;
        o.registry
            .insert("api".into(), Err("registry unreachable".into()));
    });
    assert_eq!(
        failed(&verdict),
        [gate::SOURCE_CHECKED, gate::REGISTRY, gate::APPROVAL]
    );
}
