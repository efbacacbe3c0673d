//! Multipart uploads: starting one with its part plan, part tickets, which parts the store
//! holds, and completing (on the store, then on the record).

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::file::{FileRecord, FileState};
use crate::ids::{FileId, TenantId};
use crate::metrics::FileOperation;
use crate::multipart::{MAX_TICKETS_PER_CALL, MultipartUpload, PartPlan};
use crate::ports::{PartSpec, PresignedRequest, StoredPart};
use crate::principal::{Access, Principal, Scope, authorize};
use crate::values::Sha256;

use super::completion::{matches, no_such_upload};
use super::errors::{PartsError, UploadError, object_store};
use super::files_service::FilesService;
use super::requests::{UploadRequest, lifetime};

/// The part plan of an upload request: the part size and each part's SHA-256, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsRequest {
    /// The size of every part but the last.
    pub part_size: u64,
    /// One SHA-256 per part (`ceil(size / part_size)` of them).
    pub sha256: Vec<Sha256>,
}

/// A pre-signed PUT for one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTicket {
    /// The part's number, from 1.
    pub part_number: u16,
    /// What the caller sends to the store.
    pub request: PresignedRequest,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
    /// How long it lives from now.
    pub expires_in: Duration,
}

/// A multipart upload just started: the pending record, the first part tickets, and until when
/// the upload may be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartTicket {
    /// The pending file version, with its plan.
    pub record: FileRecord,
    /// The tickets of the first parts (at most [`MAX_TICKETS_PER_CALL`]).
    pub parts: Vec<PartTicket>,
    /// When the multipart upload expires.
    pub expires_at: OffsetDateTime,
    /// How long it lives from now.
    pub expires_in: Duration,
}

/// One planned part and whether the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartStatus {
    /// Its number, from 1.
    pub part_number: u16,
    /// Its planned length.
    pub size: u64,
    /// Its planned SHA-256.
    pub sha256: Sha256,
    /// True when the store holds it with that length and SHA-256.
    pub stored: bool,
}

/// One page of the planned parts of a multipart upload, with what the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsStatus {
    /// The size of every part but the last.
    pub part_size: u64,
    /// How many parts in all.
    pub part_count: u16,
    /// The parts of this page, by number.
    pub parts: Vec<PartStatus>,
    /// Where the next page starts: the `after` to ask for it (the last part number of this
    /// page); `None` when this page ends the plan.
    pub next: Option<u16>,
}

impl PartsStatus {
    /// The most parts one page holds (and the default): 1,000 parts are about 130 KB of JSON,
    /// where a plan of 10,000 would answer 1.3 MB to a request of a few hundred bytes.
    pub const MAX_PAGE: u16 = 1000;
}

impl FilesService {
    /// Records a pending version to be sent in parts, starts the multipart upload on the store
    /// and signs the first part URLs (at most [`MAX_TICKETS_PER_CALL`]).
    ///
    /// # Errors
    /// [`UploadError`]: forbidden, over the size limit, a plan that cannot work, unsignable, or
    /// the database or the object store is down.
    pub async fn request_multipart_upload(
        &self,
        principal: &Principal,
        scope: Scope,
        request: UploadRequest,
        parts: PartsRequest,
    ) -> Result<MultipartTicket, UploadError> {
        authorize(principal, scope, Access::Write)?;
        let policy = self.upload_policy(scope, &request).await?;
        let plan = PartPlan::new(request.size, parts.part_size, parts.sha256)?;
        plan.check_file_sha256(request.sha256)?;
        let part_lifetime = lifetime(request.expires_in, policy.upload_expiry, policy.max_upload_expiry)?;
        let now = self.clock.now();
        let expires_at = now + self.config.multipart_expiry;
        let count = plan.part_count();
        let mut record = self.pending_record(scope, request, now, expires_at);
        let key = record.object_key();
        let upload_id = self.objects.create_multipart(&key).await.map_err(object_store)?;
        record.multipart = Some(MultipartUpload {
            upload_id,
            plan,
            expires_at,
        });
        let first: Vec<u16> = (1..=count).take(MAX_TICKETS_PER_CALL).collect();
        let tickets = match self.sign_parts(&record, &first, part_lifetime, now) {
            Ok(tickets) => tickets,
            Err(error) => {
                self.abort(&record).await;
                return Err(error.into());
            }
        };
        if let Err(error) = self.admit(&record, &policy).await {
            self.abort(&record).await;
            return Err(error);
        }
        self.count(scope.tenant, scope.owner, FileOperation::UploadUrl);
        Ok(MultipartTicket {
            record,
            parts: tickets,
            expires_at,
            expires_in: self.config.multipart_expiry,
        })
    }

    /// Part URLs for some parts of a pending multipart upload (the rest of them, or again after
    /// a URL expired): at most [`MAX_TICKETS_PER_CALL`] at once.
    ///
    /// # Errors
    /// [`PartsError`]: forbidden, not found, not a multipart upload, completed, expired, part
    /// numbers out of range or too many, an `expires_in` out of range, or the database is down.
    pub async fn part_tickets(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: FileId,
        part_numbers: &[u64],
        expires_in: Option<Duration>,
    ) -> Result<Vec<PartTicket>, PartsError> {
        let record = self.find(principal, tenant, id, Access::Write).await?;
        let upload = Self::pending_upload(&record)?;
        let count = upload.plan.part_count();
        if part_numbers.is_empty() {
            return Err(PartsError::PartNumbers(
                "part_numbers must name at least one part".to_owned(),
            ));
        }
        if part_numbers.len() > MAX_TICKETS_PER_CALL {
            return Err(PartsError::PartNumbers(format!(
                "at most {MAX_TICKETS_PER_CALL} part numbers at once, not {}",
                part_numbers.len()
            )));
        }
        let numbers = part_numbers
            .iter()
            .map(|&n| {
                u16::try_from(n)
                    .ok()
                    .filter(|n| (1..=count).contains(n))
                    .ok_or_else(|| PartsError::PartNumbers(format!("part number {n} is not between 1 and {count}")))
            })
            .collect::<Result<Vec<u16>, _>>()?;
        let now = self.clock.now();
        if now >= upload.expires_at {
            return Err(PartsError::Expired);
        }
        let policy = self.policy(tenant).await?;
        let lifetime = lifetime(expires_in, policy.upload_expiry, policy.max_upload_expiry)?;
        let tickets = self.sign_parts(&record, &numbers, lifetime, now)?;
        self.count(tenant, record.owner, FileOperation::UploadUrl);
        Ok(tickets)
    }

    /// One page of the planned parts of a multipart upload (those numbered above `after`, at
    /// most `limit` of them, `limit` taken between 1 and [`PartsStatus::MAX_PAGE`]), and whether
    /// the store holds each (from the store's own list of parts), so a device that lost its
    /// connection sends only the rest.
    ///
    /// # Errors
    /// [`PartsError`]: forbidden, not found, not a multipart upload, expired, or the database
    /// or the object store is down.
    pub async fn stored_parts(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: FileId,
        after: u16,
        limit: u16,
    ) -> Result<PartsStatus, PartsError> {
        let record = self.find(principal, tenant, id, Access::Write).await?;
        let upload = Self::upload_of(&record)?;
        let size = record.size.unwrap_or_default();
        let count = upload.plan.part_count();
        let first = after.saturating_add(1);
        let last = after.saturating_add(limit.clamp(1, PartsStatus::MAX_PAGE)).min(count);
        // The store's parts of this page, by number. A completed upload holds every part.
        let stored: Option<BTreeMap<u16, StoredPart>> = if record.state == FileState::Available {
            None
        } else {
            let parts = self.objects.list_parts(&record.object_key(), &upload.upload_id).await;
            match parts {
                Ok(parts) => Some(
                    parts
                        .into_iter()
                        .filter(|p| (first..=last).contains(&p.part_number))
                        .map(|p| (p.part_number, p))
                        .collect(),
                ),
                Err(e) if no_such_upload(&e) => return Err(PartsError::Expired),
                Err(e) => return Err(object_store(e).into()),
            }
        };
        let parts = (first..=last)
            .zip(upload.plan.sha256s().iter().skip(usize::from(after)))
            .map(|(number, &sha256)| {
                let len = upload.plan.part_len(size, number);
                PartStatus {
                    part_number: number,
                    size: len,
                    sha256,
                    stored: stored
                        .as_ref()
                        .is_none_or(|stored| stored.get(&number).is_some_and(|p| matches(p, len, sha256))),
                }
            })
            .collect();
        Ok(PartsStatus {
            part_size: upload.plan.part_size(),
            part_count: count,
            parts,
            next: (last < count).then_some(last),
        })
    }

    /// A multipart record's upload (pending or completed), or why there is none.
    fn upload_of(record: &FileRecord) -> Result<&MultipartUpload, PartsError> {
        match (record.state, &record.multipart) {
            (FileState::Deleted, _) => Err(PartsError::NotFound),
            (_, None) => Err(PartsError::NotMultipart),
            (FileState::Expired, Some(_)) => Err(PartsError::Expired),
            (FileState::Pending | FileState::Available, Some(upload)) => Ok(upload),
        }
    }

    /// A pending multipart record's upload, or why there is none to send parts to.
    fn pending_upload(record: &FileRecord) -> Result<&MultipartUpload, PartsError> {
        let upload = Self::upload_of(record)?;
        if record.state == FileState::Available {
            return Err(PartsError::Completed);
        }
        Ok(upload)
    }

    fn sign_parts(
        &self,
        record: &FileRecord,
        numbers: &[u16],
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<PartTicket>, crate::ports::SignError> {
        let Some(upload) = &record.multipart else {
            return Ok(Vec::new());
        };
        let size = record.size.unwrap_or_default();
        numbers
            .iter()
            .filter_map(|&number| upload.plan.sha256(number).map(|sha256| (number, sha256)))
            .map(|(number, sha256)| {
                let request = self.signer.sign_part(&PartSpec {
                    key: record.object_key(),
                    upload_id: upload.upload_id.clone(),
                    part_number: number,
                    size: upload.plan.part_len(size, number),
                    sha256,
                    expires_in: lifetime,
                })?;
                Ok(PartTicket {
                    part_number: number,
                    request,
                    expires_at: now + lifetime,
                    expires_in: lifetime,
                })
            })
            .collect()
    }
}
