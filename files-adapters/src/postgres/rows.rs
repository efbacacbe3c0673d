//! The tables, and the rows of `files` ([`FileRow`]) with their conversions to and from
//! [`FileRecord`], which refuse what does not fit rather than panic.

use diesel::{Insertable, Queryable, Selectable};
use files_core::{ContentType, DeviceId, FileId, FileName, FileRecord, FileState, Owner, PortError, Sha256, TenantId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::errors::translate;

mod schema {
    diesel::table! {
        files (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            device_id -> Nullable<Uuid>,
            name -> Text,
            sha256 -> Bytea,
            size -> Nullable<Int8>,
            content_type -> Nullable<Text>,
            state -> Text,
            created_at -> Timestamptz,
            completed_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        outbox (event_id) {
            event_id -> Uuid,
            seq -> Int8,
            payload -> Jsonb,
            recorded_at -> Timestamptz,
            leased_until -> Nullable<Timestamptz>,
            sent_at -> Nullable<Timestamptz>,
        }
    }
}

pub(super) use schema::{files, outbox};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
pub(super) struct FileRow {
    pub(super) id: Uuid,
    pub(super) tenant_id: Uuid,
    pub(super) device_id: Option<Uuid>,
    pub(super) name: String,
    pub(super) sha256: Vec<u8>,
    pub(super) size: Option<i64>,
    pub(super) content_type: Option<String>,
    pub(super) state: String,
    pub(super) created_at: OffsetDateTime,
    pub(super) completed_at: Option<OffsetDateTime>,
}

/// A row (or a record) that does not fit the other side.
#[derive(Debug, thiserror::Error)]
#[error("file {id}: {problem}")]
pub(super) struct BadRow {
    pub(super) id: Uuid,
    pub(super) problem: String,
}

impl FileRow {
    pub(super) fn from_record(record: &FileRecord) -> Result<Self, BadRow> {
        let id = *record.id.as_uuid();
        let size = record.size.map(i64::try_from).transpose().map_err(|_| BadRow {
            id,
            problem: format!("size {:?} is beyond what the database stores", record.size),
        })?;
        Ok(Self {
            id,
            tenant_id: *record.tenant.as_uuid(),
            device_id: record.owner.device().map(|d| *d.as_uuid()),
            name: record.name.as_str().to_owned(),
            sha256: record.sha256.as_bytes().to_vec(),
            size,
            content_type: record.content_type.as_ref().map(|c| c.as_str().to_owned()),
            state: record.state.as_str().to_owned(),
            created_at: record.created_at,
            completed_at: record.completed_at,
        })
    }
}

impl TryFrom<FileRow> for FileRecord {
    type Error = BadRow;

    fn try_from(row: FileRow) -> Result<Self, BadRow> {
        let id = row.id;
        let bad = |problem: String| BadRow { id, problem };
        let sha256 = <[u8; 32]>::try_from(row.sha256.as_slice())
            .map_err(|_| bad(format!("sha256 has {} bytes, not 32", row.sha256.len())))?;
        let size = row
            .size
            .map(u64::try_from)
            .transpose()
            .map_err(|_| bad(format!("negative size {:?}", row.size)))?;
        let state = match row.state.as_str() {
            "pending" => FileState::Pending,
            "available" => FileState::Available,
            "deleted" => FileState::Deleted,
            other => return Err(bad(format!("unknown state {other:?}"))),
        };
        Ok(Self {
            id: FileId::from_uuid(row.id),
            tenant: TenantId::from_uuid(row.tenant_id),
            owner: row
                .device_id
                .map_or(Owner::Tenant, |d| Owner::Device(DeviceId::from_uuid(d))),
            // As stored: rows written before a naming rule was added must still read.
            name: FileName::from_stored(row.name).map_err(|e| bad(e.to_string()))?,
            sha256: Sha256::from_bytes(sha256),
            size,
            content_type: row
                .content_type
                .map(ContentType::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            state,
            created_at: row.created_at,
            completed_at: row.completed_at,
        })
    }
}

pub(super) fn to_record(op: &'static str, row: FileRow) -> Result<FileRecord, PortError> {
    FileRecord::try_from(row).map_err(|e| translate(op, e.into()))
}

pub(super) fn to_records(op: &'static str, rows: Vec<FileRow>) -> Result<Vec<FileRecord>, PortError> {
    rows.into_iter().map(|row| to_record(op, row)).collect()
}
