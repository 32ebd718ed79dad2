//! Signing and verification keys: Ed25519 and ECDSA P-256 (SHA-256), read from PEM.
//!
//! Private keys are PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey` writes);
//! public keys are SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`, what
//! `openssl pkey -pubout` writes). ECDSA signatures are ASN.1 DER, the encoding every
//! X.509 / OpenSSL verifier expects.
//!
//! A [`SigningKey`] never shows its key material: `Debug` and `Display` print the algorithm
//! and the fingerprint of the public key, and no error carries any byte of a key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use sha2::{Digest as _, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480, named curve); the 65-byte
/// uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER of the OID 1.3.101.112 (Ed25519).
const OID_ED25519: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER of the OID 1.2.840.10045.2.1 (id-ecPublicKey).
const OID_EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of the OID 1.2.840.10045.3.1.7 (prime256v1 / P-256).
const OID_P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The signature algorithms of evidence keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256, signatures in ASN.1 DER.
    EcdsaP256Sha256,
}

impl Algorithm {
    /// The short name used in messages: `ed25519` or `ecdsa-p256-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key could not be read, or a signature could not be made. No variant carries any
/// byte of the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text holds no `-----BEGIN ...-----` / `-----END ...-----` block.
    #[error("no PEM block found (expected \"-----BEGIN {expected}-----\")")]
    NoPem { expected: &'static str },
    /// The PEM block has another label than the one expected.
    #[error("PEM block is \"{found}\", expected \"{expected}\"")]
    WrongLabel {
        found: String,
        expected: &'static str,
    },
    /// A SEC1 (`EC PRIVATE KEY`) private key: only PKCS#8 is read.
    #[error(
        "the key is a SEC1 \"EC PRIVATE KEY\"; only PKCS#8 \"PRIVATE KEY\" is read \
         (hint: `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pk8.pem` converts it)"
    )]
    Sec1,
    /// A password-protected PKCS#8 key.
    #[error(
        "the key is encrypted (\"ENCRYPTED PRIVATE KEY\"); \
         hint: `openssl pkcs8 -topk8 -nocrypt -in key.pem -out plain.pem` decrypts it"
    )]
    Encrypted,
    /// The PEM body is not valid base64.
    #[error("the PEM body of \"{label}\" is not valid base64")]
    Base64 { label: &'static str },
    /// The key is of an algorithm other than Ed25519 and ECDSA P-256.
    #[error("unsupported key algorithm (only Ed25519 and ECDSA P-256 are supported)")]
    UnsupportedAlgorithm,
    /// The DER inside the PEM block is not a valid key of its algorithm.
    #[error("the {algorithm} key is malformed: {reason}")]
    Malformed {
        algorithm: &'static str,
        reason: String,
    },
    /// The signing primitive failed (no key material involved).
    #[error("signing with the {0} key failed")]
    SigningFailed(Algorithm),
}

enum Pair {
    Ed25519(sig::Ed25519KeyPair),
    Ecdsa(sig::EcdsaKeyPair),
}

/// A private key that signs evidence. Its key material is never printed.
pub struct SigningKey {
    pair: Pair,
    public: PublicKey,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) for Ed25519 or
    /// ECDSA P-256.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        const EXPECTED: &str = "PRIVATE KEY";
        let (label, der) = match pem_block(text, EXPECTED) {
            Ok(block) => block,
            Err(KeyError::WrongLabel { found, .. }) if found == "EC PRIVATE KEY" => {
                return Err(KeyError::Sec1);
            }
            Err(KeyError::WrongLabel { found, .. }) if found == "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::Encrypted);
            }
            Err(err) => return Err(err),
        };
        debug_assert_eq!(label, EXPECTED);
        SigningKey::from_pkcs8_der(&der)
    }

    /// Reads a PKCS#8 DER private key for Ed25519 or ECDSA P-256.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        // The AlgorithmIdentifier comes before the key octets, so the first OID found is
        // the algorithm's.
        let ed = find(der, &OID_ED25519);
        let ec = find(der, &OID_EC_PUBLIC_KEY);
        let is_ed25519 = match (ed, ec) {
            (Some(e), Some(c)) => e < c,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Err(KeyError::UnsupportedAlgorithm),
        };
        if is_ed25519 {
            let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| {
                KeyError::Malformed {
                    algorithm: Algorithm::Ed25519.name(),
                    reason: e.to_string(),
                }
            })?;
            let public = PublicKey::from_raw(Algorithm::Ed25519, pair.public_key().as_ref())?;
            Ok(SigningKey {
                pair: Pair::Ed25519(pair),
                public,
            })
        } else {
            if find(der, &OID_P256).is_none() {
                return Err(KeyError::UnsupportedAlgorithm);
            }
            let rng = SystemRandom::new();
            let pair =
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
                    .map_err(|e| KeyError::Malformed {
                        algorithm: Algorithm::EcdsaP256Sha256.name(),
                        reason: e.to_string(),
                    })?;
            let public =
                PublicKey::from_raw(Algorithm::EcdsaP256Sha256, pair.public_key().as_ref())?;
            Ok(SigningKey {
                pair: Pair::Ecdsa(pair),
                public,
            })
        }
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm
    }

    /// The public half of this key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `msg`: an Ed25519 signature (64 bytes) or an ASN.1 DER ECDSA signature.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            Pair::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::SigningFailed(Algorithm::EcdsaP256Sha256)),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("public", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} signing key {}",
            self.public.algorithm,
            self.public.fingerprint()
        )
    }
}

/// A public key that verifies evidence signatures.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// The raw key: 32 bytes (Ed25519) or the 65-byte uncompressed point (P-256).
    raw: Vec<u8>,
}

impl PublicKey {
    fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Result<PublicKey, KeyError> {
        let expected = match algorithm {
            Algorithm::Ed25519 => 32,
            Algorithm::EcdsaP256Sha256 => 65,
        };
        if raw.len() != expected || (algorithm == Algorithm::EcdsaP256Sha256 && raw[0] != 0x04) {
            return Err(KeyError::Malformed {
                algorithm: algorithm.name(),
                reason: format!(
                    "public key of {} bytes, expected {expected}{}",
                    raw.len(),
                    if algorithm == Algorithm::EcdsaP256Sha256 {
                        " (uncompressed point)"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(PublicKey {
            algorithm,
            raw: raw.to_vec(),
        })
    }

    /// Reads a SubjectPublicKeyInfo PEM public key (`-----BEGIN PUBLIC KEY-----`) for
    /// Ed25519 or ECDSA P-256 (uncompressed point).
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (_, der) = pem_block(text, "PUBLIC KEY")?;
        PublicKey::from_spki_der(&der)
    }

    /// Reads a SubjectPublicKeyInfo DER public key.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            PublicKey::from_raw(Algorithm::Ed25519, raw)
        } else if let Some(raw) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            PublicKey::from_raw(Algorithm::EcdsaP256Sha256, raw)
        } else if find(der, &OID_ED25519).is_some() {
            Err(KeyError::Malformed {
                algorithm: Algorithm::Ed25519.name(),
                reason: "not a 32-byte Ed25519 SubjectPublicKeyInfo".to_string(),
            })
        } else if find(der, &OID_P256).is_some() {
            Err(KeyError::Malformed {
                algorithm: Algorithm::EcdsaP256Sha256.name(),
                reason: "not a P-256 SubjectPublicKeyInfo with an uncompressed point".to_string(),
            })
        } else {
            Err(KeyError::UnsupportedAlgorithm)
        }
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The SubjectPublicKeyInfo DER of this key.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let prefix: &[u8] = match self.algorithm {
            Algorithm::Ed25519 => &ED25519_SPKI_PREFIX,
            Algorithm::EcdsaP256Sha256 => &P256_SPKI_PREFIX,
        };
        let mut der = Vec::with_capacity(prefix.len() + self.raw.len());
        der.extend_from_slice(prefix);
        der.extend_from_slice(&self.raw);
        der
    }

    /// The SubjectPublicKeyInfo PEM of this key (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        let body = STANDARD.encode(self.to_spki_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// `sha256:` and the lowercase hex SHA-256 of the SubjectPublicKeyInfo DER (what
    /// `openssl pkey -pubin -outform DER | sha256sum` prints).
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.to_spki_der())))
    }

    /// Whether `signature` is a valid signature of `msg` by this key.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn sig::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &sig::ED25519,
            Algorithm::EcdsaP256Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
        };
        sig::UnparsedPublicKey::new(algorithm, &self.raw)
            .verify(msg, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} public key {}", self.algorithm, self.fingerprint())
    }
}

/// The first PEM block of `text`: its label and its decoded body. A block with another
/// label than `expected` is a [`KeyError::WrongLabel`].
fn pem_block(text: &str, expected: &'static str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err(KeyError::NoPem { expected });
        };
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            break label.to_string();
        }
    };
    if label != expected {
        return Err(KeyError::WrongLabel {
            found: label,
            expected,
        });
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        // RFC 1421 headers (`Proc-Type: ...`) mark legacy encrypted keys.
        if line.contains(':') {
            return Err(KeyError::Encrypted);
        }
        body.push_str(line);
    }
    if !ended {
        return Err(KeyError::NoPem { expected });
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| KeyError::Base64 { label: expected })?;
    Ok((label, der))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A fresh PKCS#8 PEM private key of `algorithm`.
    pub(crate) fn generate_pem(algorithm: Algorithm) -> String {
        let rng = SystemRandom::new();
        let doc = match algorithm {
            Algorithm::Ed25519 => sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap(),
            Algorithm::EcdsaP256Sha256 => {
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .unwrap()
            }
        };
        to_pem("PRIVATE KEY", doc.as_ref())
    }

    pub(crate) fn generate(algorithm: Algorithm) -> SigningKey {
        SigningKey::from_pem(&generate_pem(algorithm)).unwrap()
    }

    fn to_pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let mut pem = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        pem
    }

    fn pem_body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let key = generate(algorithm);
            assert_eq!(key.algorithm(), algorithm);
            let sig = key.sign(b"message").unwrap();
            let public = key.public_key();
            assert!(public.verify(b"message", &sig));
            assert!(!public.verify(b"messagf", &sig));
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!public.verify(b"message", &bad));
            // Another key does not verify it.
            assert!(!generate(algorithm).public_key().verify(b"message", &sig));
        }
    }

    #[test]
    fn ecdsa_signatures_are_der() {
        let key = generate(Algorithm::EcdsaP256Sha256);
        let sig = key.sign(b"m").unwrap();
        assert_eq!(sig[0], 0x30, "a DER SEQUENCE");
        assert_eq!(sig[1] as usize, sig.len() - 2);
    }

    #[test]
    fn public_pem_round_trips() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let public = generate(algorithm).public_key();
            let pem = public.to_pem();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let back = PublicKey::from_pem(&pem).unwrap();
            assert_eq!(back, public);
            assert_eq!(back.fingerprint(), public.fingerprint());
            let fp = public.fingerprint();
            assert!(fp.starts_with("sha256:"));
            assert_eq!(fp.len(), 7 + 64);
        }
    }

    #[test]
    fn spki_prefixes_are_the_der_of_the_algorithm_identifiers() {
        let ed = generate(Algorithm::Ed25519).public_key().to_spki_der();
        assert_eq!(ed.len(), 44);
        assert_eq!(ed[0..2], [0x30, 0x2a]);
        let ec = generate(Algorithm::EcdsaP256Sha256)
            .public_key()
            .to_spki_der();
        assert_eq!(ec.len(), 91);
        assert_eq!(ec[26], 0x04);
    }

    #[test]
    fn debug_and_display_never_show_key_material() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let pem = generate_pem(algorithm);
            let key = SigningKey::from_pem(&pem).unwrap();
            let body = pem_body(&pem);
            let der = STANDARD.decode(&body).unwrap();
            for shown in [format!("{key:?}"), format!("{key:#?}"), key.to_string()] {
                assert!(!shown.contains("PRIVATE"), "{shown}");
                assert!(shown.contains(&key.public_key().fingerprint()), "{shown}");
                // No 12-character run of the PEM body, nor the hex of any 8 DER bytes.
                for chunk in body.as_bytes().chunks(12) {
                    let chunk = std::str::from_utf8(chunk).unwrap();
                    if chunk.len() == 12 {
                        assert!(!shown.contains(chunk), "{shown}");
                    }
                }
                for window in der.windows(8).step_by(4) {
                    assert!(!shown.contains(&hex::encode(window)), "{shown}");
                }
            }
        }
    }

    #[test]
    fn sec1_keys_are_refused_with_the_conversion_hint() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(pem).unwrap_err();
        assert_eq!(err, KeyError::Sec1);
        assert!(
            err.to_string()
                .contains("openssl pkcs8 -topk8 -nocrypt -in key.pem"),
            "{err}"
        );
    }

    #[test]
    fn other_inputs_are_refused_without_echoing_them() {
        let secret = "c2VjcmV0LWJ5dGVzLXRoYXQtbXVzdC1ub3QtbGVhaw==";
        let cases = [
            (
                "",
                KeyError::NoPem {
                    expected: "PRIVATE KEY",
                },
            ),
            (
                &*format!("-----BEGIN PRIVATE KEY-----\n{secret}\n"),
                KeyError::NoPem {
                    expected: "PRIVATE KEY",
                },
            ),
            (
                &*format!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{secret}\n-----END ENCRYPTED PRIVATE KEY-----\n"
                ),
                KeyError::Encrypted,
            ),
            (
                &*format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
                KeyError::Base64 {
                    label: "PRIVATE KEY",
                },
            ),
            (
                &*format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
                KeyError::UnsupportedAlgorithm,
            ),
        ];
        for (text, expected) in cases {
            let err = SigningKey::from_pem(text).unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.to_string().contains(secret));
        }
        let public = generate(Algorithm::Ed25519).public_key().to_pem();
        assert!(matches!(
            SigningKey::from_pem(&public),
            Err(KeyError::WrongLabel { .. })
        ));
        assert!(matches!(
            PublicKey::from_pem(&generate_pem(Algorithm::Ed25519)),
            Err(KeyError::WrongLabel { .. })
        ));
    }

    #[test]
    fn a_corrupted_key_is_malformed_without_its_bytes_in_the_message() {
        let pem = generate_pem(Algorithm::EcdsaP256Sha256);
        let mut der = STANDARD.decode(pem_body(&pem)).unwrap();
        let n = der.len();
        der.truncate(n - 10);
        let err = SigningKey::from_pkcs8_der(&der).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err:?}");
    }
}
