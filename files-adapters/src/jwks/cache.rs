//! The verified-token cache: the principal of a token whose signature and claims were checked,
//! kept until the token's `exp` so that a device's next requests skip the signature check.
//!
//! - **Keyed by the SHA-256 of the whole token** (header, claims and signature): a token that
//!   differs in any byte is another entry, and the cache never holds a token itself.
//! - **Valid until `exp`, never past it**: an entry is a hit only while the clock is before the
//!   token's `exp` (the verifier's leeway is not added); moka also drops it then.
//! - **Emptied when the key set changes**: every entry records the generation of the key set it
//!   was verified under; a new key set bumps the generation (so no older entry is a hit any
//!   more, even one written by a verification that raced with the change) and clears the cache.
//! - **Bounded**: at most `capacity` entries (moka's TinyLFU admission and LRU eviction).
//! - A refused token is never remembered: it is verified (and refused) every time.
//! - Hits and misses are counted ([`files_core::Metrics::token_cache`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use files_core::{CacheOutcome, Metrics, NoMetrics, Principal};
use moka::Expiry;
use sha2::{Digest as _, Sha256};

/// The SHA-256 of a whole token.
pub(super) type TokenDigest = [u8; 32];

#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    /// The token's `exp`.
    expires_at: SystemTime,
    /// The key-set generation it was verified under.
    generation: u64,
}

/// Drops an entry at its token's `exp`.
struct UntilExp;

impl Expiry<TokenDigest, Verified> for UntilExp {
    fn expire_after_create(&self, _key: &TokenDigest, value: &Verified, _created_at: Instant) -> Option<Duration> {
        Some(
            value
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// The cache of one verifier (shared by its clones).
pub(super) struct VerifiedTokens {
    /// `None` when the capacity is 0: every token is verified in full.
    entries: Option<moka::sync::Cache<TokenDigest, Verified>>,
    generation: AtomicU64,
    metrics: RwLock<Arc<dyn Metrics>>,
    /// The clock entries are checked against (the system's; a test's own in tests).
    now: fn() -> SystemTime,
}

/// A lookup that missed: what to record once the token is verified.
pub(super) struct Miss {
    digest: TokenDigest,
    generation: u64,
}

impl std::fmt::Debug for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the digest: it identifies a token.
        f.debug_struct("Miss")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    pub(super) fn new(capacity: u64) -> Self {
        Self::with_clock(capacity, SystemTime::now)
    }

    pub(super) fn with_clock(capacity: u64, now: fn() -> SystemTime) -> Self {
        let entries = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build()
        });
        Self {
            entries,
            generation: AtomicU64::new(0),
            metrics: RwLock::new(Arc::new(NoMetrics)),
            now,
        }
    }

    pub(super) fn count_in(&self, metrics: Arc<dyn Metrics>) {
        *self.metrics.write().unwrap_or_else(PoisonError::into_inner) = metrics;
    }

    fn count(&self, outcome: CacheOutcome) {
        self.metrics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .token_cache(outcome);
    }

    /// The principal of `token` when it was verified under the current key set and has not
    /// expired; otherwise what to pass to [`VerifiedTokens::insert`] after a full verification.
    /// `None` and `None` when the cache is off.
    pub(super) fn get(&self, token: &str) -> Result<Principal, Option<Miss>> {
        let Some(entries) = &self.entries else {
            return Err(None);
        };
        // Read before the keys are: an entry made under keys that are replaced meanwhile carries
        // the old generation and is never a hit.
        let generation = self.generation.load(Ordering::Acquire);
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        if let Some(entry) = entries.get(&digest)
            && entry.generation == generation
            && (self.now)() < entry.expires_at
        {
            self.count(CacheOutcome::Hit);
            return Ok(entry.principal);
        }
        self.count(CacheOutcome::Miss);
        Err(Some(Miss { digest, generation }))
    }

    /// Records a verified token until `expires_at` (nothing when that has passed).
    pub(super) fn insert(&self, miss: Miss, principal: &Principal, expires_at: SystemTime) {
        let Some(entries) = &self.entries else { return };
        if (self.now)() >= expires_at || miss.generation != self.generation.load(Ordering::Acquire) {
            return;
        }
        entries.insert(
            miss.digest,
            Verified {
                principal: principal.clone(),
                expires_at,
                generation: miss.generation,
            },
        );
    }

    /// The key set changed: no entry is valid any more.
    pub(super) fn key_set_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    /// How many entries are held (approximately: moka counts lazily).
    #[cfg(test)]
    pub(super) fn entry_count(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.entry_count()
        })
    }
}
