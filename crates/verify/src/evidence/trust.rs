//! The keys whose evidence is trusted, and which of them are revoked.

use super::keys::PublicKey;

/// One trusted key: the keyid signatures name it by, its public key, and whether it was
/// revoked (a revoked key's signatures are refused, however valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub id: String,
    pub public: PublicKey,
    pub revoked: bool,
    /// The environment whose evidence the key signs; its signature counts for no other
    /// environment's evidence. `None`: any environment's.
    pub environment: Option<String>,
}

impl TrustedKey {
    /// A trusted, not revoked key.
    pub fn new(id: &str, public: PublicKey) -> TrustedKey {
        TrustedKey {
            id: id.to_string(),
            public,
            revoked: false,
            environment: None,
        }
    }
}

/// The trusted keys, looked up by keyid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
}

impl TrustStore {
    /// A store of these keys.
    pub fn new(keys: Vec<TrustedKey>) -> TrustStore {
        TrustStore { keys }
    }

    /// Adds a key (a key with the same id is replaced).
    pub fn add(&mut self, key: TrustedKey) {
        self.keys.retain(|k| k.id != key.id);
        self.keys.push(key);
    }

    /// Marks the key `id` revoked; false if there is no such key.
    pub fn revoke(&mut self, id: &str) -> bool {
        match self.keys.iter_mut().find(|k| k.id == id) {
            Some(key) => {
                key.revoked = true;
                true
            }
            None => false,
        }
    }

    /// The key named `id`, revoked or not.
    pub fn get(&self, id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key, in order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::keys::{Algorithm, tests::generate};
    use super::*;

    #[test]
    fn lookup_add_and_revoke() {
        let a = generate(Algorithm::Ed25519).public_key();
        let b = generate(Algorithm::EcdsaP256Sha256).public_key();
        let mut store = TrustStore::new(vec![TrustedKey::new("a", a.clone())]);
        assert_eq!(store.get("a").unwrap().public, a);
        assert!(store.get("b").is_none());
        store.add(TrustedKey::new("b", b.clone()));
        store.add(TrustedKey::new("a", b.clone()));
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a").unwrap().public, b);
        assert!(store.revoke("b"));
        assert!(!store.revoke("c"));
        assert!(store.get("b").unwrap().revoked);
        assert!(!store.get("a").unwrap().revoked);
    }
}
