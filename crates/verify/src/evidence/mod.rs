//! Signed evidence: who checked which image, where, when, and with what result, in the
//! formats of the supply-chain specifications so any verifier can check it.
//!
//! - **Keys** ([`keys`]): Ed25519 (RFC 8032) and ECDSA P-256 with SHA-256 (FIPS 186-4),
//!   private keys in PKCS#8 PEM (RFC 5208 / RFC 5958), public keys in SubjectPublicKeyInfo
//!   PEM (RFC 5280, RFC 8410, RFC 5480); ECDSA signatures in ASN.1 DER. A key's fingerprint
//!   is `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo DER.
//! - **Envelopes** ([`dsse`]): DSSE v1
//!   (<https://github.com/secure-systems-lab/dsse/blob/master/envelope.md>). A signature
//!   covers the pre-authentication encoding
//!   `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`
//!   (<https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>).
//! - **Statements** ([`statement`]): in-toto Statement v1
//!   (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>), payload type
//!   `application/vnd.in-toto+json`, with two predicates:
//!   the test result of a check run
//!   (<https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md>)
//!   and the SLSA verification summary of a gate decision
//!   (<https://slsa.dev/spec/v1.0/verification_summary>). Both carry the extra fields the
//!   gate needs (environment, version, time of the check, JUnit report; approver and
//!   conditions).
//! - **Trust and policy** ([`trust`], [`policy`]): the trusted (and revoked) keys, and which
//!   test-result attestation of an image digest a gate accepts, with the reason every other
//!   one was refused.

pub mod dsse;
pub mod keys;
pub mod policy;
pub mod statement;
pub mod trust;

pub use dsse::{Envelope, EnvelopeError, Signature, SignatureCheck, SignatureStatus, pae};
pub use keys::{Algorithm, KeyError, PublicKey, SigningKey};
pub use policy::{Accepted, Assessment, Rejected, Rejection, evaluate_test_results};
pub use statement::{
    Condition, PAYLOAD_TYPE, Policy, ResourceDescriptor, STATEMENT_TYPE, Statement, StatementError,
    SummaryInput, TEST_RESULT_PREDICATE, TestOutcome, TestResult, VERIFICATION_SUMMARY_PREDICATE,
    VerificationResult, VerificationSummary, Verifier, canonical_json, conditions_digest,
};
pub use trust::{TrustStore, TrustedKey};
