//! The metadata port: the source of truth for file records.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::PortError;
use super::tenancy::{Admission, Limits};
use crate::event::{Deletion, FileUploaded};
use crate::file::{FileRecord, FileState};
use crate::ids::{FileId, TenantId};
use crate::principal::Scope;
use crate::values::FileName;

/// The metadata of files: the source of truth.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Records a new version.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the database cannot be reached; [`PortError::Failed`]
    /// when it refuses the record (for example an id that already exists).
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError>;

    /// Records a new version if it fits the quotas of `limits`, checked and counted so that
    /// concurrent admissions, on any instance sharing the store, never admit more than a quota
    /// (see [`Limits`] for what each counts). [`Admission::Refused`] names the first quota the
    /// record does not fit (tenant `bytes`, `files`, then the device's pending uploads and
    /// bytes of the day); then nothing was recorded.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError>;

    /// One version by id, in any state, or `None`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError>;

    /// The newest version (highest id) of `name` in `scope` that is in `state`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError>;

    /// Up to `limit` versions in `scope` in `state`, newest (highest id) first, with ids below
    /// `before` when it is given.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError>;

    /// Moves a pending version to available with its stored size and, in the same
    /// transaction, records `event` in the outbox (see [`Outbox`](super::outbox::Outbox)); returns the updated record,
    /// or `None` when it was not pending (already available, deleted, or absent) — then no event
    /// is recorded. Exactly one of several concurrent callers gets `Some`, so a file gets exactly
    /// one event.
    ///
    /// # Errors
    /// [`PortError`] when the database fails; then neither change happened.
    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError>;

    /// Marks a version deleted (a tombstone that is never served), whatever its state; returns
    /// the updated record, or `None` when there is no such version. When the version was
    /// available, records in the same transaction the `file.deleted` event of `deletion`,
    /// built from the row as it was ([`Deletion::event_for`]); a pending, expired or already
    /// deleted version gets none. Of several concurrent callers on one available version,
    /// exactly one records its event.
    ///
    /// # Errors
    /// [`PortError`] when the database fails; then neither change happened.
    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError>;

    /// Moves a pending version to expired (an abandoned upload); returns the updated record, or
    /// `None` when it was not pending. The default refuses: a store without a janitor need not
    /// implement it.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let _ = (tenant, id);
        Err(PortError::failed("this metadata store has no janitor support"))
    }
}
