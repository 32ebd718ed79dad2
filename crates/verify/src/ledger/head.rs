//! The signed ledger head: `ledger.head`, next to `ledger.jsonl`, a DSSE envelope of
//! `{"seq":N,"hash":"sha256:…","entries":N}` naming the newest entry and the hash the chain
//! computes for it (the sha256 of its line, without the newline), signed by the ledger key.
//!
//! The hash chain alone cannot tell an edit of the newest entry, or the removal of the
//! newest entries, from the real thing: nothing after them records their hash. The signed
//! head does, for whoever does not hold the key. It is rewritten (atomically, under the
//! ledger lock) after every append, once the entry is durable; a crash between the two
//! leaves a head one entry behind, which [`check`] reports until the next append.
//!
//! What it does not catch: a rollback of the whole state directory (ledger and head) to
//! an older, validly signed state. Only a head archived elsewhere catches that.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evidence::{Envelope, KeyError, SignatureStatus, SigningKey, TrustStore};
use crate::ledger::VerifyReport;

/// The DSSE payload type of a signed ledger head.
pub const HEAD_PAYLOAD_TYPE: &str = "application/vnd.release.ledger-head+json";
/// The file name of the signed head, in the ledger's directory.
pub const HEAD_FILE: &str = "ledger.head";

/// The key that signs the ledger head after every append, and the id its signature
/// carries (DSSE `keyid`). Its key material is never printed.
pub struct HeadSigner {
    key_id: String,
    key: SigningKey,
}

impl HeadSigner {
    pub fn new(key_id: &str, key: SigningKey) -> HeadSigner {
        HeadSigner {
            key_id: key_id.to_owned(),
            key,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The DSSE envelope JSON of `head`, signed by this key.
    pub fn sign(&self, head: &SignedHead) -> Result<Vec<u8>, KeyError> {
        let envelope = Envelope::sign(HEAD_PAYLOAD_TYPE, &head.to_json(), &self.key, &self.key_id)?;
        Ok(envelope.to_json())
    }
}

impl fmt::Debug for HeadSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeadSigner({}, {:?})", self.key_id, self.key)
    }
}

/// What a signed head says: the newest entry's seq and hash, and how many entries the
/// ledger held (equal to `seq`: seqs are line numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub seq: u64,
    pub hash: String,
    pub entries: u64,
}

impl SignedHead {
    /// The payload bytes: `{"seq":N,"hash":"…","entries":N}`.
    pub fn to_json(&self) -> Vec<u8> {
        // Two numbers and a string: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why the signed head does not vouch for the ledger as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeadProblem {
    /// No `ledger.head` file.
    Missing,
    /// The file is not a DSSE envelope of a head.
    Malformed { reason: String },
    /// The envelope carries no signature at all.
    Unsigned,
    /// No signature is by a trusted key.
    UntrustedKey { key_id: String },
    /// The only trusted key that signed is revoked.
    RevokedKey { key_id: String },
    /// A trusted key's signature does not verify: the head (or the signature) was altered.
    BadSignature { key_id: String },
    /// The head is validly signed but names another newest entry than the ledger's.
    Mismatch {
        /// The ledger's newest entry (its line number) and hash; `None` when empty.
        ledger_seq: Option<u64>,
        ledger_hash: Option<String>,
        head_seq: u64,
        head_hash: String,
    },
}

impl fmt::Display for HeadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(
                f,
                "{HEAD_FILE} is missing: nothing vouches for the newest ledger entry"
            ),
            Self::Malformed { reason } => write!(f, "{HEAD_FILE} is not a signed head: {reason}"),
            Self::Unsigned => write!(f, "{HEAD_FILE} carries no signature"),
            Self::UntrustedKey { key_id } => write!(
                f,
                "{HEAD_FILE} is signed by key `{key_id}`, which is not trusted"
            ),
            Self::RevokedKey { key_id } => write!(
                f,
                "{HEAD_FILE} is signed by key `{key_id}`, which is revoked"
            ),
            Self::BadSignature { key_id } => write!(
                f,
                "the signature of key `{key_id}` on {HEAD_FILE} does not verify: the head was altered"
            ),
            Self::Mismatch {
                ledger_seq,
                ledger_hash,
                head_seq,
                head_hash,
            } => match (ledger_seq, ledger_hash) {
                (Some(seq), Some(hash)) => write!(
                    f,
                    "the newest ledger entry (seq {seq}, hash {hash}) is not the one the signed \
                     head covers (head seq {head_seq}, hash {head_hash}): the newest entries \
                     were altered or removed"
                ),
                _ => write!(
                    f,
                    "the ledger is empty but the signed head covers seq {head_seq} (hash \
                     {head_hash}): its entries were removed"
                ),
            },
        }
    }
}

/// The result of checking the signed head against the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadCheck {
    /// The head as the file states it, when it could be read (even if not trusted).
    pub head: Option<SignedHead>,
    /// The trusted key whose valid signature vouches for the head.
    pub signed_by: Option<String>,
    pub problem: Option<HeadProblem>,
}

impl HeadCheck {
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }

    fn problem(head: Option<SignedHead>, problem: HeadProblem) -> HeadCheck {
        HeadCheck {
            head,
            signed_by: None,
            problem: Some(problem),
        }
    }
}

/// Checks the bytes of `ledger.head` (`None`: no file) against the keys in `trust` and the
/// ledger as `report` recomputed it: a trusted, not revoked key's signature must verify, and
/// the head must name the ledger's newest entry and its hash. An empty ledger with no head
/// is valid (nothing was ever appended).
pub fn check(bytes: Option<&[u8]>, trust: &TrustStore, report: &VerifyReport) -> HeadCheck {
    let Some(bytes) = bytes else {
        return if report.lines == 0 {
            HeadCheck {
                head: None,
                signed_by: None,
                problem: None,
            }
        } else {
            HeadCheck::problem(None, HeadProblem::Missing)
        };
    };
    let envelope = match Envelope::from_json(bytes) {
        Ok(e) => e,
        Err(e) => {
            let reason = e.to_string();
            return HeadCheck::problem(None, HeadProblem::Malformed { reason });
        }
    };
    if envelope.payload_type != HEAD_PAYLOAD_TYPE {
        let reason = format!(
            "payload type is `{}`, expected `{HEAD_PAYLOAD_TYPE}`",
            envelope.payload_type
        );
        return HeadCheck::problem(None, HeadProblem::Malformed { reason });
    }
    let parsed = serde_json::from_slice::<SignedHead>(&envelope.payload);
    let head = parsed.as_ref().ok().cloned();
    if envelope.signatures.is_empty() {
        return HeadCheck::problem(head, HeadProblem::Unsigned);
    }
    // Every signature is checked against the trusted, not revoked keys; the first that
    // verifies vouches. Otherwise the most telling refusal is reported: an altered head
    // (a trusted key's signature fails) before a revoked key before an unknown one.
    let checks =
        envelope.check_signatures(|id| trust.get(id).filter(|k| !k.revoked).map(|k| &k.public));
    let mut refusal: Option<(u8, HeadProblem)> = None;
    let mut signed_by = None;
    for c in checks {
        let key_id = c.keyid.clone();
        let (rank, problem) = match c.status {
            SignatureStatus::Verified => {
                signed_by = Some(key_id);
                break;
            }
            SignatureStatus::Invalid => (3, HeadProblem::BadSignature { key_id }),
            SignatureStatus::UnknownKey if trust.get(&key_id).is_some() => {
                (2, HeadProblem::RevokedKey { key_id })
            }
            SignatureStatus::UnknownKey => (1, HeadProblem::UntrustedKey { key_id }),
        };
        if refusal.as_ref().is_none_or(|(r, _)| rank > *r) {
            refusal = Some((rank, problem));
        }
    }
    let Some(signed_by) = signed_by else {
        let problem = refusal.map_or(HeadProblem::Unsigned, |(_, p)| p);
        return HeadCheck::problem(head, problem);
    };
    // Only now is the payload trusted: a signed payload that is not a head is malformed.
    let head = match parsed {
        Ok(head) => head,
        Err(e) => {
            let reason = format!("the signed payload is not a head: {e}");
            return HeadCheck {
                head: None,
                signed_by: Some(signed_by),
                problem: Some(HeadProblem::Malformed { reason }),
            };
        }
    };
    let ledger_seq = (report.lines > 0).then_some(report.lines);
    let matches = ledger_seq == Some(head.seq)
        && head.entries == head.seq
        && report.head.as_deref() == Some(head.hash.as_str());
    let problem = (!matches).then(|| HeadProblem::Mismatch {
        ledger_seq,
        ledger_hash: report.head.clone(),
        head_seq: head.seq,
        head_hash: head.hash.clone(),
    });
    HeadCheck {
        head: Some(head),
        signed_by: Some(signed_by),
        problem,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::audit::verify_records;
    use crate::evidence::keys::tests::generate;
    use crate::evidence::{Algorithm, TrustedKey};
    use crate::{EntryKind, StateDir};

    struct Fixture {
        _dir: tempfile::TempDir,
        state: StateDir,
        trust: TrustStore,
    }

    /// A state directory whose ledger is signed by key `ledger-1`, with three entries.
    fn signed(algorithm: Algorithm) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(algorithm);
        let trust = TrustStore::new(vec![TrustedKey::new("ledger-1", key.public_key())]);
        let state = StateDir::open(dir.path().join("state"))
            .unwrap()
            .with_head_signer(Some(HeadSigner::new("ledger-1", key)));
        for n in 0..3 {
            state
                .ledger()
                .append(EntryKind::Checked, "t", json!({ "n": n }))
                .unwrap();
        }
        Fixture {
            _dir: dir,
            state,
            trust,
        }
    }

    fn check_now(f: &Fixture) -> HeadCheck {
        let (report, bytes) = f.state.ledger().scan_with_head(|_| Ok(())).unwrap();
        check(bytes.as_deref(), &f.trust, &report)
    }

    fn ledger_lines(f: &Fixture) -> Vec<String> {
        std::fs::read_to_string(f.state.ledger_path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(f: &Fixture, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(f.state.ledger_path(), text).unwrap();
    }

    fn resign(f: &Fixture, key: &SigningKey, key_id: &str) {
        let bytes = std::fs::read(f.state.ledger().head_path()).unwrap();
        let old = Envelope::from_json(&bytes).unwrap();
        let forged = Envelope::sign(HEAD_PAYLOAD_TYPE, &old.payload, key, key_id).unwrap();
        std::fs::write(f.state.ledger().head_path(), forged.to_json()).unwrap();
    }

    #[test]
    fn every_append_signs_a_head_naming_the_newest_entry() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let f = signed(algorithm);
            let bytes = std::fs::read(f.state.root().join(HEAD_FILE)).unwrap();
            let envelope = Envelope::from_json(&bytes).unwrap();
            assert_eq!(envelope.payload_type, HEAD_PAYLOAD_TYPE);
            assert_eq!(envelope.signatures[0].keyid, "ledger-1");
            let head: SignedHead = serde_json::from_slice(&envelope.payload).unwrap();
            let report = f.state.ledger().verify().unwrap();
            assert_eq!(head.seq, 3);
            assert_eq!(head.entries, 3);
            assert_eq!(Some(head.hash.clone()), report.head);
            let checked = check_now(&f);
            assert_eq!(checked.problem, None);
            assert_eq!(checked.signed_by.as_deref(), Some("ledger-1"));
            assert_eq!(checked.head, Some(head));
            let records = verify_records(&f.state, Some(&f.trust)).unwrap();
            assert!(records.is_intact());
        }
    }

    #[test]
    fn an_unsigned_ledger_writes_no_head() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state
            .ledger()
            .append(EntryKind::Checked, "t", json!({}))
            .unwrap();
        assert!(!dir.path().join(HEAD_FILE).exists());
        // Without trusted ledger keys the head is not checked at all.
        let records = verify_records(&state, None).unwrap();
        assert!(records.signed_head.is_none());
        assert!(records.is_intact());
    }

    #[test]
    fn an_edit_of_the_newest_entry_is_caught_by_the_head_alone() {
        let f = signed(Algorithm::Ed25519);
        let mut lines = ledger_lines(&f);
        let last = lines.last_mut().unwrap();
        *last = last.replace("\"n\":2", "\"n\":7");
        write_lines(&f, &lines);
        // The chain cannot see it...
        let report = f.state.ledger().verify().unwrap();
        assert!(report.is_intact());
        // ...the signed head does.
        let checked = check_now(&f);
        let Some(HeadProblem::Mismatch {
            ledger_seq,
            head_seq,
            ..
        }) = &checked.problem
        else {
            panic!("{checked:?}");
        };
        assert_eq!((*ledger_seq, *head_seq), (Some(3), 3));
        let message = checked.problem.as_ref().unwrap().to_string();
        assert!(
            message.starts_with("the newest ledger entry (seq 3, hash sha256:"),
            "{message}"
        );
        assert!(message.contains("(head seq 3, hash sha256:"), "{message}");
        let records = verify_records(&f.state, Some(&f.trust)).unwrap();
        assert!(records.chain_break.is_none());
        assert!(!records.is_intact());
    }

    #[test]
    fn removing_the_newest_entries_is_caught() {
        let f = signed(Algorithm::Ed25519);
        let lines = ledger_lines(&f);
        write_lines(&f, &lines[..2]);
        let checked = check_now(&f);
        assert!(matches!(
            checked.problem,
            Some(HeadProblem::Mismatch {
                ledger_seq: Some(2),
                head_seq: 3,
                ..
            })
        ));
        std::fs::write(f.state.ledger_path(), "").unwrap();
        let checked = check_now(&f);
        assert!(matches!(
            checked.problem,
            Some(HeadProblem::Mismatch {
                ledger_seq: None,
                ..
            })
        ));
        assert!(
            checked
                .problem
                .unwrap()
                .to_string()
                .starts_with("the ledger is empty but the signed head covers seq 3")
        );
    }

    #[test]
    fn a_missing_head_is_refused_unless_the_ledger_is_empty() {
        let f = signed(Algorithm::Ed25519);
        std::fs::remove_file(f.state.ledger().head_path()).unwrap();
        let checked = check_now(&f);
        assert_eq!(checked.problem, Some(HeadProblem::Missing));
        assert!(
            HeadProblem::Missing
                .to_string()
                .starts_with("ledger.head is missing")
        );
        let empty = VerifyReport {
            lines: 0,
            head: None,
            first_break: None,
        };
        assert!(check(None, &f.trust, &empty).is_valid());
    }

    #[test]
    fn a_head_signed_by_an_untrusted_key_is_refused() {
        let f = signed(Algorithm::Ed25519);
        resign(&f, &generate(Algorithm::Ed25519), "intruder");
        let checked = check_now(&f);
        assert_eq!(
            checked.problem,
            Some(HeadProblem::UntrustedKey {
                key_id: "intruder".into()
            })
        );
        assert_eq!(
            checked.problem.unwrap().to_string(),
            "ledger.head is signed by key `intruder`, which is not trusted"
        );
    }

    #[test]
    fn a_head_signed_by_another_key_under_the_trusted_id_does_not_verify() {
        let f = signed(Algorithm::Ed25519);
        resign(&f, &generate(Algorithm::Ed25519), "ledger-1");
        let checked = check_now(&f);
        assert_eq!(
            checked.problem,
            Some(HeadProblem::BadSignature {
                key_id: "ledger-1".into()
            })
        );
        assert_eq!(checked.signed_by, None);
    }

    #[test]
    fn a_forged_payload_does_not_verify() {
        let f = signed(Algorithm::Ed25519);
        let path = f.state.ledger().head_path();
        let mut envelope = Envelope::from_json(&std::fs::read(&path).unwrap()).unwrap();
        // The head rewritten to cover an edited newest entry, the old signature kept.
        let mut lines = ledger_lines(&f);
        let last = lines.last_mut().unwrap();
        *last = last.replace("\"n\":2", "\"n\":7");
        write_lines(&f, &lines);
        let report = f.state.ledger().verify().unwrap();
        envelope.payload = SignedHead {
            seq: 3,
            hash: report.head.clone().unwrap(),
            entries: 3,
        }
        .to_json();
        std::fs::write(&path, envelope.to_json()).unwrap();
        assert!(matches!(
            check_now(&f).problem,
            Some(HeadProblem::BadSignature { .. })
        ));
    }

    #[test]
    fn a_head_signed_by_a_revoked_key_is_refused() {
        let mut f = signed(Algorithm::Ed25519);
        assert!(f.trust.revoke("ledger-1"));
        let checked = check_now(&f);
        assert_eq!(
            checked.problem,
            Some(HeadProblem::RevokedKey {
                key_id: "ledger-1".into()
            })
        );
        assert_eq!(
            checked.problem.unwrap().to_string(),
            "ledger.head is signed by key `ledger-1`, which is revoked"
        );
    }

    #[test]
    fn a_second_trusted_signature_is_enough() {
        let f = signed(Algorithm::Ed25519);
        let path = f.state.ledger().head_path();
        let mut envelope = Envelope::from_json(&std::fs::read(&path).unwrap()).unwrap();
        // An untrusted signature first does not hide the trusted one.
        let other = generate(Algorithm::Ed25519);
        let mut both = Envelope::sign(HEAD_PAYLOAD_TYPE, &envelope.payload, &other, "x").unwrap();
        both.signatures.append(&mut envelope.signatures);
        std::fs::write(&path, both.to_json()).unwrap();
        let checked = check_now(&f);
        assert!(checked.is_valid(), "{checked:?}");
        assert_eq!(checked.signed_by.as_deref(), Some("ledger-1"));
    }

    #[test]
    fn malformed_and_unsigned_heads_are_refused() {
        let f = signed(Algorithm::Ed25519);
        let path = f.state.ledger().head_path();
        let envelope = Envelope::from_json(&std::fs::read(&path).unwrap()).unwrap();

        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            check_now(&f).problem,
            Some(HeadProblem::Malformed { .. })
        ));

        let mut wrong_type = envelope.clone();
        wrong_type.payload_type = "application/vnd.in-toto+json".into();
        std::fs::write(&path, wrong_type.to_json()).unwrap();
        let problem = check_now(&f).problem.unwrap();
        assert!(problem.to_string().contains("payload type"), "{problem}");

        let mut unsigned = envelope.clone();
        unsigned.signatures.clear();
        std::fs::write(&path, unsigned.to_json()).unwrap();
        assert_eq!(check_now(&f).problem, Some(HeadProblem::Unsigned));

        // Validly signed, but not a head.
        let key = generate(Algorithm::Ed25519);
        let trust = TrustStore::new(vec![TrustedKey::new("k", key.public_key())]);
        let not_a_head = Envelope::sign(HEAD_PAYLOAD_TYPE, b"{\"seq\":\"x\"}", &key, "k").unwrap();
        let report = f.state.ledger().verify().unwrap();
        let checked = check(Some(&not_a_head.to_json()), &trust, &report);
        assert!(matches!(
            checked.problem,
            Some(HeadProblem::Malformed { .. })
        ));
        assert_eq!(checked.signed_by.as_deref(), Some("k"));
    }

    #[test]
    fn the_signer_never_prints_its_key() {
        let pem = crate::evidence::keys::tests::generate_pem(Algorithm::Ed25519);
        let signer = HeadSigner::new("k", SigningKey::from_pem(&pem).unwrap());
        let debug = format!("{signer:?}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!debug.contains(&body[..20]), "{debug}");
        assert!(debug.contains("HeadSigner(k"));
    }
}
