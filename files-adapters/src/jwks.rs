//! Bearer-token verification with the DSTS public keys: the [`TokenVerifier`] port over
//! jwt-simple.
//!
//! Keys come from a JWKS document (a file, a string, or a URL that is fetched, cached, refetched
//! on an unknown `kid` and refreshed periodically) or from PEM public key files. Accepted key
//! types are RSA (`RS256`), EC P-256 (`ES256`) and OKP Ed25519 (`EdDSA`).
//!
//! The algorithm is always the key's: the token's `kid` selects the key, and a header `alg` that
//! is not the key's algorithm is refused, so `alg: none`, `HS256` keyed with an RSA public key and
//! the like never reach a signature check. Tokens are never logged.

pub mod dev;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use files_core::{DeviceId, InvalidToken, Principal, TenantId, TokenError, TokenVerifier};
use jwt_simple::JWTError;
use jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ES256PublicKey, Ed25519PublicKey, EdDSAPublicKeyLike, RS256PublicKey, RSAPublicKeyLike,
};
use jwt_simple::claims::JWTClaims;
use jwt_simple::common::VerificationOptions;
use jwt_simple::token::Token;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock, oneshot};
use tokio::time::Instant;

pub use dev::{DevClaims, DevKey, DevKeyError};

/// The largest JWKS document accepted from a URL or a file.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Header `alg` values that can name one of the accepted key types.
const SUPPORTED_ALGS: [&str; 4] = ["RS256", "ES256", "EdDSA", "Ed25519"];

/// The names of the custom claims that make up a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The tenant's UUID (required). Default `tenant_id`.
    pub tenant_id: String,
    /// The device's UUID; present for device principals. Default `device_id`.
    pub device_id: String,
    /// Space-separated scopes (a JSON array of strings is also read). Default `scope`.
    pub scope: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant_id: "tenant_id".to_owned(),
            device_id: "device_id".to_owned(),
            scope: "scope".to_owned(),
        }
    }
}

/// What a token must say to be accepted, and where the principal is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The audience that `aud` must contain.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60 s.
    pub leeway: Duration,
    /// The custom claim names.
    pub claims: ClaimNames,
    /// The scope that makes a token without a device a tenant service. Default `files:admin`.
    pub admin_scope: String,
}

impl JwtConfig {
    /// A configuration with the default leeway, claim names and admin scope.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(60),
            claims: ClaimNames::default(),
            admin_scope: "files:admin".to_owned(),
        }
    }

    fn verification_options(&self) -> VerificationOptions {
        let leeway_ms = u64::try_from(self.leeway.as_millis()).unwrap_or(u64::MAX);
        VerificationOptions {
            allowed_issuers: Some(std::iter::once(self.issuer.clone()).collect()),
            allowed_audiences: Some(std::iter::once(self.audience.clone()).collect()),
            time_tolerance: Some(jwt_simple::prelude::Duration::from_millis(leeway_ms)),
            ..VerificationOptions::default()
        }
    }
}

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

/// A local key file: a JWKS (or a single JWK) or a PEM public key (`-----BEGIN PUBLIC KEY-----`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The `kid` of a PEM key. Without one, the key verifies tokens that carry no `kid`. Ignored
    /// for a JWKS, whose keys carry their own `kid`.
    pub kid: Option<String>,
}

impl KeyFile {
    /// A key file without a `kid` for its PEM key.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            kid: None,
        }
    }

    /// Names the PEM key of the file.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

/// The result of one fetch of a JWKS URL, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A key set was fetched and replaced the cached one.
    Updated {
        /// How many usable keys it holds.
        keys: usize,
    },
    /// The fetch failed; the last good keys (if any) stay in use.
    Failed,
}

impl RefreshOutcome {
    /// A stable label for metrics: `updated` or `failed`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Updated { .. } => "updated",
            Self::Failed => "failed",
        }
    }
}

/// Called after every fetch of a JWKS URL (initial, periodic or caused by a token), while no other
/// fetch can start: keep it quick (count a metric).
pub type RefreshObserver = Arc<dyn Fn(RefreshOutcome) + Send + Sync>;

/// Where and how often to fetch a JWKS.
#[derive(Clone)]
pub struct RemoteJwks {
    /// The JWKS URL, e.g. `https://dsts.example/.well-known/jwks.json`.
    pub url: String,
    /// Timeout of each fetch (connect, request and body). Default 10 s.
    pub timeout: Duration,
    /// Period of the background refresh. Default 5 min.
    pub refresh_interval: Duration,
    /// Least time between two fetches caused by tokens (an unknown `kid`, or no key set yet); also
    /// the retry period of the background task while no key set was ever obtained. Default 60 s.
    pub min_refetch_interval: Duration,
    /// Told of every fetch outcome.
    pub on_refresh: Option<RefreshObserver>,
}

impl RemoteJwks {
    /// A URL source with the default timeout and intervals and no observer.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(60),
            on_refresh: None,
        }
    }
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("on_refresh", &self.on_refresh.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// A key source could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A key file could not be read.
    #[error("cannot read key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The document is not a JWKS (nor a single JWK).
    #[error("{origin} is not a JWKS: {reason}")]
    InvalidJwks {
        /// Where the document came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is neither JSON nor a supported PEM public key.
    #[error("{origin} is not a JWKS nor a PEM public key of type RSA, EC P-256 or Ed25519")]
    InvalidPem {
        /// Where the key came from.
        origin: String,
    },
    /// The source holds no key that can be used.
    #[error("{origin} holds no usable signing key (RSA, EC P-256 or Ed25519 with use \"sig\")")]
    NoUsableKey {
        /// Where the keys came from.
        origin: String,
    },
    /// The JWKS URL cannot be parsed.
    #[error("invalid JWKS URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the JWKS HTTP client")]
    Client(#[source] reqwest::Error),
    /// The URL source was created outside a tokio runtime.
    #[error("the JWKS refresher needs a tokio runtime")]
    NoRuntime,
}

/// One public key, with the algorithm of its type.
#[derive(Debug, Clone)]
enum VerifyingKey {
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

type Claims = JWTClaims<Map<String, Value>>;

impl VerifyingKey {
    const fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Rs256(_) => KeyAlgorithm::Rs256,
            Self::Es256(_) => KeyAlgorithm::Es256,
            Self::EdDsa(_) => KeyAlgorithm::EdDsa,
        }
    }

    fn verify(&self, token: &str, options: &VerificationOptions) -> Result<Claims, jwt_simple::Error> {
        let options = Some(options.clone());
        match self {
            Self::Rs256(key) => key.verify_token(token, options),
            Self::Es256(key) => key.verify_token(token, options),
            Self::EdDsa(key) => key.verify_token(token, options),
        }
    }

    fn from_pem(pem: &str) -> Option<Self> {
        ES256PublicKey::from_pem(pem)
            .map(Self::Es256)
            .or_else(|_| Ed25519PublicKey::from_pem(pem).map(Self::EdDsa))
            .or_else(|_| RS256PublicKey::from_pem(pem).map(|key| Self::Rs256(Box::new(key))))
            .ok()
    }
}

/// The keys in use: by `kid`, and those without one.
#[derive(Debug, Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    without_kid: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
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

    fn extend(&mut self, other: Self, origin: &str) {
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
    fn lookup(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
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
    fn from_jwks_json(json: &str, origin: &str) -> Result<Self, JwksError> {
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

    fn from_key_file(file: &KeyFile) -> Result<Self, JwksError> {
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
        KeyAlgorithm::Rs256 => RS256PublicKey::from_jwk(&public).map(|key| VerifyingKey::Rs256(Box::new(key))),
        KeyAlgorithm::Es256 => ES256PublicKey::from_jwk(&public).map(VerifyingKey::Es256),
        KeyAlgorithm::EdDsa => Ed25519PublicKey::from_jwk(&public).map(VerifyingKey::EdDsa),
    };
    key.map(Some).map_err(|e| e.to_string())
}

/// Why a fetch of the JWKS URL failed.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("answer larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

/// No key set has been obtained from the URL yet.
#[derive(Debug, thiserror::Error)]
#[error("no key set has been obtained from {0} yet")]
struct NoKeySet(String);

/// The URL source: its client and the fetch bookkeeping.
struct Remote {
    url: reqwest::Url,
    client: reqwest::Client,
    min_refetch_interval: Duration,
    on_refresh: Option<RefreshObserver>,
    /// Held during every fetch so fetches never overlap; holds the time of the last fetch caused
    /// by a token.
    fetch_gate: Mutex<Option<Instant>>,
}

impl Remote {
    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let origin = self.url.as_str();
        let text = String::from_utf8(body).map_err(|_| JwksError::InvalidJwks {
            origin: origin.to_owned(),
            reason: "not UTF-8".to_owned(),
        })?;
        let set = KeySet::from_jwks_json(&text, origin)?;
        if set.is_empty() {
            return Err(JwksError::NoUsableKey {
                origin: origin.to_owned(),
            }
            .into());
        }
        Ok(set)
    }
}

/// Why a fetch happened, for logs.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Initial,
    Periodic,
    Token,
}

struct Inner {
    config: JwtConfig,
    options: VerificationOptions,
    keys: RwLock<Option<Arc<KeySet>>>,
    remote: Option<Remote>,
    /// Dropping it (with the last verifier) stops the background refresher.
    _stop_refresher: Option<oneshot::Sender<()>>,
}

impl Inner {
    async fn current_keys(&self) -> Option<Arc<KeySet>> {
        self.keys.read().await.clone()
    }

    /// Fetches the URL and installs the keys; keeps the old ones on failure. The caller holds
    /// the fetch gate.
    async fn refresh(&self, remote: &Remote, trigger: Trigger) -> RefreshOutcome {
        let outcome = match remote.fetch().await {
            Ok(set) => {
                let keys = set.len();
                *self.keys.write().await = Some(Arc::new(set));
                tracing::debug!(url = %remote.url, ?trigger, keys, "JWKS fetched");
                RefreshOutcome::Updated { keys }
            }
            Err(error) => {
                let kept = self.keys.read().await.as_ref().map_or(0, |set| set.len());
                tracing::warn!(
                    url = %remote.url,
                    ?trigger,
                    error = %ErrorChain(&error),
                    kept_keys = kept,
                    "JWKS fetch failed; keeping the last good keys"
                );
                RefreshOutcome::Failed
            }
        };
        if let Some(observer) = &remote.on_refresh {
            observer(outcome);
        }
        outcome
    }

    /// A fetch caused by a token whose key is not in the set: at most one per
    /// `min_refetch_interval`.
    async fn refetch_for_token(&self, remote: &Remote, kid: Option<&str>) {
        let mut last = remote.fetch_gate.lock().await;
        // Another request may have fetched the key while this one waited for the gate.
        if let Some(keys) = self.current_keys().await
            && keys.lookup(kid).is_some()
        {
            return;
        }
        if last.is_some_and(|at| at.elapsed() < remote.min_refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        self.refresh(remote, Trigger::Token).await;
    }

    async fn find_key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        let keys = self.current_keys().await;
        if let Some(key) = keys.as_ref().and_then(|keys| keys.lookup(kid)) {
            return Ok(key.clone());
        }
        let Some(remote) = &self.remote else {
            return Err(InvalidToken::UnknownKey.into());
        };
        // A refetch can bring a new kid, or a first key set; it cannot resolve a token without
        // kid when several keys are known.
        if kid.is_none() && keys.is_some() {
            return Err(InvalidToken::UnknownKey.into());
        }
        self.refetch_for_token(remote, kid).await;
        match self.current_keys().await {
            Some(keys) => keys.lookup(kid).cloned().ok_or(InvalidToken::UnknownKey.into()),
            None => Err(TokenError::Unavailable(Box::new(NoKeySet(remote.url.to_string())))),
        }
    }
}

/// Verifies bearer tokens against a fixed or fetched key set. Cheap to clone; clones share the
/// key cache. With a URL source, a background task refreshes the keys until the last clone is
/// dropped.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("url", &self.inner.remote.as_ref().map(|r| r.url.as_str()))
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    fn with_static_keys(config: JwtConfig, keys: KeySet, origin: &str) -> Result<Self, JwksError> {
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey {
                origin: origin.to_owned(),
            });
        }
        if keys.without_kid.len() > 1 {
            tracing::warn!(
                origin,
                keys = keys.without_kid.len(),
                "several keys have no kid: tokens without kid will be refused"
            );
        }
        let options = config.verification_options();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                options,
                keys: RwLock::new(Some(Arc::new(keys))),
                remote: None,
                _stop_refresher: None,
            }),
        })
    }

    /// A verifier with the keys of a JWKS document (or of a single JWK).
    ///
    /// # Errors
    /// [`JwksError::InvalidJwks`] when the text is not a JWKS; [`JwksError::NoUsableKey`] when
    /// none of its keys can be used.
    pub fn from_jwks_json(config: JwtConfig, json: &str) -> Result<Self, JwksError> {
        let keys = KeySet::from_jwks_json(json, "JWKS")?;
        Self::with_static_keys(config, keys, "JWKS")
    }

    /// A verifier with the keys of a local file holding a JWKS, a JWK or a PEM public key (used
    /// for tokens without `kid`).
    ///
    /// # Errors
    /// As [`JwksVerifier::from_key_files`].
    pub fn from_key_file(config: JwtConfig, path: &Path) -> Result<Self, JwksError> {
        Self::from_key_files(config, &[KeyFile::new(path)])
    }

    /// A verifier with the keys of several local files, each a JWKS, a JWK or a PEM public key.
    ///
    /// # Errors
    /// [`JwksError::Read`] when a file cannot be read; [`JwksError::InvalidJwks`] or
    /// [`JwksError::InvalidPem`] when one holds something else; [`JwksError::NoUsableKey`] when
    /// no usable key is found at all.
    pub fn from_key_files(config: JwtConfig, files: &[KeyFile]) -> Result<Self, JwksError> {
        let mut keys = KeySet::default();
        let origin = files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        for file in files {
            keys.extend(KeySet::from_key_file(file)?, &origin);
        }
        Self::with_static_keys(config, keys, &origin)
    }

    /// A verifier that fetches its keys from a JWKS URL, refetches them on an unknown `kid` (at
    /// most once per [`RemoteJwks::min_refetch_interval`]) and refreshes them every
    /// [`RemoteJwks::refresh_interval`] in a background task that ends with the last clone of
    /// the verifier. A failed fetch keeps the last good keys.
    ///
    /// Waits for the first fetch (bounded by [`RemoteJwks::timeout`]) but does not fail when it
    /// fails: it is logged, and tokens get [`TokenError::Unavailable`] until a fetch succeeds.
    ///
    /// # Errors
    /// [`JwksError::Url`] for a URL that cannot be parsed or is not http(s);
    /// [`JwksError::Client`] when the HTTP client cannot be built; [`JwksError::NoRuntime`]
    /// outside a tokio runtime.
    pub async fn from_url(config: JwtConfig, source: RemoteJwks) -> Result<Self, JwksError> {
        let url = reqwest::Url::parse(&source.url).map_err(|e| JwksError::Url {
            url: source.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(JwksError::Url {
                url: source.url.clone(),
                reason: "the scheme must be http or https".to_owned(),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(source.timeout)
            .connect_timeout(source.timeout)
            .build()
            .map_err(JwksError::Client)?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let options = config.verification_options();
        let inner = Arc::new(Inner {
            config,
            options,
            keys: RwLock::new(None),
            remote: Some(Remote {
                url,
                client,
                min_refetch_interval: source.min_refetch_interval,
                on_refresh: source.on_refresh,
                fetch_gate: Mutex::new(None),
            }),
            _stop_refresher: Some(stop_tx),
        });
        if let Some(remote) = &inner.remote {
            let _gate = remote.fetch_gate.lock().await;
            inner.refresh(remote, Trigger::Initial).await;
        }
        runtime.spawn(refresher(
            Arc::downgrade(&inner),
            stop_rx,
            source.refresh_interval,
            source.min_refetch_interval,
        ));
        Ok(Self { inner })
    }

    /// The configuration tokens are checked against.
    #[must_use]
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }

    /// How many keys are in use now (0 while a URL source has never been fetched).
    pub async fn key_count(&self) -> usize {
        self.inner.current_keys().await.map_or(0, |keys| keys.len())
    }
}

/// Refreshes the keys every `period` (every `retry` while none was ever obtained) until the
/// verifier is gone.
async fn refresher(inner: Weak<Inner>, mut stop: oneshot::Receiver<()>, period: Duration, retry: Duration) {
    loop {
        let delay = match inner.upgrade() {
            Some(inner) if inner.current_keys().await.is_some() => period,
            Some(_) => retry,
            None => return,
        };
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(delay) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Some(remote) = &inner.remote {
            let _gate = remote.fetch_gate.lock().await;
            inner.refresh(remote, Trigger::Periodic).await;
        }
    }
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let metadata = Token::decode_metadata(token).map_err(|_| InvalidToken::Malformed)?;
        let alg = metadata.algorithm();
        if !SUPPORTED_ALGS.contains(&alg) {
            return Err(InvalidToken::Algorithm.into());
        }
        let key = self.inner.find_key(metadata.key_id()).await?;
        if !key.algorithm().accepts(alg) {
            return Err(InvalidToken::Algorithm.into());
        }
        let claims = key.verify(token, &self.inner.options).map_err(refusal)?;
        if claims.expires_at.is_none() {
            return Err(InvalidToken::Claim("exp").into());
        }
        Ok(principal(&self.inner.config, &claims)?)
    }
}

/// The closest [`InvalidToken`] for a jwt-simple error.
fn refusal(error: jwt_simple::Error) -> InvalidToken {
    let Some(error) = error.downcast_ref::<JWTError>() else {
        // Base64 or JSON that does not decode, claims of the wrong types.
        return InvalidToken::Malformed;
    };
    match error {
        JWTError::InvalidSignature => InvalidToken::Signature,
        JWTError::TokenHasExpired => InvalidToken::Expired,
        JWTError::TokenNotValidYet | JWTError::ClockDrift => InvalidToken::NotYetValid,
        JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing => InvalidToken::Issuer,
        JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing => InvalidToken::Audience,
        JWTError::AlgorithmMismatch => InvalidToken::Algorithm,
        JWTError::KeyIdentifierMismatch | JWTError::MissingJWTKeyIdentifier => InvalidToken::UnknownKey,
        _ => InvalidToken::Malformed,
    }
}

/// A claim by its configured name; `sub` is a registered claim that jwt-simple keeps apart.
fn claim(claims: &Claims, name: &str) -> Option<Value> {
    if name == "sub" {
        return claims.subject.clone().map(Value::String);
    }
    claims.custom.get(name).filter(|value| !value.is_null()).cloned()
}

/// The principal a verified token stands for.
fn principal(config: &JwtConfig, claims: &Claims) -> Result<Principal, InvalidToken> {
    let names = &config.claims;
    let tenant = match claim(claims, &names.tenant_id) {
        Some(Value::String(s)) => s.parse::<TenantId>().map_err(|_| InvalidToken::Claim("tenant_id"))?,
        _ => return Err(InvalidToken::Claim("tenant_id")),
    };
    match claim(claims, &names.device_id) {
        Some(Value::String(s)) => {
            let device = s.parse::<DeviceId>().map_err(|_| InvalidToken::Claim("device_id"))?;
            return Ok(Principal::Device { tenant, device });
        }
        Some(_) => return Err(InvalidToken::Claim("device_id")),
        None => {}
    }
    let admin = match claim(claims, &names.scope) {
        Some(Value::String(scopes)) => scopes.split_whitespace().any(|s| s == config.admin_scope),
        Some(Value::Array(scopes)) => scopes.iter().any(|s| s.as_str() == Some(config.admin_scope.as_str())),
        Some(_) => return Err(InvalidToken::Claim("scope")),
        None => false,
    };
    if admin {
        Ok(Principal::TenantService { tenant })
    } else {
        Err(InvalidToken::NotAPrincipal)
    }
}

/// Displays an error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
