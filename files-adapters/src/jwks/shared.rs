//! The state the clones of a verifier share: the keys in use and the tokens verified under
//! them, and, with a URL source, the refresh and the refetch for an unknown `kid` that replace
//! the keys, keeping the last good ones when a fetch fails.

use std::sync::{Arc, Weak};
use std::time::Duration;

use files_core::ports::error_chain;
use files_core::{InvalidToken, KeySetRefresh, TokenError};
use jwt_simple::common::VerificationOptions;
use tokio::sync::{RwLock, oneshot};
use tokio::time::Instant;

use super::cache::VerifiedTokens;
use super::config::{JwtConfig, RefreshOutcome};
use super::keys::{KeySet, VerifyingKey};
use super::remote::{NoKeySet, Remote, Trigger};

/// The state shared by the clones of a verifier.
pub(super) struct Inner {
    pub(super) config: JwtConfig,
    pub(super) options: VerificationOptions,
    pub(super) keys: RwLock<Option<Arc<KeySet>>>,
    /// Tokens verified under the current keys, until their `exp`.
    pub(super) verified: VerifiedTokens,
    pub(super) remote: Option<Remote>,
    /// Dropping it (with the last verifier) stops the periodic refresh.
    pub(super) _stop_refresher: Option<oneshot::Sender<()>>,
    /// The periodic refresh's end of that channel, until
    /// [`JwksVerifier::background`](super::verifier::JwksVerifier::background) hands the
    /// refresh out.
    pub(super) refresher_stopped: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Inner {
    pub(super) async fn current_keys(&self) -> Option<Arc<KeySet>> {
        self.keys.read().await.clone()
    }

    pub(super) async fn find_key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
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
            None => Err(TokenError::Unavailable(Box::new(NoKeySet(remote.shown.clone())))),
        }
    }

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
        remote.metrics.key_set_refresh(match outcome {
            RefreshOutcome::Updated { .. } => KeySetRefresh::Updated,
            RefreshOutcome::Failed => KeySetRefresh::Failed,
        });
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
