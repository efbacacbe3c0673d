//! New records written together (`postgres/batch.rs`), against PostgreSQL: the inserts (and
//! the admissions under quotas) that arrive while another is being written go as one
//! statement, are counted exactly (by the per-statement usage trigger, or in place by
//! `files_admit`), and a refused record fails only its own call.
//!
//! Each test makes the batch certain rather than likely: the store has one connection (so one
//! writer), a lock on `files` holds the first insert in the database, and the others are
//! queued behind it before the lock is released.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection as _};
use files_adapters::postgres::{PostgresConfig, PostgresStore};
use files_core::{
    Admission, Dependency, DeviceId, FileName, FileRecord, FileState, Limits, MetadataStore, Metrics, Owner, PortError,
    QuotaRefusal, Scope, TenantId, UsageStore,
};
use files_testkit::contract::metadata::{self, fresh_tenant, now_micros};
use files_testkit::eventually;
use files_testkit::postgres::TestDatabase;
use uuid::Uuid;

/// The store's calls to the database, in order: operation and whether it succeeded.
#[derive(Debug, Default)]
struct Calls(Mutex<Vec<(&'static str, bool)>>);

impl Metrics for Calls {
    fn dependency_call(&self, dependency: Dependency, operation: &'static str, ok: bool, _elapsed: Duration) {
        if dependency == Dependency::Database {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((operation, ok));
        }
    }
}

impl Calls {
    fn of(&self, operation: &str) -> Vec<bool> {
        let calls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .iter()
            .filter(|(op, _)| *op == operation)
            .map(|(_, ok)| *ok)
            .collect()
    }
}

/// A store on `db` with one connection, counting its calls.
async fn one_writer(db: &TestDatabase) -> (PostgresStore, Arc<Calls>) {
    db.store().await; // migrated
    let calls = Arc::new(Calls::default());
    let config = PostgresConfig {
        pool_size: 1,
        ..db.config()
    };
    let store = PostgresStore::new(config).unwrap().with_metrics(calls.clone());
    (store, calls)
}

/// A pending upload of `size` bytes under a new name.
fn record(tenant: TenantId, owner: Owner, size: u64) -> FileRecord {
    let name = format!("logs/{}.txt", Uuid::new_v4().simple());
    FileRecord {
        size: Some(size),
        upload_expires_at: Some(now_micros() + time::Duration::minutes(15)),
        ..metadata::record(Scope { tenant, owner }, &name, FileState::Pending)
    }
}

/// Runs `first` while `files` is locked, queues `rest` behind it, then releases the lock:
/// `first` is written alone, `rest` in one batch. Returns `rest`'s results, in order.
async fn behind_a_lock<T, F>(
    db: &TestDatabase,
    first: impl Future<Output = Result<T, PortError>> + Send + 'static,
    rest: Vec<F>,
) -> Vec<Result<T, PortError>>
where
    T: Send + std::fmt::Debug + 'static,
    F: Future<Output = Result<T, PortError>>,
{
    let mut lock: AsyncPgConnection = db.connect().await;
    lock.batch_execute("BEGIN; LOCK TABLE files IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let writer = tokio::spawn(first);
    assert!(
        eventually(Duration::from_secs(10), async || db
            .count(
                "pg_locks WHERE relation = 'files'::regclass AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            .await
            == 1)
        .await,
        "the first write waits for the lock"
    );
    let mut all = Box::pin(futures::future::join_all(rest));
    // One poll queues every record (each call queues its row before it first waits).
    std::future::poll_fn(|cx| {
        assert!(all.as_mut().poll(cx).is_pending(), "the calls wait for the writer");
        Poll::Ready(())
    })
    .await;
    lock.batch_execute("COMMIT").await.unwrap();
    writer.await.unwrap().unwrap();
    all.await
}

/// `behind_a_lock` with inserts.
async fn inserts_behind_a_lock(
    db: &TestDatabase,
    store: &Arc<PostgresStore>,
    first: FileRecord,
    rest: &[FileRecord],
) -> Vec<Result<(), PortError>> {
    let writer = store.clone();
    let first = async move { writer.insert(&first).await };
    behind_a_lock(db, first, rest.iter().map(|r| store.insert(r)).collect()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_queued_together_are_one_statement_and_counted_exactly() {
    let Some(db) = TestDatabase::create("inserts_queued_together_are_one_statement_and_counted_exactly").await else {
        return;
    };
    let (store, calls) = one_writer(&db).await;
    let store = Arc::new(store);
    let tenant = fresh_tenant();
    let devices = [DeviceId::from_uuid(Uuid::new_v4()), DeviceId::from_uuid(Uuid::new_v4())];
    let rest: Vec<FileRecord> = (0..60_u64)
        .map(|i| {
            let owner = match i % 3 {
                0 => Owner::Tenant,
                n => Owner::Device(devices[usize::try_from(n).unwrap() - 1]),
            };
            record(tenant, owner, 100 + i)
        })
        .collect();
    let first = record(tenant, Owner::Device(devices[0]), 1);
    let results = inserts_behind_a_lock(&db, &store, first.clone(), &rest).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    assert_eq!(calls.of("insert_batch"), [true], "the 60 queued records: one statement");
    assert_eq!(calls.of("insert"), [true], "the first, alone");
    for r in rest.iter().chain([&first]) {
        assert_eq!(
            store.get(tenant, r.id).await.unwrap().as_ref(),
            Some(r),
            "written as given"
        );
    }
    // Counted per statement: the batch appended one delta per shard and device (one day),
    // not one per record; the first record, alone, one.
    let groups = db
        .count(&format!(
            "(SELECT DISTINCT files_usage_shard(device_id, id), device_id FROM files WHERE id <> '{}') g",
            first.id
        ))
        .await;
    assert!(groups < 30, "{groups} groups of 60 records");
    assert_eq!(db.count("usage_delta").await, groups + 1);

    let declared = |owner: Option<DeviceId>| -> (u64, u64) {
        let mine = rest
            .iter()
            .chain([&first])
            .filter(|r| owner.is_none_or(|d| r.owner == Owner::Device(d)));
        mine.fold((0, 0), |(n, bytes), r| (n + 1, bytes + r.size.unwrap()))
    };
    let usage = store.tenant_usage(tenant).await.unwrap();
    assert_eq!((usage.pending_uploads, usage.pending_bytes), declared(None));
    assert_eq!((usage.files, usage.bytes), (0, 0));
    let today = now_micros().date();
    for device in devices {
        let (n, bytes) = declared(Some(device));
        let usage = store.device_usage(tenant, device, today).await.unwrap();
        assert_eq!(usage.pending_uploads, n, "{device}");
        assert_eq!(
            (usage.today.upload_urls, usage.today.upload_bytes),
            (n, bytes),
            "{device}"
        );
    }
    // And the same as counting the records afresh.
    store.settle().await.unwrap();
    let counted = (
        store.tenant_usage(tenant).await.unwrap(),
        store.device_usage(tenant, devices[1], today).await.unwrap(),
    );
    db.execute(&format!("SELECT files_recount_usage('{tenant}')")).await;
    let recounted = (
        store.tenant_usage(tenant).await.unwrap(),
        store.device_usage(tenant, devices[1], today).await.unwrap(),
    );
    assert_eq!(counted, recounted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_fails_only_its_own_call() {
    let Some(db) = TestDatabase::create("a_refused_record_fails_only_its_own_call").await else {
        return;
    };
    let (store, calls) = one_writer(&db).await;
    let store = Arc::new(store);
    let tenant = fresh_tenant();
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let existing = record(tenant, Owner::Device(device), 5);
    store.insert(&existing).await.unwrap();

    let mut rest: Vec<FileRecord> = (0..20).map(|_| record(tenant, Owner::Device(device), 7)).collect();
    let duplicate = FileRecord {
        name: FileName::parse("again.txt").unwrap(),
        ..existing.clone()
    };
    rest.insert(10, duplicate);
    let first = record(tenant, Owner::Device(device), 9);
    let results = inserts_behind_a_lock(&db, &store, first, &rest).await;

    for (i, result) in results.iter().enumerate() {
        if i == 10 {
            assert!(
                matches!(result, Err(PortError::Failed(_))),
                "the duplicate id: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "record {i}: {result:?}");
            assert!(
                store.get(tenant, rest[i].id).await.unwrap().is_some(),
                "record {i} written"
            );
        }
    }
    assert_eq!(calls.of("insert_batch"), [false], "the batch was refused as a whole");
    assert_eq!(
        calls.of("insert").iter().filter(|ok| !**ok).count(),
        1,
        "then each record was written alone, and only the duplicate refused"
    );
    assert_eq!(
        store.get(tenant, existing.id).await.unwrap().map(|r| r.name),
        Some(existing.name),
        "the existing record is untouched"
    );
    let usage = store.device_usage(tenant, device, now_micros().date()).await.unwrap();
    assert_eq!(
        usage.pending_uploads, 22,
        "the existing, the first and the 20 others, once each"
    );
}

/// Quotas that never refuse but the device's pending uploads, `pending`.
fn limits(pending: u64) -> Limits {
    Limits {
        tenant_bytes: Some(1 << 40),
        tenant_files: Some(1 << 30),
        device_pending_uploads: Some(pending),
        device_bytes_per_day: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_queued_together_are_one_statement_and_counted_once() {
    let Some(db) = TestDatabase::create("admissions_queued_together_are_one_statement_and_counted_once").await else {
        return;
    };
    let (store, calls) = one_writer(&db).await;
    let store = Arc::new(store);
    let tenant = fresh_tenant();
    let devices = [DeviceId::from_uuid(Uuid::new_v4()), DeviceId::from_uuid(Uuid::new_v4())];
    let rest: Vec<FileRecord> = (0..30_u64)
        .map(|i| record(tenant, Owner::Device(devices[usize::try_from(i % 2).unwrap()]), 10 + i))
        .collect();
    let first = record(tenant, Owner::Device(devices[0]), 1);
    let writer = store.clone();
    let first_call = async move { writer.admit(&first, &limits(100)).await };
    let quotas = limits(100);
    let results = behind_a_lock(&db, first_call, rest.iter().map(|r| store.admit(r, &quotas)).collect()).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Admission::Admitted))),
        "{results:?}"
    );
    assert_eq!(
        calls.of("admit_batch"),
        [true],
        "the 30 queued admissions: one statement"
    );
    assert_eq!(calls.of("admit"), [true], "the first, alone");

    // Counted in place by `files_admit`, each once: no delta for the statement trigger to add.
    assert_eq!(db.count("usage_delta").await, 0);
    let usage = store.tenant_usage(tenant).await.unwrap();
    let bytes: u64 = rest.iter().map(|r| r.size.unwrap()).sum::<u64>() + 1;
    assert_eq!((usage.pending_uploads, usage.pending_bytes), (31, bytes));
    for (device, n) in [(devices[0], 16), (devices[1], 15)] {
        let usage = store.device_usage(tenant, device, now_micros().date()).await.unwrap();
        assert_eq!((usage.pending_uploads, usage.today.upload_urls), (n, n), "{device}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_a_quota_is_admitted_one_at_a_time_up_to_it() {
    let Some(db) = TestDatabase::create("a_batch_over_a_quota_is_admitted_one_at_a_time_up_to_it").await else {
        return;
    };
    let (store, calls) = one_writer(&db).await;
    let store = Arc::new(store);
    let tenant = fresh_tenant();
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let rest: Vec<FileRecord> = (0..12).map(|_| record(tenant, Owner::Device(device), 5)).collect();
    let first = record(tenant, Owner::Device(device), 5);
    let writer = store.clone();
    let first_call = async move { writer.admit(&first, &limits(10)).await };
    let quotas = limits(10);
    let results = behind_a_lock(&db, first_call, rest.iter().map(|r| store.admit(r, &quotas)).collect()).await;

    assert_eq!(
        calls.of("admit_batch"),
        [false],
        "the batch went past the quota: refused whole"
    );
    let admitted = results.iter().filter(|r| matches!(r, Ok(Admission::Admitted))).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Ok(Admission::Refused(QuotaRefusal::DevicePendingUploads))))
        .count();
    assert_eq!(
        (admitted, refused),
        (9, 3),
        "then one at a time, up to the quota: {results:?}"
    );
    let usage = store.device_usage(tenant, device, now_micros().date()).await.unwrap();
    assert_eq!(usage.pending_uploads, 10, "the quota, exactly");
    assert_eq!(db.count("files").await, 10, "no refused record written");
}
