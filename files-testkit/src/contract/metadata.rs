//! The contract of the [`MetadataStore`] port: what every metadata store, in memory or in
//! PostgreSQL, must do, including recording one outbox event per file made available (seen
//! through [`files_core::Outbox::claim`]; the outbox itself has its own suite,
//! [`super::outbox`]).
//!
//! Each rule uses fresh random tenants and devices, so the suite can run any number of times,
//! in parallel, on a shared store (the outbox checks look only for their own files' events,
//! and give back what they claim). It panics, naming the broken rule, on the first violation.
//! Times are whole microseconds, the precision PostgreSQL keeps.

use std::collections::HashSet;

use files_core::{
    ContentType, DeviceId, FileId, FileName, FileRecord, FileState, FileUploaded, MetadataStore, MultipartUpload,
    Owner, PartPlan, PortError, Scope, Sha256, TenantId, TransactionalStore,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long the outbox checks keep looking for an event another claimer may hold for a moment.
const OUTBOX_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
/// The lease the outbox checks take (they give it back at once).
const LOOK_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
/// How many events the outbox checks claim at a time.
const LOOK_BATCH: usize = 500;

/// Runs every rule of the contract against `store`.
///
/// # Panics
/// When the store breaks a rule, or fails a call.
pub async fn run(store: &dyn TransactionalStore) {
    records_round_trip_every_field(store).await;
    get_is_tenant_scoped(store).await;
    duplicate_ids_are_refused(store).await;
    latest_is_per_scope_name_and_state(store).await;
    list_pages_newest_first_by_state(store).await;
    mark_available_moves_only_pending(store).await;
    concurrent_mark_available_has_one_winner(store).await;
    mark_deleted_leaves_a_tombstone(store).await;
}

/// Now, cut to whole microseconds.
#[must_use]
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - Duration::nanoseconds(i64::from(now.nanosecond() % 1_000))
}

/// The `file.uploaded` event of `record` completing with `size` at `at`, with a new event id
/// (in bucket `bucket`): what to pass to [`MetadataStore::mark_available`].
#[must_use]
pub fn uploaded_event(record: &FileRecord, size: u64, at: OffsetDateTime) -> FileUploaded {
    FileUploaded::new(Uuid::new_v4(), record, size, "bucket", at)
}

pub fn fresh_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v4())
}

pub(crate) fn device_root(tenant: TenantId) -> Scope {
    Scope {
        tenant,
        owner: Owner::Device(DeviceId::from_uuid(Uuid::new_v4())),
    }
}

pub(crate) const fn tenant_root(tenant: TenantId) -> Scope {
    Scope {
        tenant,
        owner: Owner::Tenant,
    }
}

pub(crate) fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap_or_else(|e| panic!("test file name {text:?}: {e}"))
}

/// A new pending version of `file_name` in `scope` (ids are UUIDv7: each is newer than the
/// last one made in this process).
pub(crate) fn record(scope: Scope, file_name: &str, state: FileState) -> FileRecord {
    FileRecord {
        id: FileId::new(),
        tenant: scope.tenant,
        owner: scope.owner,
        name: name(file_name),
        sha256: Sha256::from_bytes([0x5a; 32]),
        size: None,
        content_type: None,
        state,
        created_at: now_micros(),
        completed_at: None,
        multipart: None,
        upload_expires_at: None,
    }
}

pub(crate) fn ok<T>(rule: &str, result: Result<T, PortError>) -> T {
    result.unwrap_or_else(|e| panic!("{rule}: the store failed: {e:?}"))
}

pub(crate) async fn insert(store: &dyn MetadataStore, rule: &str, record: &FileRecord) {
    ok(rule, store.insert(record).await);
}

async fn insert_all(store: &dyn MetadataStore, rule: &str, records: &[FileRecord]) {
    for record in records {
        insert(store, rule, record).await;
    }
}

fn ids(records: &[FileRecord]) -> Vec<FileId> {
    records.iter().map(|r| r.id).collect()
}

/// Every event waiting in the outbox for one of `files`, in recording order: claims all that
/// can be claimed, keeps those, and releases everything it claimed. Looks again for a while
/// until it finds at least `expected` (another claimer may hold some for a moment).
async fn recorded_events(
    store: &dyn TransactionalStore,
    rule: &str,
    files: &[FileId],
    expected: usize,
) -> Vec<FileUploaded> {
    let files: HashSet<FileId> = files.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + OUTBOX_PATIENCE;
    loop {
        let mut claimed = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let batch = ok(rule, store.claim(LOOK_BATCH, LOOK_LEASE).await);
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                let id = entry.event.event_id;
                // Also what stops the loop when leases do not hold.
                assert!(seen.insert(id), "{rule}: event {id} was claimed again while leased");
                claimed.push(entry);
            }
        }
        let ids: Vec<Uuid> = claimed.iter().map(|e| e.event.event_id).collect();
        ok(rule, store.release(&ids).await);
        let found: Vec<FileUploaded> = claimed
            .into_iter()
            .map(|e| e.event)
            .filter(|e| files.contains(&e.file.file_id))
            .collect();
        if found.len() >= expected || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every field comes back as it went in: both kinds of root, every checksum byte, sizes
/// absent, zero and large, content types absent and present, names with any character a
/// name may hold, every state, and times to the microsecond.
///
/// # Panics
/// When the store breaks the rule.
pub async fn records_round_trip_every_field(store: &dyn MetadataStore) {
    const RULE: &str = "records round-trip every field";
    let tenant = fresh_tenant();
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::try_from(i * 8).unwrap_or(u8::MAX); // 0x00 .. 0xf8: zero and high bytes
    }
    let largest = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let long_name = "é".repeat(FileName::MAX_BYTES / 2); // 254 bytes of two-byte characters
    let created = now_micros() - Duration::days(400);
    let completed = created + Duration::microseconds(1_234_567);
    let content_type =
        ContentType::parse("text/plain; charset=utf-8").unwrap_or_else(|e| panic!("test content type: {e}"));
    let base = record(device_root(tenant), "x", FileState::Pending);
    let records = [
        FileRecord {
            sha256: Sha256::from_bytes(digest),
            ..base.clone()
        },
        FileRecord {
            id: FileId::new(),
            owner: Owner::Tenant,
            name: name("Logs 2024/crash dump (1).tar.gz"),
            sha256: Sha256::from_bytes([0; 32]),
            size: Some(0),
            content_type: Some(content_type),
            state: FileState::Available,
            created_at: created,
            completed_at: Some(completed),
            ..base.clone()
        },
        FileRecord {
            id: FileId::new(),
            name: name(&long_name),
            sha256: Sha256::from_bytes([0xff; 32]),
            size: Some(largest),
            state: FileState::Deleted,
            created_at: OffsetDateTime::UNIX_EPOCH + Duration::microseconds(1),
            ..base.clone()
        },
        FileRecord {
            id: FileId::new(),
            name: name("日本語 ✓ 'quoted' \"double\" % _ \\"),
            size: Some(1),
            ..base.clone()
        },
        // A multipart upload: its upload id, part size, every part's SHA-256 in order, and
        // until when it may be completed.
        FileRecord {
            id: FileId::new(),
            size: Some(3 * 5 * 1024 * 1024 - 7),
            multipart: Some(MultipartUpload {
                upload_id: "2~opaque/upload+id=".to_owned(),
                plan: PartPlan::from_stored(
                    5 * 1024 * 1024,
                    vec![
                        Sha256::from_bytes(digest),
                        Sha256::from_bytes([0; 32]),
                        Sha256::from_bytes([0xff; 32]),
                    ],
                ),
                expires_at: completed,
            }),
            ..base
        },
    ];
    insert_all(store, RULE, &records).await;
    for expected in &records {
        let got = ok(RULE, store.get(tenant, expected.id).await);
        assert_eq!(got.as_ref(), Some(expected), "{RULE}");
    }
}

/// `get` finds a version in any state, only under its own tenant.
///
/// # Panics
/// When the store breaks the rule.
pub async fn get_is_tenant_scoped(store: &dyn MetadataStore) {
    const RULE: &str = "get is tenant-scoped";
    let tenant = fresh_tenant();
    let device_file = record(device_root(tenant), "a.log", FileState::Pending);
    let tenant_file = record(tenant_root(tenant), "b.log", FileState::Available);
    insert_all(store, RULE, &[device_file.clone(), tenant_file.clone()]).await;
    for file in [&device_file, &tenant_file] {
        assert_eq!(
            ok(RULE, store.get(tenant, file.id).await).as_ref(),
            Some(file),
            "{RULE}"
        );
        assert_eq!(
            ok(RULE, store.get(fresh_tenant(), file.id).await),
            None,
            "{RULE}: another tenant"
        );
    }
    assert_eq!(
        ok(RULE, store.get(tenant, FileId::new()).await),
        None,
        "{RULE}: absent id"
    );
}

/// Inserting an id that exists fails with [`PortError::Failed`] and changes nothing, even
/// under another tenant.
///
/// # Panics
/// When the store breaks the rule.
pub async fn duplicate_ids_are_refused(store: &dyn MetadataStore) {
    const RULE: &str = "duplicate ids are refused";
    let tenant = fresh_tenant();
    let first = record(device_root(tenant), "a.log", FileState::Pending);
    insert(store, RULE, &first).await;
    let same_id = [
        FileRecord {
            name: name("other.log"),
            state: FileState::Available,
            ..first.clone()
        },
        FileRecord {
            tenant: fresh_tenant(),
            ..first.clone()
        },
    ];
    for duplicate in &same_id {
        let result = store.insert(duplicate).await;
        assert!(matches!(result, Err(PortError::Failed(_))), "{RULE}: {result:?}");
    }
    assert_eq!(
        ok(RULE, store.get(tenant, first.id).await),
        Some(first),
        "{RULE}: unchanged"
    );
}

/// `latest` is the highest id of a name in one scope and one state: a device root, another
/// device's root, the tenant root and another tenant never see each other's versions; names
/// are exact (case-sensitive); a newer version in another state does not hide an older one.
///
/// # Panics
/// When the store breaks the rule.
pub async fn latest_is_per_scope_name_and_state(store: &dyn MetadataStore) {
    const RULE: &str = "latest is per scope, name and state";
    let tenant = fresh_tenant();
    let device = device_root(tenant);
    let other_device = device_root(tenant);
    let root = tenant_root(tenant);
    let other_tenant = Scope {
        tenant: fresh_tenant(),
        owner: device.owner,
    };
    let file = name("config.json");

    // Oldest first: each is newer than every one before it.
    let device_v1 = record(device, "config.json", FileState::Available);
    let root_v1 = record(root, "config.json", FileState::Available);
    let device_v2 = record(device, "config.json", FileState::Available);
    let other_device_v1 = record(other_device, "config.json", FileState::Available);
    let other_tenant_v1 = record(other_tenant, "config.json", FileState::Available);
    let device_pending = record(device, "config.json", FileState::Pending);
    let device_other_name = record(device, "Config.json", FileState::Available);
    let root_v2 = record(root, "config.json", FileState::Available);
    let root_deleted = record(root, "config.json", FileState::Deleted);
    insert_all(
        store,
        RULE,
        &[
            device_v1,
            root_v1,
            device_v2.clone(),
            other_device_v1.clone(),
            other_tenant_v1.clone(),
            device_pending.clone(),
            device_other_name.clone(),
            root_v2.clone(),
            root_deleted.clone(),
        ],
    )
    .await;

    let latest = async |scope: Scope, file: &FileName, state: FileState| {
        ok(RULE, store.latest(scope, file, state).await).map(|r| r.id)
    };
    assert_eq!(
        latest(device, &file, FileState::Available).await,
        Some(device_v2.id),
        "{RULE}: device root"
    );
    assert_eq!(
        latest(root, &file, FileState::Available).await,
        Some(root_v2.id),
        "{RULE}: tenant root"
    );
    assert_eq!(
        latest(other_device, &file, FileState::Available).await,
        Some(other_device_v1.id),
        "{RULE}: another device"
    );
    assert_eq!(
        latest(other_tenant, &file, FileState::Available).await,
        Some(other_tenant_v1.id),
        "{RULE}: another tenant"
    );
    assert_eq!(
        latest(device, &file, FileState::Pending).await,
        Some(device_pending.id),
        "{RULE}: pending"
    );
    assert_eq!(
        latest(root, &file, FileState::Deleted).await,
        Some(root_deleted.id),
        "{RULE}: deleted"
    );
    assert_eq!(
        latest(root, &file, FileState::Pending).await,
        None,
        "{RULE}: no pending in the tenant root"
    );
    assert_eq!(
        latest(device, &name("Config.json"), FileState::Available).await,
        Some(device_other_name.id),
        "{RULE}: names are case-sensitive"
    );
    assert_eq!(
        latest(root, &name("Config.json"), FileState::Available).await,
        None,
        "{RULE}: a device's name is not the tenant root's"
    );
    assert_eq!(
        latest(tenant_root(other_tenant.tenant), &file, FileState::Available).await,
        None,
        "{RULE}: a device's file is not in its tenant's root"
    );
    assert_eq!(
        latest(device_root(tenant), &file, FileState::Available).await,
        None,
        "{RULE}: a device with no files"
    );
    assert_eq!(
        latest(device, &name("config.json.bak"), FileState::Available).await,
        None,
        "{RULE}: absent name"
    );
}

/// `list` gives the versions of one scope in one state, newest first, at most `limit`, below
/// `before` when given: paging with the last id of each page visits each exactly once.
///
/// # Panics
/// When the store breaks the rule.
pub async fn list_pages_newest_first_by_state(store: &dyn MetadataStore) {
    const RULE: &str = "list pages newest first by state";
    for in_device_root in [true, false] {
        // A tenant for each pass, so the other root's files of one pass are not this one's.
        let tenant = fresh_tenant();
        let (scope, other) = if in_device_root {
            (device_root(tenant), tenant_root(tenant))
        } else {
            (tenant_root(tenant), device_root(tenant))
        };
        let mut available = Vec::new();
        let mut pending = Vec::new();
        // Interleaved: other states and other scopes between the listed ones.
        for i in 0..5 {
            let file = record(scope, &format!("file-{i}"), FileState::Available);
            insert(store, RULE, &file).await;
            available.push(file);
            let noise = [
                record(scope, &format!("file-{i}"), FileState::Pending),
                record(scope, "gone", FileState::Deleted),
                record(other, &format!("file-{i}"), FileState::Available),
                record(
                    Scope {
                        tenant: fresh_tenant(),
                        owner: scope.owner,
                    },
                    "x",
                    FileState::Available,
                ),
            ];
            insert_all(store, RULE, &noise).await;
            pending.push(noise[0].clone());
        }
        available.reverse();
        pending.reverse();

        let list = async |state: FileState, before: Option<FileId>, limit: usize| {
            ok(RULE, store.list(scope, state, before, limit).await)
        };
        assert_eq!(
            list(FileState::Available, None, 100).await,
            available,
            "{RULE}: all, newest first"
        );
        assert_eq!(
            ids(&list(FileState::Pending, None, 100).await),
            ids(&pending),
            "{RULE}: pending"
        );
        assert_eq!(list(FileState::Deleted, None, 100).await.len(), 5, "{RULE}: deleted");
        assert!(list(FileState::Available, None, 0).await.is_empty(), "{RULE}: limit 0");

        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = list(FileState::Available, before, 2).await;
            assert!(page.len() <= 2, "{RULE}: limit");
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            pages.push(ids(&page));
            assert!(pages.len() <= 3, "{RULE}: paging does not end");
        }
        let expected = ids(&available);
        assert_eq!(
            pages,
            [&expected[0..2], &expected[2..4], &expected[4..5]],
            "{RULE}: pages"
        );
        // `before` need not be an id in the list, nor in the store.
        assert_eq!(
            ids(&list(FileState::Available, Some(FileId::new()), 100).await),
            expected,
            "{RULE}: before a newer id"
        );
        assert_eq!(
            ids(&list(FileState::Available, Some(pending[2].id), 100).await),
            expected[2..],
            "{RULE}: before another state's id"
        );
        assert!(
            list(FileState::Available, Some(expected[4]), 100).await.is_empty(),
            "{RULE}: before the oldest"
        );
    }
    assert!(
        ok(
            RULE,
            store
                .list(device_root(fresh_tenant()), FileState::Available, None, 10)
                .await
        )
        .is_empty(),
        "{RULE}: a device with no files"
    );
}

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
    let winners: Vec<FileUploaded> = events
        .iter()
        .filter(|(_, won)| *won)
        .map(|(event, _)| event.clone())
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
        let (winners, winning_events): (Vec<FileRecord>, Vec<FileUploaded>) = results
            .into_iter()
            .zip(&events)
            .filter_map(|(result, event)| ok(RULE, result).map(|record| (record, event.clone())))
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
        ok(RULE, store.mark_deleted(fresh_tenant(), newer.id).await),
        None,
        "{RULE}: another tenant's"
    );
    assert_eq!(
        ok(RULE, store.mark_deleted(tenant, FileId::new()).await),
        None,
        "{RULE}: absent"
    );
    let tombstone = FileRecord {
        state: FileState::Deleted,
        ..newer.clone()
    };
    assert_eq!(
        ok(RULE, store.mark_deleted(tenant, newer.id).await),
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
        ok(RULE, store.mark_deleted(tenant, newer.id).await),
        Some(tombstone),
        "{RULE}: deleting again is harmless"
    );
    let pending_deleted = ok(RULE, store.mark_deleted(tenant, pending.id).await).map(|r| r.state);
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
