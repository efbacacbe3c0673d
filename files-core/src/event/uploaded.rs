//! The `file.uploaded` event, and the `file` object that every event carries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::file::FileRecord;
use crate::ids::{DeviceId, FileId, TenantId};
use crate::multipart::Integrity;
use crate::values::{ContentType, FileName, Sha256};

/// The `event_type` of [`FileUploaded`].
pub const FILE_UPLOADED: &str = "file.uploaded";

/// One upload that landed and was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUploaded {
    /// Unique per event; consumers de-duplicate by it (delivery is at-least-once).
    pub event_id: Uuid,
    /// Always `file.uploaded`.
    pub event_type: String,
    /// Version of this body's schema; 1.
    pub schema_version: u32,
    /// When the file became available.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The file.
    pub file: UploadedFile,
}

/// The `file` object of every event ([`FileUploaded`] and
/// [`FileDeleted`](super::FileDeleted)): the version as it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedFile {
    /// The version's id.
    pub file_id: FileId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its device, or `null` for a tenant-root file.
    pub device_id: Option<DeviceId>,
    /// The caller's name.
    pub file_name: FileName,
    /// Lowercase hex.
    pub sha256: Sha256,
    /// Bytes stored.
    pub size: u64,
    /// Declared media type, or `null`.
    pub content_type: Option<ContentType>,
    /// The bucket holding it.
    pub bucket: String,
    /// Its key in the bucket.
    pub object_key: String,
    /// `object` when the store verified `sha256` over the whole object (one PUT), `parts` when
    /// it verified each part's SHA-256 and their composite (a multipart upload).
    #[serde(default = "object_integrity")]
    pub integrity: Integrity,
    /// The parts of a multipart upload, `null` for a single PUT.
    #[serde(default)]
    pub parts: Option<PartsSummary>,
}

const fn object_integrity() -> Integrity {
    Integrity::Object
}

/// The parts of a multipart upload, as the store verified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsSummary {
    /// The size of every part but the last.
    pub size: u64,
    /// How many parts.
    pub count: u16,
    /// The store's composite checksum: `base64(sha256(d1‖d2‖…‖dN))-N`, where `dᵢ` is the
    /// SHA-256 of part `i`.
    pub sha256_of_parts: String,
}

impl PartsSummary {
    /// The summary of a record's parts, `None` for a single PUT.
    #[must_use]
    pub fn of(record: &FileRecord) -> Option<Self> {
        record.multipart.as_ref().map(|m| Self {
            size: m.plan.part_size(),
            count: m.plan.part_count(),
            sha256_of_parts: m.plan.sha256_of_parts(),
        })
    }
}

impl FileUploaded {
    /// The current schema version.
    pub const SCHEMA_VERSION: u32 = 1;

    /// The event for an available record.
    #[must_use]
    pub fn new(event_id: Uuid, record: &FileRecord, size: u64, bucket: &str, occurred_at: OffsetDateTime) -> Self {
        Self {
            event_id,
            event_type: FILE_UPLOADED.to_owned(),
            schema_version: Self::SCHEMA_VERSION,
            occurred_at,
            file: UploadedFile::new(record, size, bucket),
        }
    }

    /// `file.uploaded.{tenant_id}.{device_id}`, or `file.uploaded.{tenant_id}.tenant`.
    #[must_use]
    pub fn routing_key(&self) -> String {
        self.file.routing_key(FILE_UPLOADED)
    }
}

impl UploadedFile {
    /// The `file` object of a record whose stored size is `size`.
    #[must_use]
    pub fn new(record: &FileRecord, size: u64, bucket: &str) -> Self {
        Self {
            file_id: record.id,
            tenant_id: record.tenant,
            device_id: record.owner.device(),
            file_name: record.name.clone(),
            sha256: record.sha256,
            size,
            content_type: record.content_type.clone(),
            bucket: bucket.to_owned(),
            object_key: record.object_key().to_string(),
            integrity: record.integrity(),
            parts: PartsSummary::of(record),
        }
    }

    /// `{event_type}.{tenant_id}.{device_id}`, or `{event_type}.{tenant_id}.tenant` for a
    /// tenant-root file: the routing key of an event of this file.
    #[must_use]
    pub fn routing_key(&self, event_type: &str) -> String {
        match self.device_id {
            Some(device) => format!("{event_type}.{}.{device}", self.tenant_id),
            None => format!("{event_type}.{}.tenant", self.tenant_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::FileState;
    use crate::principal::Owner;
    use serde_json::json;

    #[test]
    fn serializes_to_the_brief_format() -> Result<(), Box<dyn std::error::Error>> {
        let record = FileRecord {
            id: FileId::from_uuid(Uuid::from_u128(3)),
            tenant: TenantId::from_uuid(Uuid::from_u128(1)),
            owner: Owner::Tenant,
            name: FileName::parse("fw.bin")?,
            sha256: Sha256::from_bytes([0xab; 32]),
            size: None,
            content_type: None,
            state: FileState::Available,
            created_at: OffsetDateTime::UNIX_EPOCH,
            completed_at: None,
            multipart: None,
            upload_expires_at: None,
        };
        let event = FileUploaded::new(Uuid::from_u128(9), &record, 5, "files", OffsetDateTime::UNIX_EPOCH);
        let value = serde_json::to_value(&event)?;
        assert_eq!(
            value,
            json!({
                "event_id": "00000000-0000-0000-0000-000000000009",
                "event_type": "file.uploaded",
                "schema_version": 1,
                "occurred_at": "1970-01-01T00:00:00Z",
                "file": {
                    "file_id": "00000000-0000-0000-0000-000000000003",
                    "tenant_id": "00000000-0000-0000-0000-000000000001",
                    "device_id": null,
                    "file_name": "fw.bin",
                    "sha256": "ab".repeat(32),
                    "size": 5,
                    "content_type": null,
                    "bucket": "files",
                    "object_key": "00000000-0000-0000-0000-000000000001/_tenant/00000000-0000-0000-0000-000000000003",
                    "integrity": "object",
                    "parts": null
                }
            })
        );
        assert_eq!(
            event.routing_key(),
            "file.uploaded.00000000-0000-0000-0000-000000000001.tenant"
        );
        let back: FileUploaded = serde_json::from_value(value)?;
        assert_eq!(back, event);
        Ok(())
    }

    #[test]
    fn a_multipart_file_carries_its_parts_and_old_events_still_read() -> Result<(), Box<dyn std::error::Error>> {
        use crate::multipart::{MultipartUpload, PartPlan};
        let mut record = FileRecord {
            id: FileId::from_uuid(Uuid::from_u128(3)),
            tenant: TenantId::from_uuid(Uuid::from_u128(1)),
            owner: Owner::Tenant,
            name: FileName::parse("dump.bin")?,
            sha256: Sha256::from_bytes([0xab; 32]),
            size: Some(12),
            content_type: None,
            state: FileState::Available,
            created_at: OffsetDateTime::UNIX_EPOCH,
            completed_at: None,
            multipart: None,
            upload_expires_at: None,
        };
        let plan = PartPlan::from_stored(5, vec![Sha256::from_bytes([1; 32]); 3]);
        let composite = plan.sha256_of_parts();
        record.multipart = Some(MultipartUpload {
            upload_id: "u".to_owned(),
            plan,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        });
        let event = FileUploaded::new(Uuid::from_u128(9), &record, 12, "files", OffsetDateTime::UNIX_EPOCH);
        let value = serde_json::to_value(&event)?;
        assert_eq!(value["file"]["integrity"], "parts");
        assert_eq!(
            value["file"]["parts"],
            json!({"size": 5, "count": 3, "sha256_of_parts": composite})
        );
        // An event written before 1.1 (no integrity, no parts) reads as a single PUT.
        let mut old = value;
        if let Some(file) = old["file"].as_object_mut() {
            file.remove("integrity");
            file.remove("parts");
        }
        let back: FileUploaded = serde_json::from_value(old)?;
        assert_eq!(back.file.integrity, Integrity::Object);
        assert_eq!(back.file.parts, None);
        Ok(())
    }
}
