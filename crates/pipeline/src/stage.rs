//! What every stage is given rather than finding out for itself: the loaded config, the
//! state directory, who acts, the Jenkins build, and where progress goes. The `release`
//! command reads all of it from its flags and the process environment. The one variable
//! read in this crate is one `release.toml` names itself: a check header's `env:VAR` value,
//! read when the checks are typed (`checks.rs`), so that a token never sits in the file.

use std::time::Duration;

use engine::Progress;
use verify::{EnvName, JenkinsBuild, LockError, StateDir, Version, VersionPattern};

use crate::Error;
use config::Config;

/// One stage's surroundings.
pub struct Stage<'a> {
    pub config: &'a Config,
    pub state: &'a StateDir,
    /// Who acts, as the records name them (`jenkins:JOB#N`, `user@host`, ...).
    pub actor: String,
    /// The Jenkins build running the stage, recorded with every event.
    pub jenkins: Option<JenkinsBuild>,
    /// Where the stage says what it is doing (a terminal board, CI lines, or nothing).
    pub progress: &'a (dyn Fn(Progress<'_>) + Sync),
}

impl Stage<'_> {
    /// Appends `event` to the ledger as this stage's actor.
    pub fn append(&self, event: &verify::ledger::Event) -> Result<(), Error> {
        self.state.ledger().append_event(&self.actor, event)?;
        Ok(())
    }

    pub(crate) fn say(&self, state: String) {
        (self.progress)(Progress {
            service: "*",
            state,
        });
    }
}

/// Parses a version against the tag grammar and the project's `version_pattern`.
pub fn version(config: &Config, text: &str) -> Result<Version, Error> {
    let version = Version::parse(text)?;
    if let Some(pattern) = &config.project.version_pattern {
        let pattern = VersionPattern::new(pattern)?;
        version.check_pattern(&pattern)?;
    }
    Ok(version)
}

/// Connects to the engine of environment `env`, whatever its orchestrator; a failure
/// names the environment, the endpoint and the cause. Connecting sends nothing but the
/// version request, so a failure here has changed nothing.
pub async fn connect(config: &Config, env: &str) -> Result<engine::Engine, Error> {
    let endpoint = config.endpoint(env)?;
    engine::Engine::connect(&endpoint)
        .await
        .map_err(|e| Error::from(e).with_env(env))
}

/// Holds environment `env`'s deploy lock (`deploy-ENV`), waiting up to `wait` for
/// another deploy, rollback or retire of the same environment to finish.
pub async fn lock(
    state: &StateDir,
    env: &EnvName,
    wait: Duration,
    purpose: &str,
) -> Result<verify::LockGuard, Error> {
    let state = state.clone();
    let name = format!("deploy-{env}");
    let purpose = purpose.to_owned();
    let env = env.clone();
    tokio::task::spawn_blocking(move || state.lock(&name, wait, &purpose))
        .await
        .map_err(|e| Error::infrastructure(format!("lock task failed: {e}")))?
        .map_err(|e| match e {
            LockError::Timeout { .. } => {
                Error::infrastructure(format!("another deploy to {env} is running: {e}"))
                    .with_hint("let it finish, or wait longer for the lock")
                    .with_setting(crate::Setting::LockWait)
            }
            other => Error::infrastructure(other.to_string()),
        })
}

/// What `repository:tag` resolves to in the registry now.
pub async fn resolve_tag(
    client: &registry_client::Client,
    repository: &str,
    tag: &str,
) -> Result<verify::Digest, registry_client::Error> {
    let reference = registry_client::Reference::parse(&format!("{repository}:{tag}"), None)?;
    Ok(client.resolve(&reference, false).await?.digest)
}

/// Writes JUnit XML that is already encoded (`release check` hashes it for its record
/// first): missing directories created, the file replaced atomically, so a stage that ran
/// is not reported as failed for want of `target/junit/`.
pub fn write_junit(path: &std::path::Path, xml: &[u8]) -> Result<(), Error> {
    let cannot = |e: &dyn std::fmt::Display| {
        Error::infrastructure(format!("cannot write JUnit file {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| cannot(&e))?;
    }
    verify::atomic::write_atomic(path, xml).map_err(|e| cannot(&e))
}
