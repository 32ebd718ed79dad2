use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use verify::{BreakProblem, EntryKind, EnvName, EnvPointer, LedgerError, RecordOutcome, StateDir};

use crate::util::{Rng, child, hestino, temp_state};

const ITERATIONS: u64 = 150;
const MAX_DELAY_MICROS: u64 = 20_000;
const READY: &str = "CRASH-WRITER-READY";

/// Child role: record releases, append entries and move the dev pointer in a loop until
/// killed. Line sizes vary so appends land across page boundaries of the ledger.
pub fn writer_role(state: &StateDir) {
    let iter: u64 = std::env::var("VERIFY_TEST_ITER").unwrap().parse().unwrap();
    let dev = EnvName::parse("dev").unwrap();
    let ledger = state.ledger();
    println!("{READY}");
    for n in 0..10_000u64 {
        let m = hestino(&format!("{iter}.{n}"), &format!("{iter}-{n}"));
        state.record_release(&m, "crash-writer").unwrap();
        let pad = "x".repeat(usize::try_from(n % 5).unwrap() * 700);
        ledger
            .append(
                EntryKind::Checked,
                "crash-writer",
                json!({"iter": iter, "n": n, "pad": pad}),
            )
            .unwrap();
        let pointer = EnvPointer {
            env: dev.clone(),
            version: m.version.clone(),
            digests: m
                .services
                .iter()
                .map(|(s, i)| (s.clone(), i.digest.clone()))
                .collect(),
            updated: OffsetDateTime::now_utc(),
            actor: "crash-writer".into(),
        };
        state.write_env(&pointer).unwrap();
    }
}

fn wait_until_ready(child: &mut Child) {
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains(READY) {
            return;
        }
    }
    panic!("crash writer exited before it was ready");
}

/// What must hold after any kill: every record parses whole and the ledger's chain
/// verifies. A torn last line (an append cut short, possible by design for a write that
/// spans page-cache chunks) is accepted only through the designed path: appends refuse it,
/// `recover_torn_tail` preserves and removes it. Returns whether that happened.
fn assert_only_whole_records(state: &StateDir, iter: u64) -> bool {
    let ledger = state.ledger();
    let report = ledger.verify().unwrap();
    let torn = match &report.first_break {
        None => false,
        Some(b) if matches!(b.problem, BreakProblem::Torn { .. }) && b.line == report.lines + 1 => {
            let err = ledger
                .append(EntryKind::Checked, "test", json!({}))
                .unwrap_err();
            assert!(
                matches!(err, LedgerError::Corrupt { .. }),
                "after kill {iter}: {err:?}"
            );
            let tail = ledger.recover_torn_tail().unwrap().unwrap();
            eprintln!("after kill {iter}: recovered torn tail {tail:?}");
            let report = ledger.verify().unwrap();
            assert!(
                report.is_intact(),
                "after kill {iter}: {:?}",
                report.first_break
            );
            true
        }
        Some(b) => panic!("after kill {iter}: {b}"),
    };
    for version in state.releases().unwrap() {
        state
            .load_release(&version)
            .unwrap_or_else(|e| panic!("after kill {iter}: {e}"));
    }
    state
        .read_env(&EnvName::parse("dev").unwrap())
        .unwrap_or_else(|e| panic!("after kill {iter}: {e}"));
    torn
}

#[test]
fn writers_killed_at_random_points_leave_only_whole_records() {
    let (_tmp, state) = temp_state();
    let mut rng = Rng::from_env();
    let started = Instant::now();
    let mut torn_tails = 0;
    for iter in 0..ITERATIONS {
        let mut writer = child("crash-writer", state.root())
            .env("VERIFY_TEST_ITER", iter.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_ready(&mut writer);
        sleep(Duration::from_micros(rng.below(MAX_DELAY_MICROS + 1)));
        writer.kill().unwrap(); // SIGKILL
        writer.wait().unwrap();
        torn_tails += u32::from(assert_only_whole_records(&state, iter));
    }

    // A kill between a manifest write and its ledger append leaves a manifest without a
    // `released` entry; recording it again must complete it, and never duplicate one.
    let releases = state.releases().unwrap();
    let mut completed = 0;
    for version in &releases {
        let recorded = state.load_release(version).unwrap();
        match state
            .record_release(&recorded.manifest, "recovery")
            .unwrap()
        {
            RecordOutcome::Unchanged { .. } => {}
            RecordOutcome::LedgerCompleted { .. } => completed += 1,
            other => panic!("{version}: unexpected {other:?}"),
        }
    }
    let entries = state.ledger().read_all().unwrap();
    let released: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Released)
        .map(|e| e.payload["version"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = released.iter().copied().collect();
    assert_eq!(unique.len(), released.len(), "a release was recorded twice");
    let on_disk: BTreeSet<String> = releases.iter().map(ToString::to_string).collect();
    assert_eq!(unique, on_disk.iter().map(String::as_str).collect());
    assert!(state.ledger().verify().unwrap().is_intact());

    let leftovers = std::fs::read_dir(state.releases_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    eprintln!(
        "{ITERATIONS} kills in {:?}: {} releases, {} ledger entries, {completed} released \
         entries completed afterwards, {torn_tails} torn tails recovered, {leftovers} temp files \
         left",
        started.elapsed(),
        releases.len(),
        entries.len(),
    );
}
