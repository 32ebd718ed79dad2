//! What can go wrong talking to a registry, with the names a user needs to act on it.

use std::time::Duration;

use crate::digest::{Digest, InvalidDigest};
use crate::reference::InvalidReference;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidReference(#[from] InvalidReference),

    #[error(transparent)]
    InvalidDigest(#[from] InvalidDigest),

    /// The manifest (tag or digest) does not exist. `what` is `tag` or `digest`.
    #[error(
        "{what} not found: {reference} (registry {registry}, repository {repository}, {what} {target})"
    )]
    NotFound {
        reference: String,
        registry: String,
        repository: String,
        what: &'static str,
        target: String,
    },

    /// A blob a manifest refers to is missing from the source.
    #[error("blob {digest} not found in {registry}/{repository}")]
    BlobNotFound {
        registry: String,
        repository: String,
        digest: Digest,
    },

    /// 401 after presenting credentials (or having none).
    #[error("authentication failed for registry {registry} (repository {repository}): {cause}")]
    Unauthorized {
        registry: String,
        repository: String,
        cause: String,
    },

    /// 403: authenticated, but not allowed.
    #[error("access denied by registry {registry} to repository {repository}")]
    Denied {
        registry: String,
        repository: String,
    },

    /// Credentials could not be read (docker config, credential helper, stdin).
    #[error("cannot read credentials for registry {registry}: {cause}")]
    Credentials { registry: String, cause: String },

    /// The extra CA file cannot be read or holds no certificate.
    #[error("cannot use CA file {path}: {cause}")]
    CaFile { path: String, cause: String },

    /// TLS setup or handshake failed; retrying does not help.
    #[error("TLS error talking to {host}: {cause}")]
    Tls { host: String, cause: String },

    /// Still failing after the retry budget: connect errors, resets, 408/429/5xx.
    #[error("registry {registry} unreachable after {attempts} attempt(s) ({what}): {cause}")]
    Unreachable {
        registry: String,
        what: String,
        attempts: u32,
        cause: String,
    },

    /// The registry asked us to wait longer than the retry budget allows.
    #[error(
        "registry {registry} asked to retry {what} after {after:?}, beyond the retry budget ({budget:?})"
    )]
    RetryAfterTooLong {
        registry: String,
        what: String,
        after: Duration,
        budget: Duration,
    },

    /// The bytes do not hash to the digest the registry (or the reference) claimed.
    #[error("digest mismatch for {reference}: expected {expected}, the bytes hash to {actual}")]
    DigestMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },

    /// Any other answer we cannot use (unexpected status, malformed manifest, bad config).
    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },
}

impl Error {
    /// A next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unauthorized { registry, .. } => Some(format!(
                "check RELEASE_REGISTRY_USERNAME/RELEASE_REGISTRY_PASSWORD (or --password-stdin), or run `docker login {registry}`"
            )),
            Error::Denied { .. } => {
                Some("the credentials are valid but lack pull/push rights on this repository".to_owned())
            }
            Error::Tls { .. } => Some(
                "pass the registry's CA with --registry-ca FILE, RELEASE_REGISTRY_CA or the config's registry.ca".to_owned(),
            ),
            Error::Unreachable { .. } | Error::RetryAfterTooLong { .. } => Some(
                "raise the budget with RELEASE_REGISTRY_RETRIES / RELEASE_REGISTRY_MAX_WAIT, or check the registry".to_owned(),
            ),
            _ => None,
        }
    }

    /// What kind of failure this is, for mapping to exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::BlobNotFound { .. } | Error::DigestMismatch { .. } => {
                ErrorKind::NotFound
            }
            Error::Unauthorized { .. } | Error::Denied { .. } | Error::Credentials { .. } => {
                ErrorKind::Auth
            }
            Error::InvalidReference(_) | Error::InvalidDigest(_) | Error::CaFile { .. } => {
                ErrorKind::Input
            }
            Error::Tls { .. }
            | Error::Unreachable { .. }
            | Error::RetryAfterTooLong { .. }
            | Error::Protocol { .. } => ErrorKind::Infrastructure,
        }
    }
}

/// Coarse classes of [`Error`], one per exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist or is not what it claims to be.
    NotFound,
    /// Credentials missing, wrong or insufficient.
    Auth,
    /// The input could not be parsed.
    Input,
    /// Network, TLS or registry failure after retries.
    Infrastructure,
}
