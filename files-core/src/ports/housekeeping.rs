//! The janitor's port: what it needs of the metadata store beyond [`MetadataStore`](super::MetadataStore).

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::PortError;
use super::outbox::TransactionalStore;
use crate::file::FileRecord;
use crate::ids::{FileId, TenantId};

/// What the janitor needs of the metadata store beyond [`MetadataStore`](super::MetadataStore): finding the uploads
/// whose time is up, and keeping the outbox small. Safe with several janitors at once: a
/// claimed record is not handed to another claimer until its lease runs out.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Up to `limit` records whose upload URL (or multipart upload) expired before `cutoff`
    /// and that still need the janitor: pending ones (complete or expire them), and deleted or
    /// expired ones not yet swept (clear what their upload may have left in the store). Each
    /// is leased for `lease`; the oldest expiry first.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError>;

    /// Up to `limit` available device-root files past their tenant's retention: of tenants
    /// whose settings set `retention_secs`, completed more than that long before `now`.
    /// Tenant-root files, files not available, and files of tenants without retention are
    /// never handed out. Each is leased for `lease` (a leased file is not handed out again
    /// until the lease runs out); the oldest completion first.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn claim_retained(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError>;

    /// A deleted or expired record's upload was cleared from the store: it needs the janitor
    /// no more.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError>;

    /// How many uploads are pending.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn count_pending(&self) -> Result<u64, PortError>;

    /// Removes up to `limit` outbox events sent before `before` (never an unsent one); returns
    /// how many.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError>;
}

/// A transactional store the janitor can work on as well ([`Housekeeping`]).
pub trait JanitorStore: TransactionalStore + Housekeeping {}

impl<T: TransactionalStore + Housekeeping> JanitorStore for T {}
