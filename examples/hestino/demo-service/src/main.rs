//! `demo-service`: the Hestino example service (see the library docs for the env contract).
//!
//! ```text
//! demo-service                serve HTTP on 0.0.0.0:$DEMO_PORT
//! demo-service --healthcheck  GET 127.0.0.1:$DEMO_PORT/health (2 s); exit 0 on 200, else 1
//! demo-service --version      print $DEMO_VERSION (default "dev")
//! ```
//!
//! Exit codes: 0 ok; 1 healthcheck failed or the server could not start; 2 bad usage or a
//! malformed environment variable; 3 `DEMO_CRASH_AFTER` elapsed (a deliberate crash).
//!
//! Signals: the binary installs no signal handlers (std has no safe API for it and the
//! workspace forbids `unsafe`). As PID 1 of a `FROM scratch` container the kernel therefore
//! ignores SIGTERM, and `docker stop` / a Swarm task shutdown waits the full grace period
//! (10 s by default) before SIGKILL. Where that matters, run it with an init
//! (`docker run --init`, compose `init: true`), or set `stop_signal: SIGKILL` or a short
//! `stop_grace_period`. Outside a container (not PID 1) SIGTERM terminates it at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use demo_service::{
    Config, DEFAULT_VERSION, HEALTHCHECK_TIMEOUT, Server, env_setting, log_error, log_line,
    probe_health,
};

const USAGE: &str = "usage: demo-service [--healthcheck | --version | --help]

Serves GET /health and GET /version on 0.0.0.0:$DEMO_PORT.
Environment (empty = unset): DEMO_PORT (8080), DEMO_SERVICE (demo), DEMO_VERSION (dev),
DEMO_UNHEALTHY (1 = /health answers 503), DEMO_HEALTHY_AFTER (seconds of 503 after start),
DEMO_CRASH_AFTER (seconds, then exit 3), DEMO_SLOW_MS (delay of every response).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve(),
        ["--healthcheck"] => healthcheck(),
        ["--version" | "-V"] => {
            log_line(format_args!(
                "{}",
                env_setting("DEMO_VERSION").unwrap_or_else(|| DEFAULT_VERSION.to_owned())
            ));
            ExitCode::SUCCESS
        }
        ["--help" | "-h"] => {
            log_line(format_args!("{USAGE}"));
            ExitCode::SUCCESS
        }
        _ => {
            log_error(format_args!(
                "demo-service: unexpected arguments {args:?}\n{USAGE}"
            ));
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log_error(format_args!("demo-service: {e}"));
            return ExitCode::from(2);
        }
    };
    if let Some(after) = config.crash_after {
        let spawned = thread::Builder::new()
            .name("demo-crash".to_owned())
            .spawn(move || {
                thread::sleep(after);
                log_line(format_args!(
                    "demo-service: DEMO_CRASH_AFTER={after:?} elapsed, exiting with code 3"
                ));
                std::process::exit(3);
            });
        if let Err(e) = spawned {
            log_error(format_args!(
                "demo-service: cannot start the crash timer: {e}"
            ));
            return ExitCode::FAILURE;
        }
    }
    let summary = format!("{config:?}");
    let port = config.port;
    let server = match Server::bind_configured(config) {
        Ok(server) => server,
        Err(e) => {
            log_error(format_args!(
                "demo-service: cannot listen on 0.0.0.0:{port}: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => log_line(format_args!("demo-service: listening on {addr}; {summary}")),
        Err(e) => log_error(format_args!(
            "demo-service: listening (address unknown: {e}); {summary}"
        )),
    }
    server.run();
    ExitCode::SUCCESS
}

fn healthcheck() -> ExitCode {
    let port = match Config::port_from_env() {
        Ok(port) => port,
        Err(e) => {
            // Docker reserves exit code 2 for healthchecks; anything non-zero but 1 is misused.
            log_error(format_args!("demo-service --healthcheck: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Output lands in `docker inspect`'s .State.Health.Log, so say what was seen.
    match probe_health(addr, HEALTHCHECK_TIMEOUT) {
        Ok(probe) if probe.status == 200 => {
            log_line(format_args!("healthy: {} {}", probe.status, probe.body));
            ExitCode::SUCCESS
        }
        Ok(probe) => {
            log_line(format_args!("unhealthy: {} {}", probe.status, probe.body));
            ExitCode::FAILURE
        }
        Err(e) => {
            log_line(format_args!("unhealthy: {e}"));
            ExitCode::FAILURE
        }
    }
}
