//! The metrics port: what the use cases, the relay and the adapters count.
//!
//! Every method has an empty default, so an embedding service implements only what it wants to
//! see; [`NoMetrics`] counts nothing. The Prometheus adapter (`files-adapters`, feature
//! `prometheus`) implements all of it. Label values are stable: operators' dashboards use them.

use std::time::Duration;

use crate::ids::TenantId;
use crate::principal::Owner;

/// A file operation, counted per tenant and per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOperation {
    /// An upload URL was issued.
    UploadUrl,
    /// A download URL was issued.
    DownloadUrl,
    /// A listing page was served.
    List,
    /// One file's metadata was read.
    Get,
    /// A file was deleted.
    Delete,
    /// An upload was completed by its caller.
    Complete,
}

impl FileOperation {
    /// The stable label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::UploadUrl => "upload_url",
            Self::DownloadUrl => "download_url",
            Self::List => "list",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Complete => "complete",
        }
    }
}

/// The outcome of one cache call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A read found the entry.
    Hit,
    /// A read found nothing.
    Miss,
    /// A write succeeded.
    Written,
    /// The cache failed; the store answered instead.
    Error,
}

impl CacheOutcome {
    /// The stable label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Written => "written",
            Self::Error => "error",
        }
    }
}

/// Told of everything worth counting. Implementations must be cheap and must not fail: they are
/// called on every request.
pub trait Metrics: Send + Sync {
    /// A file operation succeeded for `owner` in `tenant`.
    fn file_operation(&self, tenant: TenantId, owner: Owner, operation: FileOperation) {
        let _ = (tenant, owner, operation);
    }

    /// A bearer token was checked: `ok`, `unavailable`, or the refusal's
    /// [`crate::InvalidToken::label`].
    fn token_verification(&self, outcome: &'static str) {
        let _ = outcome;
    }

    /// A lookup in the verified-token cache: [`CacheOutcome::Hit`] (the signature check was
    /// skipped) or [`CacheOutcome::Miss`].
    fn token_cache(&self, outcome: CacheOutcome) {
        let _ = outcome;
    }

    /// The token key set was fetched: `updated` or `failed`.
    fn key_set_refresh(&self, outcome: &'static str) {
        let _ = outcome;
    }

    /// One cache call: which operation (`get_file`, `put_latest`, ...), how it ended, how long.
    fn cache_call(&self, operation: &'static str, outcome: CacheOutcome, elapsed: Duration) {
        let _ = (operation, outcome, elapsed);
    }

    /// One call an adapter made to its dependency (`database`, `object_store`): which
    /// operation, whether it succeeded, how long it took.
    fn dependency_call(&self, dependency: &'static str, operation: &'static str, ok: bool, elapsed: Duration) {
        let _ = (dependency, operation, ok, elapsed);
    }

    /// One record of a store notification was handled: [`crate::IngestOutcome::label`],
    /// `ignored` or `malformed`.
    fn storage_event(&self, outcome: &'static str) {
        let _ = outcome;
    }

    /// The relay published `events` events.
    fn outbox_published(&self, events: u64) {
        let _ = events;
    }

    /// A relay pass failed to publish.
    fn outbox_publish_failed(&self) {}

    /// The outbox holds `depth` unpublished events, the oldest `lag_seconds` old.
    fn outbox_state(&self, depth: u64, lag_seconds: f64) {
        let _ = (depth, lag_seconds);
    }

    /// The janitor did something: `completed` (an upload nobody completed, made available),
    /// `expired` (an abandoned upload), `swept` (a deleted file's late object), `orphan_deleted`
    /// (an object no record points to), `outbox_pruned` (sent outbox rows removed, `count` of
    /// them), `failed` (a dependency failed; retried on a later pass).
    fn janitor_action(&self, action: &'static str, count: u64) {
        let _ = (action, count);
    }

    /// How many uploads are pending.
    fn pending_uploads(&self, count: u64) {
        let _ = count;
    }
}

/// Counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {}
