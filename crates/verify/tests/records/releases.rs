use std::fs;
use std::time::Duration;

use time::OffsetDateTime;
use verify::{
    Digest, EntryKind, EnvName, EnvPointer, LockError, RecordError, RecordOutcome, StateDir,
};

use crate::util::{digest, hestino, manifest, temp_state, version};

fn released_entries(state: &StateDir) -> Vec<verify::Entry> {
    let entries = state.ledger().read_all().unwrap();
    entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Released)
        .collect()
}

#[test]
fn recording_writes_the_manifest_once_and_a_released_entry() {
    let (_tmp, state) = temp_state();
    let m = hestino("1.2.0", "build-1");
    let outcome = state.record_release(&m, "jenkins:hestino#42").unwrap();
    let RecordOutcome::Recorded {
        manifest_sha256,
        entry,
    } = outcome
    else {
        panic!("expected Recorded, got {outcome:?}");
    };

    let path = state.release_path(&version("1.2.0"));
    let bytes = fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(b"{\n  \"project\": \"hestino\""),
        "pretty JSON"
    );
    assert!(bytes.ends_with(b"}\n"), "trailing newline");
    assert_eq!(manifest_sha256, Digest::of(&bytes));

    let loaded = state.load_release(&version("1.2.0")).unwrap();
    assert_eq!(loaded.manifest, m);
    assert_eq!(loaded.sha256, manifest_sha256);

    assert_eq!(
        (entry.seq, entry.kind, entry.actor.as_str()),
        (1, EntryKind::Released, "jenkins:hestino#42")
    );
    assert_eq!(entry.payload["version"], "1.2.0");
    assert_eq!(entry.payload["manifest_sha256"], manifest_sha256.as_str());
    assert_eq!(
        entry.payload["services"]["api"],
        digest("api@build-1").as_str()
    );
    assert_eq!(entry.payload["services"].as_object().unwrap().len(), 5);
    assert_eq!(released_entries(&state), [entry]);
}

#[test]
fn re_recording_the_same_digests_is_unchanged_and_writes_nothing() {
    let (_tmp, state) = temp_state();
    state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let path = state.release_path(&version("1.2.0"));
    let before = fs::read(&path).unwrap();
    let ledger_before = fs::read(state.ledger_path()).unwrap();

    let mut retry = hestino("1.2.0", "b1");
    retry.created = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let outcome = state.record_release(&retry, "jenkins-retry").unwrap();
    assert_eq!(
        outcome,
        RecordOutcome::Unchanged {
            manifest_sha256: Digest::of(&before)
        }
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(fs::read(state.ledger_path()).unwrap(), ledger_before);
}

#[test]
fn a_changed_digest_is_a_conflict_naming_the_service_and_nothing_is_written() {
    let (_tmp, state) = temp_state();
    state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let path = state.release_path(&version("1.2.0"));
    let before = fs::read(&path).unwrap();
    let ledger_before = fs::read(state.ledger_path()).unwrap();

    let mut rebuilt = hestino("1.2.0", "b1");
    rebuilt.services.get_mut("api").unwrap().digest = digest("api@rebuilt");
    let err = state.record_release(&rebuilt, "jenkins").unwrap_err();
    let RecordError::ManifestConflict {
        version: v,
        changed,
        ..
    } = &err
    else {
        panic!("expected ManifestConflict, got {err:?}");
    };
    assert_eq!(v.as_str(), "1.2.0");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].service, "api");
    assert_eq!(changed[0].recorded, Some(digest("api@b1")));
    assert_eq!(changed[0].attempted, Some(digest("api@rebuilt")));
    let msg = err.to_string();
    assert!(msg.contains("api:") && msg.contains("1.2.0.json"), "{msg}");
    assert!(err.hint().unwrap().contains("new version"), "{err:?}");

    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "manifest byte-for-byte unchanged"
    );
    assert_eq!(fs::read(state.ledger_path()).unwrap(), ledger_before);
}

#[test]
fn an_added_or_missing_service_is_a_conflict_too() {
    let (_tmp, state) = temp_state();
    state
        .record_release(&manifest("2.0.0", &[("api", "b1")]), "jenkins")
        .unwrap();
    let err = state
        .record_release(
            &manifest("2.0.0", &[("api", "b1"), ("worker", "b1")]),
            "jenkins",
        )
        .unwrap_err();
    let RecordError::ManifestConflict { changed, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(changed[0].service, "worker");
    assert_eq!(changed[0].recorded, None);
}

#[test]
fn a_manifest_without_its_ledger_entry_gets_the_entry_on_the_next_run() {
    // What a process killed between the manifest write and the ledger append leaves.
    let (_tmp, first) = temp_state();
    first
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let (_tmp2, state) = temp_state();
    let path = state.release_path(&version("1.2.0"));
    fs::copy(first.release_path(&version("1.2.0")), &path).unwrap();

    let outcome = state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let RecordOutcome::LedgerCompleted {
        manifest_sha256,
        entry,
    } = outcome
    else {
        panic!("expected LedgerCompleted, got {outcome:?}");
    };
    assert_eq!(manifest_sha256, Digest::of(&fs::read(&path).unwrap()));
    assert_eq!(entry.payload["manifest_sha256"], manifest_sha256.as_str());
    let again = state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    assert!(
        matches!(again, RecordOutcome::Unchanged { .. }),
        "{again:?}"
    );
    assert_eq!(released_entries(&state).len(), 1);
}

#[test]
fn a_manifest_edited_after_recording_is_detected() {
    let (_tmp, state) = temp_state();
    state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let path = state.release_path(&version("1.2.0"));
    let edited = fs::read_to_string(&path)
        .unwrap()
        .replace("\"job_name\": \"hestino\"", "\"job_name\": \"other\"");
    fs::write(&path, edited).unwrap();
    let err = state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap_err();
    assert!(
        matches!(err, RecordError::ManifestAltered { seq: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_deleted_manifest_is_not_silently_recreated() {
    let (_tmp, state) = temp_state();
    state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    fs::remove_file(state.release_path(&version("1.2.0"))).unwrap();
    let err = state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap_err();
    assert!(
        matches!(err, RecordError::ManifestMissing { seq: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_manifest_without_services_is_refused() {
    let (_tmp, state) = temp_state();
    let err = state
        .record_release(&manifest("1.0.0", &[]), "jenkins")
        .unwrap_err();
    assert!(
        matches!(err, RecordError::InvalidManifest { .. }),
        "{err:?}"
    );
    assert!(state.releases().unwrap().is_empty());
}

#[test]
fn load_release_is_strict() {
    let (_tmp, state) = temp_state();
    let err = state.load_release(&version("9.9.9")).unwrap_err();
    assert!(matches!(err, RecordError::NotRecorded { .. }), "{err:?}");

    state
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap();
    let path = state.release_path(&version("1.2.0"));
    let good = fs::read_to_string(&path).unwrap();
    let api = digest("api@b1").to_string();
    for (what, bad) in [
        (
            "unknown field",
            good.replacen("\"project\"", "\"extra\": 1,\n  \"project\"", 1),
        ),
        ("bad digest", good.replace(&api, &api.to_uppercase())),
        (
            "other version",
            good.replace("\"version\": \"1.2.0\"", "\"version\": \"1.2.1\""),
        ),
        ("truncated", good[..good.len() / 2].to_owned()),
    ] {
        fs::write(&path, &bad).unwrap();
        let err = state.load_release(&version("1.2.0")).unwrap_err();
        assert!(
            matches!(err, RecordError::Malformed { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("1.2.0.json"), "{what}: {err}");
    }
}

#[test]
fn releases_lists_recorded_versions_and_skips_temp_files() {
    let (_tmp, state) = temp_state();
    state.record_release(&hestino("1.10.0", "b"), "j").unwrap();
    state.record_release(&hestino("1.2.0", "b"), "j").unwrap();
    fs::write(state.releases_dir().join(".1.3.0.json.123.1.tmp"), "{").unwrap();
    let listed: Vec<String> = state
        .releases()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, ["1.10.0", "1.2.0"]);
}

#[test]
fn env_pointers_round_trip_atomically_under_their_lock() {
    let (_tmp, state) = temp_state();
    let dev = EnvName::parse("dev").unwrap();
    assert_eq!(state.read_env(&dev).unwrap(), None);

    let pointer = EnvPointer {
        env: dev.clone(),
        version: version("1.2.0"),
        digests: [(verify::ServiceName::parse("api").unwrap(), digest("api@b1"))].into(),
        updated: OffsetDateTime::now_utc(),
        actor: "jenkins".into(),
    };
    state.write_env(&pointer).unwrap();
    assert_eq!(state.read_env(&dev).unwrap().as_ref(), Some(&pointer));

    let updated = state
        .update_env(&dev, "deploy 1.3.0", |current| {
            let mut next = current.expect("the pointer written above");
            next.version = version("1.3.0");
            Ok::<_, RecordError>(next)
        })
        .unwrap();
    assert_eq!(updated.version.as_str(), "1.3.0");
    assert_eq!(state.read_env(&dev).unwrap(), Some(updated));

    let prod = EnvName::parse("prod").unwrap();
    let err = state
        .update_env(&prod, "mistake", |_| Ok::<_, RecordError>(pointer.clone()))
        .unwrap_err();
    assert!(
        matches!(err, RecordError::InvalidEnvPointer { .. }),
        "{err:?}"
    );
    assert_eq!(state.read_env(&prod).unwrap(), None);

    fs::copy(state.env_path(&dev), state.env_path(&prod)).unwrap();
    let err = state.read_env(&prod).unwrap_err();
    assert!(matches!(err, RecordError::Malformed { .. }), "{err:?}");
}

#[test]
fn rendered_stacks_are_stored_per_env_and_version() {
    let (_tmp, state) = temp_state();
    let dev = EnvName::parse("dev").unwrap();
    let path = state
        .write_stack(&dev, &version("1.2.0"), b"services: {}\n")
        .unwrap();
    assert_eq!(path, state.root().join("stacks/dev/1.2.0.yml"));
    assert_eq!(fs::read(&path).unwrap(), b"services: {}\n");
}

#[test]
fn a_busy_ledger_is_a_lock_timeout_not_a_broken_ledger() {
    let (_tmp, state) = temp_state();
    let impatient = state.clone().with_lock_timeout(Duration::from_millis(100));
    let _held = state
        .lock("ledger", Duration::from_secs(1), "audit verify")
        .unwrap();
    let err = impatient
        .record_release(&hestino("1.2.0", "b1"), "jenkins")
        .unwrap_err();
    assert!(
        matches!(err, RecordError::Lock(LockError::Timeout { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("ledger.lock"), "{err}");
}
