//! The `file.deleted` event, and the [`Deletion`] a metadata store turns into one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::UploadedFile;
use crate::file::{FileRecord, FileState};

/// The `event_type` of [`FileDeleted`].
pub const FILE_DELETED: &str = "file.deleted";

/// Why an available file was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionReason {
    /// A caller deleted it (`DELETE /v1/tenants/{tenant_id}/files/{file_id}`, or
    /// [`FilesService::delete`](crate::FilesService::delete)).
    Deleted,
    /// Its tenant's retention period ran out and the janitor deleted it.
    Retention,
}

impl DeletionReason {
    /// The reason's name, as in the event.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Retention => "retention",
        }
    }
}

/// One available file that was deleted: consumers that indexed it can drop it. Same envelope
/// and same `file` object as [`FileUploaded`](super::FileUploaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDeleted {
    /// Unique per event; consumers de-duplicate by it (delivery is at-least-once).
    pub event_id: Uuid,
    /// Always `file.deleted`.
    pub event_type: String,
    /// Version of this body's schema; 1.
    pub schema_version: u32,
    /// When the file was deleted.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Why.
    pub reason: DeletionReason,
    /// The file as it was while available.
    pub file: UploadedFile,
}

impl FileDeleted {
    /// The current schema version.
    pub const SCHEMA_VERSION: u32 = 1;

    /// `file.deleted.{tenant_id}.{device_id}`, or `file.deleted.{tenant_id}.tenant`.
    #[must_use]
    pub fn routing_key(&self) -> String {
        self.file.routing_key(FILE_DELETED)
    }
}

/// A deletion as its caller asks for it: what a metadata store records, in the transaction
/// that deletes the file, when the file it deletes was available
/// ([`MetadataStore::mark_deleted`](crate::MetadataStore::mark_deleted)). The store builds the
/// event from the row it moved ([`Deletion::event_for`]), not from a copy read earlier: of two
/// concurrent deletions only the one that saw the file available records an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The id of the event, if one is recorded.
    pub event_id: Uuid,
    /// Why the file is deleted.
    pub reason: DeletionReason,
    /// When.
    pub at: OffsetDateTime,
    /// The bucket holding the file's bytes (the event's `file.bucket`).
    pub bucket: String,
}

impl Deletion {
    /// A deletion at `at`, with a new event id.
    #[must_use]
    pub fn new(reason: DeletionReason, at: OffsetDateTime, bucket: &str) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            reason,
            at,
            bucket: bucket.to_owned(),
        }
    }

    /// The `file.deleted` event of deleting `before` (the record as it was before this
    /// deletion moved it): `Some` only when it was available. Its `file.size` is the stored
    /// size.
    #[must_use]
    pub fn event_for(&self, before: &FileRecord) -> Option<FileDeleted> {
        (before.state == FileState::Available).then(|| FileDeleted {
            event_id: self.event_id,
            event_type: FILE_DELETED.to_owned(),
            schema_version: FileDeleted::SCHEMA_VERSION,
            occurred_at: self.at,
            reason: self.reason,
            // An available record always has its stored size (`mark_available` sets it).
            file: UploadedFile::new(before, before.size.unwrap_or_default(), &self.bucket),
        })
    }
}
