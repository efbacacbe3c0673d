//! The metadata store fake: the embedded default's memory store behind a [`Switch`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use files_adapters::memory::MemoryMetadataStore;
use files_core::{
    Admission, Deletion, DeviceId, DeviceUsage, DownloadCount, FileId, FileName, FileRecord, FileState, FileUploaded,
    Housekeeping, Limits, MetadataStore, Outbox, OutboxEntry, OutboxStats, PortError, Scope, SettingsStore,
    StoredSettings, TenantId, TenantSettings, TenantUsage, UsageStore,
};
use time::{Date, OffsetDateTime};
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

    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        self.switch.check()?;
        self.inner.admit(record, limits).await
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

    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_deleted(tenant, id, deletion).await
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

    async fn claim_retained(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.claim_retained(now, limit, lease).await
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

#[async_trait]
impl SettingsStore for FakeMetadataStore {
    async fn get_settings(&self, tenant: TenantId) -> Result<Option<StoredSettings>, PortError> {
        self.switch.check()?;
        self.inner.get_settings(tenant).await
    }

    async fn put_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> Result<StoredSettings, PortError> {
        self.switch.check()?;
        self.inner.put_settings(tenant, settings, at).await
    }
}

#[async_trait]
impl UsageStore for FakeMetadataStore {
    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage, PortError> {
        self.switch.check()?;
        self.inner.tenant_usage(tenant).await
    }

    async fn device_usage(&self, tenant: TenantId, device: DeviceId, date: Date) -> Result<DeviceUsage, PortError> {
        self.switch.check()?;
        self.inner.device_usage(tenant, device, date).await
    }

    async fn add_downloads(&self, counts: &[DownloadCount]) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.add_downloads(counts).await
    }

    async fn settle(&self) -> Result<u64, PortError> {
        self.switch.check()?;
        self.inner.settle().await
    }
}
