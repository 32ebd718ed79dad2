//! Drives the real binary: `--version`, `--healthcheck` against an in-process server, the
//! crash timer, config errors.

// Test helpers outside `#[test]` functions are not covered by `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use demo_service::{Config, Server};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo-service"));
    for var in [
        "DEMO_PORT",
        "DEMO_SERVICE",
        "DEMO_VERSION",
        "DEMO_UNHEALTHY",
        "DEMO_CRASH_AFTER",
        "DEMO_HEALTHY_AFTER",
        "DEMO_SLOW_MS",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn start(config: Config) -> SocketAddr {
    let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap();
    server.quiet().spawn().unwrap().0
}

#[test]
fn version_flag_prints_demo_version() {
    let out = bin()
        .arg("--version")
        .env("DEMO_VERSION", "1.4.2")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.4.2\n");
    let out = bin()
        .arg("--version")
        .env("DEMO_VERSION", "")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dev\n");
}

#[test]
fn healthcheck_exit_codes() {
    let healthy = start(Config::default());
    let out = bin()
        .arg("--healthcheck")
        .env("DEMO_PORT", healthy.port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("healthy: 200"),
        "{out:?}"
    );

    let sick = start(Config {
        unhealthy: true,
        ..Config::default()
    });
    let out = bin()
        .arg("--healthcheck")
        .env("DEMO_PORT", sick.port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("unhealthy: 503"),
        "{out:?}"
    );

    // Unrelated malformed settings must not break the probe.
    let out = bin()
        .arg("--healthcheck")
        .env("DEMO_PORT", healthy.port().to_string())
        .env("DEMO_SLOW_MS", "garbage")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn crash_after_exits_3() {
    let t = Instant::now();
    let out = bin()
        .env("DEMO_PORT", "0")
        .env("DEMO_CRASH_AFTER", "0.3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("listening on 0.0.0.0:"),
        "{out:?}"
    );
}

#[test]
fn bad_config_and_usage_exit_2() {
    let out = bin().env("DEMO_PORT", "http").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DEMO_PORT"),
        "{out:?}"
    );
    let out = bin().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
