//! Environment records: `envs/<env>.json`, the pointer to what is live in an environment,
//! and `stacks/<env>/<version>.yml`, the exact stack file that was applied.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::atomic::write_atomic;
use crate::digest::Digest;
use crate::name::{EnvName, ServiceName, Version};
use crate::state::{RecordError, StateDir, create_private_dir, read_optional};

/// What is deployed in an environment, as last recorded by this toolchain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPointer {
    pub env: EnvName,
    pub version: Version,
    /// Service name → digest running there.
    pub digests: BTreeMap<ServiceName, Digest>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    pub actor: String,
}

impl StateDir {
    /// The pointer for `env`, or `None` if nothing was ever recorded there.
    pub fn read_env(&self, env: &EnvName) -> Result<Option<EnvPointer>, RecordError> {
        let path = self.env_path(env);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let pointer: EnvPointer =
            serde_json::from_slice(&bytes).map_err(|e| RecordError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if &pointer.env != env {
            return Err(RecordError::Malformed {
                path,
                reason: format!("it is the pointer for environment {}", pointer.env),
            });
        }
        Ok(Some(pointer))
    }

    /// Replaces the pointer for `pointer.env` atomically, under the `env-<env>` lock.
    pub fn write_env(&self, pointer: &EnvPointer) -> Result<(), RecordError> {
        self.update_env(&pointer.env, "write the environment pointer", |_| {
            Ok::<_, RecordError>(pointer.clone())
        })
        .map(drop)
    }

    /// Read-modify-write of an environment pointer under the `env-<env>` lock: `update`
    /// sees the current pointer and returns the new one, which is written atomically. An
    /// error from `update` writes nothing.
    pub fn update_env<E: From<RecordError>>(
        &self,
        env: &EnvName,
        purpose: &str,
        update: impl FnOnce(Option<EnvPointer>) -> Result<EnvPointer, E>,
    ) -> Result<EnvPointer, E> {
        let _lock = self
            .lock(&format!("env-{env}"), self.lock_timeout(), purpose)
            .map_err(RecordError::from)?;
        let next = update(self.read_env(env)?)?;
        if &next.env != env {
            return Err(RecordError::InvalidEnvPointer {
                env: env.clone(),
                reason: format!("the update produced a pointer for {}", next.env),
            }
            .into());
        }
        let mut bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| RecordError::InvalidEnvPointer {
                env: env.clone(),
                reason: e.to_string(),
            })?;
        bytes.push(b'\n');
        write_atomic(&self.env_path(env), &bytes).map_err(RecordError::from)?;
        Ok(next)
    }

    /// Stores the rendered stack file applied to `env` for `version`, replacing an earlier
    /// rendering of the same pair (a redeploy), atomically.
    pub fn write_stack(
        &self,
        env: &EnvName,
        version: &Version,
        yaml: &[u8],
    ) -> Result<PathBuf, RecordError> {
        let path = self.stack_path(env, version);
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        write_atomic(&path, yaml)?;
        Ok(path)
    }
}
