//! The write-through composition of a metadata store and a cache.
//!
//! Writes go to the store first, then to the cache; reads try the cache, fall back to the store
//! and fill the cache. A cache failure never fails a call: it is logged and counted
//! ([`Metrics::cache_call`]), and the store answers.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::event::FileUploaded;
use crate::file::{FileRecord, FileState};
use crate::ids::{FileId, TenantId};
use crate::metrics::{CacheOutcome, Metrics};
use crate::ports::{Cache, MetadataStore, PortError, error_chain};
use crate::principal::Scope;
use crate::values::FileName;

/// A [`MetadataStore`] that keeps a [`Cache`] in step with the store it wraps.
pub struct WriteThrough {
    store: Arc<dyn MetadataStore>,
    cache: Arc<dyn Cache>,
    metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for WriteThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteThrough").finish_non_exhaustive()
    }
}

impl WriteThrough {
    /// Puts `cache` in front of `store`; every cache call is counted in `metrics`.
    pub fn new(store: Arc<dyn MetadataStore>, cache: Arc<dyn Cache>, metrics: Arc<dyn Metrics>) -> Self {
        Self { store, cache, metrics }
    }

    /// Runs a cache read, reporting hit, miss or error; an error reads as a miss.
    async fn read<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<Option<T>, PortError>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(Some(_)) => CacheOutcome::Hit,
            Ok(None) => CacheOutcome::Miss,
            Err(error) => {
                tracing::warn!(operation, error = %error_chain(error), "cache read failed; using the store");
                CacheOutcome::Error
            }
        };
        self.metrics.cache_call(operation, outcome, started.elapsed());
        result.ok().flatten()
    }

    /// Runs a cache write, reporting success or error; an error is only logged.
    async fn write(&self, operation: &'static str, call: impl Future<Output = Result<(), PortError>>) {
        let started = Instant::now();
        let outcome = match call.await {
            Ok(()) => CacheOutcome::Written,
            Err(error) => {
                tracing::warn!(operation, error = %error_chain(&error), "cache write failed");
                CacheOutcome::Error
            }
        };
        self.metrics.cache_call(operation, outcome, started.elapsed());
    }

    /// After a state change: the record is replaced and the name's latest version is recomputed
    /// on the next read.
    async fn refresh(&self, record: &FileRecord) {
        self.write("put_file", self.cache.put_file(record)).await;
        self.write("remove_latest", self.cache.remove_latest(record.scope(), &record.name))
            .await;
    }
}

#[async_trait]
impl MetadataStore for WriteThrough {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.store.insert(record).await?;
        self.write("put_file", self.cache.put_file(record)).await;
        Ok(())
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        if let Some(record) = self.read("get_file", self.cache.get_file(tenant, id)).await {
            return Ok(Some(record));
        }
        let record = self.store.get(tenant, id).await?;
        if let Some(record) = &record {
            self.write("put_file", self.cache.put_file(record)).await;
        }
        Ok(record)
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        if state != FileState::Available {
            return self.store.latest(scope, name, state).await;
        }
        if let Some(id) = self.read("get_latest", self.cache.get_latest(scope, name)).await {
            // The index points at a version; trust it only while that version is still available.
            if let Some(record) = self.get(scope.tenant, id).await?
                && record.state == FileState::Available
                && record.scope() == scope
            {
                return Ok(Some(record));
            }
        }
        let record = self.store.latest(scope, name, state).await?;
        if let Some(record) = &record {
            self.write("put_latest", self.cache.put_latest(scope, name, record.id))
                .await;
        }
        Ok(record)
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.store.list(scope, state, before, limit).await
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        let record = self.store.mark_available(tenant, id, size, at, event).await?;
        if let Some(record) = &record {
            self.refresh(record).await;
        }
        Ok(record)
    }

    async fn mark_deleted(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let record = self.store.mark_deleted(tenant, id).await?;
        if let Some(record) = &record {
            self.refresh(record).await;
        }
        Ok(record)
    }
}
