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
    /// The next step for the user, when there is an obvious one. The caller words it for
    /// its own surface (its flags, variables and config keys); [`Hint`]'s `Display` is a
    /// wording that names none.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Error::Unauthorized { registry, .. } => Some(Hint::Credentials {
                registry: registry.clone(),
            }),
            Error::Denied { .. } => Some(Hint::Rights),
            Error::Tls { .. } => Some(Hint::TrustCa),
            Error::Unreachable { .. } | Error::RetryAfterTooLong { .. } => Some(Hint::RetryBudget),
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

/// The obvious next step after an [`Error`], as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// The registry refused the credentials: give others, or log in to it.
    Credentials { registry: String },
    /// The credentials are valid but lack the rights on the repository.
    Rights,
    /// The registry's certificate chains to no trusted CA: trust the CA that signed it.
    TrustCa,
    /// The retry budget ran out: allow more, or look at the registry.
    RetryBudget,
}

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hint::Credentials { registry } => {
                write!(
                    f,
                    "check the registry credentials, or run `docker login {registry}`"
                )
            }
            Hint::Rights => f.write_str(
                "the credentials are valid but lack pull/push rights on this repository",
            ),
            Hint::TrustCa => f.write_str("trust the CA that signed the registry's certificate"),
            Hint::RetryBudget => {
                f.write_str("allow more retries or a longer wait, or check the registry")
            }
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
