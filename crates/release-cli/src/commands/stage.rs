//! What the pipeline stages share: the version, the selected services, image names, the
//! state directory, and who is acting (a Jenkins build or a person).

use std::path::Path;

use verify::{JenkinsBuild, ServiceName, StateDir, Version};

use crate::cli::Global;
use crate::exit::Failure;
use config::{Config, Service};

/// Parses `--version` against the tag grammar and the project's `version_pattern`.
pub fn version(config: &Config, text: &str) -> Result<Version, Failure> {
    Ok(pipeline::stage::version(config, text)?)
}

/// A stage of the pipeline as this process runs it: the actor and the Jenkins build read
/// from the process environment here, once.
pub fn of<'a>(
    config: &'a Config,
    state: &'a StateDir,
    progress: &'a (dyn Fn(engine::Progress<'_>) + Sync),
) -> pipeline::Stage<'a> {
    pipeline::Stage {
        config,
        state,
        actor: actor(),
        jenkins: jenkins_build(),
        progress,
    }
}

/// The services named by `--service` (all when none is named), in config order.
pub fn services<'c>(
    config: &'c Config,
    selected: &[String],
) -> Result<Vec<(&'c ServiceName, &'c Service)>, pipeline::Error> {
    let unknown: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|s| !config.services.contains_key(*s))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.services.keys().map(ServiceName::as_str).collect();
        return Err(
            pipeline::Error::usage(format!("unknown service `{}`", unknown.join("`, `")))
                .with_hint(format!(
                    "services in {}: {}",
                    config.path.display(),
                    known.join(", ")
                )),
        );
    }
    Ok(config
        .services
        .iter()
        .filter(|(name, _)| selected.is_empty() || selected.iter().any(|s| *name == s.as_str()))
        .collect())
}

/// The state directory: `--state-dir`/`RELEASE_STATE_DIR`, else `.release` next to the
/// config. When `[ledger]` names a signing key, every append through it signs the ledger
/// head; the key is read here, so that a key that cannot be read (an unset variable) fails
/// the command before anything is written.
pub fn state_dir(global: &Global, config: &Config) -> Result<StateDir, Failure> {
    let signer = super::keys::ledger_signer(config)?;
    let root = state_root(global, config);
    let state = StateDir::open(&root).map_err(|e| pipeline::Error::from(e).with_root(&root))?;
    Ok(state.with_head_signer(signer))
}

/// The state directory for a command that only reads it (`audit`): no signing key needed,
/// and it must exist: a mistyped path is an error, not an empty history.
pub fn state_dir_to_read(global: &Global, config: &Config) -> Result<StateDir, Failure> {
    let root = state_root(global, config);
    StateDir::open_existing(&root).map_err(|e| {
        let missing = matches!(e, verify::RecordError::NoStateDir { .. });
        let error = pipeline::Error::from(e).with_root(&root);
        if missing {
            error.with_hint(
                "pass the directory the pipeline records into with --state-dir or RELEASE_STATE_DIR \
                 (default: .release beside release.toml); a project has none before its first `release push`",
            )
        } else {
            error
        }
    })
    .map_err(Failure::from)
}

fn state_root(global: &Global, config: &Config) -> std::path::PathBuf {
    global
        .state_dir
        .clone()
        .unwrap_or_else(|| config.dir.join(".release"))
}

/// Who is acting: `RELEASE_ACTOR`, else the Jenkins build, else `user@host`.
pub fn actor() -> String {
    if let Ok(actor) = std::env::var("RELEASE_ACTOR")
        && !actor.trim().is_empty()
    {
        return actor;
    }
    if let Some(build) = jenkins_build() {
        return format!("jenkins:{}#{}", build.job_name, build.build_number);
    }
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".to_owned());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{user}@{host}")
}

/// The login name of this process's user, from `/etc/passwd` (CI shells often set no `USER`).
fn user_from_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
    })
}

/// The Jenkins build running this command, from the variables Jenkins sets.
pub fn jenkins_build() -> Option<JenkinsBuild> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(JenkinsBuild {
        build_url: var("BUILD_URL")?,
        build_number: var("BUILD_NUMBER")?.parse().ok()?,
        job_name: var("JOB_NAME")?,
    })
}

/// The commit being released: `--git-commit`, else `GIT_COMMIT` (set by Jenkins' git step).
pub fn git_commit(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("GIT_COMMIT").ok())
        .filter(|c| !c.is_empty())
}

/// The registry client of a stage ([`crate::registry::client`]).
pub fn registry_client(config: &Config) -> Result<registry_client::Client, Failure> {
    crate::registry::client(Some(config), None, None, crate::registry::Surface::Stage)
}

trait WithRoot {
    fn with_root(self, root: &Path) -> Self;
}

impl WithRoot for pipeline::Error {
    fn with_root(self, root: &Path) -> Self {
        let root = root.display().to_string();
        if self.message.contains(&root) {
            return self;
        }
        self.prefixed(&format!("state directory {root}"))
    }
}
