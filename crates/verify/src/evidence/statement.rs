//! in-toto Statement v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>) and the two
//! predicates of release evidence:
//!
//! - the test result of a check run
//!   (<https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md>),
//!   [`TestResult`];
//! - the SLSA verification summary of a gate decision
//!   (<https://slsa.dev/spec/v1.0/verification_summary>), [`VerificationSummary`].
//!
//! Both carry, as extra predicate fields (the specs allow them), what the release gate needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::dsse::Envelope;
use super::keys::{KeyError, SigningKey};

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of a test result.
pub const TEST_RESULT_PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// The predicate type of a SLSA verification summary.
pub const VERIFICATION_SUMMARY_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";

/// An in-toto ResourceDescriptor
/// (<https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md>),
/// the fields this toolchain uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm → lowercase hex, e.g. `{"sha256": "…"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

impl ResourceDescriptor {
    /// A descriptor with a name and a SHA-256 digest. `digest` is `sha256:<hex>` or bare hex.
    pub fn named(name: &str, digest: &str) -> ResourceDescriptor {
        ResourceDescriptor {
            name: Some(name.to_string()),
            uri: None,
            digest: sha256_map(digest),
        }
    }

    /// A descriptor with a URI and a SHA-256 digest. `digest` is `sha256:<hex>` or bare hex.
    pub fn at_uri(uri: &str, digest: &str) -> ResourceDescriptor {
        ResourceDescriptor {
            name: None,
            uri: Some(uri.to_string()),
            digest: sha256_map(digest),
        }
    }

    /// A descriptor named `name` with the SHA-256 of `bytes`.
    pub fn of_bytes(name: &str, bytes: &[u8]) -> ResourceDescriptor {
        ResourceDescriptor::named(name, &hex::encode(Sha256::digest(bytes)))
    }

    /// The SHA-256 digest as `sha256:<hex>`, if there is one.
    pub fn sha256(&self) -> Option<String> {
        self.digest.get("sha256").map(|hex| format!("sha256:{hex}"))
    }
}

fn sha256_map(digest: &str) -> BTreeMap<String, String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    BTreeMap::from([("sha256".to_string(), hex.to_ascii_lowercase())])
}

/// An in-toto Statement v1 with an untyped predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// Why bytes or a predicate are not the statement expected.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("the payload type is \"{0}\", not \"{PAYLOAD_TYPE}\"")]
    PayloadType(String),
    #[error("not an in-toto Statement: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the statement type is \"{0}\", not \"{STATEMENT_TYPE}\"")]
    StatementType(String),
    #[error("the predicate type is \"{found}\", not \"{expected}\"")]
    PredicateType {
        found: String,
        expected: &'static str,
    },
    #[error("the {predicate} predicate is malformed: {source}")]
    Predicate {
        predicate: &'static str,
        source: serde_json::Error,
    },
}

impl Statement {
    /// A statement about one subject, `name` with digest `sha256:<hex>` (or bare hex).
    pub fn new(
        subject_name: &str,
        subject_digest: &str,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Statement {
        Statement {
            type_: STATEMENT_TYPE.to_string(),
            subject: vec![ResourceDescriptor::named(subject_name, subject_digest)],
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// The JSON of this statement (the DSSE payload).
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, maps and a JSON value: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the JSON of a statement and checks its `_type`.
    pub fn from_json(bytes: &[u8]) -> Result<Statement, StatementError> {
        let statement: Statement = serde_json::from_slice(bytes)?;
        if statement.type_ != STATEMENT_TYPE {
            return Err(StatementError::StatementType(statement.type_));
        }
        Ok(statement)
    }

    /// The statement an envelope carries (its payload type checked). The signatures are not
    /// checked here.
    pub fn from_envelope(envelope: &Envelope) -> Result<Statement, StatementError> {
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(StatementError::PayloadType(envelope.payload_type.clone()));
        }
        Statement::from_json(&envelope.payload)
    }

    /// This statement in a DSSE envelope signed by `key` under `keyid`.
    pub fn sign(&self, key: &SigningKey, keyid: &str) -> Result<Envelope, KeyError> {
        Envelope::sign(PAYLOAD_TYPE, &self.to_json(), key, keyid)
    }

    /// Whether one subject has exactly this digest (`sha256:<hex>`).
    pub fn has_subject_digest(&self, digest: &str) -> bool {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return false;
        };
        self.subject
            .iter()
            .any(|s| s.digest.get("sha256").is_some_and(|h| h == hex))
    }

    fn predicate_as<T: serde::de::DeserializeOwned>(
        &self,
        expected: &'static str,
    ) -> Result<T, StatementError> {
        if self.predicate_type != expected {
            return Err(StatementError::PredicateType {
                found: self.predicate_type.clone(),
                expected,
            });
        }
        serde_json::from_value(self.predicate.clone()).map_err(|source| StatementError::Predicate {
            predicate: expected,
            source,
        })
    }
}

/// The `result` of a test-result predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TestOutcome {
    Passed,
    Warned,
    Failed,
}

impl std::fmt::Display for TestOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TestOutcome::Passed => "PASSED",
            TestOutcome::Warned => "WARNED",
            TestOutcome::Failed => "FAILED",
        })
    }
}

/// The test-result predicate (`https://in-toto.io/attestation/test-result/v0.1`) of one
/// check run, with the gate's extra fields `environment`, `version`, `checkedAt`, `junit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub result: TestOutcome,
    /// The check configuration (name and digest), and any other configuration.
    pub configuration: Vec<ResourceDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub passed_tests: Vec<String>,
    #[serde(default)]
    pub warned_tests: Vec<String>,
    #[serde(default)]
    pub failed_tests: Vec<String>,
    /// The environment the checks ran against, e.g. `dev`.
    pub environment: String,
    /// The release version checked.
    pub version: String,
    /// When the checks ran (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// The JUnit XML report of the run.
    pub junit: ResourceDescriptor,
}

impl TestResult {
    /// A result with no tests yet (so `PASSED`); add tests with [`TestResult::with_tests`].
    /// `checked_at` is stored in UTC.
    pub fn new(
        environment: &str,
        version: &str,
        checked_at: OffsetDateTime,
        configuration: ResourceDescriptor,
        junit: ResourceDescriptor,
    ) -> TestResult {
        TestResult {
            result: TestOutcome::Passed,
            configuration: vec![configuration],
            url: None,
            passed_tests: Vec::new(),
            warned_tests: Vec::new(),
            failed_tests: Vec::new(),
            environment: environment.to_string(),
            version: version.to_string(),
            checked_at: checked_at.to_offset(time::UtcOffset::UTC),
            junit,
        }
    }

    /// Sets the tests and derives the result: `FAILED` if any failed, else `WARNED` if any
    /// warned, else `PASSED`.
    pub fn with_tests(
        mut self,
        passed: Vec<String>,
        warned: Vec<String>,
        failed: Vec<String>,
    ) -> TestResult {
        self.result = if !failed.is_empty() {
            TestOutcome::Failed
        } else if !warned.is_empty() {
            TestOutcome::Warned
        } else {
            TestOutcome::Passed
        };
        self.passed_tests = passed;
        self.warned_tests = warned;
        self.failed_tests = failed;
        self
    }

    /// Sets the URL of the run (e.g. the CI build).
    pub fn with_url(mut self, url: &str) -> TestResult {
        self.url = Some(url.to_string());
        self
    }

    /// The statement of this result about `subject_name` with digest `subject_digest`.
    pub fn to_statement(&self, subject_name: &str, subject_digest: &str) -> Statement {
        Statement::new(
            subject_name,
            subject_digest,
            TEST_RESULT_PREDICATE,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }

    /// The test result of a statement (its predicate type checked).
    pub fn from_statement(statement: &Statement) -> Result<TestResult, StatementError> {
        statement.predicate_as(TEST_RESULT_PREDICATE)
    }
}

/// The `verificationResult` of a verification summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerificationResult {
    Passed,
    Failed,
}

/// The `verifier` of a verification summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    pub id: String,
    /// Component → version, e.g. `{"release": "0.1.0"}`.
    #[serde(default)]
    pub version: BTreeMap<String, String>,
}

/// The `policy` of a verification summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

/// One gate condition and whether it held (extra field `conditions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The SLSA verification summary (`https://slsa.dev/verification_summary/v1`) of one gate
/// decision, with the extra fields `approver` and `conditions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    pub verifier: Verifier,
    #[serde(with = "time::serde::rfc3339")]
    pub time_verified: OffsetDateTime,
    pub resource_uri: String,
    pub policy: Policy,
    #[serde(default)]
    pub input_attestations: Vec<ResourceDescriptor>,
    pub verification_result: VerificationResult,
    #[serde(default)]
    pub verified_levels: Vec<String>,
    /// Who approved the promotion.
    pub approver: String,
    /// Every gate condition and whether it held.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The inputs of a [`VerificationSummary`].
#[derive(Debug, Clone)]
pub struct SummaryInput<'a> {
    /// The verifier's id, e.g. `https://example.com/release`.
    pub verifier_id: &'a str,
    /// The verifier's version (`verifier.version.release`).
    pub release_version: &'a str,
    pub time_verified: OffsetDateTime,
    /// The resource the decision is about, e.g. an image reference.
    pub resource_uri: &'a str,
    /// The environment the gate guards; the policy URI is `release-gate:<environment>`.
    pub environment: &'a str,
    pub input_attestations: Vec<ResourceDescriptor>,
    pub approver: &'a str,
    pub conditions: Vec<Condition>,
}

impl VerificationSummary {
    /// The summary of a gate decision: `PASSED` if every condition held (and there is at
    /// least one). The policy is `release-gate:<environment>` with the SHA-256 of the
    /// canonical JSON of the conditions.
    pub fn new(input: SummaryInput<'_>) -> VerificationSummary {
        let passed = !input.conditions.is_empty() && input.conditions.iter().all(|c| c.passed);
        VerificationSummary {
            verifier: Verifier {
                id: input.verifier_id.to_string(),
                version: BTreeMap::from([(
                    "release".to_string(),
                    input.release_version.to_string(),
                )]),
            },
            time_verified: input.time_verified.to_offset(time::UtcOffset::UTC),
            resource_uri: input.resource_uri.to_string(),
            policy: Policy {
                uri: Some(format!("release-gate:{}", input.environment)),
                digest: BTreeMap::from([(
                    "sha256".to_string(),
                    conditions_digest(&input.conditions),
                )]),
            },
            input_attestations: input.input_attestations,
            verification_result: if passed {
                VerificationResult::Passed
            } else {
                VerificationResult::Failed
            },
            verified_levels: Vec::new(),
            approver: input.approver.to_string(),
            conditions: input.conditions,
        }
    }

    /// The statement of this summary about `subject_name` with digest `subject_digest`.
    pub fn to_statement(&self, subject_name: &str, subject_digest: &str) -> Statement {
        Statement::new(
            subject_name,
            subject_digest,
            VERIFICATION_SUMMARY_PREDICATE,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }

    /// The verification summary of a statement (its predicate type checked).
    pub fn from_statement(statement: &Statement) -> Result<VerificationSummary, StatementError> {
        statement.predicate_as(VERIFICATION_SUMMARY_PREDICATE)
    }
}

/// The lowercase hex SHA-256 of the canonical JSON of `conditions`.
pub fn conditions_digest(conditions: &[Condition]) -> String {
    let value = serde_json::to_value(conditions).unwrap_or_default();
    hex::encode(Sha256::digest(canonical_json(&value)))
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
/// strings and numbers as `serde_json` writes them.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::keys::{Algorithm, tests::generate};
    use super::*;
    use time::macros::datetime;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sample() -> TestResult {
        TestResult::new(
            "dev",
            "1.2.3",
            datetime!(2026-12-01 10:00:00 +02:00),
            ResourceDescriptor::of_bytes("checks.toml", b"[checks]"),
            ResourceDescriptor::of_bytes("junit.xml", b"<testsuites/>"),
        )
        .with_tests(vec!["health".into(), "login".into()], vec![], vec![])
        .with_url("https://ci.example.com/job/1")
    }

    #[test]
    fn test_result_has_the_spec_field_names_and_round_trips() {
        let result = sample();
        let statement = result.to_statement("registry.example.com/app", DIGEST);
        let value: serde_json::Value = serde_json::from_slice(&statement.to_json()).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["predicateType"], TEST_RESULT_PREDICATE);
        assert_eq!(value["subject"][0]["name"], "registry.example.com/app");
        assert_eq!(
            value["subject"][0]["digest"]["sha256"],
            DIGEST.strip_prefix("sha256:").unwrap()
        );
        let p = &value["predicate"];
        assert_eq!(p["result"], "PASSED");
        assert_eq!(p["configuration"][0]["name"], "checks.toml");
        assert_eq!(
            p["configuration"][0]["digest"]["sha256"],
            hex::encode(Sha256::digest(b"[checks]"))
        );
        assert_eq!(p["url"], "https://ci.example.com/job/1");
        assert_eq!(p["passedTests"], serde_json::json!(["health", "login"]));
        assert_eq!(p["warnedTests"], serde_json::json!([]));
        assert_eq!(p["failedTests"], serde_json::json!([]));
        assert_eq!(p["environment"], "dev");
        assert_eq!(p["version"], "1.2.3");
        assert_eq!(p["checkedAt"], "2026-12-01T08:00:00Z");
        assert_eq!(p["junit"]["name"], "junit.xml");

        let back = Statement::from_json(&statement.to_json()).unwrap();
        assert_eq!(back, statement);
        assert_eq!(TestResult::from_statement(&back).unwrap(), result);
        assert!(back.has_subject_digest(DIGEST));
        assert!(!back.has_subject_digest(&DIGEST.replace("0123", "0124")));
    }

    #[test]
    fn the_result_follows_the_tests() {
        let r = sample().with_tests(vec!["a".into()], vec!["b".into()], vec![]);
        assert_eq!(r.result, TestOutcome::Warned);
        let r = r.with_tests(vec![], vec!["b".into()], vec!["c".into()]);
        assert_eq!(r.result, TestOutcome::Failed);
    }

    #[test]
    fn signed_statements_come_back_out_of_the_envelope() {
        let key = generate(Algorithm::Ed25519);
        let statement = sample().to_statement("app", DIGEST);
        let envelope = statement.sign(&key, "ci").unwrap();
        assert_eq!(envelope.payload_type, PAYLOAD_TYPE);
        let envelope = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(Statement::from_envelope(&envelope).unwrap(), statement);
        let mut other = envelope.clone();
        other.payload_type = "text/plain".into();
        assert!(matches!(
            Statement::from_envelope(&other),
            Err(StatementError::PayloadType(_))
        ));
    }

    #[test]
    fn wrong_statements_and_predicates_are_errors() {
        let summary_statement = summary().to_statement("app", DIGEST);
        assert!(matches!(
            TestResult::from_statement(&summary_statement),
            Err(StatementError::PredicateType { .. })
        ));
        let mut broken = sample().to_statement("app", DIGEST);
        broken.predicate = serde_json::json!({"result": "MAYBE"});
        assert!(matches!(
            TestResult::from_statement(&broken),
            Err(StatementError::Predicate { .. })
        ));
        let mut wrong = sample().to_statement("app", DIGEST);
        wrong.type_ = "https://in-toto.io/Statement/v0.1".into();
        assert!(matches!(
            Statement::from_json(&wrong.to_json()),
            Err(StatementError::StatementType(_))
        ));
    }

    fn summary() -> VerificationSummary {
        VerificationSummary::new(SummaryInput {
            verifier_id: "https://example.com/release",
            release_version: "0.1.0",
            time_verified: datetime!(2026-12-01 12:00:00 UTC),
            resource_uri: "registry.example.com/app@sha256:0123",
            environment: "prod",
            input_attestations: vec![ResourceDescriptor::at_uri(
                "oci://registry.example.com/app@sha256:aaaa",
                "sha256:aaaa",
            )],
            approver: "alice",
            conditions: vec![
                Condition {
                    name: "tests passed in dev".into(),
                    passed: true,
                    detail: "attestation sha256:aaaa".into(),
                },
                Condition {
                    name: "approved".into(),
                    passed: true,
                    detail: "by alice".into(),
                },
            ],
        })
    }

    #[test]
    fn verification_summary_has_the_spec_field_names_and_round_trips() {
        let s = summary();
        let statement = s.to_statement("app", DIGEST);
        let value: serde_json::Value = serde_json::from_slice(&statement.to_json()).unwrap();
        assert_eq!(value["predicateType"], VERIFICATION_SUMMARY_PREDICATE);
        let p = &value["predicate"];
        assert_eq!(p["verifier"]["id"], "https://example.com/release");
        assert_eq!(p["verifier"]["version"]["release"], "0.1.0");
        assert_eq!(p["timeVerified"], "2026-12-01T12:00:00Z");
        assert_eq!(p["resourceUri"], "registry.example.com/app@sha256:0123");
        assert_eq!(p["policy"]["uri"], "release-gate:prod");
        assert_eq!(
            p["policy"]["digest"]["sha256"],
            conditions_digest(&s.conditions)
        );
        assert_eq!(
            p["inputAttestations"][0]["uri"],
            "oci://registry.example.com/app@sha256:aaaa"
        );
        assert_eq!(p["inputAttestations"][0]["digest"]["sha256"], "aaaa");
        assert_eq!(p["verificationResult"], "PASSED");
        assert_eq!(p["verifiedLevels"], serde_json::json!([]));
        assert_eq!(p["approver"], "alice");
        assert_eq!(p["conditions"][1]["name"], "approved");
        assert_eq!(p["conditions"][1]["passed"], true);
        let back = VerificationSummary::from_statement(
            &Statement::from_json(&statement.to_json()).unwrap(),
        )
        .unwrap();
        assert_eq!(back, s);

        let mut failed = summary();
        failed.conditions[0].passed = false;
        let failed = VerificationSummary::new(SummaryInput {
            conditions: failed.conditions,
            ..summary_input_stub()
        });
        assert_eq!(failed.verification_result, VerificationResult::Failed);
    }

    fn summary_input_stub() -> SummaryInput<'static> {
        SummaryInput {
            verifier_id: "v",
            release_version: "0",
            time_verified: datetime!(2026-12-01 12:00:00 UTC),
            resource_uri: "r",
            environment: "prod",
            input_attestations: vec![],
            approver: "a",
            conditions: vec![],
        }
    }

    #[test]
    fn no_condition_is_not_a_pass() {
        assert_eq!(
            VerificationSummary::new(summary_input_stub()).verification_result,
            VerificationResult::Failed
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value = serde_json::json!({"b": [1, {"z": true, "a": null}], "a": "x\"y"});
        assert_eq!(
            canonical_json(&value),
            br#"{"a":"x\"y","b":[1,{"a":null,"z":true}]}"#.to_vec()
        );
        let c = summary().conditions;
        assert_eq!(conditions_digest(&c), conditions_digest(&c.clone()));
        let mut d = c.clone();
        d[0].detail.push('!');
        assert_ne!(conditions_digest(&c), conditions_digest(&d));
    }
}
