//! Digest-exact access to OCI distribution registries: resolve tags to digests, fetch raw
//! manifests, copy or retag images byte for byte, push and list OCI 1.1 referrers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), registry_client::Error> {
//! use registry_client::{Client, ClientConfig, Reference};
//! let client = Client::new(ClientConfig::default())?;
//! let api = Reference::parse("hestino/api:1.2.0", Some("registry.example.com"))?;
//! let resolved = client.resolve(&api, false).await?;
//! println!("{api} {}", resolved.digest);
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod copy;
mod digest;
mod error;
mod manifest;
pub mod media;
mod reference;
mod referrers;
mod resolve;
mod retry;
mod secret;

pub use auth::{Challenge, Credentials, Scope};
pub use client::{Client, ClientConfig, is_loopback, is_tls_error};
pub use copy::CopyReport;
pub use digest::{Digest, InvalidDigest};
pub use error::{Error, ErrorKind, Hint};
pub use manifest::{Descriptor, Platform, RawManifest};
pub use reference::{DOCKER_HUB, ImageName, InvalidReference, PinnedImage, Reference};
pub use referrers::{EMPTY_JSON, Referrers, Via, empty_descriptor, referrers_tag};
pub use resolve::Resolved;
pub use retry::{RetryPolicy, parse_retry_after};
pub use secret::Secret;
