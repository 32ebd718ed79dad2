//! The command line: global options and one subcommand per pipeline stage.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Ship Docker images to Docker Swarm, digest-exact: build, push, deploy, check, promote, audit.
#[derive(Debug, Parser)]
#[command(name = "release", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  release status --env dev\n  release --json status --env prod\n  RELEASE_REGISTRY=127.0.0.1:5443 release --config examples/hestino/release.toml status --env dev"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The project's config file.
    #[arg(
        long,
        global = true,
        env = "RELEASE_CONFIG",
        default_value = "release.toml"
    )]
    pub config: PathBuf,
    /// Where release records live (manifests, stacks, pointers, ledger).
    #[arg(long, global = true, env = "RELEASE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Registry host[:port], overriding the config's.
    #[arg(long, global = true, env = "RELEASE_REGISTRY")]
    pub registry: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live state of an environment's stack: replicas, images, digest pinning.
    #[command(
        after_help = "Exit codes: 0 every service runs pinned and converged, 1 some service is flagged, 2 bad config, 3 engine unreachable.\n\nExamples:\n  release status --env dev\n  release --json status --env prod"
    )]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
}
