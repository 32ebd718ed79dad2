//! The CLI's side of the registry: the one place its `RELEASE_REGISTRY_*` variables are
//! read, and the one constructor of its registry client. The `registry-client` crate takes
//! all of this as values; its hints are worded in this CLI's terms by [`crate::terms`].

use std::path::PathBuf;
use std::time::Duration;

use registry_client::{Client, ClientConfig, Credentials, RetryPolicy, Secret};

use crate::exit::Failure;
pub use crate::terms::Surface;
use crate::terms::{CA_ENV, MAX_WAIT_ENV, PASSWORD_ENV, RETRIES_ENV, RETRY_BASE_ENV, USERNAME_ENV};
use config::Config;

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

/// `--password-stdin`: the password read from stdin (one line, its newline dropped), for
/// `username` (`--username`).
pub fn credentials_from_stdin(username: Option<String>) -> Result<Credentials, pipeline::Error> {
    use std::io::Read as _;
    let username = username.ok_or_else(|| {
        pipeline::Error::usage("--password-stdin needs a username")
            .with_hint(format!("pass --username or set {USERNAME_ENV}"))
    })?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| pipeline::Error::usage(format!("cannot read the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(pipeline::Error::usage("--password-stdin: stdin was empty"));
    }
    Ok(Credentials::Basic {
        username,
        password: Secret::new(password),
    })
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

fn retry_from(var: &dyn Fn(&str) -> Option<String>) -> Result<RetryPolicy, pipeline::Error> {
    let number = |name: &str| -> Result<Option<u64>, pipeline::Error> {
        var(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    pipeline::Error::usage(format!("{name}={v:?} is not a whole number"))
                })
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

/// A registry error as the CLI reports it: the kind `pipeline` gives it, and its hint in
/// the terms of `surface`.
pub fn failure(e: registry_client::Error, surface: Surface) -> Failure {
    Failure::of(pipeline::Error::from(e), surface)
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
        assert_eq!(e.kind, pipeline::Kind::Usage);
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
}
