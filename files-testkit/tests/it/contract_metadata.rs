//! The metadata store and outbox contracts against the fake and against PostgreSQL, and what
//! only PostgreSQL can get wrong: migrations, unreadable rows and events, a file and its event
//! being one transaction, a database that is away, silent or slow, and connections lost under
//! the pool.

use std::time::Duration;

use diesel_async::SimpleAsyncConnection as _;
use files_adapters::postgres::{PostgresConfig, PostgresError, PostgresStore, run_migrations};
use files_core::{
    FileEvent, FileId, FileRecord, FileState, MetadataStore, Outbox, OutboxStats, Owner, PortError, Sha256, TenantId,
};
use files_testkit::contract::metadata::{self, deletion, now_micros, uploaded_event};
use files_testkit::contract::{housekeeping, outbox, retention, tenancy};
use files_testkit::eventually;
use files_testkit::fakes::FakeMetadataStore;
use files_testkit::postgres::TestDatabase;
use files_testkit::proxy::TcpProxy;
use tokio::time::Instant;
use uuid::Uuid;

/// Short timeouts for the tests that wait for them.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// What a loaded machine may add to a timeout before a call that should have given up counts
/// as hanging.
const SLACK: Duration = Duration::from_millis(1500);
/// How long a store may take to recover once the database is back.
const RECOVERY: Duration = Duration::from_secs(10);

fn short_timeouts(url: &str) -> PostgresConfig {
    PostgresConfig {
        connect_timeout: CONNECT_TIMEOUT,
        query_timeout: QUERY_TIMEOUT,
        ..PostgresConfig::new(url)
    }
}

fn sample(tenant: TenantId) -> FileRecord {
    FileRecord {
        id: FileId::new(),
        tenant,
        owner: Owner::Tenant,
        name: files_core::FileName::parse("sample.txt").unwrap(),
        sha256: Sha256::from_bytes([1; 32]),
        size: Some(5),
        content_type: None,
        state: FileState::Pending,
        created_at: now_micros(),
        completed_at: None,
        multipart: None,
        upload_expires_at: None,
    }
}

/// Asserts that `call` fails with [`PortError::Unavailable`] within `bound`; returns the
/// error's whole chain.
async fn assert_unavailable_within<T: std::fmt::Debug>(
    bound: Duration,
    call: impl Future<Output = Result<T, PortError>>,
) -> String {
    let started = Instant::now();
    let result = tokio::time::timeout(bound + SLACK, call)
        .await
        .unwrap_or_else(|_| panic!("the call hung: still running after {:?}", bound + SLACK));
    let elapsed = started.elapsed();
    match result {
        Err(error @ PortError::Unavailable(_)) => {
            assert!(elapsed <= bound + SLACK, "took {elapsed:?}");
            files_core::ports::error_chain(&error)
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Calls `get` until it succeeds, for at most [`RECOVERY`].
async fn until_recovered(store: &PostgresStore, record: &FileRecord) {
    // The last answer: the first success, or the error that was still there at the deadline.
    let mut last = None;
    eventually(RECOVERY, async || {
        let result = store.get(record.tenant, record.id).await;
        let ok = result.is_ok();
        last = Some(result);
        ok
    })
    .await;
    match last.expect("polled at least once") {
        Ok(found) => assert_eq!(found.as_ref(), Some(record)),
        Err(error) => panic!(
            "not recovered within {RECOVERY:?}: {}",
            files_core::ports::error_chain(&error)
        ),
    }
    // Recovered for good, not for one lucky call.
    for _ in 0..20 {
        assert_eq!(
            store.get(record.tenant, record.id).await.unwrap().as_ref(),
            Some(record)
        );
    }
}

#[tokio::test]
async fn the_fake_store_keeps_the_contract() {
    metadata::run(&FakeMetadataStore::default()).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_the_contract() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_contract").await else {
        return;
    };
    let store = db.store().await;
    store.ping().await.unwrap();
    metadata::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract_on_a_multi_thread_runtime() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_contract_on_a_multi_thread_runtime").await else {
        return;
    };
    let store = db.store().await;
    metadata::run(&store).await;
}

#[tokio::test]
async fn the_fake_store_keeps_the_janitor_housekeeping_contract() {
    housekeeping::run(&FakeMetadataStore::default()).await;
}

/// Must-show 6 of the janitor's issue: sent rows past the retention are removed, unsent ones
/// never (the contract checks the unsent one is still handed out).
#[tokio::test]
async fn the_postgres_store_keeps_the_janitor_housekeeping_contract() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_janitor_housekeeping_contract").await else {
        return;
    };
    let pruned = housekeeping::run(&db.store().await).await;
    assert_eq!(pruned, 1, "the one sent outbox row is removed");
}

#[tokio::test]
async fn the_fake_store_keeps_the_retention_contract() {
    retention::run(&FakeMetadataStore::default()).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_the_retention_contract() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_retention_contract").await else {
        return;
    };
    retention::run(&db.store().await).await;
}

#[tokio::test]
async fn the_fake_store_keeps_the_outbox_contract() {
    outbox::run(&FakeMetadataStore::default()).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_the_outbox_contract() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_outbox_contract").await else {
        return;
    };
    outbox::run(&db.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_outbox_contract_on_a_multi_thread_runtime() {
    let test = "the_postgres_store_keeps_the_outbox_contract_on_a_multi_thread_runtime";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    outbox::run(&db.store().await).await;
}

/// Plants an outbox row behind the store's back.
async fn plant_event(db: &TestDatabase, event_id: Uuid, payload: &str) {
    db.execute(&format!(
        "INSERT INTO outbox (event_id, payload, recorded_at) VALUES ('{event_id}', '{payload}'::jsonb, now())"
    ))
    .await;
}

#[tokio::test]
async fn a_file_and_its_event_change_in_one_transaction() {
    // Made available, then deleted: each change and its event commit together or not at all.
    let Some(db) = TestDatabase::create("a_file_and_its_event_change_in_one_transaction").await else {
        return;
    };
    let store = db.store().await;
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();
    let at = now_micros();
    // An event whose id the outbox already holds: the UPDATE succeeds, the INSERT is refused.
    let taken = uploaded_event(&record, 5, at);
    plant_event(&db, taken.event_id, "{}").await;
    let refused = store.mark_available(record.tenant, record.id, 5, at, &taken).await;
    assert!(matches!(refused, Err(PortError::Failed(_))), "{refused:?}");
    assert_eq!(
        store.get(record.tenant, record.id).await.unwrap(),
        Some(record.clone()),
        "the file stayed pending"
    );
    assert_eq!(store.stats().await.unwrap().depth, 1, "only the planted event");

    // With an event of its own it goes through, and both changes are there.
    let event = uploaded_event(&record, 5, at);
    let marked = store
        .mark_available(record.tenant, record.id, 5, at, &event)
        .await
        .unwrap();
    assert_eq!(marked.map(|r| r.state), Some(FileState::Available));
    assert_eq!(store.stats().await.unwrap().depth, 2);
    db.execute(&format!("DELETE FROM outbox WHERE event_id = '{}'", taken.event_id))
        .await;
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        claimed.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        [event.clone().into()]
    );
    store.mark_sent(&[event.event_id]).await.unwrap();

    // The same for a deletion of the available file and its file.deleted event.
    let taken = deletion(at);
    plant_event(&db, taken.event_id, "{}").await;
    let refused = store.mark_deleted(record.tenant, record.id, &taken).await;
    assert!(matches!(refused, Err(PortError::Failed(_))), "{refused:?}");
    let available = store.get(record.tenant, record.id).await.unwrap();
    assert_eq!(available.as_ref().map(|r| r.state), Some(FileState::Available));
    db.execute(&format!("DELETE FROM outbox WHERE event_id = '{}'", taken.event_id))
        .await;
    let asked = deletion(at);
    let deleted = store.mark_deleted(record.tenant, record.id, &asked).await.unwrap();
    assert_eq!(deleted.map(|r| r.state), Some(FileState::Deleted));
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    let expected = available.and_then(|file| asked.event_for(&file)).unwrap();
    assert_eq!(
        claimed.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        [expected.into()]
    );
}

#[tokio::test]
async fn unreadable_events_are_failures_not_panics() {
    let Some(db) = TestDatabase::create("unreadable_events_are_failures_not_panics").await else {
        return;
    };
    let store = db.store().await;
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    let other = uploaded_event(&record, 5, now_micros());
    let other_json = serde_json::to_string(&other).unwrap();
    for payload in ["{}", "[1, 2]", "\"not an event\"", other_json.as_str()] {
        // The last one is a good event, under another event's id.
        let id = Uuid::new_v4();
        plant_event(&db, id, payload).await;
        let claimed = store.claim(10, Duration::from_secs(30)).await;
        assert!(matches!(claimed, Err(PortError::Failed(_))), "{payload}: {claimed:?}");
        db.execute(&format!("DELETE FROM outbox WHERE event_id = '{id}'")).await;
    }
    assert_eq!(store.stats().await.unwrap(), OutboxStats::default());
    // A good one reads back.
    plant_event(&db, other.event_id, &other_json).await;
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        claimed.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        [FileEvent::Uploaded(other)]
    );
}

#[tokio::test]
async fn the_outbox_schema_refuses_what_an_event_cannot_be() {
    let Some(db) = TestDatabase::create("the_outbox_schema_refuses_what_an_event_cannot_be").await else {
        return;
    };
    let _store = db.store().await;
    let mut conn = db.connect().await;
    let id = Uuid::new_v4();
    for bad in [
        format!("INSERT INTO outbox (event_id, payload, recorded_at) VALUES ('{id}', NULL, now())"),
        format!("INSERT INTO outbox (event_id, payload, recorded_at) VALUES ('{id}', '{{}}', NULL)"),
        format!("INSERT INTO outbox (event_id, payload, recorded_at) VALUES ('{id}', 'not json', now())"),
    ] {
        assert!(conn.batch_execute(&bad).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn migrations_apply_all_from_empty_then_none() {
    let Some(db) = TestDatabase::create("migrations_apply_all_from_empty_then_none").await else {
        return;
    };
    let store = PostgresStore::new(db.config()).unwrap();
    // Before the schema exists, a call fails as the database refusing it, not as it being away.
    let early = store.get(TenantId::from_uuid(Uuid::new_v4()), FileId::new()).await;
    assert!(matches!(early, Err(PortError::Failed(_))), "{early:?}");

    let applied = store.migrate().await.unwrap();
    assert!(applied >= 1, "{applied}");
    assert_eq!(store.migrate().await.unwrap(), 0);
    assert_eq!(run_migrations(db.url()).await.unwrap(), 0);
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();
    assert_eq!(store.get(record.tenant, record.id).await.unwrap(), Some(record));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_together_take_turns() {
    let Some(db) = TestDatabase::create("replicas_migrating_together_take_turns").await else {
        return;
    };
    let Some(reference) = TestDatabase::create("replicas_migrating_together_take_turns").await else {
        return;
    };
    let all = run_migrations(reference.url()).await.unwrap();
    let (a, b, c) = tokio::join!(
        run_migrations(db.url()),
        run_migrations(db.url()),
        run_migrations(db.url())
    );
    let mut applied = [a.unwrap(), b.unwrap(), c.unwrap()];
    applied.sort_unstable();
    assert_eq!(applied, [0, 0, all]);
}

#[tokio::test]
async fn unreadable_rows_are_failures_not_panics() {
    let Some(db) = TestDatabase::create("unreadable_rows_are_failures_not_panics").await else {
        return;
    };
    let store = db.store().await;
    let tenant = Uuid::new_v4();
    let bad_name = Uuid::now_v7();
    let bad_type = Uuid::now_v7();
    // What the schema lets through but the domain refuses: a control character in a name, a
    // content type that is not a media type.
    db.execute(&format!(
        "INSERT INTO files (id, tenant_id, name, sha256, state, created_at, content_type) VALUES \
         ('{bad_name}', '{tenant}', E'bad\\nname', decode(repeat('00', 32), 'hex'), 'pending', now(), NULL), \
         ('{bad_type}', '{tenant}', 'fine', decode(repeat('00', 32), 'hex'), 'pending', now(), 'no media type')"
    ))
    .await;
    let tenant = TenantId::from_uuid(tenant);
    for id in [bad_name, bad_type] {
        let result = store.get(tenant, FileId::from_uuid(id)).await;
        assert!(matches!(result, Err(PortError::Failed(_))), "{result:?}");
    }
    let listed = store
        .list(
            files_core::Scope {
                tenant,
                owner: Owner::Tenant,
            },
            FileState::Pending,
            None,
            10,
        )
        .await;
    assert!(matches!(listed, Err(PortError::Failed(_))), "{listed:?}");
}

#[tokio::test]
async fn the_schema_refuses_what_a_record_cannot_be() {
    let Some(db) = TestDatabase::create("the_schema_refuses_what_a_record_cannot_be").await else {
        return;
    };
    let _store = db.store().await;
    let mut conn = db.connect().await;
    let row = |sha256: &str, size: &str, state: &str| {
        format!(
            "INSERT INTO files (id, tenant_id, name, sha256, size, state, created_at) VALUES \
             ('{}', '{}', 'x', {sha256}, {size}, '{state}', now())",
            Uuid::now_v7(),
            Uuid::new_v4()
        )
    };
    let good_digest = "decode(repeat('ab', 32), 'hex')";
    conn.batch_execute(&row(good_digest, "0", "available")).await.unwrap();
    for bad in [
        row("decode(repeat('ab', 31), 'hex')", "NULL", "pending"),
        row(good_digest, "-1", "pending"),
        row(good_digest, "NULL", "uploaded"),
    ] {
        assert!(conn.batch_execute(&bad).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_at_once() {
    // Port 1: nothing listens, connections are refused.
    let store = PostgresStore::new(short_timeouts("postgres://postgres@127.0.0.1:1/files")).unwrap();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let why = assert_unavailable_within(CONNECT_TIMEOUT, store.get(tenant, FileId::new())).await;
    assert!(why.contains("cannot connect"), "{why}");
    assert_unavailable_within(CONNECT_TIMEOUT, store.insert(&sample(tenant))).await;
    assert_unavailable_within(CONNECT_TIMEOUT, store.ping()).await;

    let started = Instant::now();
    let migrated = store.migrate().await;
    assert!(matches!(migrated, Err(PostgresError::Connect(_))), "{migrated:?}");
    assert!(started.elapsed() <= CONNECT_TIMEOUT + SLACK);
}

#[tokio::test]
async fn a_silent_server_is_unavailable_within_the_connect_timeout() {
    // Accepts connections and never says a word: the handshake never completes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = PostgresStore::new(short_timeouts(&format!("postgres://postgres@{address}/files"))).unwrap();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let why = assert_unavailable_within(CONNECT_TIMEOUT, store.get(tenant, FileId::new())).await;
    assert!(why.contains("no database connection"), "{why}");
    // Again: the connections stuck in the handshake do not make later calls wait longer.
    assert_unavailable_within(CONNECT_TIMEOUT, store.ping()).await;

    let started = Instant::now();
    let migrated = store.migrate().await;
    assert!(matches!(migrated, Err(PostgresError::Connect(_))), "{migrated:?}");
    assert!(started.elapsed() <= CONNECT_TIMEOUT + SLACK);
    silent.abort();
}

#[tokio::test]
async fn a_query_that_cannot_finish_is_unavailable_within_the_query_timeout_and_the_pool_recovers() {
    let test = "a_query_that_cannot_finish_is_unavailable_within_the_query_timeout_and_the_pool_recovers";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    db.store().await; // migrated
    let store = PostgresStore::new(short_timeouts(db.url())).unwrap();
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();

    // Another session holds the table: every query of the store waits on it.
    let mut holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE files IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let why = assert_unavailable_within(QUERY_TIMEOUT, store.get(record.tenant, record.id)).await;
    assert!(started.elapsed() >= QUERY_TIMEOUT, "gave up before the timeout");
    assert!(why.contains("no answer within"), "{why}");
    let at = now_micros();
    assert_unavailable_within(
        QUERY_TIMEOUT,
        store.mark_available(record.tenant, record.id, 5, at, &uploaded_event(&record, 5, at)),
    )
    .await;

    holder.batch_execute("COMMIT").await.unwrap();
    // The connections left waiting were thrown away, not handed out again.
    assert_eq!(
        store.get(record.tenant, record.id).await.unwrap().as_ref(),
        Some(&record)
    );
    let at = now_micros();
    assert!(
        store
            .mark_available(record.tenant, record.id, 5, at, &uploaded_event(&record, 5, at))
            .await
            .unwrap()
            .is_some(),
        "the abandoned mark_available did not complete on the server"
    );
    assert_eq!(
        store.stats().await.unwrap().depth,
        1,
        "the abandoned mark_available recorded no event"
    );
}

#[tokio::test]
async fn connections_ended_by_the_server_are_replaced_without_a_restart() {
    let Some(db) = TestDatabase::create("connections_ended_by_the_server_are_replaced_without_a_restart").await else {
        return;
    };
    let store = db.store().await;
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();
    // Several connections in the pool, all of them about to be ended.
    let tenant = record.tenant;
    let gets = (0..5).map(|_| store.get(tenant, record.id));
    for found in futures::future::join_all(gets).await {
        assert!(found.unwrap().is_some());
    }

    db.terminate_connections().await;
    until_recovered(&store, &record).await;
}

#[tokio::test]
async fn a_database_that_goes_away_is_unavailable_and_the_store_recovers_when_it_is_back() {
    let test = "a_database_that_goes_away_is_unavailable_and_the_store_recovers_when_it_is_back";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    db.store().await; // migrated
    let (proxy, url) = TcpProxy::for_url(db.url()).await.unwrap();
    let store = PostgresStore::new(short_timeouts(&url)).unwrap();
    let record = sample(TenantId::from_uuid(Uuid::new_v4()));
    store.insert(&record).await.unwrap();

    assert!(
        proxy.cut_and_wait(std::time::Duration::from_secs(10)).await,
        "the proxy did not close its connections in time"
    );
    assert_unavailable_within(CONNECT_TIMEOUT, store.get(record.tenant, record.id)).await;
    assert_unavailable_within(CONNECT_TIMEOUT, store.ping()).await;

    proxy.restore();
    until_recovered(&store, &record).await;
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_store_keeps_the_tenancy_contract() {
    tenancy::run(std::sync::Arc::new(FakeMetadataStore::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_tenancy_contract() {
    let Some(db) = TestDatabase::create("the_postgres_store_keeps_the_tenancy_contract").await else {
        return;
    };
    tenancy::run(std::sync::Arc::new(db.store().await)).await;
}

/// The counts are appended by the records' trigger in the same transaction and folded into the
/// counters by `settle`; should the counters ever disagree with the records (a manual edit of
/// `files`, say), `files_recount_usage` rebuilds them. The test folds, breaks the counters,
/// checks the break was seen, and rebuilds.
#[tokio::test]
async fn the_postgres_usage_counts_are_rebuilt_from_the_records() {
    use files_core::{DeviceId, Limits, UsageStore};
    let Some(db) = TestDatabase::create("the_postgres_usage_counts_are_rebuilt_from_the_records").await else {
        return;
    };
    let store = db.store().await;
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let mut ids = Vec::new();
    for (i, size) in [10_u64, 20, 30].into_iter().enumerate() {
        let record = FileRecord {
            id: FileId::new(),
            tenant,
            owner: Owner::Device(device),
            name: files_core::FileName::parse(format!("f{i}.bin")).unwrap(),
            sha256: Sha256::from_bytes([1; 32]),
            size: Some(size),
            content_type: None,
            state: FileState::Pending,
            created_at: now_micros(),
            completed_at: None,
            multipart: None,
            upload_expires_at: None,
        };
        store.admit(&record, &Limits::NONE).await.unwrap();
        ids.push(record);
    }
    let now = now_micros();
    store
        .mark_available(tenant, ids[0].id, 10, now, &uploaded_event(&ids[0], 10, now))
        .await
        .unwrap();
    let today = now.date();
    let tenant_usage = store.tenant_usage(tenant).await.unwrap();
    let device_usage = store.device_usage(tenant, device, today).await.unwrap();
    assert_eq!(
        (
            tenant_usage.files,
            tenant_usage.bytes,
            tenant_usage.pending_uploads,
            tenant_usage.pending_bytes
        ),
        (1, 10, 2, 50)
    );
    assert!(store.settle().await.unwrap() >= 4, "the four changes folded");
    assert_eq!(
        store.tenant_usage(tenant).await.unwrap(),
        tenant_usage,
        "the same folded"
    );
    assert_eq!(
        store.device_usage(tenant, device, today).await.unwrap(),
        device_usage,
        "the device's the same folded"
    );

    db.execute("UPDATE tenant_usage SET bytes = 999, pending_uploads = 0; DELETE FROM device_usage; UPDATE device_daily SET upload_urls = 0")
        .await;
    assert_ne!(
        store.tenant_usage(tenant).await.unwrap(),
        tenant_usage,
        "the counts were broken"
    );
    db.execute(&format!("SELECT files_recount_usage('{tenant}')")).await;
    assert_eq!(store.tenant_usage(tenant).await.unwrap(), tenant_usage, "rebuilt");
    assert_eq!(
        store.device_usage(tenant, device, today).await.unwrap(),
        device_usage,
        "rebuilt, the device's day too"
    );
}
