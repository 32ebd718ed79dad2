use std::fs;

use serde_json::json;
use verify::{BreakProblem, ChainBreak, EntryKind, Ledger, LedgerError, VerifyReport};

use crate::util::temp_state;

const ZERO_PREV: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A ledger with `n` `checked` entries whose payload is `{"n": i, "note": "value-i"}`.
fn ledger_with(n: u64) -> (tempfile::TempDir, Ledger) {
    let (tmp, state) = temp_state();
    let ledger = state.ledger();
    for i in 1..=n {
        ledger
            .append(
                EntryKind::Checked,
                "tester",
                json!({"n": i, "note": format!("value-{i}")}),
            )
            .unwrap();
    }
    (tmp, ledger)
}

fn lines(ledger: &Ledger) -> Vec<Vec<u8>> {
    let bytes = fs::read(ledger.path()).unwrap();
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn rewrite(ledger: &Ledger, lines: &[Vec<u8>]) {
    fs::write(ledger.path(), lines.concat()).unwrap();
}

fn first_break(report: &VerifyReport) -> &ChainBreak {
    report
        .first_break
        .as_ref()
        .expect("verify should report a break")
}

#[test]
fn entries_are_chained_lines_starting_at_seq_1_with_a_zero_prev() {
    let (_tmp, ledger) = ledger_with(3);
    let entries = ledger.read_all().unwrap();
    let on_disk = lines(&ledger);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].prev, ZERO_PREV);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(
            [e.raw(), b"\n"].concat(),
            on_disk[i],
            "raw bytes are the bytes on disk"
        );
        if i > 0 {
            assert_eq!(e.prev, entries[i - 1].hash());
        }
    }
    let first = String::from_utf8(on_disk[0].clone()).unwrap();
    assert!(first.starts_with(r#"{"seq":1,"time":""#), "{first}");
    assert!(first.contains(r#""actor":"tester","kind":"checked","payload":{"n":1,"note":"value-1"},"prev":"sha256:000"#), "{first}");
    let time = entries[0].time;
    assert!(time.offset().is_utc());
    let report = ledger.verify().unwrap();
    assert!(report.is_intact());
    assert_eq!(report.lines, 3);
    assert_eq!(report.head, Some(entries[2].hash()));
}

#[test]
fn kinds_are_written_in_kebab_case() {
    let (_tmp, state) = temp_state();
    let ledger = state.ledger();
    let kinds = [
        (EntryKind::Released, "released"),
        (EntryKind::Deployed, "deployed"),
        (EntryKind::DeployFailed, "deploy-failed"),
        (EntryKind::RolledBack, "rolled-back"),
        (EntryKind::Checked, "checked"),
        (EntryKind::GateRefused, "gate-refused"),
        (EntryKind::Promoted, "promoted"),
    ];
    for (kind, text) in kinds {
        let entry = ledger.append(kind, "tester", json!({})).unwrap();
        let raw = String::from_utf8(entry.raw().to_vec()).unwrap();
        assert!(raw.contains(&format!(r#""kind":"{text}""#)), "{raw}");
    }
    let read: Vec<EntryKind> = ledger.read_all().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(read, kinds.map(|(k, _)| k));
}

#[test]
fn append_refuses_entries_without_actor_or_object_payload() {
    let (_tmp, ledger) = ledger_with(1);
    let before = fs::read(ledger.path()).unwrap();
    for (actor, payload) in [
        ("", json!({})),
        ("  ", json!({})),
        ("tester", json!([1])),
        ("tester", json!("x")),
    ] {
        let err = ledger
            .append(EntryKind::Checked, actor, payload)
            .unwrap_err();
        assert!(matches!(err, LedgerError::InvalidEntry { .. }), "{err:?}");
    }
    assert_eq!(fs::read(ledger.path()).unwrap(), before);
}

#[test]
fn append_chains_onto_a_last_line_longer_than_the_tail_window() {
    let (_tmp, ledger) = ledger_with(2);
    let big = "x".repeat(100_000);
    let e3 = ledger
        .append(EntryKind::Checked, "tester", json!({ "big": big }))
        .unwrap();
    let e4 = ledger
        .append(EntryKind::Checked, "tester", json!({}))
        .unwrap();
    assert_eq!((e3.seq, e4.seq), (3, 4));
    assert_eq!(e4.prev, e3.hash());
    assert!(ledger.verify().unwrap().is_intact());
}

#[test]
fn a_missing_ledger_reads_as_empty() {
    let (_tmp, state) = temp_state();
    assert!(state.ledger().read_all().unwrap().is_empty());
    let report = state.ledger().verify().unwrap();
    assert_eq!(
        (report.lines, report.head, report.first_break),
        (0, None, None)
    );
}

#[test]
fn an_edited_entry_breaks_the_link_of_the_next_one() {
    let (_tmp, ledger) = ledger_with(10);
    let mut l = lines(&ledger);
    let edited = String::from_utf8(l[4].clone())
        .unwrap()
        .replace("value-5", "valuE-5");
    l[4] = edited.into_bytes();
    rewrite(&ledger, &l);
    let report = ledger.verify().unwrap();
    let b = first_break(&report);
    assert_eq!((b.line, b.seq), (6, Some(6)));
    assert!(
        matches!(b.problem, BreakProblem::PrevMismatch { .. }),
        "{b}"
    );
    assert_eq!(report.lines, 10);
}

#[test]
fn a_byte_edit_that_breaks_the_json_is_reported_on_its_own_line() {
    let (_tmp, ledger) = ledger_with(10);
    let mut l = lines(&ledger);
    l[4][0] = b'X';
    rewrite(&ledger, &l);
    let b = first_break(&ledger.verify().unwrap()).clone();
    assert_eq!((b.line, b.seq), (5, None));
    assert!(matches!(b.problem, BreakProblem::Malformed { .. }), "{b}");
}

#[test]
fn a_line_with_surrounding_bytes_is_malformed() {
    let (_tmp, ledger) = ledger_with(5);
    let mut l = lines(&ledger);
    let at = l[2].len() - 1;
    l[2].insert(at, b'\r');
    rewrite(&ledger, &l);
    let b = first_break(&ledger.verify().unwrap()).clone();
    assert_eq!((b.line, b.seq), (3, None));
    assert!(matches!(b.problem, BreakProblem::Malformed { .. }), "{b}");
}

#[test]
fn a_deleted_entry_is_reported_where_the_seq_jumps() {
    let (_tmp, ledger) = ledger_with(10);
    let mut l = lines(&ledger);
    l.remove(4);
    rewrite(&ledger, &l);
    let b = first_break(&ledger.verify().unwrap()).clone();
    assert_eq!((b.line, b.seq), (5, Some(6)));
    assert_eq!(
        b.problem,
        BreakProblem::SeqMismatch {
            expected: 5,
            found: 6
        }
    );
}

#[test]
fn swapped_entries_are_reported_at_the_first_of_them() {
    let (_tmp, ledger) = ledger_with(10);
    let mut l = lines(&ledger);
    l.swap(4, 5);
    rewrite(&ledger, &l);
    let b = first_break(&ledger.verify().unwrap()).clone();
    assert_eq!((b.line, b.seq), (5, Some(6)));
    assert_eq!(
        b.problem,
        BreakProblem::SeqMismatch {
            expected: 5,
            found: 6
        }
    );
}

#[test]
fn truncation_mid_line_is_a_torn_last_line() {
    let (_tmp, ledger) = ledger_with(10);
    let bytes = fs::read(ledger.path()).unwrap();
    fs::write(ledger.path(), &bytes[..bytes.len() - 10]).unwrap();
    let b = first_break(&ledger.verify().unwrap()).clone();
    assert_eq!((b.line, b.seq), (10, None));
    assert!(matches!(b.problem, BreakProblem::Torn { .. }), "{b}");
}

#[test]
fn removing_or_editing_the_newest_entries_changes_the_head_hash() {
    let (_tmp, ledger) = ledger_with(10);
    let archived = ledger.verify().unwrap().head.unwrap();

    let mut l = lines(&ledger);
    let last = String::from_utf8(l[9].clone())
        .unwrap()
        .replace("value-10", "value-11");
    l[9] = last.into_bytes();
    rewrite(&ledger, &l);
    let report = ledger.verify().unwrap();
    assert!(report.is_intact(), "the chain alone cannot see this");
    assert_ne!(report.head.as_deref(), Some(archived.as_str()));

    l.truncate(7);
    rewrite(&ledger, &l);
    let report = ledger.verify().unwrap();
    assert!(report.is_intact());
    assert_eq!(report.lines, 7);
    assert_ne!(report.head.as_deref(), Some(archived.as_str()));
}

#[test]
fn read_all_refuses_a_tampered_ledger_and_names_the_line() {
    let (_tmp, ledger) = ledger_with(10);
    let mut l = lines(&ledger);
    l.swap(2, 3);
    rewrite(&ledger, &l);
    let err = ledger.read_all().unwrap_err();
    let LedgerError::Corrupt { line, .. } = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert_eq!(*line, 3);
    assert!(err.to_string().contains("ledger.jsonl"), "{err}");
}

#[test]
fn append_refuses_to_chain_onto_a_torn_line_until_it_is_recovered() {
    let (_tmp, ledger) = ledger_with(3);
    let complete = fs::read(ledger.path()).unwrap();
    let torn = br#"{"seq":4,"time":"2026-11-23T10:00:00Z","act"#;
    fs::write(ledger.path(), [complete.as_slice(), torn].concat()).unwrap();

    let err = ledger
        .append(EntryKind::Checked, "tester", json!({}))
        .unwrap_err();
    let LedgerError::Corrupt { line, reason, .. } = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert_eq!(*line, 4);
    assert!(reason.contains("torn"), "{reason}");
    assert!(ledger.read_all().is_err());

    let recovered = ledger.recover_torn_tail().unwrap().expect("a torn tail");
    assert_eq!((recovered.line, recovered.bytes), (4, torn.len() as u64));
    assert_eq!(
        fs::read(&recovered.saved_to).unwrap(),
        torn,
        "torn bytes are preserved"
    );
    assert_eq!(
        fs::read(ledger.path()).unwrap(),
        complete,
        "complete lines untouched"
    );
    assert_eq!(ledger.recover_torn_tail().unwrap(), None);

    let e = ledger
        .append(EntryKind::Checked, "tester", json!({}))
        .unwrap();
    assert_eq!(e.seq, 4);
    assert!(ledger.verify().unwrap().is_intact());
}

#[test]
fn append_refuses_to_chain_onto_a_malformed_last_line() {
    let (_tmp, ledger) = ledger_with(3);
    let mut l = lines(&ledger);
    l[2] = b"{\"not\":\"an entry\"}\n".to_vec();
    rewrite(&ledger, &l);
    let err = ledger
        .append(EntryKind::Checked, "tester", json!({}))
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::Corrupt { line: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        ledger.recover_torn_tail().unwrap(),
        None,
        "complete lines are never removed"
    );
}
