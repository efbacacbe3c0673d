//! The cache fake: the embedded default's memory cache behind a [`Switch`].

use async_trait::async_trait;
use files_adapters::memory::MemoryCache;
use files_core::{Cache, FileId, FileName, FileRecord, PortError, Scope, TenantId};

use super::Switch;

/// The cache fake.
#[derive(Debug, Default)]
pub struct FakeCache {
    inner: MemoryCache,
    /// Fails every call while on.
    pub switch: Switch,
}

#[async_trait]
impl Cache for FakeCache {
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.get_file(tenant, id).await
    }

    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.put_file(record).await
    }

    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError> {
        self.switch.check()?;
        self.inner.get_latest(scope, name).await
    }

    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.put_latest(scope, name, id).await
    }

    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.remove_latest(scope, name).await
    }

    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.remove_file(tenant, id).await
    }

    async fn clear(&self) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.clear().await
    }
}
