//! Exit codes and the one-line failures the CLI prints (the contract is in ARCHITECTURE.md, "Invariants").

use std::fmt;
use std::process::ExitCode;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    /// A verdict was negative: checks failed, gate refused, drift, ledger broken.
    Negative = 1,
    /// Bad usage, config or input.
    Usage = 2,
    /// Registry, engine, network or timeout, after retries.
    Infrastructure = 3,
    /// A deploy failed and was rolled back.
    RolledBack = 4,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> Self {
        ExitCode::from(code as u8)
    }
}

/// Why a command stopped, as this CLI reports it: a stage's [`pipeline::Error`] (every
/// error the commands meet or make is one) with its exit code chosen and its hint worded
/// in this command's terms. It has no builders of its own: a command makes a
/// `pipeline::Error` and converts it, so there is one error model.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// Further lines under the message, e.g. every policy violation.
    pub details: Vec<String>,
    pub hint: Option<String>,
    /// The command already printed its `--json` document, which says what failed (a
    /// deploy that rolled back, a refused gate): no second document follows it.
    pub reported: bool,
}

impl Failure {
    /// Marks a failure the command's printed report already describes.
    pub fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// The `--json` form of a failure, printed on stdout when the command printed no document
    /// of its own, so a machine reading stdout always gets one JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "exit_code": self.code as u8,
                "message": self.message,
                "details": self.details,
                "hint": self.hint,
            }
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for detail in &self.details {
            write!(f, "\n  {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A config error: the CLI words the hint for a missing file (its flag and variable).
impl From<config::ConfigError> for Failure {
    fn from(e: config::ConfigError) -> Self {
        let hint = match &e {
            config::ConfigError::Read { .. } => Some(
                "pass --config FILE, set RELEASE_CONFIG, or run from the directory holding release.toml"
                    .to_owned(),
            ),
            _ => e.hint(),
        };
        // Each problem is a detail line, so `--json` lists them one by one.
        let error = pipeline::Error::usage(e.headline()).with_details(e.details());
        match hint {
            Some(h) => error.with_hint(h).into(),
            None => error.into(),
        }
    }
}

impl Failure {
    /// A stage's error as `surface` reports it: its kind chooses the exit code, and a hint
    /// about a setting names this command's flag or variable ([`crate::terms`]).
    pub fn of(e: pipeline::Error, surface: crate::terms::Surface) -> Self {
        let code = match e.kind {
            pipeline::Kind::Negative => Code::Negative,
            pipeline::Kind::Usage => Code::Usage,
            pipeline::Kind::Infrastructure => Code::Infrastructure,
            pipeline::Kind::RolledBack => Code::RolledBack,
        };
        Failure {
            code,
            message: e.message,
            details: e.details,
            hint: crate::terms::hint(e.hint, e.setting, surface),
            reported: false,
        }
    }
}

/// A stage's error, met by a pipeline stage.
impl From<pipeline::Error> for Failure {
    fn from(e: pipeline::Error) -> Self {
        Failure::of(e, crate::terms::Surface::Stage)
    }
}

/// The libraries' errors the commands meet directly take the kind `pipeline` gives them
/// (one mapping, there).
macro_rules! through_pipeline {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                pipeline::Error::from(e).into()
            }
        }
    )*};
}

through_pipeline!(
    engine::EngineError,
    engine::EndpointError,
    verify::RecordError,
    verify::NameError,
    registry_client::Error,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_the_same_as_text_and_as_json() {
        let failure = Failure::from(
            pipeline::Error::usage(
                "policy refuses the stack for dev (2 problems), nothing was deployed:",
            )
            .with_details(vec!["service `a`: x".into(), "service `b`: y".into()])
            .with_hint("pin every image"),
        );
        assert_eq!(
            failure.to_string(),
            "error: policy refuses the stack for dev (2 problems), nothing was deployed:\n  service `a`: x\n  service `b`: y\n  hint: pin every image"
        );
        assert_eq!(
            failure.to_json(),
            serde_json::json!({"error": {
                "exit_code": 2,
                "message": "policy refuses the stack for dev (2 problems), nothing was deployed:",
                "details": ["service `a`: x", "service `b`: y"],
                "hint": "pin every image",
            }})
        );
        let bare = Failure::from(pipeline::Error::infrastructure("registry unreachable")).to_json();
        assert_eq!(bare["error"]["exit_code"], 3);
        assert_eq!(bare["error"]["hint"], serde_json::Value::Null);
    }

    #[test]
    fn a_stage_error_about_a_setting_names_this_commands_flag() {
        let e = pipeline::Error::infrastructure("another deploy to dev is running")
            .with_hint("let it finish, or wait longer for the lock")
            .with_setting(pipeline::Setting::LockWait);
        let failure = Failure::from(e);
        assert_eq!(failure.code, Code::Infrastructure);
        assert_eq!(
            failure.hint.as_deref(),
            Some("let it finish, or wait longer for the lock (--lock-timeout)")
        );
        let bare = Failure::from(pipeline::Error::new(pipeline::Kind::RolledBack, "x"));
        assert_eq!(bare.code, Code::RolledBack);
        assert_eq!(bare.hint, None);
    }
}
