//! The events that consumers read from RabbitMQ: `file.uploaded` ([`FileUploaded`]) and
//! `file.deleted` ([`FileDeleted`]), one envelope and one `file` object ([`UploadedFile`]).
//! [`FileEvent`] is either, as the outbox keeps them and the relay publishes them.
//!
//! Rust consumers deserialize into these types; their JSON is the brief's format.

mod deleted;
mod uploaded;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

pub use deleted::{Deletion, DeletionReason, FILE_DELETED, FileDeleted};
pub use uploaded::{FILE_UPLOADED, FileUploaded, PartsSummary, UploadedFile};

/// An event of either type. Its JSON is the event's own: `event_type` tells which, so a
/// `file.uploaded` body written before `file.deleted` existed reads as
/// [`FileEvent::Uploaded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// `file.uploaded`.
    Uploaded(FileUploaded),
    /// `file.deleted`.
    Deleted(FileDeleted),
}

impl FileEvent {
    /// Unique per event: consumers de-duplicate by it; the message's `message_id`.
    #[must_use]
    pub const fn event_id(&self) -> Uuid {
        match self {
            Self::Uploaded(event) => event.event_id,
            Self::Deleted(event) => event.event_id,
        }
    }

    /// `file.uploaded` or `file.deleted`.
    #[must_use]
    pub fn event_type(&self) -> &str {
        match self {
            Self::Uploaded(event) => &event.event_type,
            Self::Deleted(event) => &event.event_type,
        }
    }

    /// When the file became available, or was deleted.
    #[must_use]
    pub const fn occurred_at(&self) -> OffsetDateTime {
        match self {
            Self::Uploaded(event) => event.occurred_at,
            Self::Deleted(event) => event.occurred_at,
        }
    }

    /// The file the event is about.
    #[must_use]
    pub const fn file(&self) -> &UploadedFile {
        match self {
            Self::Uploaded(event) => &event.file,
            Self::Deleted(event) => &event.file,
        }
    }

    /// `{event_type}.{tenant_id}.{device_id}`, or `{event_type}.{tenant_id}.tenant` for a
    /// tenant-root file.
    #[must_use]
    pub fn routing_key(&self) -> String {
        match self {
            Self::Uploaded(event) => event.routing_key(),
            Self::Deleted(event) => event.routing_key(),
        }
    }
}

impl From<FileUploaded> for FileEvent {
    fn from(event: FileUploaded) -> Self {
        Self::Uploaded(event)
    }
}

impl From<FileDeleted> for FileEvent {
    fn from(event: FileDeleted) -> Self {
        Self::Deleted(event)
    }
}

impl Serialize for FileEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Uploaded(event) => event.serialize(serializer),
            Self::Deleted(event) => event.serialize(serializer),
        }
    }
}

/// Every field of either event: read once, then sorted out by `event_type` (serde's tagged
/// enums would take `event_type` away from the event's own field).
#[derive(Deserialize)]
struct AnyEvent {
    event_id: Uuid,
    event_type: String,
    schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    #[serde(default)]
    reason: Option<DeletionReason>,
    file: UploadedFile,
}

impl<'de> Deserialize<'de> for FileEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let any = AnyEvent::deserialize(deserializer)?;
        match any.event_type.as_str() {
            FILE_UPLOADED => Ok(Self::Uploaded(FileUploaded {
                event_id: any.event_id,
                event_type: any.event_type,
                schema_version: any.schema_version,
                occurred_at: any.occurred_at,
                file: any.file,
            })),
            FILE_DELETED => {
                let reason = any.reason.ok_or_else(|| D::Error::missing_field("reason"))?;
                Ok(Self::Deleted(FileDeleted {
                    event_id: any.event_id,
                    event_type: any.event_type,
                    schema_version: any.schema_version,
                    occurred_at: any.occurred_at,
                    reason,
                    file: any.file,
                }))
            }
            other => Err(D::Error::unknown_variant(other, &[FILE_UPLOADED, FILE_DELETED])),
        }
    }
}

#[cfg(test)]
mod tests;
