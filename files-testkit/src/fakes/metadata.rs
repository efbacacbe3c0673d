//! The metadata store fake: the embedded default's memory store behind a [`Switch`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use files_adapters::memory::MemoryMetadataStore;
use files_core::{
    FileId, FileName, FileRecord, FileState, FileUploaded, Housekeeping, MetadataStore, Outbox, OutboxEntry,
    OutboxStats, PortError, Scope, TenantId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Switch;

/// The metadata store fake.
#[derive(Debug, Default)]
pub struct FakeMetadataStore {
    inner: MemoryMetadataStore,
    /// Fails every call while on.
    pub switch: Switch,
    gets: AtomicUsize,
}

impl FakeMetadataStore {
    /// How many times [`MetadataStore::get`] was called.
    #[must_use]
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl MetadataStore for FakeMetadataStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.insert(record).await
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.switch.check()?;
        self.inner.get(tenant, id).await
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.latest(scope, name, state).await
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.list(scope, state, before, limit).await
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_available(tenant, id, size, at, event).await
    }

    async fn mark_deleted(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_deleted(tenant, id).await
    }

    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_expired(tenant, id).await
    }
}

#[async_trait]
impl Housekeeping for FakeMetadataStore {
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.claim_stale(cutoff, limit, lease).await
    }

    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.mark_swept(tenant, id).await
    }

    async fn count_pending(&self) -> Result<u64, PortError> {
        self.switch.check()?;
        self.inner.count_pending().await
    }

    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError> {
        self.switch.check()?;
        self.inner.prune_sent(before, limit).await
    }
}

#[async_trait]
impl Outbox for FakeMetadataStore {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError> {
        self.switch.check()?;
        self.inner.claim(limit, lease).await
    }

    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.mark_sent(event_ids).await
    }

    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.release(event_ids).await
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        self.switch.check()?;
        self.inner.stats().await
    }
}
