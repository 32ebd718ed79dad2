//! What the CLI writes on stderr when stderr is a log (Jenkins, a pipe) rather than a
//! terminal: its log lines carry no ANSI escapes; on a terminal they may, unless
//! `NO_COLOR` or `TERM=dumb` says otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// One debug line from the registry client (its first attempt at a port nobody listens
/// on), logged by a command that then fails.
fn logging_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_release"));
    cmd.args(["image", "digest", "127.0.0.1:1/x:1"])
        .current_dir(std::env::temp_dir())
        .env("RELEASE_CONFIG", "/nonexistent/release.toml")
        .env("RELEASE_REGISTRY_RETRIES", "1")
        .env("RUST_LOG", "registry_client=debug")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    cmd
}

#[test]
fn logs_in_a_pipe_carry_no_ansi_escapes() {
    let out = logging_command().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attempt 1/1"),
        "no debug line logged:\n{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "ANSI escape in a piped log:\n{stderr:?}"
    );
}

/// Under `script`, stderr is a pseudo-terminal: the same line is styled, and `NO_COLOR`
/// or `TERM=dumb` turns the styles off again.
#[test]
fn logs_on_a_terminal_are_styled_unless_no_color_or_a_dumb_term() {
    let on_tty = |extra: &[(&str, &str)]| {
        let inner = logging_command();
        let mut line = format!("{:?}", inner.get_program());
        for arg in inner.get_args() {
            line.push_str(&format!(" {:?}", arg));
        }
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]);
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd
            .current_dir(std::env::temp_dir())
            .output()
            .expect("script(1) from util-linux");
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(all.contains("attempt 1/1"), "no debug line logged:\n{all}");
        all
    };
    assert!(on_tty(&[]).contains('\x1b'), "a terminal gets styles");
    assert!(!on_tty(&[("NO_COLOR", "1")]).contains('\x1b'), "NO_COLOR");
    assert!(!on_tty(&[("TERM", "dumb")]).contains('\x1b'), "TERM=dumb");
}
