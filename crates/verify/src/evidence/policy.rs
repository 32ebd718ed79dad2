//! Which test-result attestation, if any, lets a release through a gate.
//!
//! An attestation is accepted only if it is a DSSE envelope of an in-toto Statement with the
//! test-result predicate, signed by a trusted key that is not revoked, about exactly the
//! subject digest, from the required environment, with result `PASSED`, and checked at or
//! after the cut-off. Of several acceptable ones the newest (`checkedAt`) is taken. Every
//! other attestation is listed with the reason it was refused.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::dsse::Envelope;
use super::statement::{Statement, TestOutcome, TestResult};
use super::trust::{TrustStore, TrustedKey};

/// Why an attestation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// There is no attestation at all.
    Missing,
    /// Not a DSSE envelope, not an in-toto Statement, or not a test result.
    Malformed(String),
    /// The signature by this trusted key does not verify (the envelope was altered).
    BadSignature(String),
    /// Signed only by this key, which is not trusted.
    UntrustedKey(String),
    /// Signed by this key, which is revoked.
    RevokedKey(String),
    /// Signed by this key, which is trusted only for another environment's evidence.
    KeyOfAnotherEnvironment { keyid: String, environment: String },
    /// The checks did not pass.
    Failed(TestOutcome),
    /// About other subjects (their digests), not the one asked.
    OtherSubject(String),
    /// Checked in this environment, not the one required.
    OtherEnvironment(String),
    /// Checked before the cut-off.
    TooOld {
        checked_at: OffsetDateTime,
        not_before: OffsetDateTime,
    },
    /// Acceptable, but a newer acceptable attestation was taken.
    Superseded { by: String },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Missing => f.write_str("there is no test-result attestation"),
            Rejection::Malformed(detail) => write!(f, "malformed: {detail}"),
            Rejection::BadSignature(keyid) => write!(
                f,
                "the signature by key \"{keyid}\" does not verify (the envelope was altered)"
            ),
            Rejection::UntrustedKey(keyid) => {
                write!(f, "signed by key \"{keyid}\", which is not trusted")
            }
            Rejection::RevokedKey(keyid) => {
                write!(f, "signed by key \"{keyid}\", which is revoked")
            }
            Rejection::KeyOfAnotherEnvironment { keyid, environment } => write!(
                f,
                "signed by key \"{keyid}\", which is trusted only for `{environment}`'s evidence"
            ),
            Rejection::Failed(outcome) => {
                write!(f, "the checks did not pass (result {outcome})")
            }
            Rejection::OtherSubject(digests) => write!(f, "about another subject ({digests})"),
            Rejection::OtherEnvironment(env) => {
                write!(f, "checked in another environment (\"{env}\")")
            }
            Rejection::TooOld {
                checked_at,
                not_before,
            } => write!(
                f,
                "checked at {}, before the cut-off {}",
                rfc3339(*checked_at),
                rfc3339(*not_before)
            ),
            Rejection::Superseded { by } => {
                write!(f, "acceptable, but the newer attestation {by} was taken")
            }
        }
    }
}

/// One refused attestation: its reference (the digest it was given under) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The reference the attestation was given under; for [`Rejection::Missing`], the
    /// subject digest.
    pub attestation: String,
    pub reason: Rejection,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Rejection::Missing => write!(f, "{}: {}", self.attestation, self.reason),
            _ => write!(f, "attestation {}: {}", self.attestation, self.reason),
        }
    }
}

/// The accepted attestation.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The reference the attestation was given under.
    pub attestation: String,
    /// The trusted key whose signature verified.
    pub keyid: String,
    pub statement: Statement,
    pub result: TestResult,
}

/// What became of every attestation of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The subject digest asked about.
    pub subject: String,
    /// The environment required.
    pub environment: String,
    pub accepted: Option<Accepted>,
    /// Every attestation not accepted, in the order given (or one [`Rejection::Missing`]).
    pub rejected: Vec<Rejected>,
}

impl Assessment {
    pub fn is_accepted(&self) -> bool {
        self.accepted.is_some()
    }
}

impl fmt::Display for Assessment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.accepted {
            Some(a) => write!(
                f,
                "{}: accepted attestation {} (checked in {} at {}, signed by \"{}\")",
                self.subject,
                a.attestation,
                a.result.environment,
                rfc3339(a.result.checked_at),
                a.keyid
            ),
            None => {
                write!(
                    f,
                    "{}: no acceptable test-result attestation for environment \"{}\"",
                    self.subject, self.environment
                )?;
                for r in &self.rejected {
                    write!(f, "; {r}")?;
                }
                Ok(())
            }
        }
    }
}

/// Assesses the test-result attestations `(reference, DSSE envelope JSON)` of the subject
/// `subject_digest` (`sha256:<hex>`) for `environment`, accepting only attestations checked
/// at or after `not_before`.
pub fn evaluate_test_results(
    envelopes: &[(impl AsRef<str>, Vec<u8>)],
    subject_digest: &str,
    trust: &TrustStore,
    environment: &str,
    not_before: OffsetDateTime,
) -> Assessment {
    let mut assessment = Assessment {
        subject: subject_digest.to_string(),
        environment: environment.to_string(),
        accepted: None,
        rejected: Vec::new(),
    };
    if envelopes.is_empty() {
        assessment.rejected.push(Rejected {
            attestation: subject_digest.to_string(),
            reason: Rejection::Missing,
        });
        return assessment;
    }
    for (reference, json) in envelopes {
        let reference = reference.as_ref();
        match assess_one(
            reference,
            json,
            subject_digest,
            trust,
            environment,
            not_before,
        ) {
            Err(reason) => assessment.rejected.push(Rejected {
                attestation: reference.to_owned(),
                reason,
            }),
            Ok(candidate) => {
                let newer = assessment
                    .accepted
                    .as_ref()
                    .is_none_or(|best| candidate.result.checked_at > best.result.checked_at);
                let (taken, superseded) = if newer {
                    (Some(candidate), assessment.accepted.take())
                } else {
                    (assessment.accepted.take(), Some(candidate))
                };
                assessment.accepted = taken;
                if let (Some(loser), Some(winner)) = (superseded, &assessment.accepted) {
                    assessment.rejected.push(Rejected {
                        attestation: loser.attestation,
                        reason: Rejection::Superseded {
                            by: winner.attestation.clone(),
                        },
                    });
                }
            }
        }
    }
    // A later winner supersedes earlier ones: name the final winner in every entry.
    if let Some(winner) = &assessment.accepted {
        for r in &mut assessment.rejected {
            if let Rejection::Superseded { by } = &mut r.reason {
                by.clone_from(&winner.attestation);
            }
        }
    }
    assessment
}

fn assess_one(
    reference: &str,
    json: &[u8],
    subject_digest: &str,
    trust: &TrustStore,
    environment: &str,
    not_before: OffsetDateTime,
) -> Result<Accepted, Rejection> {
    let envelope = Envelope::from_json(json).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if envelope.signatures.is_empty() {
        return Err(Rejection::Malformed(
            "the envelope has no signature".to_string(),
        ));
    }
    // The signature first: nothing of an unverified payload is believed.
    let pae = envelope.pae();
    let mut refusal: Option<(u8, Rejection)> = None;
    let mut signer = None;
    for s in &envelope.signatures {
        let (rank, reason) = match trust.get(&s.keyid) {
            None => (1, Rejection::UntrustedKey(s.keyid.clone())),
            Some(key) if key.revoked => (2, Rejection::RevokedKey(s.keyid.clone())),
            Some(key) if !key.public.verify(&pae, &s.sig) => {
                (3, Rejection::BadSignature(s.keyid.clone()))
            }
            Some(TrustedKey {
                environment: Some(only),
                ..
            }) if only != environment => (
                2,
                Rejection::KeyOfAnotherEnvironment {
                    keyid: s.keyid.clone(),
                    environment: only.clone(),
                },
            ),
            Some(_) => {
                signer = Some(s.keyid.clone());
                break;
            }
        };
        if refusal.as_ref().is_none_or(|(r, _)| rank > *r) {
            refusal = Some((rank, reason));
        }
    }
    let Some(keyid) = signer else {
        return Err(refusal.map_or_else(
            || Rejection::Malformed("the envelope has no signature".to_string()),
            |(_, reason)| reason,
        ));
    };
    let statement =
        Statement::from_envelope(&envelope).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let result =
        TestResult::from_statement(&statement).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !statement.has_subject_digest(subject_digest) {
        let found: Vec<String> = statement
            .subject
            .iter()
            .filter_map(|s| s.sha256())
            .collect();
        return Err(Rejection::OtherSubject(if found.is_empty() {
            "no sha256 subject".to_string()
        } else {
            found.join(", ")
        }));
    }
    if result.environment != environment {
        return Err(Rejection::OtherEnvironment(result.environment));
    }
    if result.result != TestOutcome::Passed {
        return Err(Rejection::Failed(result.result));
    }
    if result.checked_at < not_before {
        return Err(Rejection::TooOld {
            checked_at: result.checked_at,
            not_before,
        });
    }
    Ok(Accepted {
        attestation: reference.to_string(),
        keyid,
        statement,
        result,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::keys::{Algorithm, SigningKey, tests::generate};
    use super::super::statement::ResourceDescriptor;
    use super::super::trust::TrustedKey;
    use super::*;
    use time::macros::datetime;

    const SUBJECT: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const CUTOFF: OffsetDateTime = datetime!(2026-12-01 00:00:00 UTC);

    struct Keys {
        ci: SigningKey,
        ci_ec: SigningKey,
        old: SigningKey,
        eve: SigningKey,
        trust: TrustStore,
    }

    fn keys() -> Keys {
        let ci = generate(Algorithm::Ed25519);
        let ci_ec = generate(Algorithm::EcdsaP256Sha256);
        let old = generate(Algorithm::Ed25519);
        let eve = generate(Algorithm::Ed25519);
        let mut trust = TrustStore::new(vec![
            TrustedKey::new("ci", ci.public_key()),
            TrustedKey::new("ci-ec", ci_ec.public_key()),
            TrustedKey::new("old", old.public_key()),
        ]);
        trust.revoke("old");
        Keys {
            ci,
            ci_ec,
            old,
            eve,
            trust,
        }
    }

    fn result(env: &str, at: OffsetDateTime, failed: &[&str]) -> TestResult {
        TestResult::new(
            env,
            "1.0.0",
            at,
            ResourceDescriptor::of_bytes("checks.toml", b"x"),
            ResourceDescriptor::of_bytes("junit.xml", b"y"),
        )
        .with_tests(
            vec!["health".into()],
            vec![],
            failed.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn signed(r: &TestResult, digest: &str, key: &SigningKey, keyid: &str) -> Vec<u8> {
        r.to_statement("app", digest)
            .sign(key, keyid)
            .unwrap()
            .to_json()
    }

    fn good(k: &Keys, at: OffsetDateTime) -> Vec<u8> {
        signed(&result("dev", at, &[]), SUBJECT, &k.ci, "ci")
    }

    fn eval(k: &Keys, list: Vec<(&str, Vec<u8>)>) -> Assessment {
        let list: Vec<(String, Vec<u8>)> =
            list.into_iter().map(|(r, j)| (r.to_string(), j)).collect();
        evaluate_test_results(&list, SUBJECT, &k.trust, "dev", CUTOFF)
    }

    fn only_reason(a: &Assessment) -> &Rejection {
        assert!(a.accepted.is_none(), "{a}");
        assert_eq!(a.rejected.len(), 1, "{a}");
        &a.rejected[0].reason
    }

    #[test]
    fn a_good_attestation_is_accepted_with_both_algorithms() {
        let k = keys();
        let at = datetime!(2026-12-01 09:00:00 UTC);
        let a = eval(&k, vec![("sha256:aa", good(&k, at))]);
        let accepted = a.accepted.as_ref().unwrap();
        assert_eq!(accepted.attestation, "sha256:aa");
        assert_eq!(accepted.keyid, "ci");
        assert_eq!(accepted.result.checked_at, at);
        assert!(a.rejected.is_empty());
        assert!(a.to_string().contains("accepted attestation sha256:aa"));

        let ec = signed(&result("dev", at, &[]), SUBJECT, &k.ci_ec, "ci-ec");
        assert_eq!(
            eval(&k, vec![("sha256:ec", ec)]).accepted.unwrap().keyid,
            "ci-ec"
        );
        // Exactly at the cut-off is accepted.
        assert!(eval(&k, vec![("sha256:cut", good(&k, CUTOFF))]).is_accepted());
    }

    #[test]
    fn no_attestation_is_missing() {
        let k = keys();
        let a = eval(&k, vec![]);
        assert_eq!(only_reason(&a), &Rejection::Missing);
        assert_eq!(a.rejected[0].attestation, SUBJECT);
        assert!(a.to_string().contains("no test-result attestation"), "{a}");
    }

    #[test]
    fn malformed_attestations() {
        let k = keys();
        let at = datetime!(2026-12-01 09:00:00 UTC);
        let not_dsse = eval(&k, vec![("sha256:m1", b"{\"hello\":1}".to_vec())]);
        assert!(matches!(only_reason(&not_dsse), Rejection::Malformed(_)));

        let not_statement =
            Envelope::sign(super::super::statement::PAYLOAD_TYPE, b"[]", &k.ci, "ci")
                .unwrap()
                .to_json();
        let a = eval(&k, vec![("sha256:m2", not_statement)]);
        assert!(matches!(only_reason(&a), Rejection::Malformed(_)));

        let mut other_predicate = result("dev", at, &[]).to_statement("app", SUBJECT);
        other_predicate.predicate_type =
            super::super::statement::VERIFICATION_SUMMARY_PREDICATE.into();
        let json = other_predicate.sign(&k.ci, "ci").unwrap().to_json();
        let a = eval(&k, vec![("sha256:m3", json)]);
        let Rejection::Malformed(detail) = only_reason(&a) else {
            panic!("{a}")
        };
        assert!(detail.contains("predicate type"), "{detail}");

        let unsigned = Envelope {
            signatures: vec![],
            ..Envelope::from_json(&good(&k, at)).unwrap()
        };
        let a = eval(&k, vec![("sha256:m4", unsigned.to_json())]);
        assert!(matches!(only_reason(&a), Rejection::Malformed(_)));
        assert!(
            a.to_string().contains("attestation sha256:m4: malformed"),
            "{a}"
        );
    }

    #[test]
    fn one_changed_byte_is_a_bad_signature() {
        let k = keys();
        let mut env = Envelope::from_json(&good(&k, datetime!(2026-12-01 09:00:00 UTC))).unwrap();
        // Change one byte of the payload, keeping it valid JSON: a digit of the subject.
        let text = String::from_utf8(env.payload.clone()).unwrap();
        let i = text.find("1111").unwrap();
        env.payload[i] = b'3';
        let a = eval(&k, vec![("sha256:bad", env.to_json())]);
        assert_eq!(only_reason(&a), &Rejection::BadSignature("ci".into()));
        assert!(a.to_string().contains("attestation sha256:bad"), "{a}");
        assert!(a.to_string().contains("does not verify"), "{a}");
    }

    #[test]
    fn a_key_trusted_for_another_environment_does_not_vouch_for_this_one() {
        let mut k = keys();
        let prod = generate(Algorithm::EcdsaP256Sha256);
        let mut prod_key = TrustedKey::new("prod", prod.public_key());
        prod_key.environment = Some("prod".into());
        k.trust.add(prod_key);
        let at = datetime!(2026-12-01 09:00:00 UTC);
        // PROD's own key claims a passing DEV check: refused, whatever it says.
        let forged = signed(&result("dev", at, &[]), SUBJECT, &prod, "prod");
        let a = eval(&k, vec![("sha256:forged", forged)]);
        assert_eq!(
            only_reason(&a),
            &Rejection::KeyOfAnotherEnvironment {
                keyid: "prod".into(),
                environment: "prod".into()
            }
        );
        assert!(a.to_string().contains("trusted only for `prod`"), "{a}");
        // A key bound to `dev` vouches for `dev`.
        let mut dev_key = TrustedKey::new("ci-dev", k.ci.public_key());
        dev_key.environment = Some("dev".into());
        let k2 = Keys {
            trust: TrustStore::new(vec![dev_key]),
            ..keys()
        };
        let ok = signed(&result("dev", at, &[]), SUBJECT, &k.ci, "ci-dev");
        assert!(eval(&k2, vec![("sha256:ok", ok)]).is_accepted());
    }

    #[test]
    fn foreign_and_revoked_keys() {
        let k = keys();
        let at = datetime!(2026-12-01 09:00:00 UTC);
        let r = result("dev", at, &[]);
        let a = eval(&k, vec![("sha256:eve", signed(&r, SUBJECT, &k.eve, "eve"))]);
        assert_eq!(only_reason(&a), &Rejection::UntrustedKey("eve".into()));
        // A foreign key claiming a trusted keyid is a bad signature, not a pass.
        let a = eval(&k, vec![("sha256:eve2", signed(&r, SUBJECT, &k.eve, "ci"))]);
        assert_eq!(only_reason(&a), &Rejection::BadSignature("ci".into()));
        let a = eval(&k, vec![("sha256:old", signed(&r, SUBJECT, &k.old, "old"))]);
        assert_eq!(only_reason(&a), &Rejection::RevokedKey("old".into()));
        assert!(a.to_string().contains("revoked"), "{a}");
        // A second, trusted signature makes it acceptable.
        let mut env = r.to_statement("app", SUBJECT).sign(&k.eve, "eve").unwrap();
        env.add_signature(&k.ci, "ci").unwrap();
        let a = eval(&k, vec![("sha256:two", env.to_json())]);
        assert_eq!(a.accepted.unwrap().keyid, "ci");
    }

    #[test]
    fn failed_other_subject_other_environment_and_too_old() {
        let k = keys();
        let at = datetime!(2026-12-01 09:00:00 UTC);
        let failed = signed(&result("dev", at, &["login"]), SUBJECT, &k.ci, "ci");
        let a = eval(&k, vec![("sha256:f", failed)]);
        assert_eq!(only_reason(&a), &Rejection::Failed(TestOutcome::Failed));

        let other = signed(&result("dev", at, &[]), OTHER, &k.ci, "ci");
        let a = eval(&k, vec![("sha256:o", other)]);
        assert_eq!(only_reason(&a), &Rejection::OtherSubject(OTHER.into()));

        let staging = signed(&result("staging", at, &[]), SUBJECT, &k.ci, "ci");
        let a = eval(&k, vec![("sha256:s", staging)]);
        assert_eq!(
            only_reason(&a),
            &Rejection::OtherEnvironment("staging".into())
        );

        let old_at = datetime!(2026-11-30 23:59:59 UTC);
        let a = eval(&k, vec![("sha256:t", good(&k, old_at))]);
        assert_eq!(
            only_reason(&a),
            &Rejection::TooOld {
                checked_at: old_at,
                not_before: CUTOFF
            }
        );
        assert!(
            a.to_string().contains(
                "checked at 2026-11-30T23:59:59Z, before the cut-off 2026-12-01T00:00:00Z"
            ),
            "{a}"
        );
    }

    #[test]
    fn the_newest_acceptable_is_taken_and_every_other_is_listed() {
        let k = keys();
        let t1 = datetime!(2026-12-01 08:00:00 UTC);
        let t2 = datetime!(2026-12-01 10:00:00 UTC);
        let t3 = datetime!(2026-12-01 09:00:00 UTC);
        let a = eval(
            &k,
            vec![
                ("sha256:a1", good(&k, t1)),
                ("sha256:junk", b"junk".to_vec()),
                ("sha256:a2", good(&k, t2)),
                ("sha256:a3", good(&k, t3)),
            ],
        );
        assert_eq!(a.accepted.as_ref().unwrap().attestation, "sha256:a2");
        let rejected: Vec<_> = a
            .rejected
            .iter()
            .map(|r| (r.attestation.as_str(), r.reason.clone()))
            .collect();
        assert_eq!(rejected.len(), 3);
        assert!(matches!(
            rejected[0],
            ("sha256:junk", Rejection::Malformed(_))
        ));
        let superseded = Rejection::Superseded {
            by: "sha256:a2".into(),
        };
        assert!(rejected.contains(&("sha256:a1", superseded.clone())));
        assert!(rejected.contains(&("sha256:a3", superseded)));
    }

    #[test]
    fn when_none_is_acceptable_every_reason_is_given() {
        let k = keys();
        let at = datetime!(2026-12-01 09:00:00 UTC);
        let a = eval(
            &k,
            vec![
                (
                    "sha256:x1",
                    signed(&result("dev", at, &["a"]), SUBJECT, &k.ci, "ci"),
                ),
                (
                    "sha256:x2",
                    signed(&result("dev", at, &[]), SUBJECT, &k.eve, "eve"),
                ),
            ],
        );
        assert!(!a.is_accepted());
        let text = a.to_string();
        assert!(
            text.contains("no acceptable test-result attestation"),
            "{text}"
        );
        assert!(
            text.contains("attestation sha256:x1: the checks did not pass"),
            "{text}"
        );
        assert!(
            text.contains("attestation sha256:x2: signed by key \"eve\""),
            "{text}"
        );
    }
}
