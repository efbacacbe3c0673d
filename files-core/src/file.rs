//! The file record and its states, and where its bytes live in the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{DeviceId, FileId, TenantId};
use crate::multipart::{Integrity, MultipartUpload};
use crate::principal::{Owner, Scope};
use crate::values::{ContentType, FileName, Sha256};

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// An upload URL was issued; the bytes have not been confirmed.
    Pending,
    /// The bytes are in the store and match the declared checksum.
    Available,
    /// Deleted: metadata kept only as a tombstone, never served.
    Deleted,
    /// Abandoned: the upload was not completed before its URL (or multipart upload) expired
    /// and the grace period passed; nothing of it is kept in the store.
    Expired,
}

impl FileState {
    /// The state's stable name, as stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Available => "available",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }

    /// How far along its life a record in this state is: pending 0, available or expired 1,
    /// deleted 2. A record only ever moves to a higher stage, so of two copies of one record
    /// the one with the higher stage is the newer; caches use it to refuse a fill that would
    /// move an entry backwards.
    #[must_use]
    pub const fn stage(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Available | Self::Expired => 1,
            Self::Deleted => 2,
        }
    }
}

/// One version of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The version's id; also the last segment of its object key.
    pub id: FileId,
    /// The tenant that owns it.
    pub tenant: TenantId,
    /// The root it lives in.
    pub owner: Owner,
    /// The caller's name for it.
    pub name: FileName,
    /// The SHA-256 the bytes must have.
    pub sha256: Sha256,
    /// The size: declared at upload request (optional), then the stored size once available.
    pub size: Option<u64>,
    /// The declared media type, if any.
    pub content_type: Option<ContentType>,
    /// Where it is in its life.
    pub state: FileState,
    /// When the upload URL was first issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it became available.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// The multipart upload, for a file sent in parts; `None` for a single PUT.
    #[serde(default)]
    pub multipart: Option<MultipartUpload>,
    /// Until when the upload URL (or the multipart upload) can put bytes in the store; `None`
    /// for a record of API 1.0, and once the janitor has swept a deleted record's object.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub upload_expires_at: Option<OffsetDateTime>,
}

impl FileRecord {
    /// The scope (tenant and root) the record lives in.
    #[must_use]
    pub const fn scope(&self) -> Scope {
        Scope {
            tenant: self.tenant,
            owner: self.owner,
        }
    }

    /// How the store vouches for its bytes: the whole object's SHA-256, or each part's.
    #[must_use]
    pub const fn integrity(&self) -> Integrity {
        if self.multipart.is_some() {
            Integrity::Parts
        } else {
            Integrity::Object
        }
    }

    /// The object key of its bytes in the bucket.
    #[must_use]
    pub fn object_key(&self) -> ObjectKey {
        ObjectKey {
            tenant: self.tenant,
            owner: self.owner,
            file: self.id,
        }
    }
}

/// `{tenant_id}/{device_id}/{file_id}` or `{tenant_id}/_tenant/{file_id}`: only UUIDs, so keys
/// spread across partitions and no caller-chosen text can escape its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The tenant segment.
    pub tenant: TenantId,
    /// The device segment, or `_tenant`.
    pub owner: Owner,
    /// The file segment.
    pub file: FileId,
}

/// The segment standing for the tenant root in object keys.
pub const TENANT_ROOT_SEGMENT: &str = "_tenant";

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            Owner::Device(d) => write!(f, "{}/{d}/{}", self.tenant, self.file),
            Owner::Tenant => write!(f, "{}/{TENANT_ROOT_SEGMENT}/{}", self.tenant, self.file),
        }
    }
}

/// A key that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object key {0:?} is not tenant/device-or-_tenant/file")]
pub struct ForeignKey(pub String);

impl FromStr for ObjectKey {
    type Err = ForeignKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let foreign = || ForeignKey(s.chars().take(200).collect());
        let mut parts = s.split('/');
        let (Some(tenant), Some(owner), Some(file), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(foreign());
        };
        let tenant: TenantId = tenant.parse().map_err(|_| foreign())?;
        let owner = if owner == TENANT_ROOT_SEGMENT {
            Owner::Tenant
        } else {
            Owner::Device(owner.parse::<DeviceId>().map_err(|_| foreign())?)
        };
        let file: FileId = file.parse().map_err(|_| foreign())?;
        let key = Self { tenant, owner, file };
        // Only the canonical spelling is ours (no upper case, no braces or URNs).
        if key.to_string() == s { Ok(key) } else { Err(foreign()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn object_keys_round_trip_and_refuse_foreign_shapes() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let device = DeviceId::from_uuid(Uuid::from_u128(2));
        let file = FileId::from_uuid(Uuid::from_u128(3));
        for owner in [Owner::Device(device), Owner::Tenant] {
            let key = ObjectKey { tenant, owner, file };
            assert_eq!(key.to_string().parse::<ObjectKey>(), Ok(key));
        }
        let good = ObjectKey {
            tenant,
            owner: Owner::Tenant,
            file,
        }
        .to_string();
        for bad in [
            "",
            "a/b/c",
            &format!("{good}/x"),
            &good.to_uppercase(),
            &good.replace("_tenant", "tenant"),
            &format!("/{good}"),
        ] {
            assert!(bad.parse::<ObjectKey>().is_err(), "{bad}");
        }
    }
}
