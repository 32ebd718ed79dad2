//! `release`: the command-line front of the toolchain.

use std::process::ExitCode;

use release_cli::{cli, commands, exit, terminal};

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(&cli.global);
    let json = cli.global.json;
    // `check` is many small requests whose cost is the kernel's and the services': one
    // thread drives them without waking another for every connection (100 HTTP checks on
    // 2 cores: 30 -> 26 ms; TLS checks unchanged; BENCHMARKS.md). The other commands keep
    // the worker pool; they stream and hash layers and were not measured on one thread.
    let mut builder = if matches!(cli.command, cli::Command::Check(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::Code::Infrastructure.into();
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            if json && !failure.reported {
                println!("{}", failure.to_json());
            }
            failure.code
        }
    };
    // Everything the command wrote is durable by now (records are fsynced before a command
    // returns), but the runtime is torn down before leaving: that drops the pooled
    // connections, and a connection to an ssh:// engine owns an `ssh` control master
    // (started with ControlPersist=yes) that only its drop closes. Exiting without it left
    // one master process and its control directory behind for every SSH connection.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code.into()
}

/// A command line clap refuses: clap's own text on stderr (help and `--version` on stdout,
/// exit 0), and under `--json` the error document on stdout too, as for every other
/// failure, so a machine reading stdout always gets one JSON value.
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    if e.use_stderr() && std::env::args_os().skip(1).any(|a| a == "--json") {
        // clap's error block, up to its usage line, as one line.
        let text = e.render().to_string();
        let message: Vec<&str> = text
            .lines()
            .map(str::trim)
            .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .collect();
        let message = message.join(" ");
        let message = message.trim_start_matches("error: ");
        let failure = pipeline::Error::usage(message)
            .with_hint("see `release --help`, or `release COMMAND --help`");
        println!("{}", exit::Failure::from(failure).to_json());
    }
    ExitCode::from(code)
}

/// Logs go to stderr, styled only on a terminal (no ANSI escapes in a Jenkins log);
/// `RUST_LOG` wins over `-v`/`-q`.
fn init_logging(global: &cli::Global) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(terminal::stderr_styled())
        .init();
}
