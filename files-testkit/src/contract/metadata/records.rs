//! The rules about records themselves: what goes in comes back, by id, under its tenant only,
//! and an id is stored once.

use files_core::{
    ContentType, FileId, FileName, FileRecord, FileState, MetadataStore, MultipartUpload, Owner, PartPlan, PortError,
    Sha256,
};
use time::{Duration, OffsetDateTime};

use super::fixtures::{device_root, fresh_tenant, insert, insert_all, name, now_micros, ok, record, tenant_root};

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
