//! Store notifications: an object was created. Records of another bucket or of keys not ours
//! are skipped here; the object itself is settled by the completion module (its pending upload
//! completed the same way as [`FilesService::complete`], or the object deleted when no live
//! record points to it), and every record is counted by outcome.

use super::errors::DependencyError;
use super::files_service::FilesService;
use crate::file::ObjectKey;
use crate::ids::FileId;
use crate::metrics::StorageEventOutcome;

/// A store notification that an object was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    /// The bucket it was created in.
    pub bucket: String,
    /// Its key, decoded.
    pub key: String,
    /// The size the store reports, when it does.
    pub size: Option<u64>,
}

/// What came of a store notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The file became available now (an event was published).
    Completed(FileId),
    /// The file was available already: a duplicate notification.
    AlreadyAvailable(FileId),
    /// Nothing to do, and why (counted, logged, never an error to the store).
    Skipped(SkipReason),
}

impl IngestOutcome {
    /// A stable label for metrics and logs.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        self.counted_as().label()
    }

    /// How it is counted ([`crate::Metrics::storage_event`]).
    #[must_use]
    pub const fn counted_as(&self) -> StorageEventOutcome {
        match self {
            Self::Completed(_) => StorageEventOutcome::Completed,
            Self::AlreadyAvailable(_) => StorageEventOutcome::Duplicate,
            Self::Skipped(reason) => reason.counted_as(),
        }
    }
}

/// Why a notification changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Another bucket than ours.
    ForeignBucket,
    /// A key that is not `tenant/owner/file`.
    ForeignKey,
    /// No record for that key (or deleted).
    UnknownFile,
    /// The object is missing, or its size or checksum differ from the record.
    Mismatch,
}

impl SkipReason {
    /// A stable label for metrics and logs.
    #[must_use]
    pub const fn label(self) -> &'static str {
        self.counted_as().label()
    }

    /// How it is counted ([`crate::Metrics::storage_event`]).
    #[must_use]
    pub const fn counted_as(self) -> StorageEventOutcome {
        match self {
            Self::ForeignBucket => StorageEventOutcome::ForeignBucket,
            Self::ForeignKey => StorageEventOutcome::ForeignKey,
            Self::UnknownFile => StorageEventOutcome::UnknownFile,
            Self::Mismatch => StorageEventOutcome::Mismatch,
        }
    }
}

/// What one record of a bucket notification is, once parsed (the parsing of S3's and MinIO's
/// JSON lives in `files-adapters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationRecord {
    /// An object was created.
    Created(ObjectCreated),
    /// Another kind of event (removal, replication, ...): nothing to do.
    Ignored,
    /// Not a record of the expected shape, and why.
    Malformed(&'static str),
}

/// How many records of a notification completed a file, and how many were skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Files that became available.
    pub completed: u32,
    /// Records that changed nothing (duplicates, foreign or malformed records, other events).
    pub skipped: u32,
}

impl FilesService {
    /// A store notification that an object was created: the same checks as [`Self::complete`].
    /// Anything that does not concern a pending file of ours is skipped, never an error.
    ///
    /// The outcome is counted ([`crate::Metrics::storage_event`]).
    ///
    /// # Errors
    /// [`DependencyError`] when the database or the object store fails (the store may retry).
    pub async fn ingest(&self, created: &ObjectCreated) -> Result<IngestOutcome, DependencyError> {
        let outcome = self.ingest_uncounted(created).await?;
        self.metrics.storage_event(outcome.counted_as());
        Ok(outcome)
    }

    async fn ingest_uncounted(&self, created: &ObjectCreated) -> Result<IngestOutcome, DependencyError> {
        if created.bucket != self.bucket() {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignBucket));
        }
        let Ok(key) = created.key.parse::<ObjectKey>() else {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignKey));
        };
        self.settle_object(key, created.size).await
    }

    /// Every record of one notification (from the webhook or a queue), one by one, each counted
    /// by outcome; a malformed or foreign record is skipped and counted, never an error.
    ///
    /// # Errors
    /// [`DependencyError`] when a dependency fails: the store (or the queue) should deliver
    /// again.
    pub async fn ingest_records(&self, records: Vec<NotificationRecord>) -> Result<Ingested, DependencyError> {
        let mut ingested = Ingested::default();
        for record in records {
            let completed = match record {
                NotificationRecord::Created(created) => {
                    let outcome = self.ingest(&created).await?;
                    if let IngestOutcome::Skipped(reason) = outcome {
                        // `?`: the key is the notifier's text, escaped whatever the log format.
                        tracing::info!(reason = reason.label(), key = ?created.key, "storage event skipped");
                    }
                    matches!(outcome, IngestOutcome::Completed(_))
                }
                NotificationRecord::Ignored => {
                    self.metrics.storage_event(StorageEventOutcome::Ignored);
                    false
                }
                NotificationRecord::Malformed(why) => {
                    tracing::warn!(why, "malformed storage event record");
                    self.metrics.storage_event(StorageEventOutcome::Malformed);
                    false
                }
            };
            if completed {
                ingested.completed += 1;
            } else {
                ingested.skipped += 1;
            }
        }
        Ok(ingested)
    }
}
