//! The cache port: file records and latest versions kept in front of the metadata store.

use async_trait::async_trait;

use super::error::PortError;
use crate::file::FileRecord;
use crate::ids::{FileId, TenantId};
use crate::principal::Scope;
use crate::values::FileName;

/// A cache in front of the metadata store. Every failure is survivable: callers fall back to
/// the store.
#[async_trait]
pub trait Cache: Send + Sync {
    /// A cached record.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails or holds something unreadable.
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError>;

    /// Stores a record, or replaces the cached copy unless that copy is newer: one at a later
    /// [`FileState::stage`](crate::file::FileState::stage) (an entry never moves backwards).
    /// The check and the write are one atomic step, so a fill from a read that raced with a
    /// change on another instance cannot overwrite the changed entry.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError>;

    /// The cached id of the latest available version of a name.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError>;

    /// Caches the id of the latest available version of a name.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError>;

    /// Forgets the latest version of a name; forgetting an absent one succeeds.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails; the entry may then still be there.
    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError>;

    /// Forgets a record; forgetting an absent one succeeds.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails; the record may then still be cached.
    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError>;

    /// Forgets every entry of this cache: on a store shared with others (one Redis, several key
    /// prefixes), every entry of its own and nothing of theirs. Bounded in time like every call;
    /// a cache too large to clear in time fails.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails or does not finish in time; some entries may then be
    /// left.
    async fn clear(&self) -> Result<(), PortError>;
}
