//! What each command prints, human and `--json`, for everything that runs without a Docker
//! Engine or a registry: the help texts, `audit` on a committed state directory
//! (`crates/verify/tests/fixtures/state-v1`, always copied first), `check` against local
//! targets, and the error paths of the other commands (unknown environment or service,
//! missing or malformed config, a refused version or reference, an unreachable engine
//! or registry at `127.0.0.1:1`).
//!
//! Each command runs in its project's temp dir with `RELEASE_CONFIG` and `RELEASE_STATE_DIR`
//! pointing into it (not shown on the `$ release …` line of a transcript).
//!
//! Every case asserts its exit code; the transcript (command line, exit code, stdout,
//! stderr) is a snapshot. Filters keep them stable: the temp directory is `[TMP]`,
//! generated RFC 3339 times `[TIME]`, sha256 digests `sha256:[DIGEST]` (the fixture's
//! made-up digests of one repeated character are kept, abbreviated, so a row shows which
//! image it names), durations `[DURATION]`, timing fields of `--json` documents `"[N]"`, the
//! local server's port `[PORT]` and this machine's host name `[HOST]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The head of the fixture's ledger (pinned by `crates/verify/tests/fixture.rs` too).
const FIXTURE_HEAD: &str =
    "sha256:94456069ad649ef070096536c45726bc9564a525d089ac40d92916257c444276";

/// Nothing here reaches a real engine or registry: both are `127.0.0.1:1`, where nobody
/// listens. `dev` has checks that cannot reach their targets, `prod` none.
const CONFIG: &str = r#"[project]
name = "hestino"
version_pattern = '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'

[registry]
host = "127.0.0.1:1"

[services.api]
repository = "hestino/api"
context = "ctx"

[services.worker]
repository = "hestino/worker"
context = "ctx"

[environments.dev]
stack = "hestino-dev"
stack_file = "stack.yml"
docker_host = "tcp://127.0.0.1:1"

[[environments.dev.checks]]
kind = "http"
name = "api answers /health"
service = "api"
url = "http://127.0.0.1:1/health"
timeout = "1s"
retry_interval = "10s"
deadline = "1s"

[[environments.dev.checks]]
kind = "tcp"
name = "worker accepts connections"
service = "worker"
address = "127.0.0.1:1"
timeout = "1s"
retry_interval = "10s"
deadline = "1s"

[environments.prod]
stack = "hestino-prod"
stack_file = "stack.yml"
docker_host = "tcp://127.0.0.1:1"
promote_from = "dev"
approval_required = true
"#;

const STACK: &str = "services:\n  api:\n    image: 127.0.0.1:1/hestino/api:1.0.0\n  worker:\n    image: 127.0.0.1:1/hestino/worker:1.0.0\n";

/// A project in a temp dir: `release.toml`, its stack file and build context, and
/// optionally a copy of the fixture state directory as `state/`.
struct Project {
    dir: tempfile::TempDir,
    /// Extra filters: (regex, replacement).
    filters: Vec<(String, String)>,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verify/tests/fixtures/state-v1")
}

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

impl Project {
    fn with_config(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        std::fs::write(dir.path().join("ctx/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("stack.yml"), STACK).unwrap();
        std::fs::write(dir.path().join("release.toml"), config).unwrap();
        Project {
            dir,
            filters: Vec::new(),
        }
    }

    /// The standard config and a copy of the fixture state directory.
    fn with_fixture() -> Project {
        let project = Project::with_config(CONFIG);
        copy_dir(&fixture(), &project.state());
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Replaces `from` by `to` in a file of the project, which must contain it.
    fn edit(&self, name: &str, from: &str, to: &str) {
        let file = self.path().join(name);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{name} holds no {from:?}");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    }

    /// `release ARGS` with a clean environment: no inherited `RELEASE_*`, `DOCKER_*` or
    /// Jenkins variables, no colours, `HOME` in the temp dir (no Docker config or
    /// contexts), the local engine at `127.0.0.1:1`, one registry attempt, a fixed actor.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command();
        cmd.current_dir(self.path())
            .env("HOME", self.path())
            .env("RELEASE_CONFIG", self.path().join("release.toml"))
            .env("RELEASE_STATE_DIR", self.state())
            .env("RELEASE_ACTOR", "tester")
            .env("RELEASE_REGISTRY_RETRIES", "1")
            .env("DOCKER_HOST", "tcp://127.0.0.1:1")
            .args(args);
        cmd
    }

    /// Runs `release ARGS`, asserts its exit code and snapshots its transcript as `name`.
    fn run(&self, name: &str, args: &[&str], code: i32) -> Output {
        let out = self.command(args).output().unwrap();
        assert_transcript(name, args, &out, code, self.settings(), false);
        out
    }

    /// Runs `release ARGS` and `release --json ARGS`, both with exit code `code`; snapshots
    /// `name` and `name@json`.
    fn both(&self, name: &str, args: &[&str], code: i32) -> (Output, Output) {
        let human = self.run(name, args, code);
        let json_args: Vec<&str> = std::iter::once("--json")
            .chain(args.iter().copied())
            .collect();
        let out = self.command(&json_args).output().unwrap();
        assert_transcript(
            &format!("{name}@json"),
            &json_args,
            &out,
            code,
            self.settings(),
            true,
        );
        (human, out)
    }

    fn settings(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        for dir in [
            self.path().to_path_buf(),
            self.path().canonicalize().unwrap(),
        ] {
            settings.add_filter(&regex_escape(&dir.display().to_string()), "[TMP]");
        }
        common_filters(&mut settings);
        for (from, to) in &self.filters {
            settings.add_filter(from, to.as_str());
        }
        settings
    }
}

fn clean_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_release"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("RELEASE_")
            || key.starts_with("DOCKER_")
            || [
                "GIT_COMMIT",
                "BUILD_URL",
                "BUILD_NUMBER",
                "JOB_NAME",
                "RUST_LOG",
                "COLUMNS",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("NO_COLOR", "1").env("TERM", "dumb");
    cmd
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn common_filters(settings: &mut insta::Settings) {
    // Times a command generated: with a fraction of a second, or of today.
    let today = time::OffsetDateTime::now_utc().date();
    settings.add_filter(
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(?:Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    );
    settings.add_filter(
        &format!(r"\b{today}T\d{{2}}:\d{{2}}:\d{{2}}(?:Z|[+-]\d{{2}}:\d{{2}})"),
        "[TIME]",
    );
    // The fixture's made-up digests (one character 64 times) stay legible; real ones go.
    for c in "0123456789abcdef".chars() {
        let run = c.to_string().repeat(64);
        settings.add_filter(
            &format!("sha256:{run}"),
            format!("sha256:{}…", &run[..8]).as_str(),
        );
    }
    settings.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    // Durations: a table cell keeps two spaces after it, whatever its width was.
    settings.add_filter(r"\bTIME +ATTEMPTS\b", "TIME  ATTEMPTS");
    settings.add_filter(r"\b\d+(?:\.\d+)?(?:ms|s) {2,}", "[DURATION]  ");
    settings.add_filter(r"\b\d+(?:\.\d+)?(?:ms|s)\b", "[DURATION]");
    settings.add_filter(
        r#""(seconds|at|slowest|latency_ms)": -?[0-9][0-9.eE+-]*"#,
        r#""$1": "[N]""#,
    );
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            settings.add_filter(&format!(r"@{}\b", regex_escape(host)), "@[HOST]");
        }
    }
}

/// `release ARGS` as a shell line.
fn shell_words(args: &[&str]) -> String {
    std::iter::once(&"release")
        .chain(args)
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\'', '"', '$', '*']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts the exit code and what every output must be (no ANSI escape; with `--json`,
/// one JSON document on stdout, an error document carrying the exit code and no empty
/// hint), then snapshots the transcript.
fn assert_transcript(
    name: &str,
    args: &[&str],
    out: &Output,
    code: i32,
    settings: insta::Settings,
    json: bool,
) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        shell_words(args)
    );
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "ANSI escape in the output of {}:\n{stdout:?}\n{stderr:?}",
        shell_words(args)
    );
    if json {
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not one JSON document ({e}):\n{stdout}",
                shell_words(args)
            )
        });
        if let Some(error) = doc.get("error") {
            assert_eq!(error["exit_code"], code, "{doc}");
            assert_ne!(error["hint"], "", "an empty hint: {doc}");
            assert_ne!(error["message"], "", "an empty message: {doc}");
        }
    }
    let transcript = format!(
        "$ {}\nexit: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        shell_words(args),
        out.status.code().unwrap_or(-1)
    );
    settings.bind(|| insta::assert_snapshot!(name, transcript));
}

fn head_of(out: &Output) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["head"].as_str().unwrap_or_default().to_owned()
}

/// An HTTP server on 127.0.0.1 answering `/health` with 200 `{"status":"ok"}` and
/// anything else with 500, for as long as the test process runs.
fn local_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // One thread per connection: a TCP check's connection sends nothing.
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(mut stream: std::net::TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    let (status, body) = if line.starts_with("GET /health ") {
        ("200 OK", r#"{"status":"ok"}"#)
    } else {
        ("500 Internal Server Error", r#"{"status":"down"}"#)
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

// ---------------------------------------------------------------------------------------
// Help: the examples users read.

fn help(name: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command()
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .args(args)
        .output()
        .unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&dir.path().display().to_string()), "[TMP]");
    assert_transcript(name, args, &out, 0, settings, false);
    assert!(out.stderr.is_empty(), "{name}: help on stderr");
}

#[test]
fn help_of_the_top_level_command_lists_every_subcommand_and_examples() {
    help("help_release", &["--help"]);
}

#[test]
fn help_of_each_subcommand_shows_its_exit_codes_and_examples() {
    for sub in [
        "build", "push", "deploy", "rollback", "retire", "check", "status", "image", "promote",
        "audit",
    ] {
        help(&format!("help_{sub}"), &[sub, "--help"]);
    }
}

#[test]
fn help_of_the_nested_subcommands_documents_their_arguments() {
    for (sub, nested) in [
        ("image", "digest"),
        ("image", "copy"),
        ("image", "verify"),
        ("audit", "verify"),
    ] {
        help(&format!("help_{sub}_{nested}"), &[sub, nested, "--help"]);
    }
}

#[test]
fn json_does_not_change_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        clean_command()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let plain = run(&["deploy", "--help"]);
    let json = run(&["--json", "deploy", "--help"]);
    assert_eq!(json.status.code(), Some(0));
    assert_eq!(plain.stdout, json.stdout);
}

#[test]
fn no_subcommand_exits_2_with_the_usage() {
    // Like every clap usage error (see below): under --json, one error document too.
    let project = Project::with_config(CONFIG);
    project.run("no_subcommand", &[], 2);
    let json = project.run("no_subcommand@json", &["--json"], 2);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["error"]["exit_code"], 2);
}

// ---------------------------------------------------------------------------------------
// audit on the fixture state directory.

#[test]
fn audit_verify_on_an_intact_ledger_prints_the_head_hash() {
    let project = Project::with_fixture();
    let (human, json) = project.both("audit_verify_intact", &["audit", "verify"], 0);
    assert!(String::from_utf8_lossy(&human.stdout).contains(&format!("head: {FIXTURE_HEAD}")));
    assert_eq!(head_of(&json), FIXTURE_HEAD);
}

#[test]
fn audit_verify_with_the_archived_head_exits_0() {
    let project = Project::with_fixture();
    project.both(
        "audit_verify_expected_head",
        &["audit", "verify", "--expect-head", FIXTURE_HEAD],
        0,
    );
}

#[test]
fn audit_verify_with_a_different_archived_head_exits_1_naming_both() {
    let project = Project::with_fixture();
    let other = format!("sha256:{}", "0".repeat(64));
    project.both(
        "audit_verify_other_head",
        &["audit", "verify", "--expect-head", &other],
        1,
    );
}

#[test]
fn audit_verify_on_an_edited_ledger_line_exits_1_naming_the_line() {
    let project = Project::with_fixture();
    project.edit(
        "state/ledger.jsonl",
        "\"actor\":\"alice@build-host\"",
        "\"actor\":\"mallory@build-host\"",
    );
    project.both("audit_verify_edited_line", &["audit", "verify"], 1);
}

#[test]
fn audit_verify_on_an_altered_manifest_exits_1_naming_the_version() {
    let project = Project::with_fixture();
    project.edit(
        "state/releases/1.1.0.json",
        &"c".repeat(64),
        &"d".repeat(64),
    );
    project.both("audit_verify_altered_manifest", &["audit", "verify"], 1);
}

#[test]
fn audit_verify_on_a_mistyped_state_directory_exits_2_and_creates_nothing() {
    // Regression: a missing state directory used to pass verification as an empty, intact
    // ledger (only --expect-head caught it) and was left behind, created.
    let project = Project::with_config(CONFIG);
    assert!(!project.state().exists());
    project.both("audit_verify_empty", &["audit", "verify"], 2);
    assert!(!project.state().exists(), "the audit created the directory");
}

#[test]
fn audit_verify_on_an_existing_empty_state_directory_has_no_head() {
    let project = Project::with_config(CONFIG);
    std::fs::create_dir(project.state()).unwrap();
    project.both("audit_verify_empty_dir", &["audit", "verify"], 0);
}

#[test]
fn audit_lists_every_deployment_with_its_actor_approver_and_evidence() {
    let project = Project::with_fixture();
    project.both("audit_history", &["audit"], 0);
}

#[test]
fn audit_of_one_environment_and_one_service() {
    let project = Project::with_fixture();
    project.both(
        "audit_history_prod_api",
        &["audit", "--env", "prod", "--service", "api"],
        0,
    );
}

#[test]
fn audit_at_a_past_moment_shows_what_was_live_then() {
    let project = Project::with_fixture();
    // Between the first deploy to dev (1.0.0) and the second (1.1.0).
    let (_, json) = project.both(
        "audit_at_between_deploys",
        &["audit", "--env", "dev", "--at", "2026-12-01T10:53:38.282Z"],
        0,
    );
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[0]["version"], "1.0.0", "{rows}");
}

#[test]
fn audit_of_an_empty_state_directory_says_no_deployments() {
    let project = Project::with_config(CONFIG);
    std::fs::create_dir(project.state()).unwrap();
    project.both("audit_history_empty", &["audit"], 0);
}

#[test]
fn audit_of_a_mistyped_state_directory_exits_2_rather_than_reporting_no_deployments() {
    let project = Project::with_config(CONFIG);
    project.both("audit_history_missing_state", &["audit"], 2);
    assert!(!project.state().exists());
}

#[test]
fn audit_on_a_broken_ledger_exits_1_and_points_at_audit_verify() {
    let project = Project::with_fixture();
    project.edit(
        "state/ledger.jsonl",
        "\"actor\":\"alice@build-host\"",
        "\"actor\":\"mallory@build-host\"",
    );
    project.both("audit_history_broken_ledger", &["audit"], 1);
}

#[test]
fn audit_at_a_time_it_cannot_read_exits_2_with_an_example() {
    let project = Project::with_fixture();
    project.both("audit_at_unreadable", &["audit", "--at", "yesterday"], 2);
}

#[test]
fn audit_of_an_unknown_service_exits_2_and_names_the_known_ones() {
    let project = Project::with_fixture();
    project.both("audit_unknown_service", &["audit", "--service", "nope"], 2);
}

#[test]
fn audit_live_with_the_engines_unreachable_exits_3() {
    let project = Project::with_fixture();
    project.both("audit_live_engine_unreachable", &["audit", "--live"], 3);
}

// ---------------------------------------------------------------------------------------
// Config errors, shared by every command.

#[test]
fn a_missing_config_exits_2_naming_the_ways_to_pass_one() {
    let project = Project::with_config(CONFIG);
    std::fs::remove_file(project.path().join("release.toml")).unwrap();
    project.both("config_missing", &["status", "--env", "dev"], 2);
}

#[test]
fn a_toml_syntax_error_exits_2_at_its_line() {
    let project =
        Project::with_config(&CONFIG.replace("[environments.prod]", "[environments.prod\n"));
    project.both("config_toml_syntax_error", &["status", "--env", "dev"], 2);
}

#[test]
fn a_check_without_its_service_exits_2_at_the_checks_line_and_its_environment_is_not_called_unknown()
 {
    let project = Project::with_config(&CONFIG.replacen("service = \"api\"\n", "", 1));
    project.both(
        "config_check_without_service",
        &["check", "--env", "dev"],
        2,
    );
}

#[test]
fn an_unknown_key_exits_2_with_a_suggestion() {
    let project = Project::with_config(&CONFIG.replace("stack_file", "stackfile"));
    project.both(
        "config_unknown_key",
        &["deploy", "--env", "dev", "--version", "1.0.0"],
        2,
    );
}

#[test]
fn a_missing_required_flag_exits_2_with_the_usage_and_under_json_one_error_document() {
    // Regression: under --json, clap's usage errors left stdout empty.
    let project = Project::with_config(CONFIG);
    let (human, json) = project.both("usage_missing_env", &["status"], 2);
    assert!(human.stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["error"]["exit_code"], 2);
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("--env"),
        "{doc}"
    );
}

#[test]
fn config_problems_under_json_are_listed_one_per_detail() {
    // Regression: every problem and its hint were one string in `message`.
    let project = Project::with_config(&CONFIG.replace("stack_file", "stackfile").replacen(
        "service = \"api\"\n",
        "",
        1,
    ));
    let (human, json) = project.both("config_problems_as_details", &["status", "--env", "dev"], 2);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("4 problems in ") && message.ends_with("release.toml:"),
        "{message}"
    );
    let details = doc["error"]["details"].as_array().unwrap();
    assert!(details.len() >= 2, "{doc}");
    // People read the same lines as before.
    let stderr = String::from_utf8_lossy(&human.stderr);
    for d in details {
        assert!(
            stderr.contains(d.as_str().unwrap()),
            "{d} not in:\n{stderr}"
        );
    }
}

#[test]
fn an_unknown_environment_exits_2_listing_the_defined_ones() {
    let project = Project::with_fixture();
    let cases: [(&str, &[&str]); 8] = [
        ("status", &["status", "--env", "nope"]),
        ("deploy", &["deploy", "--env", "nope", "--version", "1.0.0"]),
        ("rollback", &["rollback", "--env", "nope"]),
        ("retire", &["retire", "--env", "nope"]),
        ("check", &["check", "--env", "nope"]),
        (
            "promote",
            &["promote", "--version", "1.1.0", "--to", "nope"],
        ),
        ("audit", &["audit", "--env", "nope"]),
        (
            "image_verify",
            &[
                "image",
                "verify",
                "127.0.0.1:1/hestino/api:1.0.0",
                "--env",
                "nope",
            ],
        ),
    ];
    for (name, args) in cases {
        project.both(&format!("unknown_env_{name}"), args, 2);
    }
}

#[test]
fn a_registry_override_that_is_not_a_host_exits_2() {
    let project = Project::with_config(CONFIG);
    project.both(
        "registry_override_not_a_host",
        &[
            "--registry",
            "https://r.example.com/v2",
            "image",
            "digest",
            "hestino/api:1.0.0",
        ],
        2,
    );
}

#[test]
fn a_state_dir_that_is_a_file_is_refused_as_bad_input() {
    // Regression: this was exit 3 (infrastructure) with no hint.
    let project = Project::with_config(CONFIG);
    std::fs::write(project.path().join("not-a-dir"), "").unwrap();
    let file = project.path().join("not-a-dir");
    project.both(
        "state_dir_is_a_file",
        &["--state-dir", file.to_str().unwrap(), "audit"],
        2,
    );
}

#[test]
fn a_timeout_that_is_not_a_duration_exits_2() {
    let project = Project::with_fixture();
    project.both(
        "timeout_not_a_duration",
        &[
            "deploy",
            "--env",
            "dev",
            "--version",
            "1.1.0",
            "--timeout",
            "bogus",
        ],
        2,
    );
}

// ---------------------------------------------------------------------------------------
// Versions and services.

#[test]
fn latest_is_refused_as_a_version() {
    let project = Project::with_fixture();
    project.both(
        "version_latest",
        &["deploy", "--env", "dev", "--version", "latest"],
        2,
    );
}

#[test]
fn a_version_a_docker_tag_cannot_carry_is_refused() {
    let project = Project::with_fixture();
    project.both(
        "version_with_a_space",
        &["build", "--version", "Bad Ver"],
        2,
    );
}

#[test]
fn a_version_outside_the_projects_pattern_is_refused() {
    let project = Project::with_fixture();
    project.both("version_not_semver", &["push", "--version", "1.0"], 2);
}

#[test]
fn an_unknown_service_exits_2_listing_the_services() {
    let project = Project::with_fixture();
    project.both(
        "unknown_service_build",
        &["build", "--version", "1.0.0", "--service", "nope"],
        2,
    );
    project.both(
        "unknown_service_push",
        &["push", "--version", "1.0.0", "--service", "nope"],
        2,
    );
}

// ---------------------------------------------------------------------------------------
// build, push, deploy, rollback, retire, promote, status: up to the engine.

#[test]
fn build_without_a_dockerfile_exits_2_before_the_engine_is_asked_with_a_hint_about_the_dockerfile()
{
    let project = Project::with_fixture();
    std::fs::remove_file(project.path().join("ctx/Dockerfile")).unwrap();
    project.both(
        "build_missing_dockerfile",
        &["build", "--version", "1.3.0"],
        2,
    );
}

#[test]
fn build_with_the_engine_unreachable_exits_3_and_names_the_docker_variables_not_an_environment() {
    let project = Project::with_fixture();
    project.both(
        "build_engine_unreachable",
        &["build", "--version", "1.3.0"],
        3,
    );
}

#[test]
fn push_with_the_engine_unreachable_exits_3_and_names_the_docker_variables_not_an_environment() {
    let project = Project::with_fixture();
    project.both(
        "push_engine_unreachable",
        &["push", "--version", "1.3.0"],
        3,
    );
}

#[test]
fn deploy_of_an_unrecorded_release_exits_2_telling_to_push_it_first() {
    let project = Project::with_fixture();
    project.both(
        "deploy_unrecorded_release",
        &["deploy", "--env", "dev", "--version", "9.9.9"],
        2,
    );
}

#[test]
fn deploy_with_the_environments_engine_unreachable_exits_3() {
    let project = Project::with_fixture();
    project.both(
        "deploy_engine_unreachable",
        &["deploy", "--env", "dev", "--version", "1.1.0"],
        3,
    );
}

#[test]
fn rollback_to_an_unrecorded_release_exits_2() {
    let project = Project::with_fixture();
    project.both(
        "rollback_unrecorded_release",
        &["rollback", "--env", "dev", "--to-version", "9.9.9"],
        2,
    );
}

#[test]
fn rollback_of_an_environment_never_deployed_exits_2_asking_for_a_version() {
    let project = Project::with_config(&format!(
        "{CONFIG}\n[environments.qa]\nstack = \"hestino-qa\"\nstack_file = \"stack.yml\"\ndocker_host = \"tcp://127.0.0.1:1\"\n"
    ));
    copy_dir(&fixture(), &project.state());
    project.both("rollback_nothing_earlier", &["rollback", "--env", "qa"], 2);
}

#[test]
fn retire_on_an_environment_that_is_not_blue_green_exits_2() {
    let project = Project::with_fixture();
    project.both("retire_not_blue_green", &["retire", "--env", "dev"], 2);
}

#[test]
fn promote_to_an_environment_without_promote_from_exits_2() {
    let project = Project::with_fixture();
    project.both(
        "promote_not_a_target",
        &["promote", "--version", "1.1.0", "--to", "dev"],
        2,
    );
}

#[test]
fn promote_of_an_unrecorded_release_lists_every_failed_condition() {
    // The gate fails closed (3) because the source engine cannot be reached, and its
    // verdict line says so (a regression: it said only "gate refused" above an error
    // saying it could not be evaluated).
    let project = Project::with_fixture();
    project.both(
        "promote_unrecorded_release",
        &["promote", "--version", "9.9.9", "--to", "prod", "--dry-run"],
        3,
    );
}

#[test]
fn status_with_the_environments_engine_unreachable_exits_3() {
    let project = Project::with_fixture();
    project.both("status_engine_unreachable", &["status", "--env", "dev"], 3);
}

// ---------------------------------------------------------------------------------------
// image: references are checked before any request.

#[test]
fn image_digest_of_a_bad_reference_exits_2() {
    let project = Project::with_config(CONFIG);
    project.both("image_digest_bad_ref", &["image", "digest", "Bad Ref"], 2);
}

#[test]
fn image_digest_refuses_every_reference_when_one_is_bad() {
    let project = Project::with_config(CONFIG);
    project.both(
        "image_digest_one_bad_ref_of_two",
        &[
            "image",
            "digest",
            "hestino/api:1.0.0",
            "hestino/Worker:1.0.0",
        ],
        2,
    );
}

#[test]
fn image_copy_of_a_bad_reference_exits_2() {
    let project = Project::with_config(CONFIG);
    project.both(
        "image_copy_bad_ref",
        &["image", "copy", "Bad Ref", "hestino/api:stable"],
        2,
    );
}

#[test]
fn image_digest_with_the_registry_unreachable_exits_3() {
    let project = Project::with_config(CONFIG);
    project.both(
        "image_digest_registry_unreachable",
        &["image", "digest", "hestino/api:1.0.0"],
        3,
    );
}

#[test]
fn image_verify_for_an_environment_that_trusts_no_key_exits_2() {
    let project = Project::with_config(CONFIG);
    project.both(
        "image_verify_no_trusted_key",
        &["image", "verify", "hestino/api:1.0.0", "--env", "prod"],
        2,
    );
}

// ---------------------------------------------------------------------------------------
// check: local targets, no engine.

#[test]
fn check_of_an_environment_without_checks_exits_2_with_an_example() {
    let project = Project::with_fixture();
    project.both("check_no_checks", &["check", "--env", "prod"], 2);
}

#[test]
fn check_with_every_target_unreachable_exits_3_and_records_the_run() {
    let project = Project::with_fixture();
    project.run("check_unreachable", &["check", "--env", "dev"], 3);
    project.run(
        "check_unreachable@json",
        &["--json", "check", "--env", "dev"],
        3,
    );
    // Both runs were appended to the ledger, which still verifies.
    let out = project.run("check_unreachable_then_verify", &["audit", "verify"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger: 19 entries"));
}

#[test]
fn check_against_a_healthy_target_passes() {
    let port = local_server();
    let mut project = Project::with_config(&format!(
        "{CONFIG}\n[environments.qa]\nstack = \"hestino-qa\"\nstack_file = \"stack.yml\"\ndocker_host = \"tcp://127.0.0.1:1\"\n\n\
         [[environments.qa.checks]]\nkind = \"http\"\nname = \"api answers /health\"\nservice = \"api\"\n\
         url = \"http://127.0.0.1:{port}/health\"\njson_pointer = \"/status\"\njson_equals = \"ok\"\n\
         timeout = \"5s\"\nretry_interval = \"10s\"\ndeadline = \"5s\"\n\n\
         [[environments.qa.checks]]\nkind = \"tcp\"\nname = \"api accepts connections\"\nservice = \"api\"\n\
         address = \"127.0.0.1:{port}\"\ntimeout = \"5s\"\nretry_interval = \"10s\"\ndeadline = \"5s\"\n"
    ));
    project.filters.push((
        format!(r"127\.0\.0\.1:{port}\b"),
        "127.0.0.1:[PORT]".to_owned(),
    ));
    project.both("check_passes", &["check", "--env", "qa"], 0);
}

#[test]
fn check_against_a_failing_target_exits_1() {
    let port = local_server();
    let mut project = Project::with_config(&format!(
        "{CONFIG}\n[environments.qa]\nstack = \"hestino-qa\"\nstack_file = \"stack.yml\"\ndocker_host = \"tcp://127.0.0.1:1\"\n\n\
         [[environments.qa.checks]]\nkind = \"http\"\nname = \"api answers /ready\"\nservice = \"api\"\n\
         url = \"http://127.0.0.1:{port}/ready\"\n\
         timeout = \"3s\"\nretry_interval = \"10s\"\ndeadline = \"3s\"\n"
    ));
    project.filters.push((
        format!(r"127\.0\.0\.1:{port}\b"),
        "127.0.0.1:[PORT]".to_owned(),
    ));
    project.both("check_fails", &["check", "--env", "qa"], 1);
}

#[test]
fn no_test_writes_into_the_committed_fixture() {
    // Every test above works on a copy: the committed fixture keeps its 17 entries.
    let ledger = std::fs::read_to_string(fixture().join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 17);
}
