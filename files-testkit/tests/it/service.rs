//! The use cases of `FilesService` over the fakes: completion, ingest, versions, paging,
//! write-through coherence and dependency failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use files_core::{
    CacheOperation, CacheOutcome, CompleteError, Dependency, DownloadError, DownloadTarget, FileId, FileName,
    FileRecord, FileState, IngestOutcome, LookupError, MetadataStore, Mismatch, ObjectCreated, ObjectInfo,
    ServiceConfig, Sha256, SkipReason, UploadError, UploadRequest,
};
use files_testkit::sha256_of;

use crate::world::World;

/// Counts the cache calls the service reports: failures, hits and flushes.
#[derive(Default)]
struct CountingObserver {
    errors: AtomicUsize,
    hits: AtomicUsize,
    clears: AtomicUsize,
}

impl files_core::Metrics for CountingObserver {
    fn cache_call(&self, operation: CacheOperation, outcome: CacheOutcome, _: Duration) {
        match outcome {
            CacheOutcome::Error => self.errors.fetch_add(1, Ordering::SeqCst),
            CacheOutcome::Hit => self.hits.fetch_add(1, Ordering::SeqCst),
            CacheOutcome::Written if operation == CacheOperation::Clear => self.clears.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
}

/// The world of these tests: a cache in front of the store, uploads of at most 1000 bytes, and
/// the cache calls counted.
fn world() -> World<CountingObserver> {
    World::builder()
        .config(ServiceConfig {
            max_upload_size: 1000,
            ..ServiceConfig::default()
        })
        .cached()
        .metrics(CountingObserver::default())
        .build()
}

#[tokio::test]
async fn complete_checks_the_store_and_publishes_exactly_once() {
    let w = world();
    let record = w.upload("log.txt", b"hello").await.record;
    assert_eq!(record.state, FileState::Pending);

    let early = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(matches!(early, Err(CompleteError::NotUploaded)), "{early:?}");

    w.objects.put(
        &record.object_key(),
        ObjectInfo {
            size: 5,
            sha256: Some(sha256_of(b"other")),
            sha256_of_parts: None,
        },
    );
    let wrong = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(wrong, Err(CompleteError::Mismatch(Mismatch::Sha256))),
        "{wrong:?}"
    );
    w.objects.put(
        &record.object_key(),
        ObjectInfo {
            size: 4,
            sha256: Some(sha256_of(b"hello")),
            sha256_of_parts: None,
        },
    );
    let short = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(
            short,
            Err(CompleteError::Mismatch(Mismatch::Size { declared: 5, stored: 4 }))
        ),
        "{short:?}"
    );
    w.objects.put(
        &record.object_key(),
        ObjectInfo {
            size: 5,
            sha256: None,
            sha256_of_parts: None,
        },
    );
    let unverified = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(unverified, Err(CompleteError::Mismatch(Mismatch::Sha256))),
        "{unverified:?}"
    );
    assert!(w.events().await.is_empty());

    w.store_object(&record, b"hello");
    for _ in 0..3 {
        let done = w.service.complete(&w.principal, w.tenant, record.id).await;
        assert!(
            matches!(&done, Ok(r) if r.state == FileState::Available && r.size == Some(5)),
            "{done:?}"
        );
    }
    let duplicate = w.service.ingest(&created(&w, &record, Some(5))).await;
    assert!(
        matches!(duplicate, Ok(IngestOutcome::AlreadyAvailable(_))),
        "{duplicate:?}"
    );

    let events = w.events().await;
    assert_eq!(events.len(), 1, "exactly one event");
    let event = &events[0];
    assert_eq!(event.file.file_id, record.id);
    assert_eq!(event.file.size, 5);
    assert_eq!(event.file.object_key, record.object_key().to_string());
    assert_eq!(event.routing_key(), format!("file.uploaded.{}.{}", w.tenant, w.device));
}

fn created(w: &World<CountingObserver>, record: &FileRecord, size: Option<u64>) -> ObjectCreated {
    ObjectCreated {
        bucket: w.service.bucket().to_owned(),
        key: record.object_key().to_string(),
        size,
    }
}

#[tokio::test]
async fn ingest_skips_what_is_not_a_pending_file_of_ours() {
    let w = world();
    let record = w.upload("a.bin", b"abc").await.record;
    w.store_object(&record, b"abc");
    let cases = [
        (
            ObjectCreated {
                bucket: "elsewhere".into(),
                ..created(&w, &record, Some(3))
            },
            SkipReason::ForeignBucket,
        ),
        (
            ObjectCreated {
                key: "not/a/key".into(),
                ..created(&w, &record, Some(3))
            },
            SkipReason::ForeignKey,
        ),
        (
            ObjectCreated {
                key: format!("{}/{}/{}", w.tenant, w.device, FileId::new()),
                ..created(&w, &record, Some(3))
            },
            SkipReason::UnknownFile,
        ),
        (created(&w, &record, Some(4)), SkipReason::Mismatch),
    ];
    for (notification, reason) in cases {
        assert_eq!(
            w.service.ingest(&notification).await.ok(),
            Some(IngestOutcome::Skipped(reason))
        );
    }
    assert!(w.events().await.is_empty());
    assert_eq!(
        w.service.ingest(&created(&w, &record, Some(3))).await.ok(),
        Some(IngestOutcome::Completed(record.id))
    );
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn versions_latest_by_name_and_pending_not_downloadable() {
    let w = world();
    let first = w.upload_and_complete("fw.bin", b"v1").await;
    let second = w.upload_and_complete("fw.bin", b"v2").await;
    assert_ne!(first.id, second.id);
    let by_name = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(first.name.clone()))
        .await;
    assert_eq!(by_name.map(|t| t.record.id).ok(), Some(second.id));
    let by_id = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(first.id))
        .await;
    assert_eq!(by_id.map(|t| t.record.id).ok(), Some(first.id));

    let pending = w.upload("fw.bin", b"v3").await.record;
    let by_id = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(pending.id))
        .await;
    assert!(matches!(by_id, Err(DownloadError::NotCompleted)), "{by_id:?}");
    let by_name = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(first.name.clone()))
        .await;
    assert_eq!(
        by_name.map(|t| t.record.id).ok(),
        Some(second.id),
        "a pending version does not hide the latest"
    );

    let only_pending = w.upload("new.bin", b"x").await.record;
    let by_name = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(only_pending.name))
        .await;
    assert!(matches!(by_name, Err(DownloadError::NotCompleted)), "{by_name:?}");
    let missing = w
        .service
        .request_download(
            &w.principal,
            w.scope,
            DownloadTarget::Name(FileName::parse("nope").unwrap_or_else(|e| panic!("{e}"))),
        )
        .await;
    assert!(matches!(missing, Err(DownloadError::NotFound)), "{missing:?}");
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let w = world();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            w.upload_and_complete(&format!("f{n}"), format!("c{n}").as_bytes())
                .await
                .id,
        );
    }
    w.upload("pending", b"p").await; // not listed
    ids.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = match w.service.list(&w.principal, w.scope, before, 2).await {
            Ok(page) => page,
            Err(e) => panic!("{e}"),
        };
        assert!(page.files.len() <= 2);
        seen.extend(page.files.iter().map(|r| r.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn write_through_keeps_the_cache_equal_to_the_store() {
    let w = world();
    let old = w.upload_and_complete("cfg.json", b"{}").await;
    // Read through the cache so that it holds the name's latest version.
    let name = old.name.clone();
    let latest = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(name.clone()))
        .await;
    assert_eq!(latest.map(|t| t.record.id).ok(), Some(old.id));

    let new = w.upload_and_complete("cfg.json", b"{\"a\":1}").await;
    assert_cache_matches_store(&w, new.id).await;
    let latest = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(name.clone()))
        .await;
    assert_eq!(
        latest.map(|t| t.record.id).ok(),
        Some(new.id),
        "a new version replaces the cached latest"
    );

    let deleted = w.service.delete(&w.principal, w.tenant, new.id).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    assert_cache_matches_store(&w, new.id).await;
    assert!(!w.objects.contains(&new.object_key()));
    let latest = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(name))
        .await;
    assert_eq!(
        latest.map(|t| t.record.id).ok(),
        Some(old.id),
        "after a delete the older version is the latest"
    );
    let gone = w.service.get(&w.principal, w.tenant, new.id).await;
    assert!(matches!(gone, Err(LookupError::NotFound)), "{gone:?}");
    assert!(
        w.metrics.hits.load(Ordering::SeqCst) > 0,
        "reads went through the cache"
    );
}

#[tokio::test]
async fn a_failing_cache_fails_no_request_and_is_counted() {
    let w = world();
    w.cache().switch.fail();
    let record = w.upload_and_complete("a", b"a").await;
    let got = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(got.is_ok(), "{got:?}");
    let by_name = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(record.name.clone()))
        .await;
    assert!(by_name.is_ok(), "{by_name:?}");
    assert!(w.metrics.errors.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn a_file_completed_while_the_cache_was_down_reads_available_once_it_is_back() {
    let w = world();
    let record = w.upload("report.txt", b"report").await.record;
    // The cache holds the pending record.
    let pending = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(&pending, Ok(r) if r.state == FileState::Pending),
        "{pending:?}"
    );
    w.store_object(&record, b"report");

    w.cache().switch.fail();
    let done = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(matches!(&done, Ok(r) if r.state == FileState::Available), "{done:?}");
    w.cache().switch.recover();

    let got = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(&got, Ok(r) if r.state == FileState::Available),
        "the cache still holds the pending record: {got:?}"
    );
    let again = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(&again, Ok(r) if r.state == FileState::Available),
        "a second complete: {again:?}"
    );
    let by_name = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(record.name.clone()))
        .await;
    assert_eq!(by_name.map(|t| t.record.id).ok(), Some(record.id));
    assert_cache_matches_store(&w, record.id).await;
    assert_eq!(w.events().await.len(), 1, "exactly one event");
    assert_eq!(
        w.metrics.clears.load(Ordering::SeqCst),
        0,
        "a few entries need no flush"
    );
}

#[tokio::test]
async fn a_version_deleted_while_the_cache_was_down_is_not_served_once_it_is_back() {
    let w = world();
    let old = w.upload_and_complete("fw.bin", b"v1").await;
    let new = w.upload_and_complete("fw.bin", b"v2").await;
    // The cache holds the new version as the name's latest, and its record.
    let latest = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(new.name.clone()))
        .await;
    assert_eq!(latest.map(|t| t.record.id).ok(), Some(new.id));
    let by_id = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(new.id))
        .await;
    assert_eq!(by_id.map(|t| t.record.id).ok(), Some(new.id));

    w.cache().switch.fail();
    let deleted = w.service.delete(&w.principal, w.tenant, new.id).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    w.cache().switch.recover();

    let latest = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Name(new.name.clone()))
        .await;
    assert_eq!(
        latest.map(|t| t.record.id).ok(),
        Some(old.id),
        "the deleted version is still served by name"
    );
    let by_id = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(new.id))
        .await;
    assert!(matches!(by_id, Err(DownloadError::NotFound)), "{by_id:?}");
    let gone = w.service.get(&w.principal, w.tenant, new.id).await;
    assert!(matches!(gone, Err(LookupError::NotFound)), "{gone:?}");
    assert_cache_matches_store(&w, new.id).await;
}

#[tokio::test]
async fn a_new_record_is_cached_by_its_first_read_not_when_it_is_created() {
    let w = world();
    let record = w.upload("log.txt", b"log").await.record;
    let cached = files_core::Cache::get_file(w.cache(), w.tenant, record.id).await;
    assert!(
        matches!(cached, Ok(None)),
        "upload-url wrote the new record to the cache: {cached:?}"
    );
    let read = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(read.is_ok(), "{read:?}");
    assert_cache_matches_store(&w, record.id).await;
    w.store_object(&record, b"log");
    let done = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(matches!(&done, Ok(r) if r.state == FileState::Available), "{done:?}");
    assert_cache_matches_store(&w, record.id).await;
}

#[tokio::test]
async fn past_its_bound_what_the_cache_missed_is_flushed_whole() {
    let w = world();
    let record = w.upload("late.bin", b"late").await.record;
    let pending = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(pending.is_ok(), "{pending:?}");
    w.store_object(&record, b"late");
    // An entry the service never wrote: only a flush of the whole cache removes it.
    let planted = FileRecord {
        id: FileId::new(),
        ..record.clone()
    };
    assert!(files_core::Cache::put_file(w.cache(), &planted).await.is_ok());
    // Files to delete while the cache fails: each leaves two entries (the record and its
    // name's latest version) the service could not invalidate.
    let mut doomed = Vec::new();
    for n in 0..=files_core::WriteThrough::DEFAULT_MAX_DIRTY / 2 {
        doomed.push(w.upload(&format!("f{n}"), b"x").await.record);
    }

    w.cache().switch.fail();
    let done = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(done.is_ok(), "{done:?}");
    // More entries than the service remembers.
    for file in &doomed {
        let deleted = w.service.delete(&w.principal, w.tenant, file.id).await;
        assert!(deleted.is_ok(), "{deleted:?}");
    }
    w.cache().switch.recover();
    assert_eq!(w.metrics.clears.load(Ordering::SeqCst), 0);

    let got = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(&got, Ok(r) if r.state == FileState::Available),
        "the cache still holds the pending record: {got:?}"
    );
    assert_eq!(w.metrics.clears.load(Ordering::SeqCst), 1, "the cache was flushed once");
    let cached = files_core::Cache::get_file(w.cache(), w.tenant, planted.id).await;
    assert!(matches!(cached, Ok(None)), "{cached:?}");
    // Trusted again: the next read is a hit, and nothing is flushed again.
    let hits = w.metrics.hits.load(Ordering::SeqCst);
    let got = w.service.get(&w.principal, w.tenant, record.id).await;
    assert!(matches!(&got, Ok(r) if r.state == FileState::Available), "{got:?}");
    assert_eq!(w.metrics.hits.load(Ordering::SeqCst), hits + 1);
    assert_eq!(w.metrics.clears.load(Ordering::SeqCst), 1);
    assert_cache_matches_store(&w, record.id).await;
}

#[tokio::test]
async fn dependency_failures_name_the_dependency() {
    let w = world();
    let record = w.upload("a", b"a").await.record;
    w.store_object(&record, b"a");
    w.objects.switch.fail();
    let complete = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(&complete, Err(CompleteError::Dependency(u)) if u.dependency == Dependency::ObjectStore),
        "{complete:?}"
    );
    // Signing needs no call to the store.
    let signed = w
        .service
        .request_upload(
            &w.principal,
            w.scope,
            UploadRequest {
                name: FileName::parse("b").unwrap_or_else(|e| panic!("{e}")),
                sha256: sha256_of(b"b"),
                size: 1,
                content_type: None,
                expires_in: None,
            },
        )
        .await;
    assert!(signed.is_ok(), "{signed:?}");
    w.objects.switch.recover();

    w.store.switch.fail();
    w.cache().switch.fail();
    let upload = w
        .service
        .request_upload(
            &w.principal,
            w.scope,
            UploadRequest {
                name: FileName::parse("c").unwrap_or_else(|e| panic!("{e}")),
                sha256: sha256_of(b"c"),
                size: 1,
                content_type: None,
                expires_in: None,
            },
        )
        .await;
    assert!(
        matches!(&upload, Err(UploadError::Dependency(u)) if u.dependency == Dependency::Database),
        "{upload:?}"
    );
}

#[tokio::test]
async fn size_over_the_limit_is_refused() {
    let w = world();
    let request = UploadRequest {
        name: FileName::parse("big").unwrap_or_else(|e| panic!("{e}")),
        sha256: sha256_of(b""),
        size: 1001,
        content_type: None,
        expires_in: None,
    };
    let result = w.service.request_upload(&w.principal, w.scope, request).await;
    assert!(
        matches!(result, Err(UploadError::TooLarge { size: 1001, max: 1000 })),
        "{result:?}"
    );
}

async fn assert_cache_matches_store(w: &World<CountingObserver>, id: FileId) {
    let cached = files_core::Cache::get_file(w.cache(), w.tenant, id)
        .await
        .ok()
        .flatten();
    let stored = w.store.get(w.tenant, id).await.ok().flatten();
    assert!(cached.is_some(), "{id} is cached");
    assert_eq!(cached, stored, "cache and store disagree on {id}");
}

#[tokio::test]
async fn the_relay_publishes_in_order_and_retries_after_a_broker_failure() {
    let w = world();
    let first = w.upload_and_complete("1", b"1").await;
    w.notifier.switch.fail();
    let pass = files_core::relay_once(&*w.store, &*w.notifier, 100, Duration::from_secs(30)).await;
    assert!(
        matches!(&pass, Ok(p) if p.claimed == 1 && p.published == 0 && p.publish_error.is_some()),
        "{pass:?}"
    );
    let second = w.upload_and_complete("2", b"2").await;
    w.notifier.switch.recover();
    // The failed event was released, not left leased: the next pass publishes both, in order.
    let events = w.events().await;
    let ids: Vec<FileId> = events.iter().map(|e| e.file.file_id).collect();
    assert_eq!(ids, vec![first.id, second.id]);
    assert!(w.events().await.len() == 2, "nothing is published twice");
}

#[tokio::test]
async fn an_object_of_another_size_than_declared_is_refused_and_deleted() {
    // Neither `complete` nor the ingest may make such an object available, and it must not stay
    // in the store.
    let w = world();
    let record = w.upload("sized", b"hello").await.record;
    w.objects.put(
        &record.object_key(),
        ObjectInfo {
            size: 5 * 1024 * 1024,
            sha256: Some(sha256_of(b"hello")),
            sha256_of_parts: None,
        },
    );
    let completed = w.service.complete(&w.principal, w.tenant, record.id).await;
    assert!(
        matches!(
            completed,
            Err(CompleteError::Mismatch(Mismatch::Size { declared: 5, .. }))
        ),
        "{completed:?}"
    );
    assert!(!w.objects.contains(&record.object_key()), "the object was kept");

    let other = w.upload("sized-too", b"hello").await.record;
    w.objects.put(
        &other.object_key(),
        ObjectInfo {
            size: 4,
            sha256: Some(sha256_of(b"hello")),
            sha256_of_parts: None,
        },
    );
    // The notification's own size is not trusted either way: the object is checked.
    let ingested = w.service.ingest(&created(&w, &other, Some(5))).await;
    assert!(
        matches!(ingested, Ok(IngestOutcome::Skipped(SkipReason::Mismatch))),
        "{ingested:?}"
    );
    assert!(!w.objects.contains(&other.object_key()), "the object was kept");
    for id in [record.id, other.id] {
        let state = w.store.get(w.tenant, id).await.unwrap().map(|r| r.state);
        assert_eq!(state, Some(FileState::Pending));
    }
    assert!(w.events().await.is_empty());
}

#[tokio::test]
async fn a_notification_of_an_object_of_another_size_deletes_it() {
    let w = world();
    let record = w.upload("notified", b"hello").await.record;
    w.objects.put(
        &record.object_key(),
        ObjectInfo {
            size: 9,
            sha256: Some(sha256_of(b"hello")),
            sha256_of_parts: None,
        },
    );
    let ingested = w.service.ingest(&created(&w, &record, Some(9))).await;
    assert!(
        matches!(ingested, Ok(IngestOutcome::Skipped(SkipReason::Mismatch))),
        "{ingested:?}"
    );
    assert!(!w.objects.contains(&record.object_key()), "the object was kept");
}

/// A plan of one part: that part is the whole file, so its SHA-256 must be the file's. The
/// store vouches only for the part (its composite checksum is of that one digest), so any other
/// declared whole-file digest would otherwise reach the record and the event unchecked.
#[tokio::test]
async fn a_plan_of_one_part_must_give_the_files_own_sha256() {
    use files_core::{InvalidPlan, PartsRequest};
    let w = World::new();
    let content = b"one small part";
    let request = |sha256| UploadRequest {
        name: FileName::parse("one-part.bin").unwrap(),
        sha256,
        size: content.len() as u64,
        content_type: None,
        expires_in: None,
    };
    let plan = PartsRequest {
        part_size: 5 * 1024 * 1024,
        sha256: vec![sha256_of(content)],
    };
    let refused = w
        .service
        .request_multipart_upload(
            &w.principal,
            w.scope,
            request(Sha256::from_bytes([9; 32])),
            plan.clone(),
        )
        .await;
    assert!(
        matches!(refused, Err(UploadError::Plan(InvalidPlan::OnePartDigest { .. }))),
        "{refused:?}"
    );
    let listed = w.store.list(w.scope, FileState::Pending, None, 10).await.unwrap();
    assert!(listed.is_empty(), "a refused plan left a record: {listed:?}");
    let accepted = w
        .service
        .request_multipart_upload(&w.principal, w.scope, request(sha256_of(content)), plan)
        .await;
    assert!(accepted.is_ok(), "{accepted:?}");
}
