use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::json;
use verify::{EntryKind, RecordOutcome, StateDir};

use crate::util::{child, hestino, temp_state, version};

const PROCESSES: u64 = 32;
const APPENDS_EACH: u64 = 100;

/// Child role: append `VERIFY_TEST_COUNT` entries as `child-<VERIFY_TEST_CHILD_ID>`.
pub fn append_role(state: &StateDir) {
    let id: u64 = std::env::var("VERIFY_TEST_CHILD_ID")
        .unwrap()
        .parse()
        .unwrap();
    let count: u64 = std::env::var("VERIFY_TEST_COUNT").unwrap().parse().unwrap();
    let ledger = state.ledger();
    for n in 0..count {
        ledger
            .append(
                EntryKind::Checked,
                &format!("child-{id}"),
                json!({"child": id, "n": n}),
            )
            .unwrap();
    }
}

#[test]
fn concurrent_appends_from_32_processes_lose_nothing() {
    let (_tmp, state) = temp_state();
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            child("append", state.root())
                .env("VERIFY_TEST_CHILD_ID", id.to_string())
                .env("VERIFY_TEST_COUNT", APPENDS_EACH.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let entries = state.ledger().read_all().unwrap();
    assert_eq!(entries.len() as u64, PROCESSES * APPENDS_EACH);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=PROCESSES * APPENDS_EACH).collect::<Vec<_>>(),
        "gap-free seq"
    );
    let report = state.ledger().verify().unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);

    // Each process's own entries appear in the order it appended them.
    let mut per_child: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for e in &entries {
        let id = e.payload["child"].as_u64().unwrap();
        per_child
            .entry(id)
            .or_default()
            .push(e.payload["n"].as_u64().unwrap());
        assert_eq!(e.actor, format!("child-{id}"));
    }
    assert_eq!(per_child.len() as u64, PROCESSES);
    for ns in per_child.values() {
        assert_eq!(ns, &(0..APPENDS_EACH).collect::<Vec<_>>());
    }
}

#[test]
fn eight_versions_recorded_at_once_are_all_intact() {
    let (_tmp, state) = temp_state();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (state, barrier) = (state.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let m = hestino(&format!("3.{i}.0"), &format!("build-{i}"));
                barrier.wait();
                state.record_release(&m, &format!("jenkins#{i}")).unwrap()
            })
        })
        .collect();
    for t in threads {
        let outcome = t.join().unwrap();
        assert!(
            matches!(outcome, RecordOutcome::Recorded { .. }),
            "{outcome:?}"
        );
    }

    for i in 0..8 {
        let loaded = state.load_release(&version(&format!("3.{i}.0"))).unwrap();
        assert_eq!(loaded.manifest.services.len(), 5);
    }
    let entries = state.ledger().read_all().unwrap();
    let mut versions: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Released)
        .map(|e| e.payload["version"].as_str().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (0..8).map(|i| format!("3.{i}.0")).collect::<Vec<_>>()
    );
    assert!(state.ledger().verify().unwrap().is_intact());
}

#[test]
fn the_same_version_recorded_at_once_is_recorded_exactly_once() {
    let (_tmp, state) = temp_state();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (state, barrier) = (state.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                state
                    .record_release(&hestino("4.0.0", "same"), &format!("jenkins#{i}"))
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let recorded = outcomes
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Recorded { .. }))
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Unchanged { .. }))
        .count();
    assert_eq!((recorded, unchanged), (1, 7));
    assert_eq!(state.ledger().read_all().unwrap().len(), 1);
}
