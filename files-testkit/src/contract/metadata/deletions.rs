//! The rules about the `file.deleted` event that `mark_deleted` records: for an available
//! version only, built from the row it moved, once however many callers race.

use files_core::{FileEvent, FileId, FileRecord, FileState, TransactionalStore};
use time::Duration;

use super::fixtures::{
    deletion, device_root, fresh_tenant, insert, insert_all, now_micros, ok, record, tenant_root, uploaded_event,
};
use super::recorded::recorded_events;

/// An available version as `mark_available` leaves it: with its stored size and completion
/// time.
fn available(record: FileRecord) -> FileRecord {
    FileRecord {
        state: FileState::Available,
        size: Some(1234),
        completed_at: Some(now_micros()),
        ..record
    }
}

/// `mark_deleted` of an available version records the deletion's `file.deleted` event, built
/// from the version as it was ([`files_core::Deletion::event_for`]): with the same id, reason,
/// time, bucket and the stored file. A pending, expired or already deleted version, an absent
/// one or another tenant's records nothing.
///
/// # Panics
/// When the store breaks the rule.
pub async fn mark_deleted_records_an_event_only_for_available(store: &dyn TransactionalStore) {
    const RULE: &str = "mark_deleted records an event only for available versions";
    let tenant = fresh_tenant();
    let device_file = available(record(device_root(tenant), "crash.txt", FileState::Pending));
    let root_file = available(record(tenant_root(tenant), "fw.bin", FileState::Pending));
    let pending = record(device_root(tenant), "pending.bin", FileState::Pending);
    let expired = record(device_root(tenant), "expired.bin", FileState::Expired);
    let deleted = record(device_root(tenant), "deleted.bin", FileState::Deleted);
    let all = [
        device_file.clone(),
        root_file.clone(),
        pending.clone(),
        expired.clone(),
        deleted.clone(),
    ];
    insert_all(store, RULE, &all).await;

    let at = now_micros() + Duration::seconds(5);
    assert_eq!(
        ok(
            RULE,
            store.mark_deleted(fresh_tenant(), device_file.id, &deletion(at)).await
        ),
        None,
        "{RULE}: another tenant's"
    );
    assert_eq!(
        ok(RULE, store.mark_deleted(tenant, FileId::new(), &deletion(at)).await),
        None,
        "{RULE}: absent"
    );
    let mut expected = Vec::new();
    for file in [&device_file, &root_file] {
        let asked = deletion(at);
        let moved = ok(RULE, store.mark_deleted(tenant, file.id, &asked).await);
        assert_eq!(moved.map(|r| r.state), Some(FileState::Deleted), "{RULE}: available");
        let event = asked
            .event_for(file)
            .unwrap_or_else(|| panic!("{RULE}: an available file's deletion has an event"));
        expected.push(FileEvent::Deleted(event));
    }
    for file in [&pending, &expired, &deleted, &device_file] {
        let moved = ok(RULE, store.mark_deleted(tenant, file.id, &deletion(at)).await);
        assert_eq!(
            moved.map(|r| r.state),
            Some(FileState::Deleted),
            "{RULE}: {:?} becomes a tombstone",
            file.state
        );
    }
    let ids: Vec<FileId> = all.iter().map(|r| r.id).collect();
    assert_eq!(
        recorded_events(store, RULE, &ids, expected.len()).await,
        expected,
        "{RULE}: one event, as the deletion describes it, for each available version, in order; none for the others"
    );
}

/// Of several concurrent `mark_deleted` calls on one available version, all leave the
/// tombstone and exactly one records its event; a deletion racing the completion of a pending
/// version records its event exactly when the completion moved the version first.
///
/// # Panics
/// When the store breaks the rule.
pub async fn concurrent_mark_deleted_records_one_event(store: &dyn TransactionalStore) {
    const RULE: &str = "concurrent mark_deleted records one event";
    let tenant = fresh_tenant();
    for _ in 0..3 {
        let file = available(record(device_root(tenant), "race.bin", FileState::Pending));
        insert(store, RULE, &file).await;
        let deletions: Vec<_> = (0..8).map(|_| deletion(now_micros())).collect();
        let calls = deletions.iter().map(|asked| store.mark_deleted(tenant, file.id, asked));
        for result in futures::future::join_all(calls).await {
            assert_eq!(
                ok(RULE, result).map(|r| r.state),
                Some(FileState::Deleted),
                "{RULE}: every call leaves the tombstone"
            );
        }
        let recorded = recorded_events(store, RULE, &[file.id], 1).await;
        let [FileEvent::Deleted(event)] = recorded.as_slice() else {
            panic!("{RULE}: exactly one file.deleted event, got {recorded:?}");
        };
        assert!(
            deletions
                .iter()
                .any(|asked| asked.event_for(&file).as_ref() == Some(event)),
            "{RULE}: the event is one caller's deletion: {event:?}"
        );
    }

    for _ in 0..3 {
        let file = record(device_root(tenant), "racing-completion.bin", FileState::Pending);
        insert(store, RULE, &file).await;
        let at = now_micros();
        let (uploaded, asked) = (uploaded_event(&file, 7, at), deletion(at));
        let (completed, deleted) = futures::join!(
            store.mark_available(tenant, file.id, 7, at, &uploaded),
            store.mark_deleted(tenant, file.id, &asked),
        );
        assert_eq!(ok(RULE, deleted).map(|r| r.state), Some(FileState::Deleted), "{RULE}");
        let completed = ok(RULE, completed).is_some();
        let types: Vec<String> = recorded_events(store, RULE, &[file.id], if completed { 2 } else { 0 })
            .await
            .iter()
            .map(|e| e.event_type().to_owned())
            .collect();
        let expected: &[&str] = if completed {
            &["file.uploaded", "file.deleted"]
        } else {
            &[]
        };
        assert_eq!(
            types, expected,
            "{RULE}: a deletion after the completion has its event, one before it has none (completed first: {completed})"
        );
    }
}
