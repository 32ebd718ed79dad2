//! The CLI's side of the registry: the one place its `RELEASE_REGISTRY_*` variables are
//! read, the one constructor of its registry client, and the wording of the client's hints
//! in this CLI's terms (its variables, flags and config keys). The `registry-client` crate
//! takes all of this as values.

use std::path::PathBuf;
use std::time::Duration;

use registry_client::{Client, ClientConfig, Credentials, Hint, RetryPolicy, Secret};

use crate::exit::{Code, Failure};
use config::Config;

pub const USERNAME_ENV: &str = "RELEASE_REGISTRY_USERNAME";
pub const PASSWORD_ENV: &str = "RELEASE_REGISTRY_PASSWORD";
pub const CA_ENV: &str = "RELEASE_REGISTRY_CA";
pub const RETRIES_ENV: &str = "RELEASE_REGISTRY_RETRIES";
pub const RETRY_BASE_ENV: &str = "RELEASE_REGISTRY_RETRY_BASE_MS";
pub const MAX_WAIT_ENV: &str = "RELEASE_REGISTRY_MAX_WAIT";

/// Which command family a hint is worded for: only `release image` has `--registry-ca`
/// and `--password-stdin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The pipeline stages (`push`, `promote`, `audit --live`, …).
    Stage,
    /// `release image digest|copy`.
    Image,
}

/// The registry client of a command.
/// - TLS: verified, with `ca` (an explicit flag), else `RELEASE_REGISTRY_CA`, else the
///   config's `registry.ca` as an extra CA; the config's `registry.insecure` allows plain
///   HTTP to its host.
/// - Credentials: `credentials` (an explicit flag), else `RELEASE_REGISTRY_USERNAME` +
///   `RELEASE_REGISTRY_PASSWORD`, else the client's own lookup in the Docker config.
/// - Retries: the client's defaults, with `RELEASE_REGISTRY_RETRIES` (attempts),
///   `RELEASE_REGISTRY_RETRY_BASE_MS` and `RELEASE_REGISTRY_MAX_WAIT` (seconds) applied.
pub fn client(
    project: Option<&Config>,
    ca: Option<PathBuf>,
    credentials: Option<Credentials>,
    surface: Surface,
) -> Result<Client, Failure> {
    let mut settings = ClientConfig {
        retry: retry_from(&var)?,
        credentials: credentials.or_else(|| credentials_from(&var)),
        ..ClientConfig::default()
    };
    if let Some(project) = project {
        if project.registry.insecure {
            settings.insecure.push(project.registry.host.clone());
        }
    }
    settings.extra_ca = ca
        .or_else(|| var(CA_ENV).map(PathBuf::from))
        .or_else(|| project.and_then(|p| p.registry.ca.as_deref().map(|ca| p.resolve(ca))));
    Client::new(settings).map_err(|e| failure(e, surface))
}

/// `RELEASE_REGISTRY_USERNAME` + `RELEASE_REGISTRY_PASSWORD`, when both are set.
pub fn credentials_from_env() -> Option<Credentials> {
    credentials_from(&var)
}

/// A variable of the environment; set but empty counts as unset.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn credentials_from(var: &dyn Fn(&str) -> Option<String>) -> Option<Credentials> {
    let username = var(USERNAME_ENV)?;
    let password = var(PASSWORD_ENV)?;
    Some(Credentials::Basic {
        username,
        password: Secret::new(password),
    })
}

fn retry_from(var: &dyn Fn(&str) -> Option<String>) -> Result<RetryPolicy, Failure> {
    let number = |name: &str| -> Result<Option<u64>, Failure> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| Failure::usage(format!("{name}={v:?} is not a whole number")))
            })
            .transpose()
    };
    let mut policy = RetryPolicy::default();
    if let Some(n) = number(RETRIES_ENV)? {
        policy.attempts = u32::try_from(n.clamp(1, 100)).unwrap_or(100);
    }
    if let Some(ms) = number(RETRY_BASE_ENV)? {
        policy.base = Duration::from_millis(ms);
    }
    if let Some(s) = number(MAX_WAIT_ENV)? {
        policy.max_wait = Duration::from_secs(s);
    }
    Ok(policy)
}

/// A registry error as the CLI reports it: its exit code, and its hint in this CLI's terms.
pub fn failure(e: registry_client::Error, surface: Surface) -> Failure {
    use registry_client::ErrorKind;
    let code = match e.kind() {
        ErrorKind::NotFound => Code::Negative,
        ErrorKind::Auth | ErrorKind::Input => Code::Usage,
        ErrorKind::Infrastructure => Code::Infrastructure,
    };
    let hint = e.hint().map(|h| hint(&h, surface));
    let failure = Failure::new(code, e.to_string());
    match hint {
        Some(h) => failure.with_hint(h),
        None => failure,
    }
}

/// The registry client's hint worded with the variables, flags and keys of `surface`.
pub fn hint(hint: &Hint, surface: Surface) -> String {
    let image = surface == Surface::Image;
    match hint {
        Hint::Credentials { registry } => format!(
            "check {USERNAME_ENV}/{PASSWORD_ENV}{}, or run `docker login {registry}`",
            if image { " (or --password-stdin)" } else { "" }
        ),
        Hint::TrustCa => format!(
            "pass the registry's CA with {}{CA_ENV} or the config's registry.ca",
            if image { "--registry-ca FILE, " } else { "" }
        ),
        Hint::RetryBudget => {
            format!("raise the budget with {RETRIES_ENV} / {MAX_WAIT_ENV}, or check the registry")
        }
        Hint::Rights => hint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn retries_come_from_the_variables_and_a_bad_number_is_a_usage_error() {
        let policy = retry_from(&vars(&[
            (RETRIES_ENV, "2"),
            (RETRY_BASE_ENV, "10"),
            (MAX_WAIT_ENV, "3"),
        ]))
        .unwrap();
        assert_eq!(policy.attempts, 2);
        assert_eq!(policy.base, Duration::from_millis(10));
        assert_eq!(policy.max_wait, Duration::from_secs(3));
        assert_eq!(
            retry_from(&vars(&[(RETRIES_ENV, "0")])).unwrap().attempts,
            1
        );
        let e = retry_from(&vars(&[(MAX_WAIT_ENV, "soon")])).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert_eq!(
            e.message,
            "RELEASE_REGISTRY_MAX_WAIT=\"soon\" is not a whole number"
        );
    }

    #[test]
    fn credentials_need_both_variables() {
        assert!(credentials_from(&vars(&[(USERNAME_ENV, "ci")])).is_none());
        let both = credentials_from(&vars(&[(USERNAME_ENV, "ci"), (PASSWORD_ENV, "s3cret")]));
        let Some(Credentials::Basic { username, password }) = both else {
            panic!("{both:?}");
        };
        assert_eq!(username, "ci");
        assert_eq!(password.expose(), "s3cret");
    }

    /// The library's hints name no flag; the CLI names only the flags the command has.
    #[test]
    fn hints_name_only_the_flags_of_their_command() {
        let ca = hint(&Hint::TrustCa, Surface::Stage);
        assert_eq!(
            ca,
            "pass the registry's CA with RELEASE_REGISTRY_CA or the config's registry.ca"
        );
        assert!(hint(&Hint::TrustCa, Surface::Image).contains("--registry-ca FILE"));
        let login = Hint::Credentials {
            registry: "r.example.com".to_owned(),
        };
        assert!(!hint(&login, Surface::Stage).contains("--password-stdin"));
        assert!(hint(&login, Surface::Image).contains("--password-stdin"));
        for h in [login, Hint::Rights, Hint::TrustCa, Hint::RetryBudget] {
            let library = h.to_string();
            assert!(
                !library.contains("--") && !library.contains("RELEASE_"),
                "{library}"
            );
        }
    }
}
