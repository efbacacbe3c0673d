//! The JWKS URL source: fetching the key set, the periodic refresh and the refetch for an unknown
//! `kid`, keeping the last good keys when a fetch fails.

use std::sync::{Arc, Weak};
use std::time::Duration;

use files_core::Metrics;
use files_core::ports::error_chain;
use tokio::sync::{Mutex, oneshot};
use tokio::time::Instant;

use super::Inner;
use super::config::{RefreshObserver, RefreshOutcome};
use super::error::JwksError;
use super::keys::{KeySet, MAX_JWKS_BYTES};

/// Why a fetch of the JWKS URL failed. Never quotes the URL.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed")]
    Http(#[source] reqwest::Error),
    #[error("answered a redirect (HTTP {0}), which is not followed")]
    Redirect(reqwest::StatusCode),
    #[error("answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("answer larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

impl From<reqwest::Error> for FetchError {
    /// Drops the URL reqwest's message would quote (its query included).
    fn from(error: reqwest::Error) -> Self {
        Self::Http(error.without_url())
    }
}

/// No key set has been obtained from the URL yet.
#[derive(Debug, thiserror::Error)]
#[error("no key set has been obtained from {0} yet")]
pub(super) struct NoKeySet(pub(super) String);

/// The URL source: its client and the fetch bookkeeping.
pub(super) struct Remote {
    pub(super) url: reqwest::Url,
    /// The URL as it may be logged ([`super::RemoteJwks::redacted_url`]).
    pub(super) shown: String,
    pub(super) client: reqwest::Client,
    pub(super) min_refetch_interval: Duration,
    /// The pace of [`refresher`].
    pub(super) refresh_interval: Duration,
    pub(super) metrics: Arc<dyn Metrics>,
    pub(super) on_refresh: Option<RefreshObserver>,
    /// Held during every fetch so fetches never overlap; holds the time of the last fetch caused
    /// by a token.
    pub(super) fetch_gate: Mutex<Option<Instant>>,
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
        if status.is_redirection() {
            return Err(FetchError::Redirect(status));
        }
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
        let origin = self.shown.as_str();
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
pub(super) enum Trigger {
    Initial,
    Periodic,
    Token,
}

impl Inner {
    /// Fetches the URL and installs the keys; keeps the old ones on failure. The caller holds
    /// the fetch gate.
    pub(super) async fn refresh(&self, remote: &Remote, trigger: Trigger) -> RefreshOutcome {
        let outcome = match remote.fetch().await {
            Ok(set) => {
                let keys = set.len();
                let mut current = self.keys.write().await;
                let changed = current.as_ref().is_none_or(|old| !old.same_keys(&set));
                *current = Some(Arc::new(set));
                drop(current);
                if changed {
                    // After the new keys are in: a verification that read the old generation
                    // may still be running on the old keys, and its entry must not count.
                    self.verified.key_set_changed();
                }
                tracing::debug!(url = %remote.shown, ?trigger, keys, "JWKS fetched");
                RefreshOutcome::Updated { keys }
            }
            Err(error) => {
                let kept = self.keys.read().await.as_ref().map_or(0, |set| set.len());
                tracing::warn!(
                    url = %remote.shown,
                    ?trigger,
                    error = %error_chain(&error),
                    kept_keys = kept,
                    "JWKS fetch failed; keeping the last good keys"
                );
                RefreshOutcome::Failed
            }
        };
        remote.metrics.key_set_refresh(outcome.label());
        if let Some(observer) = &remote.on_refresh {
            observer(outcome);
        }
        outcome
    }

    /// A fetch caused by a token whose key is not in the set: at most one per
    /// `min_refetch_interval`.
    pub(super) async fn refetch_for_token(&self, remote: &Remote, kid: Option<&str>) {
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
}

/// Refreshes the keys every `period` (every `retry` while none was ever obtained) until the
/// verifier is gone.
pub(super) async fn refresher(inner: Weak<Inner>, mut stop: oneshot::Receiver<()>, period: Duration, retry: Duration) {
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
