//! The keys of signed evidence, as `release.toml` names them: an environment's signing key
//! and trusted keys, and the ledger's. A key is read from the variable or file the config
//! names; a variable that is unset or a PEM that is not a key is a usage error naming the
//! variable or file, never the key's text.

use verify::evidence::{PublicKey, SigningKey, TrustStore, TrustedKey};

use crate::exit::Failure;
use config::{Config, Evidence};
use pipeline::evidence::Signer;
use verify::ledger::HeadSigner;

/// Whose keys a block of keys holds, for messages: `who` ("environment `dev`", "the
/// ledger") signs `what` ("its evidence", "its head").
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner<'a> {
    pub who: &'a str,
    pub what: &'a str,
}

/// The signing key of environment `env`, when its config names one. A variable that is
/// unset or a PEM that is not a key is a usage error naming the variable or file, never
/// the key's text.
pub fn signer(config: &Config, env: &str) -> Result<Option<Signer>, Failure> {
    let Some(evidence) = config.environment(env)?.evidence.as_ref() else {
        return Ok(None);
    };
    let who = format!("environment `{env}`");
    let owner = KeyOwner {
        who: &who,
        what: "its evidence",
    };
    signer_of(config, evidence, owner)
}

/// The signing key a block of keys (an environment's evidence, `[ledger]`) names, if any.
/// A variable that is unset or a PEM that is not a key is a usage error naming the
/// variable or file, never the key's text.
pub fn signer_of(
    config: &Config,
    evidence: &Evidence,
    owner: KeyOwner<'_>,
) -> Result<Option<Signer>, Failure> {
    let KeyOwner { who, what } = owner;
    let (pem, from) = match (&evidence.signing_key_env, &evidence.signing_key_file) {
        (Some(var), _) => {
            let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
            let Some(value) = value else {
                return Err(pipeline::Error::usage(format!(
                    "{who} signs {what} with the key in ${var}, which is not set"
                ))
                .with_hint(format!(
                    "set {var} to the key's PEM (in Jenkins: withCredentials([string(credentialsId: …, variable: '{var}')]))"
                )).into());
            };
            (value, format!("${var}"))
        }
        (None, Some(file)) => {
            let path = config.dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                pipeline::Error::usage(format!(
                    "cannot read the signing key of {who} at {}: {e}",
                    path.display()
                ))
            })?;
            (text, path.display().to_string())
        }
        (None, None) => return Ok(None),
    };
    let key = SigningKey::from_pem(&pem).map_err(|e| {
        pipeline::Error::usage(format!(
            "the signing key of {who} ({from}) is not usable: {e}"
        ))
        .with_hint("a PKCS#8 PEM Ed25519 or ECDSA P-256 key: `openssl genpkey -algorithm ed25519`")
    })?;
    // Validation requires a key id wherever a key is named.
    let key_id = evidence.key_id.clone().unwrap_or_default();
    Ok(Some(Signer { key_id, key }))
}

/// The keys environment `env` trusts, with their revocations; empty when it names none.
pub fn trust(config: &Config, env: &str) -> Result<TrustStore, Failure> {
    match config.environment(env)?.evidence.as_ref() {
        Some(evidence) => trust_of(config, evidence, &format!("environment `{env}`")),
        None => Ok(TrustStore::default()),
    }
}

/// The keys a block of keys trusts, with their revocations, read from their files; `who`
/// names the block's owner in messages.
pub fn trust_of(config: &Config, evidence: &Evidence, who: &str) -> Result<TrustStore, Failure> {
    let mut keys = Vec::new();
    for trusted in &evidence.trust {
        let path = config.dir.join(&trusted.public_key);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            pipeline::Error::usage(format!(
                "cannot read trusted key `{}` of {who} at {}: {e}",
                trusted.id,
                path.display()
            ))
        })?;
        let public = PublicKey::from_pem(&text).map_err(|e| {
            pipeline::Error::usage(format!(
                "trusted key `{}` of {who} ({}) is not a public key: {e}",
                trusted.id,
                path.display()
            ))
            .with_hint("export it with `openssl pkey -in KEY.pem -pubout`")
        })?;
        let mut key = TrustedKey::new(&trusted.id, public);
        key.revoked = trusted.revoked;
        key.environment = trusted.environment.clone();
        keys.push(key);
    }
    Ok(TrustStore::new(keys))
}

const LEDGER: KeyOwner<'static> = KeyOwner {
    who: "the ledger",
    what: "its head",
};

/// The key that signs the ledger head after every append, when `[ledger]` names one.
pub fn ledger_signer(config: &Config) -> Result<Option<HeadSigner>, Failure> {
    let Some(ledger) = config.ledger.as_ref() else {
        return Ok(None);
    };
    Ok(signer_of(config, ledger, LEDGER)?.map(|s| HeadSigner::new(&s.key_id, s.key)))
}

/// The keys `audit verify` accepts for the ledger head, when `[ledger]` lists any; `None`
/// leaves the head unchecked.
pub fn ledger_trust(config: &Config) -> Result<Option<TrustStore>, Failure> {
    match config.ledger.as_ref() {
        Some(ledger) if !ledger.trust.is_empty() => trust_of(config, ledger, LEDGER.who).map(Some),
        _ => Ok(None),
    }
}
