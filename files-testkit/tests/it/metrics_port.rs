//! The core's metrics port: the use cases and the relay count through it, so a service that
//! embeds `files-core` gets the same per-tenant and per-device counts as the server.

use std::sync::Arc;
use std::time::Duration;

use files_core::{
    DeviceId, FileName, FileOperation, FilesService, InvalidToken, JanitorSettings, ObjectCreated, ObjectInfo, Owner,
    Ports, Principal, Scope, StorageEventOutcome, TenantId, TokenOutcome, UploadRequest,
};
use files_testkit::eventually;
use files_testkit::fakes::{
    FakeClock, FakeMetadataStore, FakeObjectStore, FakeTokenVerifier, Recorded, RecordingMetrics, RecordingNotifier,
};
use files_testkit::sha256_of;
use time::OffsetDateTime;
use uuid::Uuid;

struct Embedded {
    service: FilesService,
    relay: Option<files_core::Relay>,
    metrics: Arc<RecordingMetrics>,
    notifier: Arc<RecordingNotifier>,
    objects: Arc<FakeObjectStore>,
    tokens: Arc<FakeTokenVerifier>,
    store: Arc<FakeMetadataStore>,
    clock: Arc<FakeClock>,
}

fn embedded() -> Embedded {
    let metrics = Arc::new(RecordingMetrics::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let objects = Arc::new(FakeObjectStore::default());
    let tokens = Arc::new(FakeTokenVerifier::default());
    let store = Arc::new(FakeMetadataStore::default());
    let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
    let (service, relay) = FilesService::builder(Ports {
        tokens: tokens.clone(),
        store: store.clone(),
        signer: objects.clone(),
        objects: objects.clone(),
        notifier: notifier.clone(),
    })
    .metrics(metrics.clone())
    .clock(clock.clone())
    .build();
    Embedded {
        service,
        relay: Some(relay),
        metrics,
        notifier,
        objects,
        tokens,
        store,
        clock,
    }
}

/// Upload URL, the object as a verified PUT would leave it, `complete`.
async fn upload_and_complete(
    e: &Embedded,
    principal: &Principal,
    scope: Scope,
    name: &str,
    content: &[u8],
) -> files_core::FileRecord {
    let request = UploadRequest {
        name: FileName::parse(name).unwrap(),
        sha256: sha256_of(content),
        size: content.len() as u64,
        content_type: None,
        expires_in: None,
    };
    let ticket = e.service.request_upload(principal, scope, request).await.unwrap();
    let info = ObjectInfo {
        size: content.len() as u64,
        sha256: Some(sha256_of(content)),
        sha256_of_parts: None,
    };
    e.objects.put(&ticket.record.object_key(), info);
    e.service
        .complete(principal, scope.tenant, ticket.record.id)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_use_cases_count_tokens_and_file_operations_per_tenant_and_device() {
    let e = embedded();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let device = DeviceId::from_uuid(Uuid::new_v4());
    e.tokens.insert("good", Principal::Device { tenant, device });
    let principal = e.service.authenticate("good").await.unwrap();
    assert!(e.service.authenticate("bad").await.is_err());
    let scope = Scope {
        tenant,
        owner: Owner::Device(device),
    };
    upload_and_complete(&e, &principal, scope, "log.txt", b"log").await;
    // A refused operation is not counted.
    let other = Scope {
        tenant: TenantId::from_uuid(Uuid::new_v4()),
        owner: Owner::Tenant,
    };
    assert!(e.service.list(&principal, other, None, 10).await.is_err());

    let recorded = e.metrics.recorded();
    let of_interest: Vec<_> = recorded
        .into_iter()
        .filter(|r| matches!(r, Recorded::Token(_) | Recorded::FileOperation(..)))
        .collect();
    assert_eq!(
        of_interest,
        [
            Recorded::Token(TokenOutcome::Verified),
            Recorded::Token(TokenOutcome::Invalid(InvalidToken::UnknownKey)),
            Recorded::FileOperation(tenant, Owner::Device(device), FileOperation::UploadUrl),
            Recorded::FileOperation(tenant, Owner::Device(device), FileOperation::Complete),
        ]
    );
}

#[tokio::test]
async fn notifications_are_counted_by_outcome() {
    let e = embedded();
    let foreign = ObjectCreated {
        bucket: "someone-elses".to_owned(),
        key: "x".to_owned(),
        size: None,
    };
    let records = vec![
        files_core::NotificationRecord::Created(foreign),
        files_core::NotificationRecord::Ignored,
        files_core::NotificationRecord::Malformed("no key"),
    ];
    let ingested = e.service.ingest_records(records).await.unwrap();
    assert_eq!((ingested.completed, ingested.skipped), (0, 3));
    let events: Vec<_> = e
        .metrics
        .recorded()
        .into_iter()
        .filter(|r| matches!(r, Recorded::StorageEvent(_)))
        .collect();
    assert_eq!(
        events,
        [
            Recorded::StorageEvent(StorageEventOutcome::ForeignBucket),
            Recorded::StorageEvent(StorageEventOutcome::Ignored),
            Recorded::StorageEvent(StorageEventOutcome::Malformed),
        ]
    );
}

#[tokio::test]
async fn the_relay_from_the_builder_publishes_completed_uploads_and_counts_them() {
    let mut e = embedded();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let principal = Principal::TenantService { tenant };
    let scope = Scope {
        tenant,
        owner: Owner::Tenant,
    };
    let record = upload_and_complete(&e, &principal, scope, "bundle.bin", b"bundle").await;
    // Nothing is published until the relay runs.
    assert!(e.notifier.events().is_empty());
    let relay = tokio::spawn(e.relay.take().unwrap().run());
    let published = eventually(Duration::from_secs(5), async || e.notifier.events().len() == 1).await;
    relay.abort();
    assert!(published, "the relay did not publish the event");
    assert_eq!(e.notifier.events()[0].file.file_id, record.id);
    assert!(e.metrics.recorded().contains(&Recorded::Published(1)));
}

#[tokio::test]
async fn the_janitor_and_notifications_count_janitor_actions_by_kind() {
    let e = embedded();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let principal = Principal::Device { tenant, device };
    let scope = Scope {
        tenant,
        owner: Owner::Device(device),
    };
    let upload = async |name: &str, content: &[u8]| {
        let request = UploadRequest {
            name: FileName::parse(name).unwrap(),
            sha256: sha256_of(content),
            size: content.len() as u64,
            content_type: None,
            expires_in: None,
        };
        e.service.request_upload(&principal, scope, request).await.unwrap()
    };
    // One upload stored but never completed, one never sent.
    let stored = upload("stored.log", b"stored").await;
    let info = ObjectInfo {
        size: 6,
        sha256: Some(sha256_of(b"stored")),
        sha256_of_parts: None,
    };
    e.objects.put(&stored.record.object_key(), info);
    upload("never.log", b"never").await;
    e.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let pass = e
        .service
        .janitor(e.store.clone(), JanitorSettings::default())
        .pass()
        .await
        .unwrap();
    assert_eq!((pass.completed, pass.expired), (1, 1), "{pass:?}");
    // An object no record points to, reported by the store.
    let orphan = ObjectCreated {
        bucket: e.service.bucket().to_owned(),
        key: format!("{tenant}/{device}/{}", Uuid::now_v7()),
        size: Some(1),
    };
    e.service.ingest(&orphan).await.unwrap();
    let mut actions: Vec<_> = e
        .metrics
        .recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Janitor(action, count) => Some((action.label(), count)),
            _ => None,
        })
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, [("completed", 1), ("expired", 1), ("orphan_deleted", 1)]);
}
