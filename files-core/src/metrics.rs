//! The metrics port: what the use cases, the relay and the adapters count.
//!
//! Every method has an empty default, so an embedding service implements only what it wants to
//! see; [`NoMetrics`] counts nothing. The Prometheus adapter (`files-adapters`, feature
//! `prometheus`) implements all of it. Label values are stable: operators' dashboards use them.

use std::time::Duration;

use crate::ids::TenantId;
use crate::ports::InvalidToken;
use crate::principal::Owner;
use crate::service::Dependency;

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

/// A call of the cache in front of the metadata store: the [`Cache`](crate::ports::Cache) method
/// it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheOperation {
    /// [`Cache::get_file`](crate::ports::Cache::get_file).
    GetFile,
    /// [`Cache::put_file`](crate::ports::Cache::put_file).
    PutFile,
    /// [`Cache::get_latest`](crate::ports::Cache::get_latest).
    GetLatest,
    /// [`Cache::put_latest`](crate::ports::Cache::put_latest).
    PutLatest,
    /// [`Cache::remove_latest`](crate::ports::Cache::remove_latest).
    RemoveLatest,
    /// [`Cache::remove_file`](crate::ports::Cache::remove_file).
    RemoveFile,
    /// [`Cache::clear`](crate::ports::Cache::clear).
    Clear,
}

impl CacheOperation {
    /// Every operation.
    pub const ALL: [Self; 7] = [
        Self::GetFile,
        Self::PutFile,
        Self::GetLatest,
        Self::PutLatest,
        Self::RemoveLatest,
        Self::RemoveFile,
        Self::Clear,
    ];

    /// The stable label value: the method's name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::GetFile => "get_file",
            Self::PutFile => "put_file",
            Self::GetLatest => "get_latest",
            Self::PutLatest => "put_latest",
            Self::RemoveLatest => "remove_latest",
            Self::RemoveFile => "remove_file",
            Self::Clear => "clear",
        }
    }
}

/// How one fetch of the token key set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySetRefresh {
    /// A key set was fetched and is in use.
    Updated,
    /// The fetch failed; the last good keys (if any) stay in use.
    Failed,
}

impl KeySetRefresh {
    /// The stable label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::Failed => "failed",
        }
    }
}

/// How a bearer token check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    /// The token named a principal.
    Verified,
    /// The token was refused, and why.
    Invalid(InvalidToken),
    /// No keys could be had to check it with.
    Unavailable,
}

impl TokenOutcome {
    /// The stable label value: `ok`, `unavailable`, or the refusal's [`InvalidToken::label`].
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Verified => "ok",
            Self::Invalid(reason) => reason.label(),
            Self::Unavailable => "unavailable",
        }
    }
}

/// How one record of a store notification was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageEventOutcome {
    /// The file became available.
    Completed,
    /// The file was available already.
    Duplicate,
    /// Another bucket than ours.
    ForeignBucket,
    /// A key that is not one of ours.
    ForeignKey,
    /// No live record for the key.
    UnknownFile,
    /// The object is missing, or differs from its record.
    Mismatch,
    /// Another kind of event than a creation.
    Ignored,
    /// Not a record of the expected shape.
    Malformed,
}

impl StorageEventOutcome {
    /// The stable label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Duplicate => "duplicate",
            Self::ForeignBucket => "foreign_bucket",
            Self::ForeignKey => "foreign_key",
            Self::UnknownFile => "unknown_file",
            Self::Mismatch => "mismatch",
            Self::Ignored => "ignored",
            Self::Malformed => "malformed",
        }
    }
}

/// What the janitor (or a store notification doing its work) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JanitorAction {
    /// A pending upload found complete in the store and made available.
    Completed,
    /// A pending upload moved to expired.
    Expired,
    /// What a deleted or expired record's upload left in the store was cleared.
    Swept,
    /// A record settled by another call since the claim: nothing done, never counted.
    Skipped,
    /// A dependency failed; retried on a later pass.
    Failed,
    /// Sent outbox rows removed.
    OutboxPruned,
    /// An object no live record points to was deleted.
    OrphanDeleted,
    /// An available device-root file past its tenant's `retention_secs` was deleted (its
    /// object, then its record, with its `file.deleted` event).
    Retained,
}

impl JanitorAction {
    /// Every action counted in metrics ([`JanitorAction::Skipped`] is not).
    pub const COUNTED: [Self; 7] = [
        Self::Completed,
        Self::Expired,
        Self::Swept,
        Self::OrphanDeleted,
        Self::OutboxPruned,
        Self::Retained,
        Self::Failed,
    ];

    /// The stable label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Swept => "swept",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::OutboxPruned => "outbox_pruned",
            Self::OrphanDeleted => "orphan_deleted",
            Self::Retained => "retained",
        }
    }
}

/// Why a request was refused by a tenant's limits: the error code it was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRefusal {
    /// Over the tenant's `max_file_size` (or the server's).
    FileTooLarge,
    /// Not one of the tenant's `allowed_content_types`.
    ContentTypeNotAllowed,
    /// Over the tenant's `bytes` or `files` quota.
    QuotaExceeded,
    /// Over the device's `device_bytes_per_day`.
    DailyQuotaExceeded,
    /// Over the device's `device_pending_uploads`.
    TooManyPendingUploads,
    /// Over the device's `device_requests_per_minute` or the tenant's
    /// `tenant_requests_per_second`.
    RateLimited,
}

impl LimitRefusal {
    /// Every refusal.
    pub const ALL: [Self; 6] = [
        Self::FileTooLarge,
        Self::ContentTypeNotAllowed,
        Self::QuotaExceeded,
        Self::DailyQuotaExceeded,
        Self::TooManyPendingUploads,
        Self::RateLimited,
    ];

    /// The stable label value: the error code of the answer.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::FileTooLarge => "file_too_large",
            Self::ContentTypeNotAllowed => "content_type_not_allowed",
            Self::QuotaExceeded => "quota_exceeded",
            Self::DailyQuotaExceeded => "daily_quota_exceeded",
            Self::TooManyPendingUploads => "too_many_pending_uploads",
            Self::RateLimited => "rate_limited",
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

    /// A request of `tenant` was refused by one of its limits.
    fn limit_refusal(&self, tenant: TenantId, refusal: LimitRefusal) {
        let _ = (tenant, refusal);
    }

    /// A bearer token was checked, and how it ended.
    fn token_verification(&self, outcome: TokenOutcome) {
        let _ = outcome;
    }

    /// A lookup in the verified-token cache: [`CacheOutcome::Hit`] (the signature check was
    /// skipped) or [`CacheOutcome::Miss`].
    fn token_cache(&self, outcome: CacheOutcome) {
        let _ = outcome;
    }

    /// The token key set was fetched, and how it ended.
    fn key_set_refresh(&self, outcome: KeySetRefresh) {
        let _ = outcome;
    }

    /// One cache call: which operation, how it ended, how long.
    fn cache_call(&self, operation: CacheOperation, outcome: CacheOutcome, elapsed: Duration) {
        let _ = (operation, outcome, elapsed);
    }

    /// One call an adapter made to its dependency ([`Dependency::Database`],
    /// [`Dependency::ObjectStore`]): which operation (the adapter's name for the call, such as
    /// `insert` or `inspect`), whether it succeeded, how long it took.
    fn dependency_call(&self, dependency: Dependency, operation: &'static str, ok: bool, elapsed: Duration) {
        let _ = (dependency, operation, ok, elapsed);
    }

    /// One record of a store notification was handled, and how.
    fn storage_event(&self, outcome: StorageEventOutcome) {
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

    /// The janitor did `action` `count` times (for [`JanitorAction::OutboxPruned`], `count`
    /// rows); never called with [`JanitorAction::Skipped`].
    fn janitor_action(&self, action: JanitorAction, count: u64) {
        let _ = (action, count);
    }

    /// How many uploads are pending.
    fn pending_uploads(&self, count: u64) {
        let _ = count;
    }

    /// Whether the cache's near cache (entries kept in process) serves reads: `true` once the
    /// cache tracks its keys, `false` when tracking is lost (nothing is served until it is back).
    fn near_cache_tracking(&self, on: bool) {
        let _ = on;
    }

    /// The near cache lost its key tracking (its connection dropped or stopped answering).
    fn near_cache_tracking_lost(&self) {}

    /// A read looked in the near cache: [`CacheOutcome::Hit`] (served in process) or
    /// [`CacheOutcome::Miss`] (read from the cache itself).
    fn near_cache_lookup(&self, outcome: CacheOutcome) {
        let _ = outcome;
    }
}

/// Counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label values are what dashboards and alerts select on: these are fixed.
    #[test]
    fn label_values_are_stable() {
        let janitor: Vec<_> = JanitorAction::COUNTED.iter().map(|a| a.label()).collect();
        assert_eq!(
            janitor,
            [
                "completed",
                "expired",
                "swept",
                "orphan_deleted",
                "outbox_pruned",
                "retained",
                "failed"
            ]
        );
        assert_eq!(JanitorAction::Skipped.label(), "skipped");
        let refusals: Vec<_> = LimitRefusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            refusals,
            [
                "file_too_large",
                "content_type_not_allowed",
                "quota_exceeded",
                "daily_quota_exceeded",
                "too_many_pending_uploads",
                "rate_limited"
            ]
        );
        let tokens = [
            (TokenOutcome::Verified, "ok"),
            (TokenOutcome::Unavailable, "unavailable"),
            (TokenOutcome::Invalid(InvalidToken::Expired), "expired"),
            (TokenOutcome::Invalid(InvalidToken::Claim("sub")), "claim"),
        ];
        for (outcome, label) in tokens {
            assert_eq!(outcome.label(), label);
        }
        let storage = [
            (StorageEventOutcome::Completed, "completed"),
            (StorageEventOutcome::Duplicate, "duplicate"),
            (StorageEventOutcome::ForeignBucket, "foreign_bucket"),
            (StorageEventOutcome::ForeignKey, "foreign_key"),
            (StorageEventOutcome::UnknownFile, "unknown_file"),
            (StorageEventOutcome::Mismatch, "mismatch"),
            (StorageEventOutcome::Ignored, "ignored"),
            (StorageEventOutcome::Malformed, "malformed"),
        ];
        for (outcome, label) in storage {
            assert_eq!(outcome.label(), label);
        }
        let cache: Vec<_> = CacheOperation::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(
            cache,
            [
                "get_file",
                "put_file",
                "get_latest",
                "put_latest",
                "remove_latest",
                "remove_file",
                "clear"
            ]
        );
        assert_eq!(KeySetRefresh::Updated.label(), "updated");
        assert_eq!(KeySetRefresh::Failed.label(), "failed");
        let dependencies = [
            (Dependency::Database, "database"),
            (Dependency::ObjectStore, "object_store"),
            (Dependency::Cache, "cache"),
            (Dependency::KeySet, "key_set"),
        ];
        for (dependency, label) in dependencies {
            assert_eq!(dependency.label(), label);
        }
    }
}
