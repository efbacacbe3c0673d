//! The write-through composition of a metadata store and a cache.
//!
//! Changes go to the store first, then to the cache; reads try the cache, fall back to the store
//! and fill the cache. A new record is not written to the cache when it is created: nothing can
//! be cached under a new id, so nothing there can be stale, and its first read (most often the
//! `complete` that follows the upload) caches it. That keeps a Redis round trip off upload-url,
//! the busiest write. A cache failure never fails a call: it is logged and counted
//! ([`Metrics::cache_call`]), and the store answers.
//!
//! A cache write that fails after a change in the store (the cache is down, or too slow) would
//! leave the old entry in the cache, to be served once the cache answers again. So the
//! composition remembers every entry it could not bring up to date (a *dirty* entry: a record,
//! or the latest version of a name) and, before its next cache call, deletes them first
//! ([`Cache::remove_file`], [`Cache::remove_latest`]); until that has succeeded it reads them
//! from the store only, and while a repair fails it reads everything from the store. It keeps
//! at most [`WriteThrough::DEFAULT_MAX_DIRTY`] dirty entries; past that it *loses track*, reads
//! nothing from the cache and flushes it whole ([`Cache::clear`]) before trusting it again.
//! When nothing is dirty the only cost is one atomic load per call.
//!
//! This is per instance and in memory: an instance that stops forgets what it could not
//! invalidate, and another instance does not know about it. The cache's TTL bounds those cases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::event::{Deletion, FileUploaded};
use crate::file::{FileRecord, FileState};
use crate::ids::{FileId, TenantId};
use crate::metrics::{CacheOperation, CacheOutcome, Metrics};
use crate::ports::{Admission, Cache, Limits, MetadataStore, PortError, error_chain};
use crate::principal::Scope;
use crate::values::FileName;

/// How many dirty entries one repair deletes at most, so that the request that runs it is not
/// held up long; the rest wait for the next calls (and are read from the store meanwhile).
const REPAIR_BATCH: usize = 64;

/// A [`MetadataStore`] that keeps a [`Cache`] in step with the store it wraps.
pub struct WriteThrough {
    store: Arc<dyn MetadataStore>,
    cache: Arc<dyn Cache>,
    metrics: Arc<dyn Metrics>,
    dirty: Dirty,
}

impl std::fmt::Debug for WriteThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteThrough").finish_non_exhaustive()
    }
}

/// A cache entry that may be stale: a write to it failed after a change in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Entry {
    /// The record of a version.
    File(TenantId, FileId),
    /// The id of the latest available version of a name.
    Latest(Scope, FileName),
}

impl Entry {
    fn file(record: &FileRecord) -> Self {
        Self::File(record.tenant, record.id)
    }

    fn latest(record: &FileRecord) -> Self {
        Self::Latest(record.scope(), record.name.clone())
    }
}

/// What the composition could not invalidate.
#[derive(Debug)]
struct Dirty {
    /// Whether anything is dirty: the only check made on every call when nothing is.
    any: AtomicBool,
    /// Whether a repair is running: one at a time, the others do not wait for it.
    repairing: AtomicBool,
    state: Mutex<DirtyState>,
    max: usize,
}

#[derive(Debug, Default)]
struct DirtyState {
    /// Each dirty entry with the number of its last mark, so that a repair that raced with a
    /// new failure on the same entry does not forget the new one.
    entries: HashMap<Entry, u64>,
    /// Set when entries had to be forgotten (more than `max`): the last mark not in `entries`.
    /// Only a flush of the whole cache started after it makes the cache trustworthy again.
    lost: Option<u64>,
    /// Marks so far.
    marks: u64,
}

/// What one repair is to do, decided under the lock and done without it.
enum Plan {
    /// Flush the cache; it covers every mark up to `upto`.
    Clear { upto: u64 },
    /// Delete these entries, each as of its mark.
    Remove(Vec<(Entry, u64)>),
}

/// Where a repair left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// Nothing is dirty: the cache can be used for everything.
    Clean,
    /// Some entries are still dirty (another call is repairing, or there were more than one
    /// batch): the cache can be used for every entry but those.
    Partial,
    /// The repair failed: the cache is down or failing, and is not used by this call.
    Failed,
}

/// Clears the repairing flag when the repair ends, even when its call is dropped midway.
struct Repairing<'a>(&'a AtomicBool);

impl Drop for Repairing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Dirty {
    fn new(max: usize) -> Self {
        Self {
            any: AtomicBool::new(false),
            repairing: AtomicBool::new(false),
            state: Mutex::new(DirtyState::default()),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, DirtyState> {
        // Every update leaves the state consistent: a panic elsewhere cannot have broken it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Remembers that `entry` could not be brought up to date.
    fn mark(&self, entry: Entry) {
        let mut state = self.lock();
        state.marks += 1;
        let mark = state.marks;
        if state.entries.len() >= self.max && !state.entries.contains_key(&entry) {
            if state.lost.is_none() {
                tracing::warn!(
                    max = self.max,
                    "too many cache entries could not be invalidated; the cache will be flushed once it answers"
                );
            }
            state.entries = HashMap::new();
            state.lost = Some(mark);
        } else {
            state.entries.insert(entry, mark);
        }
        self.any.store(true, Ordering::Release);
    }

    /// Whether the cache must not be read for `entry`.
    fn is_dirty(&self, entry: &Entry) -> bool {
        if !self.any() {
            return false;
        }
        let state = self.lock();
        state.lost.is_some() || state.entries.contains_key(entry)
    }

    /// Takes the right to repair, unless another call has it.
    fn start_repair(&self) -> Option<Repairing<'_>> {
        self.repairing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Repairing(&self.repairing))
    }

    fn plan(&self) -> Option<Plan> {
        let state = self.lock();
        if state.lost.is_some() {
            Some(Plan::Clear { upto: state.marks })
        } else if state.entries.is_empty() {
            None
        } else {
            Some(Plan::Remove(
                state
                    .entries
                    .iter()
                    .take(REPAIR_BATCH)
                    .map(|(entry, mark)| (entry.clone(), *mark))
                    .collect(),
            ))
        }
    }

    /// `entry` was deleted from the cache after its mark `mark`.
    fn removed(&self, entry: &Entry, mark: u64) {
        let mut state = self.lock();
        if state.entries.get(entry) == Some(&mark) {
            state.entries.remove(entry);
        }
        self.settle(&state);
    }

    /// The cache was flushed, after every mark up to `upto`.
    fn cleared(&self, upto: u64) {
        let mut state = self.lock();
        if state.lost.is_some_and(|lost| lost <= upto) {
            state.lost = None;
        }
        state.entries.retain(|_, mark| *mark > upto);
        self.settle(&state);
    }

    fn settle(&self, state: &DirtyState) {
        if state.entries.is_empty() && state.lost.is_none() {
            self.any.store(false, Ordering::Release);
        }
    }
}

impl WriteThrough {
    /// How many entries it could not invalidate a [`WriteThrough`] remembers by default before
    /// it loses track and flushes the whole cache instead.
    pub const DEFAULT_MAX_DIRTY: usize = 10_000;

    /// Puts `cache` in front of `store`; every cache call is counted in `metrics`.
    pub fn new(store: Arc<dyn MetadataStore>, cache: Arc<dyn Cache>, metrics: Arc<dyn Metrics>) -> Self {
        Self {
            store,
            cache,
            metrics,
            dirty: Dirty::new(Self::DEFAULT_MAX_DIRTY),
        }
    }

    /// Remembers at most `max` entries it could not invalidate (at least one) before it flushes
    /// the whole cache instead of deleting them one by one.
    #[must_use]
    pub fn with_max_dirty(mut self, max: usize) -> Self {
        self.dirty = Dirty::new(max.max(1));
        self
    }

    /// Runs a cache read, reporting hit, miss or error; an error reads as a miss.
    async fn read<T>(
        &self,
        operation: CacheOperation,
        call: impl Future<Output = Result<Option<T>, PortError>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(Some(_)) => CacheOutcome::Hit,
            Ok(None) => CacheOutcome::Miss,
            Err(error) => {
                tracing::warn!(operation = operation.label(), error = %error_chain(error), "cache read failed; using the store");
                CacheOutcome::Error
            }
        };
        self.metrics.cache_call(operation, outcome, started.elapsed());
        result.ok().flatten()
    }

    /// Runs a cache write, reporting success or error; an error is only logged. Whether it
    /// succeeded.
    async fn write(&self, operation: CacheOperation, call: impl Future<Output = Result<(), PortError>>) -> bool {
        let started = Instant::now();
        let (outcome, written) = match call.await {
            Ok(()) => (CacheOutcome::Written, true),
            Err(error) => {
                tracing::warn!(operation = operation.label(), error = %error_chain(&error), "cache write failed");
                (CacheOutcome::Error, false)
            }
        };
        self.metrics.cache_call(operation, outcome, started.elapsed());
        written
    }

    /// Deletes what could not be invalidated, when anything is dirty and no other call is at
    /// it: a batch of entries, or the whole cache after losing track.
    async fn repair(&self) -> Repair {
        if !self.dirty.any() {
            return Repair::Clean;
        }
        let Some(_repairing) = self.dirty.start_repair() else {
            return Repair::Partial;
        };
        match self.dirty.plan() {
            None => {}
            Some(Plan::Clear { upto }) => {
                if !self.write(CacheOperation::Clear, self.cache.clear()).await {
                    return Repair::Failed;
                }
                tracing::info!("cache flushed: it had missed too many invalidations");
                self.dirty.cleared(upto);
            }
            Some(Plan::Remove(batch)) => {
                for (entry, mark) in batch {
                    let removed = match &entry {
                        Entry::File(tenant, id) => {
                            self.write(CacheOperation::RemoveFile, self.cache.remove_file(*tenant, *id))
                                .await
                        }
                        Entry::Latest(scope, name) => {
                            self.write(CacheOperation::RemoveLatest, self.cache.remove_latest(*scope, name))
                                .await
                        }
                    };
                    if !removed {
                        return Repair::Failed;
                    }
                    self.dirty.removed(&entry, mark);
                }
            }
        }
        if self.dirty.any() {
            Repair::Partial
        } else {
            Repair::Clean
        }
    }

    /// Whether this call may read `entry` from the cache (and fill it): after a repair, when
    /// the cache is not failing and the entry is not dirty.
    async fn readable(&self, entry: &Entry) -> bool {
        match self.repair().await {
            Repair::Clean => true,
            Repair::Failed => false,
            Repair::Partial => !self.dirty.is_dirty(entry),
        }
    }

    /// After a change in the store: the record is replaced and, when `name_too`, the name's
    /// latest version is dropped, to be recomputed on the next read. What cannot be done is
    /// remembered; once one write failed (or the repair did) the others are not tried.
    async fn changed(&self, record: &FileRecord, name_too: bool) {
        let mut failing = self.repair().await == Repair::Failed;
        if failing || !self.write(CacheOperation::PutFile, self.cache.put_file(record)).await {
            self.dirty.mark(Entry::file(record));
            failing = true;
        }
        if name_too
            && (failing
                || !self
                    .write(
                        CacheOperation::RemoveLatest,
                        self.cache.remove_latest(record.scope(), &record.name),
                    )
                    .await)
        {
            self.dirty.mark(Entry::latest(record));
        }
    }
}

#[async_trait]
impl MetadataStore for WriteThrough {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        // Nothing is cached under a new id: the first read caches the record.
        self.store.insert(record).await
    }

    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        // As insert: nothing is cached under a new id.
        self.store.admit(record, limits).await
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        if !self.readable(&Entry::File(tenant, id)).await {
            return self.store.get(tenant, id).await;
        }
        if let Some(record) = self
            .read(CacheOperation::GetFile, self.cache.get_file(tenant, id))
            .await
        {
            return Ok(Some(record));
        }
        let record = self.store.get(tenant, id).await?;
        if let Some(record) = &record {
            self.write(CacheOperation::PutFile, self.cache.put_file(record)).await;
        }
        Ok(record)
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        if state != FileState::Available {
            return self.store.latest(scope, name, state).await;
        }
        if !self.readable(&Entry::Latest(scope, name.clone())).await {
            return self.store.latest(scope, name, state).await;
        }
        if let Some(id) = self
            .read(CacheOperation::GetLatest, self.cache.get_latest(scope, name))
            .await
        {
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
            self.write(CacheOperation::PutLatest, self.cache.put_latest(scope, name, record.id))
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
            self.changed(record, true).await;
        }
        Ok(record)
    }

    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        let record = self.store.mark_deleted(tenant, id, deletion).await?;
        if let Some(record) = &record {
            self.changed(record, true).await;
        }
        Ok(record)
    }

    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let record = self.store.mark_expired(tenant, id).await?;
        if let Some(record) = &record {
            self.changed(record, false).await;
        }
        Ok(record)
    }
}
