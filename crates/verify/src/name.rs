//! Validated names used in records: release versions, environment and service names.
//!
//! They end up in file names under the state directory, in Docker tags and in Swarm names,
//! so they are parsed once at the edge and passed inward as newtypes; nothing downstream
//! re-checks them.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest Docker tag, and so the longest version.
const MAX_VERSION_LEN: usize = 128;
/// Longest environment name.
const MAX_ENV_LEN: usize = 64;
/// Longest service name.
const MAX_SERVICE_LEN: usize = 63;

/// Why a version, environment name or version pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid version {value:?}: {reason}")]
    Version {
        value: String,
        reason: String,
        hint: &'static str,
    },
    #[error("invalid environment name {value:?}: {reason}")]
    Env {
        value: String,
        reason: String,
        hint: &'static str,
    },
    #[error("invalid service name {value:?}: {reason}")]
    Service {
        value: String,
        reason: String,
        hint: &'static str,
    },
    #[error("version {value:?} does not match the configured version pattern `{pattern}`")]
    PatternMismatch { value: String, pattern: String },
    #[error("invalid version pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
}

impl NameError {
    /// The next step for the user.
    pub fn hint(&self) -> String {
        match self {
            NameError::Version { hint, .. }
            | NameError::Env { hint, .. }
            | NameError::Service { hint, .. } => (*hint).to_owned(),
            NameError::PatternMismatch { .. } => {
                "choose a version of the form the project requires".to_owned()
            }
            NameError::BadPattern { .. } => "it must be a regular expression".to_owned(),
        }
    }
}

/// A release version: a Docker tag that names one immutable release.
///
/// Grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (the Docker tag grammar), minus `latest` in
/// any case (mutable by convention, so never deployable), minus anything containing `..`
/// (it also names a file). A `/` can never appear. Project-specific rules are a separate,
/// optional [`VersionPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

impl Version {
    /// Parses a version; see the type's documentation for the grammar.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let refuse = |reason: String, hint: &'static str| NameError::Version {
            value: value.to_owned(),
            reason,
            hint,
        };
        const TAG_HINT: &str = "use letters, digits, '_', '.' and '-', e.g. 1.2.0 or 20261123.42";
        if value.is_empty() {
            return Err(refuse(
                "it is empty".into(),
                "pass an explicit version such as 1.2.0",
            ));
        }
        if value.len() > MAX_VERSION_LEN {
            return Err(refuse(
                format!(
                    "it is {} bytes long; a Docker tag has at most {MAX_VERSION_LEN}",
                    value.len()
                ),
                "use a shorter version",
            ));
        }
        if value.eq_ignore_ascii_case("latest") {
            return Err(refuse(
                "`latest` moves, so it cannot name an immutable release".into(),
                "pass an explicit version such as 1.2.0 or a build number",
            ));
        }
        if value.contains('/') {
            return Err(refuse(
                "it contains '/'; a version is a tag, not a path".into(),
                TAG_HINT,
            ));
        }
        if value.contains("..") {
            return Err(refuse("it contains '..'".into(), TAG_HINT));
        }
        let first = value.chars().next().unwrap_or('_');
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(refuse(
                format!(
                    "it starts with {first:?}; a Docker tag starts with a letter, digit or '_'"
                ),
                TAG_HINT,
            ));
        }
        if let Some((pos, bad)) = value
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(refuse(
                format!("it contains {bad:?} at byte {pos}, which a Docker tag does not allow"),
                TAG_HINT,
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Enforces a project's own version rule (e.g. semver only) on top of the tag grammar.
    pub fn check_pattern(&self, pattern: &VersionPattern) -> Result<(), NameError> {
        if pattern.regex.is_match(&self.0) {
            Ok(())
        } else {
            Err(NameError::PatternMismatch {
                value: self.0.clone(),
                pattern: pattern.source.clone(),
            })
        }
    }
}

/// A project's rule for versions, matched against the whole version (it is anchored for
/// you: `\d+\.\d+\.\d+` does not accept `1.2.3-rc.1`).
#[derive(Debug, Clone)]
pub struct VersionPattern {
    source: String,
    regex: Regex,
}

impl VersionPattern {
    pub fn new(pattern: &str) -> Result<Self, NameError> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| NameError::BadPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            source: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as the user wrote it (unanchored).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// An environment name (`dev`, `prod`, `staging-2`): `[a-z0-9][a-z0-9_-]{0,63}`.
///
/// Lowercase only, so that `Prod` and `prod` can never be two pointer files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const HINT: &str = "use lowercase letters, digits, '-' and '_', e.g. dev or prod";
        lower_name(value, MAX_ENV_LEN)
            .map(Self)
            .map_err(|reason| NameError::Env {
                value: value.to_owned(),
                reason,
                hint: HINT,
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A release service: a key of `[services]` in `release.toml` (`api`, `worker-2`),
/// `[a-z0-9][a-z0-9_-]{0,62}`. It names the service's records, its digests in a manifest
/// and its Swarm service; what a stack file calls the service may differ
/// (`stack_service`), and a stack's own names are plain text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const HINT: &str = "use lowercase letters, digits, '-' and '_', e.g. api or worker";
        lower_name(value, MAX_SERVICE_LEN)
            .map(Self)
            .map_err(|reason| NameError::Service {
                value: value.to_owned(),
                reason,
                hint: HINT,
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9][a-z0-9_-]*`, at most `max` bytes: the grammar of environment and service
/// names, which become file names and Swarm names. The reason it is refused otherwise.
fn lower_name(value: &str, max: usize) -> Result<String, String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.len() > max {
        return Err(format!(
            "it is {} bytes long; at most {max} are allowed",
            value.len()
        ));
    }
    let first = value.chars().next().unwrap_or('a');
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!(
            "it starts with {first:?}; it must start with a lowercase letter or digit"
        ));
    }
    if let Some((pos, bad)) = value
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(format!("it contains {bad:?} at byte {pos}"));
    }
    Ok(value.to_owned())
}

macro_rules! string_newtype_impls {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_newtype_impls!(Version);
string_newtype_impls!(EnvName);
string_newtype_impls!(ServiceName);
