//! Store notifications: an object was created; if it is a pending upload of ours, it is
//! completed the same way as [`FilesService::complete`].

use crate::file::{FileRecord, FileState, ObjectKey};
use crate::ids::FileId;
use crate::service::errors::{CompleteError, DependencyError, Mismatch, database, object_store};
use crate::service::{FilesService, Finished};

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
        match self {
            Self::Completed(_) => "completed",
            Self::AlreadyAvailable(_) => "duplicate",
            Self::Skipped(reason) => reason.label(),
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
        match self {
            Self::ForeignBucket => "foreign_bucket",
            Self::ForeignKey => "foreign_key",
            Self::UnknownFile => "unknown_file",
            Self::Mismatch => "mismatch",
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
        self.metrics.storage_event(outcome.label());
        Ok(outcome)
    }

    async fn ingest_uncounted(&self, created: &ObjectCreated) -> Result<IngestOutcome, DependencyError> {
        if created.bucket != self.bucket() {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignBucket));
        }
        let Ok(key) = created.key.parse::<ObjectKey>() else {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignKey));
        };
        let record = self.metadata.get(key.tenant, key.file).await.map_err(database)?;
        let live =
            |r: &FileRecord| r.object_key() == key && !matches!(r.state, FileState::Deleted | FileState::Expired);
        let Some(record) = record.filter(live) else {
            // No live record points to this object (never recorded, deleted or expired; a late
            // PUT through a URL still valid): nothing may stay in the store without one.
            self.objects.delete(&key).await.map_err(object_store)?;
            tracing::info!(tenant_id = %key.tenant, file_id = %key.file, "object without a live record deleted");
            self.metrics.janitor_action("orphan_deleted", 1);
            return Ok(IngestOutcome::Skipped(SkipReason::UnknownFile));
        };
        if record.state == FileState::Available {
            return Ok(IngestOutcome::AlreadyAvailable(record.id));
        }
        // A notification that reports another size than declared completes nothing; if the
        // stored object really has another size, it is deleted (`finish` checks the object
        // itself in every other case).
        if let (Some(reported), Some(declared)) = (created.size, record.size)
            && reported != declared
        {
            let stored = self.objects.inspect(&key).await.map_err(object_store)?;
            if let Some(info) = stored
                && info.size != declared
            {
                let mismatch = Mismatch::Size {
                    declared,
                    stored: info.size,
                };
                self.discard_object(&record, mismatch).await;
            }
            return Ok(IngestOutcome::Skipped(SkipReason::Mismatch));
        }
        match self.finish(record).await {
            Ok(Finished::Completed(record)) => Ok(IngestOutcome::Completed(record.id)),
            Ok(Finished::AlreadyAvailable(record)) => Ok(IngestOutcome::AlreadyAvailable(record.id)),
            Err(CompleteError::Dependency(e)) => Err(e),
            Err(CompleteError::NotFound) => Ok(IngestOutcome::Skipped(SkipReason::UnknownFile)),
            Err(
                CompleteError::NotUploaded
                | CompleteError::Mismatch(_)
                | CompleteError::PartsMissing(_)
                | CompleteError::UploadExpired
                | CompleteError::Forbidden(_),
            ) => Ok(IngestOutcome::Skipped(SkipReason::Mismatch)),
        }
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
                    self.metrics.storage_event("ignored");
                    false
                }
                NotificationRecord::Malformed(why) => {
                    tracing::warn!(why, "malformed storage event record");
                    self.metrics.storage_event("malformed");
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
