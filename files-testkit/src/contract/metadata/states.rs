//! The rules about moving a version between states: `mark_available` (once, with one outbox
//! event for the call that moved it) and `mark_deleted` (a tombstone).

use files_core::{FileEvent, FileId, FileRecord, FileState, FileUploaded, TenantId, TransactionalStore};
use time::Duration;

use super::fixtures::{
    deletion, device_root, fresh_tenant, ids, insert, insert_all, name, now_micros, ok, record, tenant_root,
    uploaded_event,
};
use super::recorded::recorded_events;

/// `mark_available` moves a pending version to available with its size and completion time,
/// once: again, or on a deleted, absent or other tenant's version, it is `None` and changes
/// nothing.
///
/// # Panics
/// When the store breaks the rule.
pub async fn mark_available_moves_only_pending(store: &dyn TransactionalStore) {
    const RULE: &str = "mark_available moves only pending versions";
    let tenant = fresh_tenant();
    let declared = FileRecord {
        size: Some(10),
        ..record(device_root(tenant), "upload.bin", FileState::Pending)
    };
    let deleted = record(tenant_root(tenant), "gone.bin", FileState::Deleted);
    insert_all(store, RULE, &[declared.clone(), deleted.clone()]).await;
    let at = now_micros() + Duration::seconds(5);

    // Every call's event, to check that only the winners' were recorded.
    let events = std::sync::Mutex::new(Vec::new());
    let mark = async |tenant: TenantId, id: FileId, size: u64| {
        let event = uploaded_event(&FileRecord { id, ..declared.clone() }, size, at);
        let marked = ok(RULE, store.mark_available(tenant, id, size, at, &event).await);
        events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((event, marked.is_some()));
        marked
    };
    assert_eq!(
        mark(fresh_tenant(), declared.id, 12).await,
        None,
        "{RULE}: another tenant's"
    );
    assert_eq!(
        ok(RULE, store.get(tenant, declared.id).await),
        Some(declared.clone()),
        "{RULE}: another tenant changes nothing"
    );
    let expected = FileRecord {
        state: FileState::Available,
        size: Some(12),
        completed_at: Some(at),
        ..declared.clone()
    };
    assert_eq!(
        mark(tenant, declared.id, 12).await,
        Some(expected.clone()),
        "{RULE}: pending"
    );
    assert_eq!(
        ok(RULE, store.get(tenant, declared.id).await),
        Some(expected.clone()),
        "{RULE}: stored"
    );
    assert_eq!(mark(tenant, declared.id, 99).await, None, "{RULE}: already available");
    assert_eq!(
        ok(RULE, store.get(tenant, declared.id).await),
        Some(expected),
        "{RULE}: the second call changes nothing"
    );
    assert_eq!(mark(tenant, deleted.id, 1).await, None, "{RULE}: deleted");
    assert_eq!(
        ok(RULE, store.get(tenant, deleted.id).await),
        Some(deleted.clone()),
        "{RULE}: deleted stays"
    );
    assert_eq!(mark(tenant, FileId::new(), 1).await, None, "{RULE}: absent");

    let empty = record(tenant_root(tenant), "empty", FileState::Pending);
    insert(store, RULE, &empty).await;
    assert_eq!(
        mark(tenant, empty.id, 0).await.and_then(|r| r.size),
        Some(0),
        "{RULE}: an empty upload"
    );

    let events = events.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let winners: Vec<FileEvent> = events
        .iter()
        .filter(|(_, won)| *won)
        .map(|(event, _)| FileEvent::Uploaded(event.clone()))
        .collect();
    assert_eq!(winners.len(), 2, "{RULE}: the pending and the empty upload");
    let touched = [declared.id, deleted.id, empty.id];
    assert_eq!(
        recorded_events(store, RULE, &touched, winners.len()).await,
        winners,
        "{RULE}: one event, as given, for each version that moved, and none for the calls that did not"
    );
}

/// Of several concurrent `mark_available` calls on one pending version, exactly one gets the
/// record.
///
/// # Panics
/// When the store breaks the rule.
pub async fn concurrent_mark_available_has_one_winner(store: &dyn TransactionalStore) {
    const RULE: &str = "concurrent mark_available has one winner";
    let tenant = fresh_tenant();
    for _ in 0..3 {
        let file = record(device_root(tenant), "race.bin", FileState::Pending);
        insert(store, RULE, &file).await;
        let at = now_micros();
        let events: Vec<FileUploaded> = (0..8u64).map(|size| uploaded_event(&file, size, at)).collect();
        let calls = events
            .iter()
            .map(|event| store.mark_available(tenant, file.id, event.file.size, at, event));
        let results = futures::future::join_all(calls).await;
        let (winners, winning_events): (Vec<FileRecord>, Vec<FileEvent>) = results
            .into_iter()
            .zip(&events)
            .filter_map(|(result, event)| ok(RULE, result).map(|record| (record, event.clone().into())))
            .unzip();
        assert_eq!(winners.len(), 1, "{RULE}: {winners:?}");
        assert_eq!(
            ok(RULE, store.get(tenant, file.id).await).as_ref(),
            winners.first(),
            "{RULE}: the winner's record is the stored one"
        );
        assert_eq!(
            recorded_events(store, RULE, &[file.id], 1).await,
            winning_events,
            "{RULE}: exactly one event, the winner's"
        );
    }
}

/// `mark_deleted` turns a version of any state into a tombstone that `get` still shows and
/// `latest` and `list` of other states no longer do; `None` for an absent or other tenant's
/// version.
///
/// # Panics
/// When the store breaks the rule.
pub async fn mark_deleted_leaves_a_tombstone(store: &dyn TransactionalStore) {
    const RULE: &str = "mark_deleted leaves a tombstone";
    let tenant = fresh_tenant();
    let scope = device_root(tenant);
    let older = record(scope, "doc.pdf", FileState::Available);
    let newer = FileRecord {
        size: Some(3),
        completed_at: Some(now_micros()),
        ..record(scope, "doc.pdf", FileState::Available)
    };
    let pending = record(tenant_root(tenant), "doc.pdf", FileState::Pending);
    insert_all(store, RULE, &[older.clone(), newer.clone(), pending.clone()]).await;

    assert_eq!(
        ok(
            RULE,
            store
                .mark_deleted(fresh_tenant(), newer.id, &deletion(now_micros()))
                .await
        ),
        None,
        "{RULE}: another tenant's"
    );
    assert_eq!(
        ok(
            RULE,
            store.mark_deleted(tenant, FileId::new(), &deletion(now_micros())).await
        ),
        None,
        "{RULE}: absent"
    );
    let tombstone = FileRecord {
        state: FileState::Deleted,
        ..newer.clone()
    };
    assert_eq!(
        ok(
            RULE,
            store.mark_deleted(tenant, newer.id, &deletion(now_micros())).await
        ),
        Some(tombstone.clone()),
        "{RULE}: available"
    );
    assert_eq!(
        ok(RULE, store.get(tenant, newer.id).await),
        Some(tombstone.clone()),
        "{RULE}: get shows it"
    );
    assert_eq!(
        ok(RULE, store.latest(scope, &name("doc.pdf"), FileState::Available).await).map(|r| r.id),
        Some(older.id),
        "{RULE}: latest falls back to the older version"
    );
    assert_eq!(
        ids(&ok(RULE, store.list(scope, FileState::Available, None, 10).await)),
        [older.id],
        "{RULE}: list"
    );
    assert_eq!(
        ok(RULE, store.list(scope, FileState::Deleted, None, 10).await),
        std::slice::from_ref(&tombstone),
        "{RULE}: listed as deleted"
    );
    assert_eq!(
        ok(
            RULE,
            store.mark_deleted(tenant, newer.id, &deletion(now_micros())).await
        ),
        Some(tombstone),
        "{RULE}: deleting again is harmless"
    );
    let pending_deleted = ok(
        RULE,
        store.mark_deleted(tenant, pending.id, &deletion(now_micros())).await,
    )
    .map(|r| r.state);
    assert_eq!(pending_deleted, Some(FileState::Deleted), "{RULE}: pending");
    let at = now_micros();
    assert_eq!(
        ok(
            RULE,
            store
                .mark_available(tenant, pending.id, 1, at, &uploaded_event(&pending, 1, at))
                .await
        ),
        None,
        "{RULE}: a deleted upload cannot complete"
    );
    assert_eq!(
        recorded_events(store, RULE, &[pending.id], 0).await,
        [],
        "{RULE}: nor record an event"
    );
}
