//! The verifier: the [`TokenVerifier`] port over a fixed or fetched key set.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use files_core::{InvalidToken, Metrics, Principal, TokenError, TokenVerifier};
use tokio::sync::{Mutex, RwLock, oneshot};

use super::cache::VerifiedTokens;
use super::claims::{Claims, null_subject, principal};
use super::config::{JwtConfig, KeyFile, RemoteJwks};
use super::error::JwksError;
use super::header::Header;
use super::keys::{KeySet, SUPPORTED_ALGS};
use super::remote::{Remote, Trigger};
use super::shared::{Inner, refresher};

/// Verifies bearer tokens against a fixed or fetched key set. Cheap to clone; clones share the
/// key cache. With a URL source, [`JwksVerifier::background`] is the periodic refresh of the
/// keys, for the verifier's owner to run.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("url", &self.inner.remote.as_ref().map(|r| r.shown.as_str()))
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    fn with_static_keys(config: JwtConfig, keys: KeySet, origin: &str) -> Result<Self, JwksError> {
        if !config.signature_library.is_built() {
            return Err(JwksError::LibraryNotBuilt(config.signature_library));
        }
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
        let verified = VerifiedTokens::new(config.token_cache_capacity);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                options,
                keys: RwLock::new(Some(Arc::new(keys))),
                verified,
                remote: None,
                _stop_refresher: None,
                refresher_stopped: std::sync::Mutex::new(None),
            }),
        })
    }

    /// A verifier with the keys of a JWKS document (or of a single JWK).
    ///
    /// # Errors
    /// [`JwksError::InvalidJwks`] when the text is not a JWKS; [`JwksError::NoUsableKey`] when
    /// none of its keys can be used; [`JwksError::LibraryNotBuilt`] when the configuration names
    /// a signature library this build does not have.
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
    /// no usable key is found at all; [`JwksError::LibraryNotBuilt`] as for a JWKS.
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
    /// [`RemoteJwks::refresh_interval`] while its owner runs [`JwksVerifier::background`]. A
    /// failed fetch keeps the last good keys.
    ///
    /// Waits for the first fetch (bounded by [`RemoteJwks::timeout`]) but does not fail when it
    /// fails: it is logged, and tokens get [`TokenError::Unavailable`] until a fetch succeeds.
    ///
    /// Redirects are not followed: a 3xx answer is a failed fetch. The URL is only logged as
    /// [`RemoteJwks::redacted_url`].
    ///
    /// # Errors
    /// [`JwksError::Url`] for a URL that cannot be parsed or is not http(s);
    /// [`JwksError::PlainHttp`] for an `http://` URL without [`RemoteJwks::allow_http`];
    /// [`JwksError::Client`] when the HTTP client cannot be built; [`JwksError::NoRuntime`]
    /// outside a tokio runtime; [`JwksError::LibraryNotBuilt`] as for the other sources.
    pub async fn from_url(config: JwtConfig, source: RemoteJwks) -> Result<Self, JwksError> {
        if !config.signature_library.is_built() {
            return Err(JwksError::LibraryNotBuilt(config.signature_library));
        }
        let shown = source.redacted_url();
        // The parser's message does not quote the URL.
        let url = reqwest::Url::parse(&source.url).map_err(|e| JwksError::Url {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "https" => {}
            "http" if source.allow_http => {}
            "http" => return Err(JwksError::PlainHttp { url: shown }),
            _ => {
                return Err(JwksError::Url {
                    url: shown,
                    reason: "the scheme must be https (or http when allowed)".to_owned(),
                });
            }
        }
        tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(source.timeout)
            .connect_timeout(source.timeout)
            // A redirect could lead to keys served by anyone: a 3xx is a failed fetch.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(JwksError::Client)?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let options = config.verification_options();
        let verified = VerifiedTokens::new(config.token_cache_capacity);
        let inner = Arc::new(Inner {
            config,
            options,
            keys: RwLock::new(None),
            verified,
            remote: Some(Remote {
                url,
                shown,
                client,
                min_refetch_interval: source.min_refetch_interval,
                refresh_interval: source.refresh_interval,
                metrics: source.metrics,
                on_refresh: source.on_refresh,
                fetch_gate: Mutex::new(None),
            }),
            _stop_refresher: Some(stop_tx),
            refresher_stopped: std::sync::Mutex::new(Some(stop_rx)),
        });
        if let Some(remote) = &inner.remote {
            let _gate = remote.fetch_gate.lock().await;
            inner.refresh(remote, Trigger::Initial).await;
        }
        Ok(Self { inner })
    }

    /// The verifier's background work: with a URL source, the refresh of the keys every
    /// [`RemoteJwks::refresh_interval`] (every [`RemoteJwks::min_refetch_interval`] while none
    /// was ever obtained), until the last clone of the verifier is dropped. Its owner runs it
    /// once, stopping it by dropping it; without it the keys change only on an unknown `kid`.
    ///
    /// `None` for fixed keys, or when this verifier (or a clone) handed it out before.
    #[must_use]
    pub fn background(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let remote = self.inner.remote.as_ref()?;
        let stopped = self
            .inner
            .refresher_stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(refresher(
            Arc::downgrade(&self.inner),
            stopped,
            remote.refresh_interval,
            remote.min_refetch_interval,
        ))
    }

    /// [`JwksVerifier::background`] spawned on the current runtime, for tests and programs
    /// that embed the verifier without a task owner of their own.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn_background(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.background().map(tokio::spawn)
    }

    /// The configuration tokens are checked against.
    #[must_use]
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }

    /// Counts the verified-token cache's hits and misses in `metrics`
    /// ([`files_core::Metrics::token_cache`]); nowhere by default. Applies to every clone.
    #[must_use]
    pub fn with_metrics(self, metrics: Arc<dyn Metrics>) -> Self {
        self.inner.verified.count_in(metrics);
        self
    }

    /// How many keys are in use now (0 while a URL source has never been fetched).
    pub async fn key_count(&self) -> usize {
        self.inner.current_keys().await.map_or(0, |keys| keys.len())
    }
}

/// Refuses a token that lives longer than [`JwtConfig::max_token_lifetime`]: its `exp` further
/// than that (and the leeway) from now, or further than that from its `iat`. A token that a
/// leaked key or a careless issuer made good for years (an `exp` of `1e20`) would otherwise be
/// accepted, and cached, until then.
fn within_lifetime(
    config: &JwtConfig,
    claims: &Claims,
    expires_at: jwt_simple::prelude::UnixTimeStamp,
) -> Result<(), InvalidToken> {
    let max = config.max_token_lifetime.as_secs();
    let leeway = config.leeway.as_secs();
    let now = jwt_simple::prelude::Clock::now_since_epoch().as_secs();
    let expires_at = expires_at.as_secs();
    let too_far = expires_at.saturating_sub(now) > max.saturating_add(leeway)
        || claims
            .issued_at
            .is_some_and(|issued_at| expires_at.saturating_sub(issued_at.as_secs()) > max);
    if too_far {
        return Err(InvalidToken::Claim("exp"));
    }
    Ok(())
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let miss = match self.inner.verified.get(token) {
            Ok(principal) => return Ok(principal),
            Err(miss) => miss,
        };
        let header = Header::decode(token)?;
        if !SUPPORTED_ALGS.contains(&header.alg.as_str()) {
            return Err(InvalidToken::Algorithm.into());
        }
        let key = self.inner.find_key(header.kid.as_deref()).await?;
        if !key.algorithm().accepts(&header.alg) {
            return Err(InvalidToken::Algorithm.into());
        }
        let claims = key.verify(token, &header, &self.inner.options, self.inner.config.signature_library)?;
        let Some(expires_at) = claims.expires_at else {
            return Err(InvalidToken::Claim("exp").into());
        };
        within_lifetime(&self.inner.config, &claims, expires_at)?;
        null_subject(&self.inner.config, &claims, token)?;
        let principal = principal(&self.inner.config, &claims)?;
        if let Some(miss) = miss {
            let expires_at = UNIX_EPOCH + std::time::Duration::from_secs(expires_at.as_secs());
            self.inner.verified.insert(miss, &principal, expires_at);
        }
        Ok(principal)
    }
}
