//! The JWKS URL source: its client, the bookkeeping of its fetches, and fetching the key set
//! from it.

use std::sync::Arc;
use std::time::Duration;

use files_core::Metrics;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::RefreshObserver;
use super::error::JwksError;
use super::keys::{KeySet, MAX_JWKS_BYTES};

/// Why a fetch of the JWKS URL failed. Never quotes the URL.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
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
    /// The pace of [`refresher`](super::shared::refresher).
    pub(super) refresh_interval: Duration,
    pub(super) metrics: Arc<dyn Metrics>,
    pub(super) on_refresh: Option<RefreshObserver>,
    /// Held during every fetch so fetches never overlap; holds the time of the last fetch caused
    /// by a token.
    pub(super) fetch_gate: Mutex<Option<Instant>>,
}

impl Remote {
    pub(super) async fn fetch(&self) -> Result<KeySet, FetchError> {
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
