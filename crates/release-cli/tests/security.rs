//! Security review, the parts that need no Docker: path traversal through names, permissions
//! of the state directory, plain HTTP refused off loopback, malformed records refused rather
//! than partially trusted, and no panic on hostile input. The parts that need the testbed
//! (secrets in every output channel, child process argv, TLS against the real registry) are
//! in `tests/e2e/security.rs`. See RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use verify::{EntryKind, StateDir};

const CONFIG: &str = "[project]\nname = \"sec\"\n[registry]\nhost = \"127.0.0.1:1\"\n\
[services.api]\nrepository = \"sec/api\"\ncontext = \".\"\n\
[environments.dev]\nstack = \"sec-dev\"\nstack_file = \"stack.yml\"\n\
[environments.prod]\nstack = \"sec-prod\"\nstack_file = \"stack.yml\"\npromote_from = \"dev\"\n";

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("release.toml"), config).unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services:\n  api:\n    image: sec/api:1\n",
        )
        .unwrap();
        Project { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn release(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_release"))
            .current_dir(self.dir.path())
            .env("RELEASE_CONFIG", self.dir.path().join("release.toml"))
            .env("RELEASE_STATE_DIR", self.state())
            // Nothing here may reach a real engine or registry.
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("RELEASE_REGISTRY_RETRIES", "1")
            .env_remove("RELEASE_REGISTRY")
            .env_remove("RELEASE_ENV")
            .env_remove("RELEASE_VERSION")
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every path under `root`, recursively.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                stack.push(e.path());
            }
        }
        out.push(p);
    }
    out
}

/// Hostile versions and environment names on the command line: each is refused with exit 2
/// before anything is written, and nothing appears outside the project directory.
#[test]
fn path_traversal_through_cli_versions_and_env_names_is_refused() {
    let p = Project::new(CONFIG);
    let outside = p.dir.path().parent().unwrap().join(format!(
        "pwned-{}",
        p.dir.path().file_name().unwrap().to_string_lossy()
    ));
    let escape = format!("../../{}", outside.file_name().unwrap().to_string_lossy());
    let versions = [
        escape.as_str(),
        "../x",
        "..",
        ".hidden",
        "a/../../b",
        "/etc/passwd",
        "1.0\0evil",
        "1.0\n",
        "%2e%2e%2fx",
        "latest",
        "",
    ];
    for v in versions {
        if v.contains('\0') {
            continue; // argv cannot carry NUL; covered by the grammar's unit tests
        }
        for args in [
            vec!["push", "--version", v],
            vec!["deploy", "--env", "dev", "--version", v],
            vec!["promote", "--version", v, "--to", "prod", "--dry-run"],
            vec!["rollback", "--env", "dev", "--to-version", v],
        ] {
            let out = p.release(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", text(&out));
        }
    }
    for env in [escape.as_str(), "../dev", "dev/../../x", "/tmp/x", "DEV"] {
        for args in [
            vec!["deploy", "--env", env, "--version", "1.0.0"],
            vec!["check", "--env", env],
            vec!["promote", "--version", "1.0.0", "--to", env, "--dry-run"],
            vec!["rollback", "--env", env],
        ] {
            let out = p.release(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", text(&out));
        }
    }
    assert!(!outside.exists(), "{} was created", outside.display());
    for path in walk(p.dir.path()) {
        let rel = path
            .strip_prefix(p.dir.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !rel.contains("..") && !rel.contains("pwned"),
            "unexpected path {}",
            path.display()
        );
    }
}

/// Service, environment and stack names in release.toml end up in file paths and Swarm
/// names: a traversal in any of them is a config error (exit 2) naming the line.
#[test]
fn path_traversal_through_config_names_is_refused() {
    for (what, config) in [
        (
            "service",
            CONFIG.replace("[services.api]", "[services.\"../../api\"]"),
        ),
        (
            "environment",
            CONFIG.replace("[environments.dev]", "[environments.\"../dev\"]"),
        ),
        ("stack", CONFIG.replace("\"sec-dev\"", "\"../sec-dev\"")),
    ] {
        let p = Project::new(&config);
        let out = p.release(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(2), "{what}\n{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is not a safe name") && stderr.contains("release.toml:"),
            "{what}\n{}",
            text(&out)
        );
        assert!(!p.state().exists(), "{what}: state dir created");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A state directory `release` creates is 0700 all the way down, and every record file is
/// 0600, whatever the umask.
#[test]
fn state_dir_is_created_private_and_records_are_0600() {
    let p = Project::new(CONFIG);
    let state = StateDir::open(p.state()).unwrap();
    let manifest = json!({"project": "sec", "version": "1.0.0", "created": "2026-11-23T00:00:00Z",
        "git_commit": null, "jenkins": null,
        "services": {"api": {"repository": "sec/api", "tag": "1.0.0", "digest": format!("sha256:{}", "a".repeat(64)), "platform": null}}});
    let manifest: verify::ReleaseManifest = serde_json::from_value(manifest).unwrap();
    state.record_release(&manifest, "alice").unwrap();
    let out = p.release(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for path in walk(&p.state()) {
        let md = std::fs::metadata(&path).unwrap();
        let want = if md.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
}

/// Finding: a state directory that already existed group- or world-writable (a Jenkins
/// workspace made with umask 000, a shared /srv) was used as it was, so anyone on the host
/// could rewrite history. `release` now takes group and other write access away before
/// touching any record.
#[test]
fn a_preexisting_world_writable_state_dir_is_made_private() {
    let p = Project::new(CONFIG);
    let state = p.state();
    std::fs::DirBuilder::new()
        .mode(0o777)
        .create(&state)
        .unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for sub in ["releases", "envs"] {
        std::fs::create_dir(state.join(sub)).unwrap();
        std::fs::set_permissions(state.join(sub), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = p.release(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for dir in [
        state.clone(),
        state.join("releases"),
        state.join("envs"),
        state.join("stacks"),
        state.join("locks"),
    ] {
        assert_eq!(
            mode(&dir) & 0o022,
            0,
            "{} is writable by others",
            dir.display()
        );
    }
}

/// `insecure = true` (plain HTTP) is refused for any registry off loopback, including when
/// the host comes from `--registry`/`RELEASE_REGISTRY` rather than the file; no flag or
/// variable turns TLS verification off.
#[test]
fn plain_http_is_refused_off_loopback_whatever_the_host_source() {
    let config = CONFIG.replace(
        "host = \"127.0.0.1:1\"",
        "host = \"127.0.0.1:1\"\ninsecure = true",
    );
    let p = Project::new(&config);
    for host in [
        "registry.example.com",
        "10.1.2.3:5000",
        "[2001:db8::1]:5000",
    ] {
        let out = p.release(&["--registry", host, "image", "digest", "sec/api:1.0.0"]);
        assert_eq!(out.status.code(), Some(2), "{host}\n{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("plain HTTP is refused"),
            "{host}\n{}",
            text(&out)
        );
    }
    let config = CONFIG.replace(
        "host = \"127.0.0.1:1\"",
        "host = \"registry.example.com\"\ninsecure = true",
    );
    let p = Project::new(&config);
    let out = p.release(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // No knob that other tools use to disable verification is honoured.
    let help = p.release(&["image", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).to_lowercase();
    for knob in ["insecure", "skip-verify", "no-verify", "tls-verify"] {
        assert!(!help.contains(knob), "`release image --help` offers {knob}");
    }
}

/// Regression: config validation took any host starting with `127.` for loopback, so
/// `insecure = true` let plain HTTP go to `127.evil.com`.
#[test]
fn a_host_named_127_evil_com_is_not_loopback() {
    let config = CONFIG.replace(
        "host = \"127.0.0.1:1\"",
        "host = \"127.0.0.1:1\"\ninsecure = true",
    );
    let p = Project::new(&config);
    for host in ["127.evil.com", "127.evil.com:5000"] {
        let out = p.release(&["--registry", host, "image", "digest", "sec/api:1.0.0"]);
        assert_eq!(out.status.code(), Some(2), "{host}\n{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("plain HTTP is refused"),
            "{host}\n{}",
            text(&out)
        );
    }
}

fn records_with_a_ledger(p: &Project) -> PathBuf {
    let state = StateDir::open(p.state()).unwrap();
    for (kind, payload) in [
        (
            EntryKind::Released,
            json!({"manifest_sha256": format!("sha256:{}", "1".repeat(64)), "services": {}, "version": "1.0.0"}),
        ),
        (
            EntryKind::Deployed,
            json!({"changed": [], "digests": {}, "env": "dev", "jenkins": null, "previous_version": null,
                   "stack_sha256": format!("sha256:{}", "2".repeat(64)), "version": "1.0.0"}),
        ),
    ] {
        state.ledger().append(kind, "alice", payload).unwrap();
    }
    p.state().join("ledger.jsonl")
}

/// A malformed ledger line (garbage appended, a line cut short, an edited middle line) makes
/// every command that reads the ledger stop with exit 1 naming the file and the line; none
/// answers from the part it could read.
#[test]
fn commands_refuse_a_malformed_ledger_rather_than_trusting_part_of_it() {
    type Damage = fn(&str) -> String;
    let damage: [(&str, Damage); 3] = [
        ("garbage line", |l| format!("{l}{{\"seq\":3,garbage\n")),
        ("torn tail", |l| l[..l.len() - 30].to_owned()),
        ("edited middle line", |l| {
            l.replacen("\"alice\"", "\"mallory\"", 1)
        }),
    ];
    for (what, damage) in damage {
        let p = Project::new(CONFIG);
        let ledger = records_with_a_ledger(&p);
        let good = std::fs::read_to_string(&ledger).unwrap();
        std::fs::write(&ledger, damage(&good)).unwrap();
        for args in [
            vec!["audit", "verify"],
            vec!["audit", "--env", "dev"],
            vec!["audit"],
            vec!["promote", "--version", "1.0.0", "--to", "prod", "--dry-run"],
            vec!["rollback", "--env", "dev"],
        ] {
            let out = p.release(&args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: {args:?}\n{}",
                text(&out)
            );
            let all = text(&out);
            assert!(
                all.contains("line ") && (all.contains("ledger") || all.contains("chain")),
                "{what}: {args:?} does not say where\n{all}"
            );
        }
    }
}

/// A malformed release manifest (not JSON, an unknown field, a digest that is not one) is
/// refused with exit 1 naming the file, never read as far as it parses.
#[test]
fn audit_verify_refuses_a_malformed_manifest() {
    for (what, body) in [
        ("not JSON", "not json".to_owned()),
        ("empty", String::new()),
        (
            "bad digest",
            json!({"project":"sec","version":"1.0.0","created":"2026-11-23T00:00:00Z",
                   "git_commit":null,"jenkins":null,
                   "services":{"api":{"repository":"sec/api","tag":"1.0.0","digest":"sha256:zz"}}})
            .to_string(),
        ),
    ] {
        let p = Project::new(CONFIG);
        records_with_a_ledger(&p);
        let manifest = p.state().join("releases/1.0.0.json");
        std::fs::write(&manifest, body).unwrap();
        let out = p.release(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{what}\n{}", text(&out));
        assert!(
            text(&out).contains("manifest 1.0.0") || text(&out).contains("1.0.0.json"),
            "{what}: the manifest is not named\n{}",
            text(&out)
        );
    }
}

/// No input makes `release` panic (exit 101): a panic would print a message and, with
/// RUST_BACKTRACE set by CI, a backtrace, and is no documented exit code.
#[test]
fn hostile_input_never_panics() {
    let p = Project::new(CONFIG);
    let long = "9".repeat(100_000);
    let cases: Vec<Vec<&str>> = vec![
        vec!["image", "digest", "::::"],
        vec!["image", "digest", "a@sha256:"],
        vec!["image", "digest", "a:b@sha256:zz"],
        vec!["image", "digest", &long],
        vec!["image", "copy", "@", "@"],
        vec!["audit", "--at", "2026-13-45T99:99:99Z"],
        vec!["audit", "verify", "--expect-head", "sha256:"],
        vec![
            "deploy",
            "--env",
            "dev",
            "--version",
            "1.0.0",
            "--timeout",
            "99999999999999h",
        ],
        vec!["deploy", "--env", "dev", "--version", &long],
        vec!["check", "--env", "dev", "--concurrency", "0"],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_release"))
            .current_dir(p.dir.path())
            .env("RELEASE_CONFIG", p.dir.path().join("release.toml"))
            .env("RELEASE_STATE_DIR", p.state())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("RELEASE_REGISTRY_RETRIES", "1")
            .env("RUST_BACKTRACE", "1")
            .args(&args)
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=4)),
            "{:?}: undocumented exit\n{}",
            &args[..args.len().min(3)],
            text(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            text(&out)
        );
    }
}

/// Finding (fixed): `promote --dry-run` with the engine or registry unreachable printed
/// "gate refused" and exited 1, a verdict on the release, where the contract (and the real
/// promotion) says 3: the gate fails closed and the outage is named.
#[test]
fn promote_dry_run_with_the_engine_unreachable_exits_3_not_1() {
    let p = Project::new(CONFIG);
    records_with_a_ledger(&p);
    let out = p.release(&["promote", "--version", "1.0.0", "--to", "prod", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not be evaluated (dry run): ")
            && stderr.contains("cannot connect to the Docker Engine")
            && stderr.contains("nothing was deployed"),
        "{}",
        text(&out)
    );
}
