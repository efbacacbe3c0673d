//! What the metadata rules (and the outbox and housekeeping suites) build their cases from:
//! times cut to microseconds, fresh tenants and roots, pending records, and calls that panic,
//! naming the rule, when the store fails.

use files_core::{
    Deletion, DeletionReason, DeviceId, FileId, FileName, FileRecord, FileState, FileUploaded, MetadataStore, Owner,
    PortError, Scope, Sha256, TenantId,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

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

/// A deletion by a caller (reason `deleted`) at `at`, with a new event id (in bucket
/// `bucket`): what to pass to [`MetadataStore::mark_deleted`].
#[must_use]
pub fn deletion(at: OffsetDateTime) -> Deletion {
    Deletion::new(DeletionReason::Deleted, at, "bucket")
}

/// A tenant no other run uses.
#[must_use]
pub fn fresh_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v4())
}

/// The root of a fresh device of `tenant`.
pub(crate) fn device_root(tenant: TenantId) -> Scope {
    Scope {
        tenant,
        owner: Owner::Device(DeviceId::from_uuid(Uuid::new_v4())),
    }
}

/// The tenant's own root.
pub(crate) const fn tenant_root(tenant: TenantId) -> Scope {
    Scope {
        tenant,
        owner: Owner::Tenant,
    }
}

/// `text` as a file name; panics when it is not one.
pub(crate) fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap_or_else(|e| panic!("test file name {text:?}: {e}"))
}

/// A new version of `file_name` in `scope`, in `state` (ids are UUIDv7: each is newer than the
/// last one made in this process); panics when `file_name` is not a file name.
#[must_use]
pub fn record(scope: Scope, file_name: &str, state: FileState) -> FileRecord {
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

/// What the store answered; panics, naming `rule`, when it failed.
pub(crate) fn ok<T>(rule: &str, result: Result<T, PortError>) -> T {
    result.unwrap_or_else(|e| panic!("{rule}: the store failed: {e:?}"))
}

/// Inserts `record`; panics, naming `rule`, when the store fails.
pub(crate) async fn insert(store: &dyn MetadataStore, rule: &str, record: &FileRecord) {
    ok(rule, store.insert(record).await);
}

/// Inserts each of `records`, in order.
pub(super) async fn insert_all(store: &dyn MetadataStore, rule: &str, records: &[FileRecord]) {
    for record in records {
        insert(store, rule, record).await;
    }
}

/// The ids of `records`, in order.
pub(super) fn ids(records: &[FileRecord]) -> Vec<FileId> {
    records.iter().map(|r| r.id).collect()
}
