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
    /// Build and tag REGISTRY/REPO:VERSION for each service with BuildKit (docker buildx build).
    #[command(
        after_help = "Labels: org.opencontainers.image.{version,revision,created,source,title}. The build arg VERSION is always set.\n\nExit codes: 0 built, 1 a Dockerfile step failed (shown on stderr), 2 bad version/config/service, a Dockerfile syntax error (file:line), a missing Dockerfile or build secret, 3 engine or BuildKit unreachable. See docs/build.md.\n\nExamples:\n  release build --version 1.4.0\n  release build --version 1.4.0 --service api --git-commit $(git rev-parse HEAD)"
    )]
    Build(BuildArgs),
    /// Push each service's image, confirm its digest, record releases/VERSION.json.
    #[command(
        after_help = "A version is immutable: pushing it again with the same digests succeeds and changes nothing; different digests exit 1 naming each changed service.\n\nCredentials: RELEASE_REGISTRY_USERNAME and RELEASE_REGISTRY_PASSWORD.\n\nExamples:\n  release push --version 1.4.0\n  release --json push --version 1.4.0"
    )]
    Push(PushArgs),
    /// Deploy a recorded release to an environment, digest-pinned; roll back on failure.
    #[command(
        after_help = "Renders the environment's stack file with every service's image pinned as REPO:TAG@sha256:… from releases/VERSION.json, checks policy, applies it with `docker stack deploy`, watches every changed service converge (running, healthy, for its update_config.monitor window), and rolls back every changed service if one fails. A Compose environment (orchestrator = \"compose\") is applied with `docker compose up -d --wait` and judged from its containers (docs/compose.md). A blue-green environment (strategy = \"blue-green\") starts the release as the idle colour, checks it through the proxy's preview listener and only then switches the proxy (docs/blue-green.md).\n\nExit codes: 0 deployed, 2 bad config/version or a policy violation (nothing applied), 3 engine/registry failure or another deploy to the env holds the lock, 4 deploy failed and was rolled back.\n\nExamples:\n  release deploy --env dev --version 1.4.0\n  release deploy --env dev --version 1.4.0 --timeout 2m --junit deploy.xml"
    )]
    Deploy(DeployArgs),
    /// Redeploy an earlier recorded release (default: the one live before the current one).
    #[command(
        after_help = "Goes through the same render, policy, apply and watch path as `release deploy`; exit codes are the same. On a blue-green environment whose previous colour still runs (its rollback window has not ended) it is a switch of the proxy back to that colour, after judging it against its recorded file.\n\nExamples:\n  release rollback --env prod\n  release rollback --env prod --to-version 1.2.0"
    )]
    Rollback(RollbackArgs),
    /// Remove a blue-green environment's previous colour once its rollback window ended.
    #[command(
        after_help = "After a blue-green switch the colour that served before keeps running until blue_green.rollback_window has passed, so that `release rollback` is a switch of the proxy. A deploy or rollback to the environment removes an expired colour on its way; `release retire` does it on its own, for a scheduled Jenkins job. --now removes it whatever the window says.

Exit codes: 0 removed, or nothing due (the colour and its deadline are shown), 2 bad config or not a blue-green environment, 3 engine unreachable or another deploy holds the environment.

Examples:
  release retire --env prod
  release retire --env prod --now"
    )]
    Retire(RetireArgs),
    /// Run an environment's smoke and health checks; write JUnit; record the outcome.
    #[command(
        after_help = "Runs every check declared under [[environments.E.checks]] (http, tcp, swarm, compose) concurrently, each retried within its deadline; prints a table (or --json), writes JUnit for Jenkins, and appends a `checked` ledger entry (env, version and digests checked, passed/failed counts, sha256 of the JUnit XML).\n\nExit codes: 0 all passed, 1 some check failed, 2 bad config or a header's env var unset, 3 the environment could not be reached at all (every check unreachable: connection refused or unanswered, Docker Engine down, stack not deployed; a TLS certificate the check does not trust is a failure, 1).\n\nExamples:\n  release check --env dev\n  release check --env dev --junit target/junit/check-dev.xml\n  release --json check --env prod"
    )]
    Check(CheckArgs),
    /// Live state of an environment's stack: replicas, images, digest pinning.
    #[command(
        after_help = "Exit codes: 0 every service runs pinned and converged, 1 some service is flagged, 2 bad config, 3 engine unreachable.\n\nExamples:\n  release status --env dev\n  release --json status --env prod"
    )]
    Status(StatusArgs),
    /// Registry plumbing: resolve tags to digests, copy or retag images preserving the digest.
    #[command(
        after_help = "References without a registry use the config's registry, else --registry/RELEASE_REGISTRY.\nCredentials: RELEASE_REGISTRY_USERNAME + RELEASE_REGISTRY_PASSWORD (or --password-stdin), else the Docker config.\nRetries: RELEASE_REGISTRY_RETRIES (attempts, default 5), RELEASE_REGISTRY_RETRY_BASE_MS (default 250), RELEASE_REGISTRY_MAX_WAIT (longest Retry-After honoured, seconds, default 60).\n\nExit codes: 0 done, 1 tag not found or digest mismatch, 2 bad reference or authentication failed, 3 registry unreachable after retries.\n\nExamples:\n  release image digest hestino/api:1.4.0 hestino/worker:1.4.0\n  release --json image digest --verify hestino/api:1.4.0\n  release image copy hestino/api:1.4.0 hestino/api:stable"
    )]
    Image(ImageArgs),
    /// The PROD gate, then a deploy of exactly the digests that passed in the source env.
    #[command(
        after_help = "Gate conditions (each a JUnit test case, all failures listed): the manifest is recorded and unaltered; the source environment (promote_from) runs exactly its digests, read from the Swarm; a passing check of the source after that deploy; every tag still resolves to its digest; approval if the target requires it.\n\nExit codes: 0 promoted (or, with --dry-run, the gate passes), 1 gate refused, 2 bad input, 3 registry/engine unreachable (the gate fails closed), 4 the deploy failed and was rolled back.\n\nExamples:\n  release promote --version 1.4.0 --to prod --approved-by alice --junit gate.xml\n  release promote --version 1.4.0 --to prod --dry-run"
    )]
    Promote(PromoteArgs),
    /// What was deployed where, when, by whom, on what evidence; drift; ledger integrity.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Exit codes: 0 answered (and, for --live, no drift; for verify, intact), 1 drift or a broken ledger/manifest, 2 bad input, 3 engine unreachable.\n\nExamples:\n  release audit --env prod\n  release audit --env prod --at 2026-11-23T19:40:00Z\n  release audit --live\n  release audit verify --expect-head sha256:…"
    )]
    Audit(AuditArgs),
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
pub struct DeployArgs {
    /// The environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
    /// The recorded release to deploy.
    #[arg(long, env = "RELEASE_VERSION")]
    pub version: String,
    /// How long services may take to converge, e.g. `3m` [default: the env's deploy_timeout, else 5m].
    #[arg(long)]
    pub timeout: Option<String>,
    /// How long to wait for another deploy to the same environment [default: 5m].
    #[arg(long)]
    pub lock_timeout: Option<String>,
    /// Write a JUnit XML report here, one test case per service.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The blue-green environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
    /// Remove the previous colour even though its rollback window has not ended.
    #[arg(long)]
    pub now: bool,
    /// How long to wait for a deploy to the same environment [default: 5m].
    #[arg(long)]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
    /// The recorded release to return to [default: the one live before the current one].
    #[arg(long)]
    pub to_version: Option<String>,
    /// How long services may take to converge [default: the env's deploy_timeout, else 5m].
    #[arg(long)]
    pub timeout: Option<String>,
    /// How long to wait for another deploy to the same environment [default: 5m].
    #[arg(long)]
    pub lock_timeout: Option<String>,
    /// Write a JUnit XML report here, one test case per service.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
    /// Extra CA certificate (PEM) to trust for registries [default: the config's registry.ca].
    #[arg(long, global = true, env = "RELEASE_REGISTRY_CA", value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// Read the registry password from stdin (the username from --username/RELEASE_REGISTRY_USERNAME).
    #[arg(long, global = true)]
    pub password_stdin: bool,
    /// Registry username for --password-stdin.
    #[arg(long, global = true, env = "RELEASE_REGISTRY_USERNAME")]
    pub username: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Print `REF DIGEST` for each reference (the top-level manifest's digest).
    Digest(ImageDigestArgs),
    /// Copy or retag SRC to DST byte for byte, with its referrers (signed evidence); the
    /// destination gets the source's digest.
    Copy(ImageCopyArgs),
    /// The signed evidence the registry holds for an image, and whether it satisfies
    /// an environment's policy.
    #[command(
        after_help = "Reads the registry alone (no state directory, no engine): every attestation attached to the image's manifest as an OCI referrer (through the referrers API, or the sha256-<hex> tag a registry without it keeps), who signed it with which key, and whether ENV's policy holds: a PASSED test result from ENV's promote_from (or ENV itself) signed by a key ENV trusts and not revoked, about exactly this digest.\n\nExit codes: 0 the policy holds, 1 it does not (or there is no evidence), 2 bad reference or config, 3 registry unreachable.\n\nExamples:\n  release image verify hestino/api:1.4.0 --env prod\n  release --json image verify hestino/api@sha256:… --env prod"
    )]
    Verify(ImageVerifyArgs),
}

#[derive(Debug, Args)]
pub struct ImageVerifyArgs {
    /// The image, by tag or digest, e.g. `hestino/api:1.4.0`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The environment whose trusted keys and policy apply.
    #[arg(long)]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct ImageDigestArgs {
    /// Image references, e.g. `hestino/api:1.4.0` or `REGISTRY/repo:tag`.
    #[arg(required = true, value_name = "REF")]
    pub references: Vec<String>,
    /// Always fetch the manifest and check its bytes hash to the digest the registry reports.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct ImageCopyArgs {
    #[arg(value_name = "SRC")]
    pub source: String,
    #[arg(value_name = "DST")]
    pub destination: String,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The recorded release to promote.
    #[arg(long, env = "RELEASE_VERSION")]
    pub version: String,
    /// The target environment (it must have `promote_from`).
    #[arg(long)]
    pub to: String,
    /// Who approved (Jenkins' input submitter); required where `approval_required`.
    #[arg(long, env = "RELEASE_APPROVED_BY")]
    pub approved_by: Option<String>,
    /// Write the gate's conditions as JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,
    /// Only evaluate the gate: record nothing, deploy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long services may take to converge [default: the env's deploy_timeout, else 5m].
    #[arg(long)]
    pub timeout: Option<String>,
    /// How long to wait for another deploy to the target [default: 5m].
    #[arg(long)]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only this service's digests.
    #[arg(long)]
    pub service: Option<String>,
    /// What was live at this moment (RFC 3339, or `now`).
    #[arg(long, conflicts_with = "live")]
    pub at: Option<String>,
    /// Compare the live Swarm with the records; drift exits 1.
    #[arg(long)]
    pub live: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the ledger's hash chain and every release manifest's hash; print the head.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The head hash archived outside the state directory (e.g. by Jenkins); a different
    /// head exits 1.
    #[arg(long, value_name = "HASH")]
    pub expect_head: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The environment, as named in release.toml.
    #[arg(long, env = "RELEASE_ENV")]
    pub env: String,
    /// Write a JUnit XML report here (one suite per kind of check).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// At most this many checks run at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
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
