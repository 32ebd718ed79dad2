//! The content digest of records: the one `Digest` of the toolchain, from `registry-client`
//! (`sha256:` and 64 lowercase hex digits), so a digest read from the registry, recorded in
//! a manifest and compared by the gate is one type with one grammar.

pub use registry_client::{Digest, InvalidDigest as DigestError};
