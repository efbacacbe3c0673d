//! In-process metadata store and cache: the embedded default's, and the base of the testkit's
//! fakes. They keep everything in memory and lose it on exit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use files_core::ports::{Admission, Limits, StoredSettings};
use files_core::{
    Cache, Deletion, DeviceId, FileEvent, FileId, FileName, FileRecord, FileState, FileUploaded, Housekeeping,
    MetadataStore, Outbox, OutboxEntry, OutboxStats, PortError, Scope, TenantId,
};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

mod tenancy;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a map half-written (every update is one
    // insert), so the data is still good.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A metadata store in a map, ordered by file id (UUIDv7, so by creation), with its outbox
/// taken under the files' lock (so marking a file available, or deleting an available one, and
/// recording its event are atomic).
#[derive(Debug, Default)]
pub struct MemoryMetadataStore {
    files: Mutex<BTreeMap<FileId, FileRecord>>,
    outbox: Mutex<MemoryOutbox>,
    /// The janitor's leases, by file.
    leases: Mutex<HashMap<FileId, Instant>>,
    /// Tenant settings, by tenant.
    settings: Mutex<HashMap<TenantId, StoredSettings>>,
    /// Download URLs issued, by tenant, device and day.
    downloads: Mutex<HashMap<(TenantId, DeviceId, Date), u64>>,
}

#[derive(Debug, Default)]
struct MemoryOutbox {
    /// Unsent events by recording order.
    pending: BTreeMap<u64, Pending>,
    next: u64,
}

#[derive(Debug)]
struct Pending {
    entry: OutboxEntry,
    leased_until: Option<Instant>,
}

impl MemoryOutbox {
    fn record(&mut self, event: FileEvent, recorded_at: OffsetDateTime) {
        let seq = self.next;
        self.next += 1;
        self.pending.insert(
            seq,
            Pending {
                entry: OutboxEntry { event, recorded_at },
                leased_until: None,
            },
        );
    }

    fn find(&self, event_id: Uuid) -> Option<u64> {
        self.pending
            .iter()
            .find(|(_, p)| p.entry.event.event_id() == event_id)
            .map(|(seq, _)| *seq)
    }
}

impl MemoryMetadataStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, tenant: TenantId, id: FileId, change: impl FnOnce(&mut FileRecord) -> bool) -> Option<FileRecord> {
        let mut files = lock(&self.files);
        Self::change(&mut files, tenant, id, change)
    }

    fn change(
        files: &mut BTreeMap<FileId, FileRecord>,
        tenant: TenantId,
        id: FileId,
        change: impl FnOnce(&mut FileRecord) -> bool,
    ) -> Option<FileRecord> {
        let record = files.get_mut(&id).filter(|r| r.tenant == tenant)?;
        change(record).then(|| record.clone())
    }
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.admit_record(record, &Limits::NONE).map(drop)
    }

    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        self.admit_record(record, limits)
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        Ok(lock(&self.files).get(&id).filter(|r| r.tenant == tenant).cloned())
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        let files = lock(&self.files);
        Ok(files
            .values()
            .rev()
            .find(|r| r.scope() == scope && r.state == state && &r.name == name)
            .cloned())
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        let files = lock(&self.files);
        let below = match before {
            Some(before) => files.range(..before),
            None => files.range(..),
        };
        Ok(below
            .rev()
            .map(|(_, r)| r)
            .filter(|r| r.scope() == scope && r.state == state)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        // Both locks, files first (the only order in this module): one atomic change.
        let mut files = lock(&self.files);
        let record = Self::change(&mut files, tenant, id, |r| {
            let pending = r.state == FileState::Pending;
            if pending {
                r.state = FileState::Available;
                r.size = Some(size);
                r.completed_at = Some(at);
            }
            pending
        });
        if record.is_some() {
            lock(&self.outbox).record(FileEvent::Uploaded(event.clone()), at);
        }
        Ok(record)
    }

    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        // As in `mark_available`: both locks, files first, one atomic change.
        let mut files = lock(&self.files);
        let mut event = None;
        let record = Self::change(&mut files, tenant, id, |r| {
            event = deletion.event_for(r);
            r.state = FileState::Deleted;
            true
        });
        if let Some(event) = event {
            lock(&self.outbox).record(FileEvent::Deleted(event), deletion.at);
        }
        Ok(record)
    }

    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        Ok(self.update(tenant, id, |r| {
            let pending = r.state == FileState::Pending;
            if pending {
                r.state = FileState::Expired;
            }
            pending
        }))
    }
}

#[async_trait]
impl Housekeeping for MemoryMetadataStore {
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        let now = Instant::now();
        let files = lock(&self.files);
        let mut leases = lock(&self.leases);
        let mut stale: Vec<&FileRecord> = files
            .values()
            .filter(|r| matches!(r.state, FileState::Pending | FileState::Deleted | FileState::Expired))
            .filter(|r| r.upload_expires_at.is_some_and(|at| at < cutoff))
            .filter(|r| leases.get(&r.id).is_none_or(|until| *until <= now))
            .collect();
        stale.sort_by_key(|r| r.upload_expires_at);
        stale.truncate(limit);
        for record in &stale {
            leases.insert(record.id, now + lease);
        }
        Ok(stale.into_iter().cloned().collect())
    }

    async fn claim_retained(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        let leased_at = Instant::now();
        // The same lock order as everywhere: files first.
        let files = lock(&self.files);
        let settings = lock(&self.settings);
        let mut leases = lock(&self.leases);
        let past_retention = |r: &FileRecord| {
            let retention = settings.get(&r.tenant).and_then(|s| s.settings.retention_secs);
            match (retention, r.completed_at) {
                (Some(secs), Some(completed)) => {
                    // A retention longer than the calendar reaches is never over.
                    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
                    now.checked_sub(time::Duration::seconds(secs))
                        .is_some_and(|cutoff| completed < cutoff)
                }
                _ => false,
            }
        };
        let mut retained: Vec<&FileRecord> = files
            .values()
            .filter(|r| r.state == FileState::Available && r.owner.device().is_some())
            .filter(|r| past_retention(r))
            .filter(|r| leases.get(&r.id).is_none_or(|until| *until <= leased_at))
            .collect();
        retained.sort_by_key(|r| r.completed_at);
        retained.truncate(limit);
        for record in &retained {
            leases.insert(record.id, leased_at + lease);
        }
        Ok(retained.into_iter().cloned().collect())
    }

    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.update(tenant, id, |r| {
            r.upload_expires_at = None;
            true
        });
        lock(&self.leases).remove(&id);
        Ok(())
    }

    async fn count_pending(&self) -> Result<u64, PortError> {
        Ok(lock(&self.files)
            .values()
            .filter(|r| r.state == FileState::Pending)
            .count() as u64)
    }

    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError> {
        // Sent events are forgotten when marked sent: nothing is kept to prune.
        let _ = (before, limit);
        Ok(0)
    }
}

#[async_trait]
impl Outbox for MemoryMetadataStore {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError> {
        let now = Instant::now();
        let mut outbox = lock(&self.outbox);
        Ok(outbox
            .pending
            .values_mut()
            .filter(|p| p.leased_until.is_none_or(|until| until <= now))
            .take(limit)
            .map(|p| {
                p.leased_until = Some(now + lease);
                p.entry.clone()
            })
            .collect())
    }

    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        let mut outbox = lock(&self.outbox);
        for id in event_ids {
            if let Some(seq) = outbox.find(*id) {
                outbox.pending.remove(&seq);
            }
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        let mut outbox = lock(&self.outbox);
        for id in event_ids {
            if let Some(seq) = outbox.find(*id)
                && let Some(pending) = outbox.pending.get_mut(&seq)
            {
                pending.leased_until = None;
            }
        }
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        let outbox = lock(&self.outbox);
        Ok(OutboxStats {
            depth: outbox.pending.len() as u64,
            oldest: outbox.pending.values().next().map(|p| p.entry.recorded_at),
        })
    }
}

/// A cache in maps. It never evicts: fine for one developer's machine and for tests.
#[derive(Debug, Default)]
pub struct MemoryCache {
    files: Mutex<HashMap<(TenantId, FileId), FileRecord>>,
    latest: Mutex<HashMap<(Scope, FileName), FileId>>,
}

impl MemoryCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        Ok(lock(&self.files).get(&(tenant, id)).cloned())
    }

    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError> {
        let mut files = lock(&self.files);
        let key = (record.tenant, record.id);
        if files
            .get(&key)
            .is_none_or(|cached| cached.state.stage() <= record.state.stage())
        {
            files.insert(key, record.clone());
        }
        Ok(())
    }

    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError> {
        Ok(lock(&self.latest).get(&(scope, name.clone())).copied())
    }

    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError> {
        lock(&self.latest).insert((scope, name.clone()), id);
        Ok(())
    }

    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError> {
        lock(&self.latest).remove(&(scope, name.clone()));
        Ok(())
    }

    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        lock(&self.files).remove(&(tenant, id));
        Ok(())
    }

    async fn clear(&self) -> Result<(), PortError> {
        lock(&self.files).clear();
        lock(&self.latest).clear();
        Ok(())
    }
}
