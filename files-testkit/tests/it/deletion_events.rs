//! `FilesService::delete` over the fakes, on the fake clock: the `file.deleted` event it
//! records and the relay publishes, exactly, with the time of the service's clock.

use std::time::Duration;

use files_core::{Clock as _, DeletionReason, FILE_DELETED, FileDeleted, FileState, Outbox as _};

use crate::world::World;

#[tokio::test]
async fn delete_of_an_available_file_publishes_its_deletion_at_the_clocks_time() {
    // Through the write-through cache, as the server runs it.
    let w = World::builder().cached().build();
    let record = w.upload_and_complete("crash.log", b"crash").await;
    let uploaded = w.events().await;
    w.clock.advance(Duration::from_secs(60));
    let at = w.clock.now();

    let deleted = w.service.delete(&w.principal, w.tenant, record.id).await.unwrap();
    assert_eq!(deleted.state, FileState::Available, "the record as it was");
    assert_eq!(w.events().await, uploaded, "no upload event more");
    let deletions = w.notifier.deletions();
    let [event] = deletions.as_slice() else {
        panic!("one file.deleted, got {deletions:?}");
    };
    let expected = FileDeleted {
        event_id: event.event_id,
        event_type: FILE_DELETED.to_owned(),
        schema_version: 1,
        occurred_at: at,
        reason: DeletionReason::Deleted,
        file: uploaded[0].file.clone(),
    };
    assert_eq!(event, &expected);
    assert_eq!(event.file.bucket, w.service.bucket());
    assert_eq!(event.file.size, 5, "the stored size");

    // Deleting again, or deleting a pending upload, publishes nothing.
    w.service.delete(&w.principal, w.tenant, record.id).await.unwrap();
    let pending = w.upload("never.log", b"never").await.record;
    w.service.delete(&w.principal, w.tenant, pending.id).await.unwrap();
    w.events().await;
    assert_eq!(w.notifier.deletions().len(), 1);
    assert_eq!(w.store.stats().await.unwrap().depth, 0, "nothing left in the outbox");
}
