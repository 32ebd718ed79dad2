//! `tests/fixtures/state-v1`: a state directory written before ledger payloads were typed
//! (every kind, both shapes of `rolled-back`). Its chain must still verify, every entry must
//! parse into its event and serialize back to the very bytes on disk, and audit and the
//! promotion gate must still answer from it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use verify::RecordOutcome;
use verify::audit::{self, Query};
use verify::gate::{self, Observations};
use verify::ledger::{Event, RolledBack};
use verify::{EntryKind, StateDir, Version};

const HEAD: &str = "sha256:94456069ad649ef070096536c45726bc9564a525d089ac40d92916257c444276";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for dirent in std::fs::read_dir(from).unwrap() {
        let dirent = dirent.unwrap();
        let target = to.join(dirent.file_name());
        if dirent.file_type().unwrap().is_dir() {
            copy_dir(&dirent.path(), &target);
        } else {
            std::fs::copy(dirent.path(), &target).unwrap();
        }
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1")
}

/// A copy of the fixture in a temp dir (reads take locks, which create files).
fn state() -> (tempfile::TempDir, StateDir) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), &dir.path().join("state"));
    let state = StateDir::open(dir.path().join("state")).unwrap();
    (dir, state)
}

fn sha(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

#[test]
fn the_v1_chain_verifies_and_every_entry_reads_as_its_event() {
    let (_dir, state) = state();
    let report = state.ledger().verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.lines, 17);
    assert_eq!(report.head.as_deref(), Some(HEAD));

    let events = state.ledger().read_events().unwrap();
    let kinds: Vec<EntryKind> = events.iter().map(|r| r.event.kind()).collect();
    let expected = {
        use EntryKind::*;
        [
            Released,
            Released,
            Deployed,
            Checked,
            Deployed,
            Checked,
            Checked,
            GateRefused,
            Promoted,
            RolledBack,
            Released,
            DeployFailed,
            RolledBack,
            DeployFailed,
            RolledBack,
            Checked,
            Checked,
        ]
    };
    assert_eq!(kinds, expected);
    for r in &events {
        assert_eq!(r.entry.kind, r.event.kind());
    }
    let shapes: Vec<(u64, Option<&str>, bool)> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::RolledBack(rb) => Some((
                r.entry.seq,
                rb.to_version(),
                matches!(rb, RolledBack::Requested(_)),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (10, Some("1.0.0"), true),
            (13, Some("1.0.0"), false),
            (15, None, false)
        ]
    );
}

/// The typed events serialize to exactly the payload bytes of every line on disk.
#[test]
fn every_v1_payload_serializes_back_to_its_bytes() {
    let (_dir, state) = state();
    let mut seen = 0;
    let report = state
        .ledger()
        .scan(|view| {
            let event = view.event().map_err(|e| e.to_string())?;
            assert_eq!(event.to_json().unwrap(), view.payload, "seq {}", view.seq);
            let through_value = serde_json::to_string(&event.to_value().unwrap()).unwrap();
            assert_eq!(through_value, view.payload, "seq {}", view.seq);
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert!(report.is_intact());
    assert_eq!(seen, 17);
    let before = std::fs::read(fixture().join("ledger.jsonl")).unwrap();
    let after = std::fs::read(state.ledger_path()).unwrap();
    assert_eq!(before, after, "reading changed no byte");
}

#[test]
fn audit_answers_from_the_v1_records() {
    let (_dir, state) = state();
    let manifest_digests = |version: &Version| {
        let recorded = state.load_release(version).ok()?;
        Some(recorded.manifest.digests())
    };
    let all = audit::deployments(&state.ledger(), Query::default(), manifest_digests).unwrap();
    let rows: Vec<(u64, &str, &str, EntryKind)> = all
        .iter()
        .map(|d| (d.seq, d.env.as_str(), d.version.as_str(), d.kind))
        .collect();
    assert_eq!(
        rows,
        [
            (3, "dev", "1.0.0", EntryKind::Deployed),
            (5, "dev", "1.1.0", EntryKind::Deployed),
            (9, "prod", "1.1.0", EntryKind::Promoted),
            (10, "dev", "1.0.0", EntryKind::RolledBack),
            (13, "dev", "1.0.0", EntryKind::RolledBack),
        ]
    );
    let promoted = &all[2];
    assert_eq!(promoted.approver.as_deref(), Some("alice"));
    assert_eq!(promoted.evidence.as_deref(), Some(sha('3').as_str()));
    assert_eq!(promoted.digests["api"], sha('c'));
    assert_eq!(
        all[0].jenkins.as_ref().unwrap().to_string(),
        r#"{"build_number":42,"build_url":"https://ci.example.com/job/hestino/job/main/42/","job_name":"hestino/main"}"#
    );
    // The rollback after a failed deploy names only versions: digests from the manifest.
    assert_eq!(all[4].digests["api"], sha('a'));
    assert_eq!(all[4].evidence, None);

    let now = Query {
        env: None,
        at: Some(time::OffsetDateTime::now_utc()),
    };
    let live = audit::deployments(&state.ledger(), now, manifest_digests).unwrap();
    let live: Vec<(&str, &str, u64)> = live
        .iter()
        .map(|d| (d.env.as_str(), d.version.as_str(), d.seq))
        .collect();
    assert_eq!(live, [("prod", "1.1.0", 9), ("dev", "1.0.0", 13)]);

    let records = audit::verify_records(&state, None).unwrap();
    assert!(records.is_intact(), "{records:?}");
    assert_eq!(records.manifests_checked, 3);
    assert_eq!(records.head.as_deref(), Some(HEAD));
}

#[test]
fn the_gate_answers_from_the_v1_records() {
    let (_dir, state) = state();
    let entries = state.ledger().read_events().unwrap();
    let observe = |version: &str, entries| {
        let version = &Version::parse(version).unwrap();
        let recorded = state.load_release(version).unwrap();
        let digests = recorded.manifest.digests();
        let live = digests
            .iter()
            .map(|(k, v)| (k.clone(), format!("r.example.com/{k}:{version}@{v}")))
            .collect();
        let registry = digests
            .iter()
            .map(|(k, v)| (k.clone(), Ok(v.clone())))
            .collect();
        gate::evaluate(&Observations {
            version,
            target_env: &verify::EnvName::parse("prod").unwrap(),
            source_env: Some(&verify::EnvName::parse("dev").unwrap()),
            manifest: Ok((digests, recorded.sha256.clone())),
            entries,
            live_source: Ok(live),
            registry,
            approval_required: true,
            approver: Some("alice"),
            attestations: None,
            manifest_artifact: None,
            source_updated_at: None,
        })
    };
    // Now: dev runs 1.0.0 again, checked green at seq 17 after its rollback.
    let verdict = observe("1.0.0", &entries);
    assert!(verdict.passed(), "{verdict:#?}");
    assert_eq!(verdict.evidence_seq, Some(17));
    assert_eq!(verdict.evidence_junit_sha256, Some(sha('5')));
    assert!(verdict.conditions[0].detail.contains("seq 1"));
    // 1.1.0 is no longer what dev runs.
    let verdict = observe("1.1.0", &entries);
    assert_eq!(
        verdict
            .failures()
            .map(|c| c.name.as_ref())
            .collect::<Vec<_>>(),
        [gate::SOURCE_LIVE, gate::SOURCE_CHECKED]
    );
    // As the gate saw it before the promotion at seq 9: the passing check at seq 7, after
    // the failing one at seq 6.
    let verdict = observe("1.1.0", &entries[..8]);
    assert!(verdict.passed(), "{verdict:#?}");
    assert_eq!(verdict.evidence_seq, Some(7));
    assert_eq!(verdict.evidence_junit_sha256, Some(sha('3')));
    let verdict = observe("1.1.0", &entries[..6]);
    assert!(
        verdict.conditions[2]
            .detail
            .contains("(seq 6) did not pass"),
        "{verdict:#?}"
    );
}

#[test]
fn recording_a_v1_release_again_finds_its_entry() {
    let (_dir, state) = state();
    let recorded = state
        .load_release(&Version::parse("1.0.0").unwrap())
        .unwrap();
    let outcome = state.record_release(&recorded.manifest, "tester").unwrap();
    assert_eq!(
        outcome,
        RecordOutcome::Unchanged {
            manifest_sha256: recorded.sha256
        }
    );
    assert_eq!(state.ledger().verify().unwrap().lines, 17);
}
