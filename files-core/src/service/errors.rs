//! The use cases' errors: one enum per use case, and the dependency failure they share.

use crate::ports::{PortError, SignError};
use crate::principal::Forbidden;

/// Which dependency failed, for an error that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The metadata store.
    Database,
    /// The object store.
    ObjectStore,
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
            Self::KeySet => "token key set",
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
    /// The declared size is over the limit.
    #[error("size {size} is over the limit of {max} bytes")]
    TooLarge {
        /// Declared.
        size: u64,
        /// Allowed.
        max: u64,
    },
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
}
