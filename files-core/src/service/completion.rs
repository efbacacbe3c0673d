//! Completion: every way an upload becomes available, expired or cleared from the store.
//!
//! A pending version becomes available through one path, `finish`: the object is checked
//! against the record (`check_object`, or `complete_on_store` for an upload in parts), then one
//! conditional change ([`crate::MetadataStore::mark_available`]) makes it available and records
//! its event in the same transaction, so a file gets exactly one event. `finish` is reached from
//! a device's [`FilesService::complete`], from a store notification (`settle_object`, behind
//! [`FilesService::ingest`]) and from the janitor ([`super::Janitor`]). What an upload leaves
//! in the store is cleared by `clear_store` (a delete, the janitor's expiry and sweep) and
//! `discard_object` (an object that can never complete its version).
//!
//! # State first, store second
//!
//! Several actors may move one record at once: a device's `complete` or `delete`, a store
//! notification, the janitor of any instance. Each decides by winning a conditional change of
//! the record in the database, and only then changes the store; a copy read before that may be
//! stale, and nothing is decided on it. Path by path:
//!
//! - Completing (`complete`, `ingest`, the janitor): the object is only read (its HEAD, the
//!   list of parts) before `mark_available`. Completing a multipart upload on the store
//!   assembles the declared parts and decides nothing: of several callers the store answers
//!   one and tells the others it no longer knows the upload, and they check the object. A
//!   caller that loses `mark_available` reads the record from the store, not the cache, to say
//!   what it became.
//! - Deleting (`delete`): the record is marked deleted first, then its multipart upload is
//!   aborted and its object deleted. A completion racing it either assembled the object before
//!   the clean-up, which then deletes it, or finds the upload aborted.
//! - Expiring (the janitor): the record leaves `pending` (`mark_expired`) before the store is
//!   cleared; a device completing in between either won, and the file stays, or is told the
//!   upload expired, and what its completion assembled is deleted by the clean-up.
//! - Sweeping (the janitor) and deleting an object no live record points to (a notification)
//!   follow reads that cannot be stale: deleted and expired are final states (a cached copy
//!   never moves backwards), and "no such record" comes from the store, where a version is
//!   recorded before its URL is signed.
//! - Discarding an object that can never complete its version (another size than declared,
//!   over the limit, other parts than declared) is the one change of the store made while the
//!   record stays pending, and it is safe: the key belongs to that version alone; a single
//!   PUT's URL is signed for the declared length and checksum, so the only object it can write
//!   meanwhile is the declared one, which its device can send again while the URL lives (the
//!   record is still pending); a multipart upload, once assembled, is not assembled again.

use uuid::Uuid;

use crate::event::FileUploaded;
use crate::file::{FileRecord, FileState, ObjectKey};
use crate::ids::{FileId, TenantId};
use crate::metrics::{FileOperation, JanitorAction};
use crate::multipart::MultipartUpload;
use crate::ports::{CompletedMultipart, NoSuchUpload, PortError, StoredPart};
use crate::principal::{Access, Principal};
use crate::values::Sha256;

use super::errors::{CompleteError, DependencyError, LookupError, Mismatch, database, object_store};
use super::files_service::FilesService;
use super::ingest::{IngestOutcome, SkipReason};

/// What [`FilesService::finish`] did with a file.
#[derive(Debug)]
pub(super) enum Finished {
    /// This call made it available (its event is in the outbox).
    Completed(FileRecord),
    /// It was available already: another call completed it.
    AlreadyAvailable(FileRecord),
}

impl Finished {
    pub(super) fn into_record(self) -> FileRecord {
        match self {
            Self::Completed(record) | Self::AlreadyAvailable(record) => record,
        }
    }
}

/// Whether `error` says the store does not know the multipart upload ([`NoSuchUpload`]).
pub(super) fn no_such_upload(error: &PortError) -> bool {
    let (PortError::Failed(cause) | PortError::Unavailable(cause)) = error;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
    while let Some(error) = source {
        if error.is::<NoSuchUpload>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether a stored part is the planned one: its length, and its SHA-256 when the store
/// reports one (the part URL was signed with it, so the store has checked it).
pub(super) fn matches(stored: &StoredPart, size: u64, sha256: Sha256) -> bool {
    stored.size == size && stored.sha256.is_none_or(|s| s == sha256)
}

impl FilesService {
    /// The caller says its upload is done: checks the object in the store, marks the file
    /// available and publishes the event. Idempotent.
    ///
    /// # Errors
    /// [`CompleteError`]: forbidden, not found, not uploaded yet, another object than declared,
    /// or the database or the object store is down.
    pub async fn complete(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: FileId,
    ) -> Result<FileRecord, CompleteError> {
        let record = self
            .find(principal, tenant, id, Access::Write)
            .await
            .map_err(|e| match e {
                LookupError::Forbidden(f) => CompleteError::Forbidden(f),
                LookupError::NotFound => CompleteError::NotFound,
                LookupError::Dependency(e) => CompleteError::Dependency(e),
            })?;
        let record = self.finish(record).await?.into_record();
        self.count(tenant, record.owner, FileOperation::Complete);
        Ok(record)
    }

    /// Leaves nothing of a record's upload in the store: aborts its multipart upload, if one
    /// may be in progress (no part may stay behind, nor be completed into an object later), and
    /// deletes its object.
    ///
    /// An upload the store no longer knows (aborted before, or completed into an object by a
    /// call that lost the race to change the record) is not an error: its object, if any, is
    /// deleted all the same.
    pub(super) async fn clear_store(&self, record: &FileRecord) -> Result<(), PortError> {
        if record.state != FileState::Available
            && let Some(upload) = &record.multipart
            && let Err(error) = self
                .objects
                .abort_multipart(&record.object_key(), &upload.upload_id)
                .await
            && !no_such_upload(&error)
        {
            return Err(error);
        }
        self.objects.delete(&record.object_key()).await
    }

    /// Deletes an object that can never complete its file (another size than declared, or over
    /// the limit); a failure only leaves it for a later attempt.
    async fn discard_object(&self, record: &FileRecord, why: Mismatch) {
        let key = record.object_key();
        match self.objects.delete(&key).await {
            Ok(()) => tracing::warn!(
                tenant_id = %record.tenant, device_id = ?record.owner.device(), file_id = %record.id,
                %why, "stored object refused and deleted"
            ),
            Err(error) => tracing::warn!(
                tenant_id = %record.tenant, file_id = %record.id, %why,
                error = %crate::ports::error_chain(&error), "stored object refused; deleting it failed"
            ),
        }
    }

    /// The one path by which a pending file becomes available.
    pub(super) async fn finish(&self, record: FileRecord) -> Result<Finished, CompleteError> {
        match record.state {
            FileState::Available => return Ok(Finished::AlreadyAvailable(record)),
            FileState::Deleted => return Err(CompleteError::NotFound),
            FileState::Expired => return Err(CompleteError::UploadExpired),
            FileState::Pending => {}
        }
        let size = match &record.multipart {
            Some(upload) => self.complete_on_store(&record, upload).await?,
            None => self.check_object(&record).await?,
        };
        let now = self.clock.now();
        // The event goes into the outbox in the same transaction that makes the file available;
        // the relay publishes it (see `crate::relay`).
        let event = FileUploaded::new(Uuid::new_v4(), &record, size, self.bucket(), now);
        let metadata = &self.metadata;
        let Some(available) = metadata
            .mark_available(record.tenant, record.id, size, now, &event)
            .await
            .map_err(database)?
        else {
            // Another call moved it first (completed, expired or deleted it). What it became is
            // read from the store: the cache may still hold the pending copy this call started
            // from.
            let current = self.records.get(record.tenant, record.id).await.map_err(database)?;
            return match current.map(|current| (current.state, current)) {
                Some((FileState::Available, current)) => Ok(Finished::AlreadyAvailable(current)),
                Some((FileState::Expired, _)) => Err(CompleteError::UploadExpired),
                Some((FileState::Pending | FileState::Deleted, _)) | None => Err(CompleteError::NotFound),
            };
        };
        Ok(Finished::Completed(available))
    }

    /// Checks a single PUT's object against its record; answers its size.
    async fn check_object(&self, record: &FileRecord) -> Result<u64, CompleteError> {
        let info = self
            .objects
            .inspect(&record.object_key())
            .await
            .map_err(object_store)?
            .ok_or(CompleteError::NotUploaded)?;
        let max = self.config.max_upload_size;
        let wrong_size = match record.size {
            Some(declared) if declared != info.size => Some(Mismatch::Size {
                declared,
                stored: info.size,
            }),
            _ if info.size > max => Some(Mismatch::OverLimit { stored: info.size, max }),
            _ => None,
        };
        if let Some(mismatch) = wrong_size {
            self.discard_object(record, mismatch).await;
            return Err(CompleteError::Mismatch(mismatch));
        }
        if info.sha256 != Some(record.sha256) {
            return Err(CompleteError::Mismatch(Mismatch::Sha256));
        }
        Ok(info.size)
    }

    /// Aborts a record's multipart upload, if it has one; a failure is logged and left for a
    /// later attempt (a delete again, or the janitor).
    pub(super) async fn abort(&self, record: &FileRecord) {
        let Some(upload) = &record.multipart else { return };
        if let Err(error) = self
            .objects
            .abort_multipart(&record.object_key(), &upload.upload_id)
            .await
        {
            tracing::warn!(
                tenant_id = %record.tenant, device_id = ?record.owner.device(), file_id = %record.id,
                error = %crate::ports::error_chain(&error), "aborting the multipart upload failed"
            );
        }
    }

    /// Completes a pending multipart upload on the store: lists the parts, checks each against
    /// the plan, completes with their checksums and checks the result; answers the object's
    /// size. When the store no longer knows the upload (completed by a concurrent call, or
    /// before a crash), the object itself is checked.
    async fn complete_on_store(&self, record: &FileRecord, upload: &MultipartUpload) -> Result<u64, CompleteError> {
        let key = record.object_key();
        let declared = record.size.unwrap_or_default();
        let expected = upload.plan.sha256_of_parts();
        let completed = match self.objects.list_parts(&key, &upload.upload_id).await {
            Ok(stored) => {
                let mut parts = Vec::with_capacity(usize::from(upload.plan.part_count()));
                let mut missing = Vec::new();
                for (number, &sha256) in (1..=upload.plan.part_count()).zip(upload.plan.sha256s()) {
                    let len = upload.plan.part_len(declared, number);
                    match stored
                        .iter()
                        .find(|p| p.part_number == number && matches(p, len, sha256))
                    {
                        Some(part) => parts.push(StoredPart {
                            sha256: Some(sha256),
                            ..part.clone()
                        }),
                        None => missing.push(number),
                    }
                }
                if !missing.is_empty() {
                    return Err(CompleteError::PartsMissing(missing));
                }
                match self.objects.complete_multipart(&key, &upload.upload_id, &parts).await {
                    Ok(completed) => Some(completed),
                    Err(e) if no_such_upload(&e) => None,
                    Err(e) => return Err(object_store(e).into()),
                }
            }
            Err(e) if no_such_upload(&e) => None,
            Err(e) => return Err(object_store(e).into()),
        };
        // The store no longer knows the upload, or did not say the size: the object says.
        let (composite_sha256, size) = match completed {
            Some(CompletedMultipart {
                composite_sha256,
                size: Some(size),
            }) => (composite_sha256, size),
            completed => {
                let info = self
                    .objects
                    .inspect(&key)
                    .await
                    .map_err(object_store)?
                    .ok_or(CompleteError::UploadExpired)?;
                let composite = completed.and_then(|c| c.composite_sha256).or(info.sha256_of_parts);
                (composite, info.size)
            }
        };
        if size != declared {
            let mismatch = Mismatch::Size { declared, stored: size };
            self.discard_object(record, mismatch).await;
            return Err(CompleteError::Mismatch(mismatch));
        }
        match composite_sha256 {
            Some(composite) if composite == expected => Ok(size),
            Some(_) => {
                // Not the declared parts: the object can never complete this file.
                self.discard_object(record, Mismatch::Parts).await;
                Err(CompleteError::Mismatch(Mismatch::Parts))
            }
            // A store that reports no composite cannot vouch for the parts.
            None => Err(CompleteError::Mismatch(Mismatch::Parts)),
        }
    }

    /// The store holds an object at `key` (a notification said so, with the size it reported):
    /// it completes its pending file as [`Self::complete`] does, or, when no live record points
    /// to it, it is deleted.
    ///
    /// The deletion of an object without a live record follows a read that cannot be stale:
    /// deleted and expired are final states, and "no such record" comes from the store itself
    /// (a version is recorded before its URL is signed, so before any object can exist).
    pub(super) async fn settle_object(
        &self,
        key: ObjectKey,
        reported_size: Option<u64>,
    ) -> Result<IngestOutcome, DependencyError> {
        let record = self.metadata.get(key.tenant, key.file).await.map_err(database)?;
        let live =
            |r: &FileRecord| r.object_key() == key && !matches!(r.state, FileState::Deleted | FileState::Expired);
        let Some(record) = record.filter(live) else {
            // No live record points to this object (never recorded, deleted or expired; a late
            // PUT through a URL still valid): nothing may stay in the store without one.
            self.objects.delete(&key).await.map_err(object_store)?;
            tracing::info!(tenant_id = %key.tenant, file_id = %key.file, "object without a live record deleted");
            self.metrics.janitor_action(JanitorAction::OrphanDeleted, 1);
            return Ok(IngestOutcome::Skipped(SkipReason::UnknownFile));
        };
        if record.state == FileState::Available {
            return Ok(IngestOutcome::AlreadyAvailable(record.id));
        }
        // A notification that reports another size than declared completes nothing; if the
        // stored object really has another size, it is deleted (`finish` checks the object
        // itself in every other case).
        if let (Some(reported), Some(declared)) = (reported_size, record.size)
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
}
