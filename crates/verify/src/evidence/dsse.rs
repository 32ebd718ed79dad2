//! DSSE v1 envelopes (<https://github.com/secure-systems-lab/dsse/blob/master/envelope.md>)
//! and their pre-authentication encoding
//! (<https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>).
//!
//! A signature covers `PAE(payloadType, payload)`, never the JSON of the envelope, so the
//! envelope can be re-serialised freely without breaking a signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::{KeyError, PublicKey, SigningKey};

/// The pre-authentication encoding of DSSE v1:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in decimal ASCII.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key that made the signature, as the signer named it (may be empty).
    pub keyid: String,
    /// The raw signature bytes.
    pub sig: Vec<u8>,
}

/// A DSSE v1 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// Why bytes are not a DSSE envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a DSSE envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a DSSE envelope: the {field} is not valid standard base64")]
    Base64 { field: &'static str },
}

/// What became of one signature of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    /// The key was found and the signature verifies.
    Verified,
    /// The key was found and the signature does not verify.
    Invalid,
    /// No key is known under the signature's keyid.
    UnknownKey,
}

/// One signature of an envelope and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    pub keyid: String,
    pub status: SignatureStatus,
}

#[derive(Serialize, Deserialize)]
struct WireSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

#[derive(Serialize, Deserialize)]
struct WireEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<WireSignature>,
}

impl Envelope {
    /// An envelope of `payload` signed once by `key`, under `keyid`.
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        key: &SigningKey,
        keyid: &str,
    ) -> Result<Envelope, KeyError> {
        let mut envelope = Envelope {
            payload_type: payload_type.to_string(),
            payload: payload.to_vec(),
            signatures: Vec::new(),
        };
        envelope.add_signature(key, keyid)?;
        Ok(envelope)
    }

    /// Adds one more signature, by `key` under `keyid`.
    pub fn add_signature(&mut self, key: &SigningKey, keyid: &str) -> Result<(), KeyError> {
        let sig = key.sign(&self.pae())?;
        self.signatures.push(Signature {
            keyid: keyid.to_string(),
            sig,
        });
        Ok(())
    }

    /// The bytes every signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Reads the DSSE v1 JSON of an envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let wire: WireEnvelope = serde_json::from_slice(bytes)?;
        let payload = STANDARD
            .decode(wire.payload.as_bytes())
            .map_err(|_| EnvelopeError::Base64 { field: "payload" })?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|s| {
                Ok(Signature {
                    keyid: s.keyid,
                    sig: STANDARD
                        .decode(s.sig.as_bytes())
                        .map_err(|_| EnvelopeError::Base64 { field: "sig" })?,
                })
            })
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        Ok(Envelope {
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// The DSSE v1 JSON of this envelope:
    /// `{"payloadType":…,"payload":<base64>,"signatures":[{"keyid":…,"sig":<base64>}]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            payload_type: self.payload_type.clone(),
            payload: STANDARD.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature {
                    keyid: s.keyid.clone(),
                    sig: STANDARD.encode(&s.sig),
                })
                .collect(),
        };
        // Strings and a list only: serialising cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// For each signature, in order, whether it verifies with the key `lookup` gives for
    /// its keyid.
    pub fn check_signatures<'k, F>(&self, lookup: F) -> Vec<SignatureCheck>
    where
        F: Fn(&str) -> Option<&'k PublicKey>,
    {
        let pae = self.pae();
        self.signatures
            .iter()
            .map(|s| SignatureCheck {
                keyid: s.keyid.clone(),
                status: match lookup(&s.keyid) {
                    None => SignatureStatus::UnknownKey,
                    Some(key) if key.verify(&pae, &s.sig) => SignatureStatus::Verified,
                    Some(_) => SignatureStatus::Invalid,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::keys::{Algorithm, tests::generate};
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn json_round_trips_and_has_the_dsse_field_names() {
        let key = generate(Algorithm::Ed25519);
        let env = Envelope::sign("application/vnd.in-toto+json", b"{\"a\":1}", &key, "k1").unwrap();
        let json = env.to_json();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["payloadType"], "application/vnd.in-toto+json");
        assert_eq!(value["payload"], STANDARD.encode(b"{\"a\":1}"));
        assert_eq!(value["signatures"][0]["keyid"], "k1");
        assert_eq!(
            value["signatures"][0]["sig"],
            STANDARD.encode(&env.signatures[0].sig)
        );
        assert_eq!(Envelope::from_json(&json).unwrap(), env);
    }

    #[test]
    fn signatures_are_checked_against_the_looked_up_key() {
        let k1 = generate(Algorithm::Ed25519);
        let k2 = generate(Algorithm::EcdsaP256Sha256);
        let mut env = Envelope::sign("t", b"body", &k1, "k1").unwrap();
        env.add_signature(&k2, "k2").unwrap();
        env.add_signature(&k2, "nobody").unwrap();
        let p1 = k1.public_key();
        let p2 = k2.public_key();
        let lookup = |id: &str| match id {
            "k1" => Some(&p1),
            "k2" => Some(&p2),
            _ => None,
        };
        let statuses: Vec<_> = env
            .check_signatures(lookup)
            .into_iter()
            .map(|c| c.status)
            .collect();
        assert_eq!(
            statuses,
            [
                SignatureStatus::Verified,
                SignatureStatus::Verified,
                SignatureStatus::UnknownKey
            ]
        );
        env.payload[0] ^= 1;
        assert!(
            env.check_signatures(lookup)
                .iter()
                .take(2)
                .all(|c| c.status == SignatureStatus::Invalid)
        );
        env.payload[0] ^= 1;
        env.payload_type = "u".into();
        assert_eq!(
            env.check_signatures(lookup)[0].status,
            SignatureStatus::Invalid
        );
    }

    #[test]
    fn non_envelopes_are_errors() {
        assert!(Envelope::from_json(b"not json").is_err());
        assert!(Envelope::from_json(b"{\"payloadType\":\"t\"}").is_err());
        assert!(matches!(
            Envelope::from_json(b"{\"payloadType\":\"t\",\"payload\":\"!!\",\"signatures\":[]}"),
            Err(EnvelopeError::Base64 { field: "payload" })
        ));
        // keyid is optional in DSSE.
        let env = Envelope::from_json(
            b"{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{\"sig\":\"AA==\"}]}",
        )
        .unwrap();
        assert_eq!(env.signatures[0].keyid, "");
    }
}
