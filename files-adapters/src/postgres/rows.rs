//! The tables, and the rows of `files` ([`FileRow`]) with their conversions to and from
//! [`FileRecord`], which refuse what does not fit rather than panic.

use diesel::{Insertable, Queryable, Selectable};
use files_core::{
    ContentType, DeviceId, FileId, FileName, FileRecord, FileState, MultipartUpload, Owner, PartPlan, PortError,
    Sha256, TenantId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::errors::{BadRow, translate};

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
            upload_id -> Nullable<Text>,
            part_size -> Nullable<Int8>,
            part_sha256 -> Nullable<Bytea>,
            multipart_expires_at -> Nullable<Timestamptz>,
            upload_expires_at -> Nullable<Timestamptz>,
            janitor_leased_until -> Nullable<Timestamptz>,
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

/// `None` is inserted as `NULL`, not as `DEFAULT` (no column of `files` has a default): diesel
/// writes a different statement for each pattern of `DEFAULT`s and will not cache any of them,
/// which costs every insert a `Parse` round trip and a plan. With `NULL` there is one statement,
/// prepared once per connection.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
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
    pub(super) upload_id: Option<String>,
    pub(super) part_size: Option<i64>,
    /// Each part's SHA-256, 32 bytes each, in part order.
    pub(super) part_sha256: Option<Vec<u8>>,
    pub(super) multipart_expires_at: Option<OffsetDateTime>,
    pub(super) upload_expires_at: Option<OffsetDateTime>,
}

/// A new record and its quotas (tenant bytes, tenant files, device pending uploads, device
/// bytes per day; `None`: none), as `files_admit` takes them: one admission under quotas
/// (the statement in `tenancy.rs`).
#[derive(Debug, Clone)]
pub(super) struct Admit {
    pub(super) row: FileRow,
    pub(super) quotas: [Option<i64>; 4],
}

impl FileRow {
    pub(super) fn from_record(record: &FileRecord) -> Result<Self, BadRow> {
        let id = *record.id.as_uuid();
        let size = record.size.map(i64::try_from).transpose().map_err(|_| BadRow {
            id,
            problem: format!("size {:?} is beyond what the database stores", record.size),
        })?;
        let multipart = record.multipart.as_ref();
        let part_size = multipart
            .map(|m| i64::try_from(m.plan.part_size()))
            .transpose()
            .map_err(|_| BadRow {
                id,
                problem: "part size is beyond what the database stores".to_owned(),
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
            upload_id: multipart.map(|m| m.upload_id.clone()),
            part_size,
            part_sha256: multipart.map(|m| m.plan.sha256s().iter().flat_map(|d| *d.as_bytes()).collect()),
            multipart_expires_at: multipart.map(|m| m.expires_at),
            upload_expires_at: record.upload_expires_at,
        })
    }
}

/// The multipart columns, all present or all absent.
fn multipart(row: &FileRow, bad: impl Fn(String) -> BadRow) -> Result<Option<MultipartUpload>, BadRow> {
    let (upload_id, part_size, part_sha256, expires_at) = match (
        &row.upload_id,
        row.part_size,
        &row.part_sha256,
        row.multipart_expires_at,
    ) {
        (None, None, None, None) => return Ok(None),
        (Some(upload_id), Some(part_size), Some(part_sha256), Some(expires_at)) => {
            (upload_id, part_size, part_sha256, expires_at)
        }
        _ => return Err(bad("multipart columns only partly set".to_owned())),
    };
    let part_size = u64::try_from(part_size).map_err(|_| bad(format!("negative part size {part_size}")))?;
    if part_sha256.is_empty() || part_sha256.len() % 32 != 0 {
        return Err(bad(format!("part_sha256 has {} bytes", part_sha256.len())));
    }
    let digests = part_sha256
        .chunks_exact(32)
        .map(|chunk| <[u8; 32]>::try_from(chunk).map(Sha256::from_bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("part_sha256 is not whole digests".to_owned()))?;
    Ok(Some(MultipartUpload {
        upload_id: upload_id.clone(),
        plan: PartPlan::from_stored(part_size, digests),
        expires_at,
    }))
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
            "expired" => FileState::Expired,
            other => return Err(bad(format!("unknown state {other:?}"))),
        };
        let multipart = multipart(&row, bad)?;
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
            multipart,
            upload_expires_at: row.upload_expires_at,
        })
    }
}

pub(super) fn to_record(op: &'static str, row: FileRow) -> Result<FileRecord, PortError> {
    FileRecord::try_from(row).map_err(|e| translate(op, e.into()))
}

pub(super) fn to_records(op: &'static str, rows: Vec<FileRow>) -> Result<Vec<FileRecord>, PortError> {
    rows.into_iter().map(|row| to_record(op, row)).collect()
}
