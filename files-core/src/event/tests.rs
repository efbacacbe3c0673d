use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::file::{FileRecord, FileState};
use crate::ids::{DeviceId, FileId, TenantId};
use crate::principal::Owner;
use crate::values::{FileName, Sha256};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn record(owner: Owner, state: FileState) -> Result<FileRecord, Box<dyn std::error::Error>> {
    Ok(FileRecord {
        id: FileId::from_uuid(Uuid::from_u128(3)),
        tenant: TenantId::from_uuid(Uuid::from_u128(1)),
        owner,
        name: FileName::parse("logs/crash.txt")?,
        sha256: Sha256::from_bytes([0xab; 32]),
        size: Some(1234),
        content_type: None,
        state,
        created_at: OffsetDateTime::UNIX_EPOCH,
        completed_at: Some(OffsetDateTime::UNIX_EPOCH),
        multipart: None,
        upload_expires_at: None,
    })
}

fn deletion() -> Deletion {
    Deletion {
        event_id: Uuid::from_u128(9),
        reason: DeletionReason::Deleted,
        at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(60),
        bucket: "files".to_owned(),
    }
}

#[test]
fn a_deletion_serializes_to_the_brief_format() -> TestResult {
    let device = DeviceId::from_uuid(Uuid::from_u128(2));
    let event = deletion()
        .event_for(&record(Owner::Device(device), FileState::Available)?)
        .ok_or("an available file's deletion has an event")?;
    let value = serde_json::to_value(&event)?;
    assert_eq!(
        value,
        json!({
            "event_id": "00000000-0000-0000-0000-000000000009",
            "event_type": "file.deleted",
            "schema_version": 1,
            "occurred_at": "1970-01-01T00:01:00Z",
            "reason": "deleted",
            "file": {
                "file_id": "00000000-0000-0000-0000-000000000003",
                "tenant_id": "00000000-0000-0000-0000-000000000001",
                "device_id": "00000000-0000-0000-0000-000000000002",
                "file_name": "logs/crash.txt",
                "sha256": "ab".repeat(32),
                "size": 1234,
                "content_type": null,
                "bucket": "files",
                "object_key": "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002/00000000-0000-0000-0000-000000000003",
                "integrity": "object",
                "parts": null
            }
        })
    );
    assert_eq!(
        event.routing_key(),
        "file.deleted.00000000-0000-0000-0000-000000000001.00000000-0000-0000-0000-000000000002"
    );
    assert_eq!(serde_json::from_value::<FileDeleted>(value.clone())?, event);
    let any: FileEvent = serde_json::from_value(value)?;
    assert_eq!(any, FileEvent::Deleted(event.clone()));
    assert_eq!(any.event_id(), event.event_id);
    assert_eq!(any.event_type(), FILE_DELETED);
    assert_eq!(any.routing_key(), event.routing_key());
    Ok(())
}

#[test]
fn the_retention_reason_and_a_tenant_root_file() -> TestResult {
    let mut retention = deletion();
    retention.reason = DeletionReason::Retention;
    let event = retention
        .event_for(&record(Owner::Tenant, FileState::Available)?)
        .ok_or("an available file's deletion has an event")?;
    let value = serde_json::to_value(FileEvent::from(event.clone()))?;
    assert_eq!(value["reason"], "retention");
    assert_eq!(value["file"]["device_id"], serde_json::Value::Null);
    assert_eq!(
        event.routing_key(),
        "file.deleted.00000000-0000-0000-0000-000000000001.tenant"
    );
    Ok(())
}

#[test]
fn only_an_available_file_has_a_deletion_event() -> TestResult {
    for state in [FileState::Pending, FileState::Expired, FileState::Deleted] {
        assert_eq!(deletion().event_for(&record(Owner::Tenant, state)?), None, "{state:?}");
    }
    Ok(())
}

#[test]
fn an_uploaded_event_as_stored_before_deletions_reads_back_unchanged() -> TestResult {
    // The body of an outbox row written by an earlier release, before API 1.1 (no integrity).
    let stored = json!({
        "event_id": "00000000-0000-0000-0000-000000000009",
        "event_type": "file.uploaded",
        "schema_version": 1,
        "occurred_at": "2024-05-02T09:13:44.120394Z",
        "file": {
            "file_id": "00000000-0000-0000-0000-000000000003",
            "tenant_id": "00000000-0000-0000-0000-000000000001",
            "device_id": null,
            "file_name": "fw.bin",
            "sha256": "ab".repeat(32),
            "size": 5,
            "content_type": null,
            "bucket": "files",
            "object_key": "00000000-0000-0000-0000-000000000001/_tenant/00000000-0000-0000-0000-000000000003"
        }
    });
    let event: FileEvent = serde_json::from_value(stored.clone())?;
    let FileEvent::Uploaded(uploaded) = &event else {
        return Err(format!("read as {event:?}").into());
    };
    assert_eq!(uploaded, &serde_json::from_value::<FileUploaded>(stored)?);
    assert_eq!(
        event.routing_key(),
        "file.uploaded.00000000-0000-0000-0000-000000000001.tenant"
    );
    // Written again, it is the uploaded event's own JSON.
    assert_eq!(serde_json::to_value(&event)?, serde_json::to_value(uploaded)?);
    Ok(())
}

#[test]
fn an_unknown_type_or_a_deletion_without_reason_is_refused() -> TestResult {
    let device = DeviceId::from_uuid(Uuid::from_u128(2));
    let event = deletion()
        .event_for(&record(Owner::Device(device), FileState::Available)?)
        .ok_or("an available file's deletion has an event")?;
    let mut value = serde_json::to_value(&event)?;
    if let Some(body) = value.as_object_mut() {
        body.remove("reason");
    }
    assert!(serde_json::from_value::<FileEvent>(value.clone()).is_err());
    value["event_type"] = json!("file.renamed");
    value["reason"] = json!("deleted");
    assert!(serde_json::from_value::<FileEvent>(value).is_err());
    Ok(())
}
