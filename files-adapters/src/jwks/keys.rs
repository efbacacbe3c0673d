//! Key parsing: JWKS documents, single JWKs and PEM public keys into the key set, each key with
//! the algorithm of its type.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use files_core::InvalidToken;
use jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ES256PublicKey, Ed25519PublicKey, EdDSAPublicKeyLike, RS256PublicKey, RSAPublicKeyLike,
};
use jwt_simple::common::VerificationOptions;
use serde_json::{Map, Value};

use super::claims::{Claims, refusal};
use super::config::{KeyFile, SignatureLibrary};
use super::error::JwksError;
use super::header::Header;
use super::public_key::PublicKey;

/// The largest JWKS document accepted from a URL or a file.
pub(super) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Header `alg` values that can name one of the accepted key types.
pub(super) const SUPPORTED_ALGS: [&str; 4] = ["RS256", "ES256", "EdDSA", "Ed25519"];

/// The signature algorithm of a key, fixed by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlgorithm {
    /// The JOSE name of the algorithm (`RS256`, `ES256`, `EdDSA`).
    #[must_use]
    pub const fn jose_name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Whether a header or JWK `alg` names this algorithm (`Ed25519` is accepted for `EdDSA`).
    #[must_use]
    pub fn accepts(self, alg: &str) -> bool {
        match self {
            Self::Rs256 => alg == "RS256",
            Self::Es256 => alg == "ES256",
            Self::EdDsa => alg == "EdDSA" || alg == "Ed25519",
        }
    }
}

/// One public key, with the algorithm of its type.
#[derive(Debug, Clone)]
pub(super) struct VerifyingKey {
    key: PublicKey,
    /// The same key for jsonwebtoken, made once.
    #[cfg(feature = "jsonwebtoken")]
    fast: super::fast::FastKey,
}

impl VerifyingKey {
    fn new(key: PublicKey) -> Self {
        Self {
            #[cfg(feature = "jsonwebtoken")]
            fast: super::fast::FastKey::new(&key),
            key,
        }
    }

    pub(super) const fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            PublicKey::Rs256(_) => KeyAlgorithm::Rs256,
            PublicKey::Es256(_) => KeyAlgorithm::Es256,
            PublicKey::EdDsa(_) => KeyAlgorithm::EdDsa,
        }
    }

    /// Checks the token's signature with `library`, then its header and claims against
    /// `options`; `header` is its header, decoded once by the caller.
    pub(super) fn verify(
        &self,
        token: &str,
        header: &Header,
        options: &VerificationOptions,
        library: SignatureLibrary,
    ) -> Result<Claims, InvalidToken> {
        match library {
            SignatureLibrary::JwtSimple => {
                let options = Some(options.clone());
                match &self.key {
                    PublicKey::Rs256(key) => key.verify_token(token, options),
                    PublicKey::Es256(key) => key.verify_token(token, options),
                    PublicKey::EdDsa(key) => key.verify_token(token, options),
                }
                .map_err(refusal)
            }
            #[cfg(feature = "jsonwebtoken")]
            SignatureLibrary::JsonWebToken => self.fast.verify(token, header, options),
            // The verifier refuses to be built with a library this build does not have.
            #[cfg(not(feature = "jsonwebtoken"))]
            SignatureLibrary::JsonWebToken => {
                let _ = header;
                Err(InvalidToken::Algorithm)
            }
        }
    }

    /// The public key's bytes (RSA: the modulus then the exponent), to tell whether a key set
    /// changed.
    fn material(&self) -> Vec<u8> {
        match &self.key {
            PublicKey::Rs256(key) => {
                let components = key.to_components();
                [components.n, components.e].concat()
            }
            PublicKey::Es256(key) => key.to_bytes(),
            PublicKey::EdDsa(key) => key.to_bytes(),
        }
    }

    fn from_pem(pem: &str) -> Option<Self> {
        ES256PublicKey::from_pem(pem)
            .map(PublicKey::Es256)
            .or_else(|_| Ed25519PublicKey::from_pem(pem).map(PublicKey::EdDsa))
            .or_else(|_| RS256PublicKey::from_pem(pem).map(|key| PublicKey::Rs256(Box::new(key))))
            .ok()
            .map(Self::new)
    }
}

/// The keys in use: by `kid`, and those without one.
#[derive(Debug, Default)]
pub(super) struct KeySet {
    pub(super) by_kid: HashMap<String, Arc<VerifyingKey>>,
    pub(super) without_kid: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    pub(super) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether both sets hold the same keys under the same `kid`s (and the same keys without
    /// one, in order).
    pub(super) fn same_keys(&self, other: &Self) -> bool {
        let same = |a: &VerifyingKey, b: &VerifyingKey| a.algorithm() == b.algorithm() && a.material() == b.material();
        self.by_kid.len() == other.by_kid.len()
            && self
                .by_kid
                .iter()
                .all(|(kid, key)| other.by_kid.get(kid).is_some_and(|theirs| same(key, theirs)))
            && self.without_kid.len() == other.without_kid.len()
            && self.without_kid.iter().zip(&other.without_kid).all(|(a, b)| same(a, b))
    }

    fn insert(&mut self, kid: Option<String>, key: VerifyingKey, origin: &str) {
        match kid {
            Some(kid) => {
                if let Entry::Vacant(entry) = self.by_kid.entry(kid) {
                    entry.insert(Arc::new(key));
                } else {
                    tracing::warn!(origin, "duplicate kid in the key set; keeping the first key");
                }
            }
            None => self.without_kid.push(Arc::new(key)),
        }
    }

    pub(super) fn extend(&mut self, other: Self, origin: &str) {
        for (kid, key) in other.by_kid {
            if let Entry::Vacant(entry) = self.by_kid.entry(kid) {
                entry.insert(key);
            } else {
                tracing::warn!(origin, "duplicate kid in the key files; keeping the first key");
            }
        }
        self.without_kid.extend(other.without_kid);
    }

    /// The key for a token's `kid`. A token without `kid` gets the only key without a `kid`, or
    /// the only key of the set.
    pub(super) fn lookup(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => match (self.without_kid.as_slice(), self.by_kid.len()) {
                ([only], _) => Some(only),
                ([], 1) => self.by_kid.values().next(),
                _ => None,
            },
        }
    }

    /// Parses a JWKS (`{"keys": [...]}`) or a single JWK, skipping keys that cannot be used.
    pub(super) fn from_jwks_json(json: &str, origin: &str) -> Result<Self, JwksError> {
        let invalid = |reason: String| JwksError::InvalidJwks {
            origin: origin.to_owned(),
            reason,
        };
        let document: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(mut document) = document else {
            return Err(invalid("not a JSON object".to_owned()));
        };
        let entries = match document.remove("keys") {
            Some(Value::Array(keys)) => keys,
            Some(_) => return Err(invalid("\"keys\" is not an array".to_owned())),
            None if document.contains_key("kty") => vec![Value::Object(document)],
            None => return Err(invalid("no \"keys\" member".to_owned())),
        };
        let mut set = Self::default();
        for entry in entries {
            let Value::Object(jwk) = entry else {
                tracing::warn!(origin, "skipping a JWKS entry that is not an object");
                continue;
            };
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            match parse_jwk(&jwk) {
                Ok(Some(key)) => set.insert(kid, key, origin),
                Ok(None) => {}
                Err(reason) => tracing::warn!(origin, kid, reason, "skipping an unusable JWK"),
            }
        }
        Ok(set)
    }

    pub(super) fn from_key_file(file: &KeyFile) -> Result<Self, JwksError> {
        let origin = file.path.display().to_string();
        let text = std::fs::read_to_string(&file.path).map_err(|source| JwksError::Read {
            path: file.path.clone(),
            source,
        })?;
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError::InvalidJwks {
                origin,
                reason: format!("larger than {MAX_JWKS_BYTES} bytes"),
            });
        }
        if text.trim_start().starts_with('{') {
            return Self::from_jwks_json(&text, &origin);
        }
        let key = VerifyingKey::from_pem(text.trim()).ok_or(JwksError::InvalidPem { origin: origin.clone() })?;
        let mut set = Self::default();
        set.insert(file.kid.clone(), key, &origin);
        Ok(set)
    }
}

/// Members of a public JWK handed to jwt-simple's strict importer, by key type.
const COMMON_MEMBERS: [&str; 5] = ["kty", "kid", "alg", "use", "key_ops"];
const RSA_MEMBERS: [&str; 2] = ["n", "e"];
const EC_MEMBERS: [&str; 3] = ["crv", "x", "y"];
const OKP_MEMBERS: [&str; 2] = ["crv", "x"];
/// Members that only a private or symmetric key has.
const SECRET_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

/// One JWK: `Ok(None)` when it is of a kind we do not use (skipped quietly), `Err` when it claims
/// to be usable but is not.
fn parse_jwk(jwk: &Map<String, Value>) -> Result<Option<VerifyingKey>, String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kid = member("kid");
    if let Some(key_use) = jwk.get("use")
        && key_use.as_str() != Some("sig")
    {
        tracing::debug!(kid, "skipping a JWK whose use is not \"sig\"");
        return Ok(None);
    }
    let (algorithm, members): (_, &[&str]) = match (member("kty"), member("crv")) {
        (Some("RSA"), _) => (KeyAlgorithm::Rs256, &RSA_MEMBERS),
        (Some("EC"), Some("P-256")) => (KeyAlgorithm::Es256, &EC_MEMBERS),
        (Some("OKP"), Some("Ed25519")) => (KeyAlgorithm::EdDsa, &OKP_MEMBERS),
        (kty, crv) => {
            tracing::debug!(kid, kty, crv, "skipping a JWK of an unsupported type or curve");
            return Ok(None);
        }
    };
    if let Some(alg) = jwk.get("alg")
        && !alg.as_str().is_some_and(|alg| algorithm.accepts(alg))
    {
        return Err(format!(
            "alg {alg} does not match the key type ({})",
            algorithm.jose_name()
        ));
    }
    if SECRET_MEMBERS.iter().any(|name| jwk.contains_key(*name)) {
        return Err("the JWK holds private key material".to_owned());
    }
    let public: Map<String, Value> = jwk
        .iter()
        .filter(|(name, _)| COMMON_MEMBERS.contains(&name.as_str()) || members.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let public = Value::Object(public).to_string();
    let key = match algorithm {
        KeyAlgorithm::Rs256 => RS256PublicKey::from_jwk(&public).map(|key| PublicKey::Rs256(Box::new(key))),
        KeyAlgorithm::Es256 => ES256PublicKey::from_jwk(&public).map(PublicKey::Es256),
        KeyAlgorithm::EdDsa => Ed25519PublicKey::from_jwk(&public).map(PublicKey::EdDsa),
    };
    key.map(|key| Some(VerifyingKey::new(key))).map_err(|e| e.to_string())
}
