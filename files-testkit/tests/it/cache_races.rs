//! Two instances over one PostgreSQL database and one Redis key prefix (each with its own near
//! cache), racing: a read on one instance that fills the cache while another completes the
//! file must never leave the older copy in the cache, and concurrent `complete`s of a landed
//! upload all succeed, whatever the cache held when they started.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use files_adapters::postgres::PostgresStore;
use files_adapters::redis::{RedisCache, RedisConfig};
use files_core::{
    Admission, Cache, Deletion, DeviceId, FileId, FileName, FileRecord, FileState, FileUploaded, FilesService, Limits,
    MetadataStore, NoMetrics, Owner, PortError, Ports, Principal, Scope, TenantId, UploadRequest, WriteThrough,
};
use files_testkit::contract::cache::sample_record;
use files_testkit::contract::metadata::uploaded_event;
use files_testkit::eventually;
use files_testkit::fakes::{FakeObjectStore, FakeTokenVerifier, RecordingNotifier};
use files_testkit::postgres::TestDatabase;
use files_testkit::services;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use files_testkit::sha256_of;

/// Generous enough that a loaded test machine does not fail calls to a healthy Redis.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a change gets to reach the other instance's near cache.
const SETTLE: Duration = Duration::from_secs(10);

/// One database and one Redis prefix shared by the instances of a test; the prefix's keys are
/// deleted when it ends.
struct Shared {
    database: TestDatabase,
    prefix: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &self.prefix);
    }
}

impl Shared {
    async fn new(test: &str) -> Option<Self> {
        let database = TestDatabase::create(test).await?;
        // Redis must be there too (a skip, or a failure under CI=true, when it is not).
        let probe = RedisCache::new(RedisConfig {
            near_cache_capacity: 0,
            timeout: TIMEOUT,
            ..RedisConfig::new(services::redis_url())
        })
        .unwrap();
        if let Err(error) = probe.ping().await {
            return services::unavailable(test, "Redis", &files_core::ports::error_chain(&error));
        }
        Some(Self {
            database,
            prefix: format!("files-test-{}", Uuid::new_v4()),
        })
    }

    /// An instance's Redis cache: the shared prefix, a near cache of its own (its key tracking
    /// running).
    fn cache(&self) -> Arc<RedisCache> {
        let cache = RedisCache::new(RedisConfig {
            key_prefix: self.prefix.clone(),
            timeout: TIMEOUT,
            ..RedisConfig::new(services::redis_url())
        })
        .unwrap();
        cache.spawn_background();
        Arc::new(cache)
    }

    async fn store(&self) -> Arc<PostgresStore> {
        Arc::new(self.database.store().await)
    }
}

/// A store whose reads wait, after the database answered, until the test lets them go on: the
/// read's copy is then as old as the test wants it to be when it fills the cache.
struct HeldReads {
    inner: Arc<PostgresStore>,
    held: Notify,
    released: Notify,
}

#[async_trait]
impl MetadataStore for HeldReads {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.inner.insert(record).await
    }

    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        self.inner.admit(record, limits).await
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let read = self.inner.get(tenant, id).await;
        self.held.notify_one();
        self.released.notified().await;
        read
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        self.inner.latest(scope, name, state).await
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
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
        self.inner.mark_available(tenant, id, size, at, event).await
    }

    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        self.inner.mark_deleted(tenant, id, deletion).await
    }
}

fn pending(tenant: TenantId) -> FileRecord {
    FileRecord {
        upload_expires_at: Some(OffsetDateTime::now_utc() + Duration::from_secs(900)),
        ..sample_record(tenant, Owner::Device(DeviceId::from_uuid(Uuid::new_v4())), "raced.log")
    }
}

async fn complete(instance: &WriteThrough, record: &FileRecord) {
    let size = record.size.unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let done = instance
        .mark_available(record.tenant, record.id, size, now, &uploaded_event(record, size, now))
        .await
        .unwrap();
    assert!(done.is_some(), "the record was not pending");
}

/// Instance B misses, reads the pending record from the database and is held there; instance A
/// completes the file (database, then cache); then B fills the cache with its pending copy.
/// That fill must not overwrite A's entry: both instances, and the cache itself, then say
/// available.
#[tokio::test]
async fn cache_race_a_fill_older_than_another_instances_change_never_overwrites_it() {
    let test = "cache_race_a_fill_older_than_another_instances_change_never_overwrites_it";
    let Some(shared) = Shared::new(test).await else { return };
    let store = shared.store().await;
    let metrics = Arc::new(NoMetrics);
    let (cache_a, cache_b) = (shared.cache(), shared.cache());
    let a = WriteThrough::new(store.clone(), cache_a.clone(), metrics.clone());
    let held = Arc::new(HeldReads {
        inner: store.clone(),
        held: Notify::new(),
        released: Notify::new(),
    });
    let b = Arc::new(WriteThrough::new(held.clone(), cache_b.clone(), metrics));

    let record = pending(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();
    let reader = {
        let b = b.clone();
        let (tenant, id) = (record.tenant, record.id);
        tokio::spawn(async move { b.get(tenant, id).await })
    };
    held.held.notified().await;
    complete(&a, &record).await;
    held.released.notify_one();
    let read = reader.await.unwrap().unwrap();
    assert_eq!(
        read.map(|r| r.state),
        Some(FileState::Pending),
        "B read before the change"
    );

    let cached = cache_a.get_file(record.tenant, record.id).await.unwrap();
    assert_eq!(
        cached.map(|r| r.state),
        Some(FileState::Available),
        "B's older fill overwrote A's change in Redis"
    );
    // B's next read (not held this time) must see the change too.
    let fresh = WriteThrough::new(store.clone(), cache_b, Arc::new(NoMetrics));
    let settled = eventually(SETTLE, async || {
        fresh
            .get(record.tenant, record.id)
            .await
            .unwrap()
            .is_some_and(|r| r.state == FileState::Available)
    })
    .await;
    assert!(settled, "instance B still serves the pending copy");
}

/// 500 rounds of a read on instance B (a cold cache: the read fills it) racing a completion
/// on instance A: once both are done, neither instance nor Redis holds the pending copy.
#[tokio::test]
async fn cache_race_reads_racing_completions_on_two_instances_settle_on_the_change() {
    let test = "cache_race_reads_racing_completions_on_two_instances_settle_on_the_change";
    let Some(shared) = Shared::new(test).await else { return };
    let store = shared.store().await;
    let metrics = Arc::new(NoMetrics);
    let (cache_a, cache_b) = (shared.cache(), shared.cache());
    let a = Arc::new(WriteThrough::new(store.clone(), cache_a.clone(), metrics.clone()));
    let b = Arc::new(WriteThrough::new(store.clone(), cache_b.clone(), metrics));
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let mut stale = Vec::new();
    let mut records = Vec::new();
    for round in 0..500 {
        let record = pending(tenant);
        store.insert(&record).await.unwrap();
        let (tenant, id) = (record.tenant, record.id);
        let reader = {
            let b = b.clone();
            tokio::spawn(async move { b.get(tenant, id).await })
        };
        complete(&a, &record).await;
        reader.await.unwrap().unwrap();
        let cached = cache_a.get_file(tenant, id).await.unwrap().map(|r| r.state);
        if cached == Some(FileState::Pending) {
            stale.push(round);
        }
        records.push(record);
    }
    assert!(
        stale.is_empty(),
        "rounds that left the pending copy in Redis: {stale:?}"
    );
    // And through both instances, their near caches included.
    for record in records {
        for instance in [&a, &b] {
            let settled = eventually(SETTLE, async || {
                instance
                    .get(record.tenant, record.id)
                    .await
                    .unwrap()
                    .is_some_and(|r| r.state == FileState::Available)
            })
            .await;
            assert!(settled, "an instance still serves a pending copy of {}", record.id);
        }
    }
}

/// Two service instances on Postgres and Redis; a landed upload whose pending record both
/// caches hold; six `complete`s at once, three on each instance: all succeed (one completes,
/// the others find it available), and there is one event. 30 rounds.
#[tokio::test]
async fn cache_race_six_concurrent_completes_of_a_landed_upload_all_succeed() {
    let test = "cache_race_six_concurrent_completes_of_a_landed_upload_all_succeed";
    let Some(shared) = Shared::new(test).await else { return };
    let objects = Arc::new(FakeObjectStore::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let mut instances = Vec::new();
    for _ in 0..2 {
        let (service, _relay) = FilesService::builder(Ports {
            tokens: Arc::new(FakeTokenVerifier::default()),
            store: shared.store().await,
            signer: objects.clone(),
            objects: objects.clone(),
            notifier: notifier.clone(),
        })
        .cache(shared.cache())
        .build();
        instances.push(service);
    }
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let principal = Principal::Device { tenant, device };
    let scope = Scope {
        tenant,
        owner: Owner::Device(device),
    };
    let mut failures = Vec::new();
    for round in 0..30 {
        let content = format!("landed {round}");
        let ticket = instances[0]
            .request_upload(
                &principal,
                scope,
                UploadRequest {
                    name: FileName::parse("landed.log").unwrap(),
                    sha256: sha256_of(content.as_bytes()),
                    size: content.len() as u64,
                    content_type: None,
                    expires_in: None,
                },
            )
            .await
            .unwrap();
        objects.receive_put(&ticket.request, content.as_bytes()).unwrap();
        let id = ticket.record.id;
        // Both instances cache the pending record.
        for instance in &instances {
            let read = instance.get(&principal, tenant, id).await.unwrap();
            assert_eq!(read.state, FileState::Pending);
        }
        let calls: Vec<_> = (0..6)
            .map(|n| {
                let service = instances[n % 2].clone();
                let principal = principal.clone();
                tokio::spawn(async move { service.complete(&principal, tenant, id).await })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                Ok(record) => assert_eq!(record.state, FileState::Available),
                Err(error) => failures.push(format!("round {round}: {error:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "complete of a landed upload failed: {failures:?}");
    let store = shared.store().await;
    let pass = files_core::relay_once(&*store, &*notifier, 100, Duration::from_secs(30)).await;
    assert!(pass.is_ok(), "{pass:?}");
    assert_eq!(notifier.events().len(), 30, "one event per file");
}
