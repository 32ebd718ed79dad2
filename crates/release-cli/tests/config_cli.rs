//! What the binary does with a config it cannot use: exit code 2, every problem on
//! stderr, nothing on stdout, and a hint in the command's terms when there is no file.
//! The validation itself is the `config` crate's, tested there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Two problems in one file: an unknown key and a stack name that could escape a path.
const BROKEN: &str = r#"[project]
name = "hestino"

[registry]
hots = "x"
host = "registry.dreamconsistency.com"

[services.api]
repository = "hestino/api"
context = "ctx"

[environments.dev]
stack = "../x"
stack_file = "stack.yml"
"#;

const STACK: &str =
    "services:\n  api:\n    image: registry.dreamconsistency.com/hestino/api:1.0.0\n";

#[test]
fn the_binary_exits_2_and_prints_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("stack.yml"), STACK).unwrap();
    std::fs::write(dir.path().join("release.toml"), BROKEN).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_release"))
        .current_dir(dir.path())
        .args(["status", "--env", "dev"])
        .env_remove("RELEASE_CONFIG")
        .env_remove("RELEASE_REGISTRY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: 2 problems in release.toml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("release.toml:5: unknown key `hots`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stack name `../x` is not a safe name"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_config_file_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_release"))
        .current_dir(dir.path())
        .args(["status", "--env", "dev"])
        .env_remove("RELEASE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read config release.toml"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: pass --config FILE"), "{stderr}");
}
