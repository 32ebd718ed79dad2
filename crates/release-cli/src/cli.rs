//! The command line: global options and one subcommand per pipeline stage.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Ship Docker images to Docker Swarm, digest-exact: build, push, deploy, check, promote, audit.
#[derive(Debug, Parser)]
#[command(name = "release", version)]
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
    /// Build and tag REGISTRY/REPO:VERSION for each service through the Engine API.
    #[command(
        after_help = "Labels: org.opencontainers.image.{version,revision,created,source,title}. The build arg VERSION is always set.\n\nExit codes: 0 built, 1 a Dockerfile step failed (shown on stderr), 2 bad version/config/service, 3 engine unreachable.\n\nExamples:\n  release build --version 1.4.0\n  release build --version 1.4.0 --service api --git-commit $(git rev-parse HEAD)"
    )]
    Build(BuildArgs),
    /// Push each service's image, confirm its digest, record releases/VERSION.json.
    #[command(
        after_help = "A version is immutable: pushing it again with the same digests succeeds and changes nothing; different digests exit 1 naming each changed service.\n\nCredentials: RELEASE_REGISTRY_USERNAME and RELEASE_REGISTRY_PASSWORD.\n\nExamples:\n  release push --version 1.4.0\n  release --json push --version 1.4.0"
    )]
    Push(PushArgs),
    /// Live state of an environment's stack: replicas, images, digest pinning.
    #[command(
        after_help = "Exit codes: 0 every service runs pinned and converged, 1 some service is flagged, 2 bad config, 3 engine unreachable.\n\nExamples:\n  release status --env dev\n  release --json status --env prod"
    )]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The version to tag, e.g. 1.4.0 (never `latest`).
    #[arg(long, env = "RELEASE_VERSION")]
    pub version: String,
    /// Only these services (repeatable); all by default.
    #[arg(long = "service", value_name = "SERVICE")]
    pub service: Vec<String>,
    /// The source revision for the `org.opencontainers.image.revision` label [env: GIT_COMMIT].
    #[arg(long)]
    pub git_commit: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The version to push and record.
    #[arg(long, env = "RELEASE_VERSION")]
    pub version: String,
    /// Only these services (repeatable); all by default.
    #[arg(long = "service", value_name = "SERVICE")]
    pub service: Vec<String>,
    /// The source revision recorded in the manifest [env: GIT_COMMIT].
    #[arg(long)]
    pub git_commit: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
