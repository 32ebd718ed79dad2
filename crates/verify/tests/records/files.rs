use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use verify::LockError;
use verify::atomic::{WriteOnce, write_atomic, write_once};

use crate::util::temp_state;

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Only hidden temp files may ever be left next to a record.
fn visible_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn state_dir_is_created_private_with_its_layout() {
    let (_tmp, state) = temp_state();
    for dir in ["", "releases", "stacks", "envs", "locks"] {
        assert_eq!(mode(&state.root().join(dir)), 0o700, "{dir:?}");
    }
}

#[test]
fn atomic_write_replaces_the_file_with_mode_0600_and_leaves_no_temp_file() {
    let (_tmp, state) = temp_state();
    let path = state.root().join("envs/dev.json");
    write_atomic(&path, b"first\n").unwrap();
    write_atomic(&path, b"second\n").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second\n");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(visible_names(&state.root().join("envs")), ["dev.json"]);
}

#[test]
fn write_once_never_replaces_an_existing_file() {
    let (_tmp, state) = temp_state();
    let path = state.root().join("releases/1.0.0.json");
    assert_eq!(write_once(&path, b"original").unwrap(), WriteOnce::Created);
    assert_eq!(
        write_once(&path, b"other").unwrap(),
        WriteOnce::AlreadyPresent
    );
    assert_eq!(fs::read(&path).unwrap(), b"original");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        visible_names(&state.root().join("releases")),
        ["1.0.0.json"]
    );
}

#[test]
fn write_error_names_the_file() {
    let (_tmp, state) = temp_state();
    let path = state.root().join("no-such-dir/x.json");
    let msg = write_atomic(&path, b"x").unwrap_err().to_string();
    assert!(msg.contains("no-such-dir"), "{msg}");
}

#[test]
fn lock_timeout_names_the_lock_file_and_its_holder() {
    let (_tmp, state) = temp_state();
    let held = state
        .lock("releases", Duration::from_secs(1), "record release 1.2.0")
        .unwrap();
    let started = Instant::now();
    let err = state
        .lock("releases", Duration::from_millis(200), "another")
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "wait was not bounded"
    );
    let LockError::Timeout { path, holder, .. } = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert_eq!(path, &state.locks_dir().join("releases.lock"));
    let holder = holder.as_ref().expect("holder should be readable");
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.purpose, "record release 1.2.0");
    let msg = err.to_string();
    assert!(
        msg.contains("releases.lock") && msg.contains("record release 1.2.0"),
        "{msg}"
    );

    drop(held);
    assert!(!state.locks_dir().join("releases.holder").exists());
    let _again = state
        .lock("releases", Duration::from_millis(200), "again")
        .unwrap();
}

#[test]
fn lock_names_cannot_escape_the_locks_directory() {
    let (_tmp, state) = temp_state();
    for bad in ["", "../x", "a/b", ".hidden"] {
        let err = state
            .lock(bad, Duration::from_millis(10), "test")
            .unwrap_err();
        assert!(matches!(err, LockError::BadName { .. }), "{bad:?}: {err:?}");
    }
}
