//! The janitor over the fakes, on a fake clock (nothing sleeps): uploads nobody completed are
//! completed or expired, deleted files' late objects are swept, several janitors share the
//! work without doing anything twice, a failing store only delays the work.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use files_core::{
    DownloadError, DownloadTarget, FileName, FileState, Housekeeping, IngestOutcome, JanitorSettings, NoSuchUpload,
    ObjectCreated, ObjectStore as _, PartsRequest, PortError, Sha256, SkipReason, UploadRequest,
};
use files_core::{FileId, FileRecord, FilesService, Principal, TenantId};
use files_testkit::fakes::{FakeMetadataStore, FakeObjectStore};
use time::OffsetDateTime;

use crate::world::{MULTIPART, UPLOAD_URL, World};
use files_testkit::sha256_of;

const GRACE: Duration = Duration::from_secs(600);

fn settings() -> JanitorSettings {
    JanitorSettings {
        grace: GRACE,
        batch: 10,
        ..JanitorSettings::default()
    }
}

#[tokio::test]
async fn janitor_completes_an_upload_nobody_completed_once_its_url_and_the_grace_expired() {
    let w = World::new();
    let janitor = w.service.janitor(w.store.clone(), settings());
    let ticket = w.upload("crash.log", b"a crash").await;
    w.objects.receive_put(&ticket.request, b"a crash").unwrap();
    // Before the URL expired plus the grace, nothing is touched.
    w.clock.advance(UPLOAD_URL + GRACE - Duration::from_secs(1));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.claimed, 0, "{pass:?}");
    assert_eq!(w.state(&ticket).await, FileState::Pending);
    w.clock.advance(Duration::from_secs(2));
    let pass = janitor.pass().await.unwrap();
    assert_eq!((pass.claimed, pass.completed), (1, 1), "{pass:?}");
    assert_eq!(w.state(&ticket).await, FileState::Available);
    assert_eq!(w.events().await.len(), 1, "exactly one event");
    // Nothing more to do, and no second event.
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.claimed, 0);
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn janitor_expires_an_upload_url_never_used() {
    let w = World::new();
    let janitor = w.service.janitor(w.store.clone(), settings());
    let ticket = w.upload("never.bin", b"never").await;
    w.clock.advance(UPLOAD_URL + GRACE + Duration::from_secs(1));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.expired, 1, "{pass:?}");
    assert_eq!(w.state(&ticket).await, FileState::Expired);
    let download = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(ticket.record.id))
        .await;
    assert!(matches!(download, Err(DownloadError::Expired)), "{download:?}");
    let page = w.service.list(&w.principal, w.scope, None, 10).await.unwrap();
    assert!(page.files.is_empty(), "an expired file is not listed");
    assert_eq!(w.store.count_pending().await.unwrap(), 0);
    assert_eq!(w.events().await.len(), 0);
}

#[tokio::test]
async fn janitor_aborts_an_abandoned_multipart_upload_and_leaves_nothing() {
    let w = World::new();
    let janitor = w.service.janitor(w.store.clone(), settings());
    let part: Vec<u8> = vec![7; 5 * 1024 * 1024];
    let ticket = w
        .service
        .request_multipart_upload(
            &w.principal,
            w.scope,
            UploadRequest {
                name: FileName::parse("dump.bin").unwrap(),
                sha256: Sha256::from_bytes([1; 32]),
                size: part.len() as u64 + 10,
                content_type: None,
                expires_in: None,
            },
            PartsRequest {
                part_size: part.len() as u64,
                sha256: vec![sha256_of(&part), Sha256::from_bytes([2; 32])],
            },
        )
        .await
        .unwrap();
    w.objects.receive_part(&ticket.parts[0].request, &part).unwrap();
    // The part URLs expired long ago; the multipart upload itself only now.
    w.clock.advance(MULTIPART + GRACE - Duration::from_secs(1));
    assert_eq!(janitor.pass().await.unwrap().claimed, 0);
    w.clock.advance(Duration::from_secs(2));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.expired, 1, "{pass:?}");
    let record = ticket.record;
    let listed = w
        .objects
        .list_parts(&record.object_key(), &record.multipart.clone().unwrap().upload_id)
        .await;
    let Err(PortError::Failed(cause)) = listed else {
        panic!("the multipart upload is still there: {listed:?}")
    };
    assert!(cause.is::<NoSuchUpload>());
    assert!(!w.objects.contains(&record.object_key()));
}

#[tokio::test]
async fn janitor_sweeps_what_a_late_put_left_after_a_deletion() {
    let w = World::new();
    let janitor = w.service.janitor(w.store.clone(), settings());
    let ticket = w.upload("late.bin", b"late").await;
    w.service
        .delete(&w.principal, ticket.record.tenant, ticket.record.id)
        .await
        .unwrap();
    // A PUT through the URL, still valid after the deletion.
    w.objects.receive_put(&ticket.request, b"late").unwrap();
    assert!(w.objects.contains(&ticket.record.object_key()));
    w.clock.advance(UPLOAD_URL + GRACE + Duration::from_secs(1));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.swept, 1, "{pass:?}");
    assert!(
        !w.objects.contains(&ticket.record.object_key()),
        "the late object is left"
    );
    // Swept once: not claimed again.
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(janitor.pass().await.unwrap().claimed, 0);
}

#[tokio::test]
async fn janitor_two_at_once_do_each_upload_once() {
    let w = World::new();
    let first = w.service.janitor(w.store.clone(), settings());
    let second = w.service.janitor(w.store.clone(), settings());
    let mut tickets = Vec::new();
    for i in 0..8 {
        let content = format!("file {i}");
        let ticket = w.upload(&format!("f{i}.txt"), content.as_bytes()).await;
        w.objects.receive_put(&ticket.request, content.as_bytes()).unwrap();
        tickets.push(ticket);
    }
    w.clock.advance(UPLOAD_URL + GRACE + Duration::from_secs(1));
    let (a, b) = tokio::join!(first.pass(), second.pass());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.claimed + b.claimed, 8, "{a:?} {b:?}");
    assert_eq!(a.completed + b.completed, 8);
    assert_eq!(w.events().await.len(), 8, "one event per file");
}

/// A store whose every claim races with the device: each record it hands the janitor (pending,
/// as claimed) was completed by the device's own `complete` just after the claim.
struct CompletedMeanwhile {
    inner: Arc<FakeMetadataStore>,
    service: FilesService,
    principal: Principal,
}

#[async_trait]
impl Housekeeping for CompletedMeanwhile {
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        let claimed = self.inner.claim_stale(cutoff, limit, lease).await?;
        for record in &claimed {
            self.service
                .complete(&self.principal, record.tenant, record.id)
                .await
                .map_err(PortError::failed)?;
        }
        Ok(claimed)
    }

    async fn claim_retained(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.inner.claim_retained(now, limit, lease).await
    }

    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.inner.mark_swept(tenant, id).await
    }

    async fn count_pending(&self) -> Result<u64, PortError> {
        self.inner.count_pending().await
    }

    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError> {
        self.inner.prune_sent(before, limit).await
    }
}

#[tokio::test]
async fn janitor_counts_no_upload_that_another_call_completed_since_its_claim() {
    let w = World::new();
    let store = CompletedMeanwhile {
        inner: w.store.clone(),
        service: w.service.clone(),
        principal: w.principal.clone(),
    };
    let janitor = w.service.janitor(Arc::new(store), settings());
    let ticket = w.upload("raced.log", b"raced").await;
    w.objects.receive_put(&ticket.request, b"raced").unwrap();
    w.clock.advance(UPLOAD_URL + GRACE + Duration::from_secs(1));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(
        (pass.claimed, pass.completed, pass.skipped, pass.failed),
        (1, 0, 1, 0),
        "the device completed it, not the janitor: {pass:?}"
    );
    assert_eq!(w.state(&ticket).await, FileState::Available);
    assert_eq!(w.events().await.len(), 1, "one event, the device's");
}

#[tokio::test]
async fn janitor_with_the_store_down_leaves_the_work_for_a_later_pass() {
    let w = World::new();
    let janitor = w.service.janitor(
        w.store.clone(),
        JanitorSettings {
            lease: Duration::ZERO,
            ..settings()
        },
    );
    let ticket = w.upload("later.bin", b"later").await;
    w.objects.receive_put(&ticket.request, b"later").unwrap();
    w.clock.advance(UPLOAD_URL + GRACE + Duration::from_secs(1));
    w.objects.switch.fail();
    let pass = janitor.pass().await.unwrap();
    assert_eq!((pass.claimed, pass.failed), (1, 1), "{pass:?}");
    assert_eq!(w.state(&ticket).await, FileState::Pending);
    w.objects.switch.recover();
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.completed, 1, "{pass:?}");
    // The database down: the pass fails as a whole, nothing changes.
    w.store.switch.fail();
    assert!(janitor.pass().await.is_err());
    w.store.switch.recover();
}

#[tokio::test]
async fn janitor_a_notification_for_a_deleted_file_deletes_its_object_at_once() {
    let w = World::new();
    let ticket = w.upload("gone.bin", b"gone").await;
    w.service
        .delete(&w.principal, ticket.record.tenant, ticket.record.id)
        .await
        .unwrap();
    w.objects.receive_put(&ticket.request, b"gone").unwrap();
    let outcome = w
        .service
        .ingest(&ObjectCreated {
            bucket: FakeObjectStore::BUCKET.to_owned(),
            key: ticket.record.object_key().to_string(),
            size: Some(4),
        })
        .await
        .unwrap();
    assert_eq!(outcome, IngestOutcome::Skipped(SkipReason::UnknownFile));
    assert!(!w.objects.contains(&ticket.record.object_key()));
}
