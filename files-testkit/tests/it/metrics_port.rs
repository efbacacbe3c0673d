//! The core's metrics port: the use cases and the relay count through it, so a service that
//! embeds `files-core` gets the same per-tenant and per-device counts as the server.

use std::time::Duration;

use files_core::{
    FileOperation, InvalidToken, JanitorSettings, ObjectCreated, Owner, Principal, Scope, ServiceConfig,
    StorageEventOutcome, TenantId, TokenOutcome,
};
use files_testkit::eventually;
use files_testkit::fakes::{Recorded, RecordingMetrics};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::world::World;

/// A service as a program embedding `files-core` builds it: the default config, its metrics
/// recorded, its clock at the real time.
fn embedded() -> World<RecordingMetrics> {
    World::builder()
        .config(ServiceConfig::default())
        .metrics(RecordingMetrics::default())
        .clock_at(OffsetDateTime::now_utc())
        .build()
}

#[tokio::test]
async fn the_use_cases_count_tokens_and_file_operations_per_tenant_and_device() {
    let e = embedded();
    let (tenant, device) = (e.tenant, e.device);
    e.tokens.insert("good", e.principal.clone());
    let principal = e.service.authenticate("good").await.unwrap();
    assert!(e.service.authenticate("bad").await.is_err());
    e.upload_and_complete_as(&principal, e.scope, "log.txt", b"log").await;
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
    let record = e
        .upload_and_complete_as(&principal, scope, "bundle.bin", b"bundle")
        .await;
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
    let (tenant, device) = (e.tenant, e.device);
    // One upload stored but never completed, one never sent.
    let stored = e.upload("stored.log", b"stored").await;
    e.store_object(&stored.record, b"stored");
    e.upload("never.log", b"never").await;
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
