//! Which engine a command talks to, seen from the binary: an engine that cannot be reached
//! exits 3 naming the environment, the endpoint and the cause; an endpoint that cannot be
//! used as configured exits 2. No real engine is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = r#"[project]
name = "hestino"

[registry]
host = "registry.example.com"

[services.api]
repository = "hestino/api"
context = "."

[environments.dev]
stack = "hestino-dev"
stack_file = "stack.yml"
"#;

fn run(dir: &Path, extra: &str, docker_config: &Path) -> Output {
    std::fs::write(
        dir.join("stack.yml"),
        "services:\n  api:\n    image: registry.example.com/hestino/api:1.0.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("release.toml"), format!("{CONFIG}{extra}\n")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_release"))
        .current_dir(dir)
        .args(["status", "--env", "dev"])
        .env_remove("RELEASE_CONFIG")
        .env_remove("RELEASE_REGISTRY")
        // The environment's keys must win over anything the process environment names.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("DOCKER_CONTEXT", "elsewhere")
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_engine_exits_3_naming_environment_endpoint_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(
        dir.path(),
        &format!("docker_host = \"tcp://127.0.0.1:{port}\""),
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let mut lines = stderr.lines();
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(&format!(
            "error: environment `dev`: cannot connect to the Docker Engine at tcp://127.0.0.1:{port} (plain HTTP): connection refused"
        )),
        "{stderr}"
    );
    assert_eq!(
        lines.next(),
        Some(
            "  hint: is dockerd running on 127.0.0.1, and does the environment's docker_host/docker_context name it?"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unknown_context_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "docker_context = \"qa\"", dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: environment `dev`: Docker CLI context `qa` does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: list contexts with `docker context ls`"),
        "{stderr}"
    );
}

#[test]
fn a_context_names_its_engine() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = hex::encode(sha2::Sha256::digest(b"qa"));
    let meta = dir.path().join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        format!(r#"{{"Name":"qa","Endpoints":{{"docker":{{"Host":"tcp://127.0.0.1:{port}","SkipTLSVerify":false}}}}}}"#),
    )
    .unwrap();
    let out = run(dir.path(), "docker_context = \"qa\"", dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "at context `qa`: tcp://127.0.0.1:{port} (plain HTTP): connection refused"
        )),
        "{stderr}"
    );
}

/// The gate reads the source environment's live state from its engine: a source whose
/// engine cannot be addressed as configured is a usage error (exit 2), not a refusal of
/// the release, and nothing is recorded.
#[test]
fn a_promotion_whose_source_names_an_unknown_context_exits_2_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stack.yml"),
        "services:\n  api:\n    image: registry.example.com/hestino/api:1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("release.toml"),
        format!(
            "{CONFIG}docker_context = \"qa\"\n\n[environments.prod]\nstack = \"hestino-prod\"\n\
             stack_file = \"stack.yml\"\npromote_from = \"dev\"\ndocker_host = \"unix:///nonexistent/docker.sock\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_release"))
        .current_dir(dir.path())
        .args(["promote", "--version", "1.0.0", "--to", "prod"])
        .env_remove("RELEASE_CONFIG")
        .env_remove("RELEASE_REGISTRY")
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environment `dev`: Docker CLI context `qa` does not exist"),
        "{stderr}"
    );
    let ledger =
        std::fs::read_to_string(dir.path().join(".release/ledger.jsonl")).unwrap_or_default();
    assert!(!ledger.contains("gate-refused"), "{ledger}");
}
