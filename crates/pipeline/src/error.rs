//! One error for every stage: the cause in one line, further lines, a hint, and its kind.
//! The kind is what the `release` command maps to its exit code; this crate chooses no
//! exit code.

use std::fmt;

/// What kind of failure stopped a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A negative verdict: checks failed, a gate refused, drift, records damaged.
    Negative,
    /// Bad usage, config or input.
    Usage,
    /// Registry, engine, network or timeout, after retries.
    Infrastructure,
    /// A deploy failed and the environment was returned to what it ran before.
    RolledBack,
}

/// A setting of the caller's that would help, for the caller to name in its own terms
/// (the `release` command names its flag or variable): this crate names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// How long to wait for another deploy's lock.
    LockWait,
    /// The version a rollback returns to.
    RollbackTarget,
    /// What the registry client is given: credentials, a CA, a retry budget. The error's
    /// hint is the client's own wording of it.
    Registry(registry_client::Hint),
}

/// Why a stage stopped.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// Further lines under the message, e.g. every policy violation.
    pub details: Vec<String>,
    pub hint: Option<String>,
    /// The caller's setting the hint is about, if it is about one.
    pub setting: Option<Setting>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: Vec::new(),
            hint: None,
            setting: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(Kind::Infrastructure, message)
    }

    /// Prefixes the message with the environment it concerns.
    pub fn with_env(self, env: &(impl fmt::Display + ?Sized)) -> Self {
        self.prefixed(&format!("environment `{env}`"))
    }

    /// Prefixes the message with the service it concerns.
    pub fn with_service(self, service: &(impl fmt::Display + ?Sized)) -> Self {
        self.prefixed(&format!("service `{service}`"))
    }

    /// Prefixes the message with what was being done: `PREFIX: MESSAGE`.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Says which of the caller's settings the hint is about.
    pub fn with_setting(mut self, setting: Setting) -> Self {
        self.setting = Some(setting);
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    fn hinted(self, hint: Option<String>) -> Self {
        match hint {
            Some(h) => self.with_hint(h),
            None => self,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<config::ConfigError> for Error {
    fn from(e: config::ConfigError) -> Self {
        let hint = e.hint();
        Error::usage(e.to_string()).hinted(hint)
    }
}

impl From<engine::EngineError> for Error {
    fn from(e: engine::EngineError) -> Self {
        let kind = match &e {
            // A swarm that is not one, or an endpoint that cannot be connected as written,
            // is the configuration's fault; an engine that cannot be reached is an outage.
            engine::EngineError::NotSwarmManager { .. } | engine::EngineError::Endpoint(_) => {
                Kind::Usage
            }
            _ => Kind::Infrastructure,
        };
        let hint = e.hint();
        Error::new(kind, e.to_string()).hinted(hint)
    }
}

impl From<engine::EndpointError> for Error {
    fn from(e: engine::EndpointError) -> Self {
        Error::usage(e.to_string()).with_hint(e.hint())
    }
}

/// A Compose project that could not be applied or judged at all: an outage.
impl From<engine::ApplyError> for Error {
    fn from(e: engine::ApplyError) -> Self {
        match e {
            engine::ApplyError::Spawn(e) => Error::infrastructure(e.to_string()),
            engine::ApplyError::Engine(e) => e.into(),
        }
    }
}

/// A records error: its kind chooses the error's, its hint comes along.
impl From<verify::RecordError> for Error {
    fn from(e: verify::RecordError) -> Self {
        let kind = match e.kind() {
            verify::ErrorKind::Usage => Kind::Usage,
            verify::ErrorKind::Verdict => Kind::Negative,
            verify::ErrorKind::Infrastructure => Kind::Infrastructure,
        };
        let hint = e.hint();
        Error::new(kind, e.to_string()).hinted(hint)
    }
}

impl From<verify::ledger::LedgerError> for Error {
    fn from(e: verify::ledger::LedgerError) -> Self {
        verify::RecordError::from(e).into()
    }
}

/// A registry error: not found is a verdict, refused credentials or input are usage, the
/// rest an outage. Its hint is the client's, and names the setting it is about.
impl From<registry_client::Error> for Error {
    fn from(e: registry_client::Error) -> Self {
        use registry_client::ErrorKind;
        let kind = match e.kind() {
            ErrorKind::NotFound => Kind::Negative,
            ErrorKind::Auth | ErrorKind::Input => Kind::Usage,
            ErrorKind::Infrastructure => Kind::Infrastructure,
        };
        let error = Error::new(kind, e.to_string());
        match e.hint() {
            Some(hint) => error
                .with_hint(hint.to_string())
                .with_setting(Setting::Registry(hint)),
            None => error,
        }
    }
}

/// A refused version or environment name: bad input, with its hint.
impl From<verify::NameError> for Error {
    fn from(e: verify::NameError) -> Self {
        Error::usage(e.to_string()).with_hint(e.hint())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_records_error_keeps_its_kind_and_hint() {
        let e = Error::from(verify::RecordError::InvalidEnvPointer {
            env: verify::EnvName::parse("dev").unwrap(),
            reason: "truncated".into(),
        });
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.message.contains("dev"), "{}", e.message);
    }

    #[test]
    fn an_engine_that_is_no_swarm_manager_is_the_configs_fault() {
        let e = Error::from(engine::EngineError::NotSwarmManager {
            host: "tcp://dev:2376".into(),
            state: "inactive".into(),
        });
        assert_eq!(e.kind, Kind::Usage);
    }
}
