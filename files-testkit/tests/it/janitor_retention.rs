//! Retention by the janitor over the fakes, on a fake clock (nothing sleeps): an available
//! device-root file past its tenant's `retention_secs` loses its object, then its record, with
//! one `file.deleted` event (reason `retention`); tenant-root files and younger files stay; a
//! failing store only delays the work; the cache serves no deleted file.

use std::time::Duration;

use files_core::{
    Clock as _, DeletionReason, DownloadError, DownloadTarget, FileState, JanitorAction, JanitorSettings, Owner,
    Principal, Scope, SettingsStore as _, TenantSettings,
};
use files_testkit::fakes::{Recorded, RecordingMetrics};

use crate::world::World;

const RETENTION: Duration = Duration::from_secs(3600);

fn settings() -> JanitorSettings {
    JanitorSettings {
        batch: 10,
        // A lease that runs out at once: a failed file is claimed again on the next pass.
        lease: Duration::ZERO,
        ..JanitorSettings::default()
    }
}

async fn set_retention<M>(w: &World<M>) {
    let retention = TenantSettings {
        retention_secs: Some(RETENTION.as_secs()),
        ..TenantSettings::default()
    };
    w.store.put_settings(w.tenant, &retention, w.clock.now()).await.unwrap();
}

fn retained(metrics: &RecordingMetrics) -> u64 {
    metrics
        .recorded()
        .iter()
        .filter_map(|r| match r {
            Recorded::Janitor(JanitorAction::Retained, n) => Some(*n),
            _ => None,
        })
        .sum()
}

#[tokio::test]
async fn janitor_retention_deletes_device_files_past_retention_object_then_record_one_event_each() {
    // Through the write-through cache, as the server runs it.
    let w = World::builder().cached().metrics(RecordingMetrics::default()).build();
    set_retention(&w).await;
    let service = Principal::TenantService { tenant: w.tenant };
    let tenant_root = Scope {
        tenant: w.tenant,
        owner: Owner::Tenant,
    };
    let device_file = w.upload_and_complete("old.log", b"old").await;
    let tenant_file = w
        .upload_and_complete_as(&service, tenant_root, "kept.log", b"kept")
        .await;
    // Read once, so the cache holds the available record.
    w.service.get(&w.principal, w.tenant, device_file.id).await.unwrap();
    let janitor = w.service.janitor(w.store.clone(), settings());

    // Not yet old enough: nothing happens.
    w.clock.advance(RETENTION - Duration::from_secs(1));
    let younger = w.upload_and_complete("young.log", b"young").await;
    let pass = janitor.pass().await.unwrap();
    assert_eq!((pass.claimed, pass.retained), (0, 0), "{pass:?}");

    w.clock.advance(Duration::from_secs(2));
    let pass = janitor.pass().await.unwrap();
    assert_eq!((pass.claimed, pass.retained, pass.failed), (1, 1, 0), "{pass:?}");
    assert!(!w.objects.contains(&device_file.object_key()), "the object is gone");
    let gone = w.service.get(&w.principal, w.tenant, device_file.id).await;
    assert!(
        gone.is_err(),
        "the record is deleted, the cache does not serve it: {gone:?}"
    );
    let download = w
        .service
        .request_download(&w.principal, w.scope, DownloadTarget::Id(device_file.id))
        .await;
    assert!(matches!(download, Err(DownloadError::NotFound)), "{download:?}");
    // The tenant-root file and the younger file stay.
    assert!(w.objects.contains(&tenant_file.object_key()));
    let kept = w.service.get(&service, w.tenant, tenant_file.id).await.unwrap();
    assert_eq!(kept.state, FileState::Available);
    let young = w.service.get(&w.principal, w.tenant, younger.id).await.unwrap();
    assert_eq!(young.state, FileState::Available);

    w.events().await;
    let deletions = w.notifier.deletions();
    let [event] = deletions.as_slice() else {
        panic!("one file.deleted, got {deletions:?}");
    };
    assert_eq!(event.reason, DeletionReason::Retention);
    assert_eq!(event.file.file_id, device_file.id);
    assert_eq!(event.occurred_at, w.clock.now());
    assert_eq!(retained(&w.metrics), 1);

    // Nothing more until the younger file's time (the deleted record's upload may be swept, as
    // after any deletion): then it goes too, and never a second event.
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.retained, 0, "{pass:?}");
    w.clock.advance(RETENTION);
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.retained, 1, "{pass:?}");
    w.events().await;
    assert_eq!(w.notifier.deletions().len(), 2);
    assert_eq!(retained(&w.metrics), 2);
    assert!(
        w.objects.contains(&tenant_file.object_key()),
        "tenant-root files are kept"
    );
}

#[tokio::test]
async fn janitor_retention_keeps_everything_of_a_tenant_without_retention() {
    let w = World::new();
    let file = w.upload_and_complete("forever.log", b"forever").await;
    let janitor = w.service.janitor(w.store.clone(), settings());
    w.clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.retained, 0, "{pass:?}");
    assert!(w.objects.contains(&file.object_key()));
}

#[tokio::test]
async fn janitor_retention_with_a_store_down_leaves_the_file_for_a_later_pass() {
    let w = World::builder().metrics(RecordingMetrics::default()).build();
    set_retention(&w).await;
    let file = w.upload_and_complete("old.log", b"old").await;
    let janitor = w.service.janitor(w.store.clone(), settings());
    w.clock.advance(RETENTION + Duration::from_secs(1));

    // The object store down: the file stays available, counted failed.
    w.objects.switch.fail();
    let pass = janitor.pass().await.unwrap();
    assert_eq!((pass.retained, pass.failed), (0, 1), "{pass:?}");
    assert_eq!(
        w.service.get(&w.principal, w.tenant, file.id).await.unwrap().state,
        FileState::Available
    );
    assert!(
        w.metrics
            .recorded()
            .contains(&Recorded::Janitor(JanitorAction::Failed, 1))
    );
    w.objects.switch.recover();

    // The next pass (the lease ran out) finishes it, with one event.
    let pass = janitor.pass().await.unwrap();
    assert_eq!(pass.retained, 1, "{pass:?}");
    assert!(!w.objects.contains(&file.object_key()));
    w.events().await;
    assert_eq!(w.notifier.deletions().len(), 1);
    assert_eq!(retained(&w.metrics), 1);
}
