//! The use cases' errors: one enum per use case, and the dependency failure they share.

use std::time::Duration;

use time::OffsetDateTime;

use crate::multipart::InvalidPlan;
use crate::ports::{PortError, QuotaRefusal, SignError};
use crate::principal::Forbidden;

/// Which dependency failed, for an error that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The metadata store.
    Database,
    /// The object store.
    ObjectStore,
    /// The cache in front of the metadata store.
    Cache,
    /// The token key set.
    KeySet,
}

impl Dependency {
    /// The name shown to callers and operators.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::ObjectStore => "object store",
            Self::Cache => "cache",
            Self::KeySet => "token key set",
        }
    }

    /// The stable label value of its calls in metrics
    /// ([`Metrics::dependency_call`](crate::Metrics::dependency_call)).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::ObjectStore => "object_store",
            Self::Cache => "cache",
            Self::KeySet => "key_set",
        }
    }
}

/// A dependency failed: [`PortError::Unavailable`] (down or slow; the caller may retry later)
/// or [`PortError::Failed`] (it answered wrongly; retrying will not help).
#[derive(Debug, thiserror::Error)]
#[error("{} {}", dependency.name(), if self.is_unavailable() { "unavailable" } else { "failed" })]
pub struct DependencyError {
    /// Which one.
    pub dependency: Dependency,
    /// Why, for the logs.
    #[source]
    pub source: PortError,
}

impl DependencyError {
    /// True when the dependency is down or slow (a retry may work), false when it answered
    /// wrongly.
    #[must_use]
    pub const fn is_unavailable(&self) -> bool {
        matches!(self.source, PortError::Unavailable(_))
    }
}

pub(crate) const fn database(source: PortError) -> DependencyError {
    DependencyError {
        dependency: Dependency::Database,
        source,
    }
}

pub(crate) const fn object_store(source: PortError) -> DependencyError {
    DependencyError {
        dependency: Dependency::ObjectStore,
        source,
    }
}

/// An `expires_in` over the operation's maximum (or zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expires_in must be between 1 and {} seconds, not {}", max.as_secs(), asked.as_secs())]
pub struct ExpiryOutOfRange {
    /// Asked for.
    pub asked: std::time::Duration,
    /// Allowed.
    pub max: std::time::Duration,
}

/// Why an upload URL was not issued.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The principal may not write there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The declared size is over the tenant's limit (or the server's).
    #[error("size {size} is over the limit of {max} bytes")]
    TooLarge {
        /// Declared.
        size: u64,
        /// Allowed.
        max: u64,
    },
    /// Over what one PUT can carry (5 GiB): the file must be sent in parts.
    #[error("size {size} is over the {max} bytes one PUT can carry: declare parts (a multipart upload)")]
    NeedsMultipart {
        /// Declared.
        size: u64,
        /// One PUT's maximum.
        max: u64,
    },
    /// The part plan cannot work.
    #[error(transparent)]
    Plan(#[from] InvalidPlan),
    /// The URL could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The asked lifetime is out of range.
    #[error(transparent)]
    Expiry(#[from] ExpiryOutOfRange),
    /// The tenant admits only some content types, and not this one (or none declared).
    #[error("content type {} is not allowed for this tenant", content_type.as_ref().map_or("(none)", |c| c.as_str()))]
    ContentTypeNotAllowed {
        /// Declared.
        content_type: Option<crate::values::ContentType>,
    },
    /// The upload does not fit one of the quotas.
    #[error("the upload does not fit the {} quota", .0.refusal.quota())]
    Quota(QuotaExceeded),
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// Why part tickets or the stored parts of a multipart upload were not given.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// The principal may not write there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// The file was uploaded with one PUT, not in parts.
    #[error("this file is not a multipart upload")]
    NotMultipart,
    /// The upload was completed already: there is nothing left to send.
    #[error("the upload of this file has been completed already")]
    Completed,
    /// The multipart upload expired or was aborted: a new upload must be requested.
    #[error("the multipart upload has expired or was aborted: request a new upload")]
    Expired,
    /// Part numbers out of range, none, or too many.
    #[error("{0}")]
    PartNumbers(String),
    /// The URL could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The asked lifetime is out of range.
    #[error(transparent)]
    Expiry(#[from] ExpiryOutOfRange),
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

impl From<LookupError> for PartsError {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::Forbidden(f) => Self::Forbidden(f),
            LookupError::NotFound => Self::NotFound,
            LookupError::Dependency(e) => Self::Dependency(e),
        }
    }
}

/// Why a download URL was not issued.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The principal may not read there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file in that scope.
    #[error("file not found")]
    NotFound,
    /// The version (or every version of the name) is still waiting for its upload.
    #[error("upload not completed yet")]
    NotCompleted,
    /// The version's upload was abandoned and expired: there is nothing to download.
    #[error("the upload of this file was never completed and has expired")]
    Expired,
    /// The URL could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The asked lifetime is out of range.
    #[error(transparent)]
    Expiry(#[from] ExpiryOutOfRange),
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// Why a lookup, listing or deletion failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The principal may not do that there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// Why an upload could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The principal may not write there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// The store has no object for it yet.
    #[error("the object has not been uploaded")]
    NotUploaded,
    /// Parts of a multipart upload are not in the store (or not with their declared size and
    /// SHA-256), by number.
    #[error("parts missing from the store: {}", numbers(.0))]
    PartsMissing(Vec<u16>),
    /// The multipart upload no longer exists (expired or aborted) and left no object.
    #[error("the multipart upload has expired or was aborted: request a new upload")]
    UploadExpired,
    /// The stored object is not what was declared.
    #[error("the stored object does not match: {0}")]
    Mismatch(Mismatch),
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// How a stored object differs from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Another length than declared.
    #[error("size {stored} differs from the declared {declared}")]
    Size {
        /// Declared.
        declared: u64,
        /// Stored.
        stored: u64,
    },
    /// Over the configured maximum upload size (a file recorded without a declared size).
    #[error("size {stored} is over the limit of {max} bytes")]
    OverLimit {
        /// Stored.
        stored: u64,
        /// Allowed.
        max: u64,
    },
    /// Another SHA-256 than declared, or the store did not report one.
    #[error("sha256 differs from the declared one or was not verified by the store")]
    Sha256,
    /// A multipart object whose composite checksum differs from the declared parts'.
    #[error("the composite checksum of the parts differs from the declared parts' SHA-256s")]
    Parts,
}

/// `1, 2, 5` (at most 20 numbers, then how many more).
fn numbers(parts: &[u16]) -> String {
    let mut text = parts.iter().take(20).map(u16::to_string).collect::<Vec<_>>().join(", ");
    if parts.len() > 20 {
        text.push_str(&format!(" and {} more", parts.len() - 20));
    }
    text
}

/// Which quota an upload does not fit, and when to ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The quota.
    pub refusal: QuotaRefusal,
    /// For a device quota, when asking again may succeed: the next 00:00 UTC for the daily
    /// bytes, [`PENDING_RETRY_AFTER`] for pending uploads. `None` for the tenant's quotas, which
    /// only a delete frees.
    pub retry_after: Option<Duration>,
}

/// How long a device over its pending uploads is told to wait: about the time an upload takes
/// to complete or be given up.
pub const PENDING_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Seconds from `now` to the next 00:00 UTC (at least 1).
fn until_midnight(now: OffsetDateTime) -> Duration {
    let now = now.to_offset(time::UtcOffset::UTC);
    let elapsed = u64::from(now.hour()) * 3600 + u64::from(now.minute()) * 60 + u64::from(now.second());
    Duration::from_secs((86_400 - elapsed).max(1))
}

impl QuotaExceeded {
    pub(crate) fn new(refusal: QuotaRefusal, now: OffsetDateTime) -> Self {
        let retry_after = match refusal {
            QuotaRefusal::Bytes | QuotaRefusal::Files => None,
            QuotaRefusal::DeviceBytesPerDay => Some(until_midnight(now)),
            QuotaRefusal::DevicePendingUploads => Some(PENDING_RETRY_AFTER),
        };
        Self { refusal, retry_after }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_daily_quota_resets_at_midnight_utc() {
        assert_eq!(
            until_midnight(datetime!(2026-12-07 23:59:30 UTC)),
            Duration::from_secs(30)
        );
        assert_eq!(
            until_midnight(datetime!(2026-12-07 01:00:00 +02:00)),
            Duration::from_secs(3600),
            "23:00 UTC"
        );
        assert_eq!(
            until_midnight(datetime!(2026-12-07 00:00:00 UTC)),
            Duration::from_secs(86_400)
        );
    }
}
