//! The use cases, in one service over the ports.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::FileUploaded;
use crate::file::{FileRecord, FileState, ObjectKey};
use crate::ids::{FileId, TenantId};
use crate::ports::{
    Clock, MetadataStore, ObjectStore, PortError, PresignedRequest, SignError, TokenError, TokenVerifier, UploadSpec,
    UrlSigner,
};
use crate::principal::{Access, Forbidden, Principal, Scope, authorize};
use crate::values::{ContentType, FileName, Sha256};

/// S3's longest pre-signed URL lifetime.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Limits and lifetimes of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// How long an upload URL is valid (default 15 minutes, at most 7 days).
    pub upload_expiry: Duration,
    /// How long a download URL is valid (default 5 minutes, at most 7 days).
    pub download_expiry: Duration,
    /// The largest declared upload size accepted, in bytes.
    pub max_upload_size: u64,
    /// The largest page a listing returns.
    pub max_page_size: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            upload_expiry: Duration::from_secs(15 * 60),
            download_expiry: Duration::from_secs(5 * 60),
            max_upload_size: 5 * 1024 * 1024 * 1024,
            max_page_size: 1000,
        }
    }
}

/// Which dependency failed, for a 503 that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The metadata store.
    Database,
    /// The object store.
    ObjectStore,
    /// The token key set.
    KeySet,
}

impl Dependency {
    /// The name shown to callers and operators.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::ObjectStore => "object store",
            Self::KeySet => "token key set",
        }
    }
}

/// A dependency failed; the caller may retry later.
#[derive(Debug, thiserror::Error)]
#[error("{} unavailable", dependency.name())]
pub struct Unavailable {
    /// Which one.
    pub dependency: Dependency,
    /// Why, for the logs.
    #[source]
    pub source: PortError,
}

fn database(source: PortError) -> Unavailable {
    Unavailable {
        dependency: Dependency::Database,
        source,
    }
}

fn object_store(source: PortError) -> Unavailable {
    Unavailable {
        dependency: Dependency::ObjectStore,
        source,
    }
}

/// An upload request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// The caller's name for the file.
    pub name: FileName,
    /// The SHA-256 the bytes will have.
    pub sha256: Sha256,
    /// The exact size, when the caller declares it.
    pub size: Option<u64>,
    /// The media type, when the caller declares it.
    pub content_type: Option<ContentType>,
}

/// A pre-signed request plus the record it is for and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The file version.
    pub record: FileRecord,
    /// What the caller sends to the store.
    pub request: PresignedRequest,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
}

/// Which version to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTarget {
    /// The latest available version of a name.
    Name(FileName),
    /// One version.
    Id(FileId),
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Newest first.
    pub files: Vec<FileRecord>,
    /// Pass as `before` to get the next page; `None` on the last one.
    pub next: Option<FileId>,
}

/// Why an upload URL was not issued.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The principal may not write there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The declared size is over the limit.
    #[error("size {size} is over the limit of {max} bytes")]
    TooLarge {
        /// Declared.
        size: u64,
        /// Allowed.
        max: u64,
    },
    /// The URL could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a download URL was not issued.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The principal may not read there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file in that scope.
    #[error("file not found")]
    NotFound,
    /// The version (or every version of the name) is still waiting for its upload.
    #[error("upload not completed yet")]
    NotCompleted,
    /// The URL could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a lookup, listing or deletion failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The principal may not do that there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why an upload could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The principal may not write there.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// The store has no object for it yet.
    #[error("the object has not been uploaded")]
    NotUploaded,
    /// The stored object is not what was declared.
    #[error("the stored object does not match: {0}")]
    Mismatch(Mismatch),
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// How a stored object differs from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Another length than declared.
    #[error("size {stored} differs from the declared {declared}")]
    Size {
        /// Declared.
        declared: u64,
        /// Stored.
        stored: u64,
    },
    /// Another SHA-256 than declared, or the store did not report one.
    #[error("sha256 differs from the declared one or was not verified by the store")]
    Sha256,
}

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

/// The ports the service runs on.
#[derive(Clone)]
pub struct Ports {
    /// Checks bearer tokens.
    pub tokens: Arc<dyn TokenVerifier>,
    /// File metadata (usually a [`crate::cached::WriteThrough`]).
    pub metadata: Arc<dyn MetadataStore>,
    /// Signs URLs.
    pub signer: Arc<dyn UrlSigner>,
    /// Inspects and deletes objects.
    pub objects: Arc<dyn ObjectStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// The Files service: every use case, over its ports.
#[derive(Debug, Clone)]
pub struct FilesService {
    ports: Ports,
    config: ServiceConfig,
}

impl FilesService {
    /// A service over `ports` with `config`.
    #[must_use]
    pub fn new(ports: Ports, config: ServiceConfig) -> Self {
        Self { ports, config }
    }

    /// The configuration in force.
    #[must_use]
    pub const fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The bucket URLs are signed for.
    #[must_use]
    pub fn bucket(&self) -> &str {
        self.ports.signer.bucket()
    }

    /// The principal behind a bearer token.
    ///
    /// # Errors
    /// As [`TokenVerifier::verify`].
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        self.ports.tokens.verify(token).await
    }

    /// Asks each dependency a cheap question, for readiness: the database (a lookup of a nil
    /// id) and the object store (an inspection of a key that does not exist).
    pub async fn readiness(&self) -> Vec<(Dependency, Result<(), PortError>)> {
        let nil_tenant = TenantId::from_uuid(Uuid::nil());
        let nil_file = FileId::from_uuid(Uuid::nil());
        let key = ObjectKey {
            tenant: nil_tenant,
            owner: crate::principal::Owner::Tenant,
            file: nil_file,
        };
        let database = self.ports.metadata.get(nil_tenant, nil_file).await;
        let store = self.ports.objects.inspect(&key).await;
        vec![
            (Dependency::Database, database.map(drop)),
            (Dependency::ObjectStore, store.map(drop)),
        ]
    }

    /// Records a pending version and signs its upload URL.
    ///
    /// # Errors
    /// [`UploadError`]: forbidden, over the size limit, unsignable, or the database is down.
    pub async fn request_upload(
        &self,
        principal: &Principal,
        scope: Scope,
        request: UploadRequest,
    ) -> Result<Ticket, UploadError> {
        authorize(principal, scope, Access::Write)?;
        if let Some(size) = request.size
            && size > self.config.max_upload_size
        {
            return Err(UploadError::TooLarge {
                size,
                max: self.config.max_upload_size,
            });
        }
        let now = self.ports.clock.now();
        let record = FileRecord {
            id: FileId::new(),
            tenant: scope.tenant,
            owner: scope.owner,
            name: request.name,
            sha256: request.sha256,
            size: request.size,
            content_type: request.content_type,
            state: FileState::Pending,
            created_at: now,
            completed_at: None,
        };
        let spec = UploadSpec {
            key: record.object_key(),
            sha256: record.sha256,
            size: record.size,
            content_type: record.content_type.clone(),
            expires_in: self.config.upload_expiry,
        };
        // Sign first: a URL that cannot be signed must not leave a pending record behind.
        let request = self.ports.signer.sign_upload(&spec)?;
        self.ports.metadata.insert(&record).await.map_err(database)?;
        Ok(Ticket {
            record,
            request,
            expires_at: now + self.config.upload_expiry,
        })
    }

    /// Signs a download URL for the latest available version of a name, or for one version.
    ///
    /// # Errors
    /// [`DownloadError`]: forbidden, not found, not completed yet, or the database is down.
    pub async fn request_download(
        &self,
        principal: &Principal,
        scope: Scope,
        target: DownloadTarget,
    ) -> Result<Ticket, DownloadError> {
        authorize(principal, scope, Access::Read)?;
        let metadata = &self.ports.metadata;
        let record = match target {
            DownloadTarget::Name(name) => {
                match metadata
                    .latest(scope, &name, FileState::Available)
                    .await
                    .map_err(database)?
                {
                    Some(record) => record,
                    None => {
                        let pending = metadata
                            .latest(scope, &name, FileState::Pending)
                            .await
                            .map_err(database)?;
                        return Err(if pending.is_some() {
                            DownloadError::NotCompleted
                        } else {
                            DownloadError::NotFound
                        });
                    }
                }
            }
            DownloadTarget::Id(id) => {
                let record = metadata
                    .get(scope.tenant, id)
                    .await
                    .map_err(database)?
                    .filter(|r| r.scope() == scope)
                    .ok_or(DownloadError::NotFound)?;
                match record.state {
                    FileState::Available => record,
                    FileState::Pending => return Err(DownloadError::NotCompleted),
                    FileState::Deleted => return Err(DownloadError::NotFound),
                }
            }
        };
        let request = self
            .ports
            .signer
            .sign_download(&record.object_key(), self.config.download_expiry)?;
        let expires_at = self.ports.clock.now() + self.config.download_expiry;
        Ok(Ticket {
            record,
            request,
            expires_at,
        })
    }

    /// Available files of a scope, newest first, a page at a time.
    ///
    /// # Errors
    /// [`LookupError`]: forbidden, or the database is down.
    pub async fn list(
        &self,
        principal: &Principal,
        scope: Scope,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Page, LookupError> {
        authorize(principal, scope, Access::Read)?;
        let limit = limit.clamp(1, self.config.max_page_size);
        // One more than asked tells whether there is a next page.
        let mut files = self
            .ports
            .metadata
            .list(scope, FileState::Available, before, limit + 1)
            .await
            .map_err(database)?;
        let next = if files.len() > limit {
            files.truncate(limit);
            files.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Page { files, next })
    }

    /// One file's metadata, wherever it lives in the tenant.
    ///
    /// # Errors
    /// [`LookupError`]: forbidden, not found (deleted counts as not found), or the database is down.
    pub async fn get(&self, principal: &Principal, tenant: TenantId, id: FileId) -> Result<FileRecord, LookupError> {
        let record = self.find(principal, tenant, id, Access::Read).await?;
        if record.state == FileState::Deleted {
            return Err(LookupError::NotFound);
        }
        Ok(record)
    }

    /// Deletes a version: its metadata becomes a tombstone, then its object is deleted; returns
    /// the record as it was. Deleting again retries the object deletion and succeeds.
    ///
    /// # Errors
    /// [`LookupError`]: forbidden, not found, or the database or the object store is down.
    pub async fn delete(&self, principal: &Principal, tenant: TenantId, id: FileId) -> Result<FileRecord, LookupError> {
        let record = self.find(principal, tenant, id, Access::Write).await?;
        if record.state != FileState::Deleted {
            self.ports.metadata.mark_deleted(tenant, id).await.map_err(database)?;
        }
        self.ports
            .objects
            .delete(&record.object_key())
            .await
            .map_err(object_store)?;
        Ok(record)
    }

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
                LookupError::Unavailable(u) => CompleteError::Unavailable(u),
            })?;
        self.finish(record).await
    }

    /// A store notification that an object was created: the same checks as [`Self::complete`].
    /// Anything that does not concern a pending file of ours is skipped, never an error.
    ///
    /// # Errors
    /// [`Unavailable`] when the database or the object store is down (the store may retry).
    pub async fn ingest(&self, created: &ObjectCreated) -> Result<IngestOutcome, Unavailable> {
        if created.bucket != self.bucket() {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignBucket));
        }
        let Ok(key) = created.key.parse::<ObjectKey>() else {
            return Ok(IngestOutcome::Skipped(SkipReason::ForeignKey));
        };
        let record = self.ports.metadata.get(key.tenant, key.file).await.map_err(database)?;
        let Some(record) = record.filter(|r| r.object_key() == key) else {
            return Ok(IngestOutcome::Skipped(SkipReason::UnknownFile));
        };
        if record.state == FileState::Available {
            return Ok(IngestOutcome::AlreadyAvailable(record.id));
        }
        if let (Some(reported), Some(declared)) = (created.size, record.size)
            && reported != declared
        {
            return Ok(IngestOutcome::Skipped(SkipReason::Mismatch));
        }
        match self.finish(record).await {
            Ok(record) => Ok(IngestOutcome::Completed(record.id)),
            Err(CompleteError::Unavailable(u)) => Err(u),
            Err(CompleteError::NotFound) => Ok(IngestOutcome::Skipped(SkipReason::UnknownFile)),
            Err(CompleteError::NotUploaded | CompleteError::Mismatch(_) | CompleteError::Forbidden(_)) => {
                Ok(IngestOutcome::Skipped(SkipReason::Mismatch))
            }
        }
    }

    /// Loads a record of the tenant and checks the principal's access to where it lives.
    async fn find(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: FileId,
        access: Access,
    ) -> Result<FileRecord, LookupError> {
        // Another tenant is refused before anything is looked up: no existence leaks across tenants.
        let tenant_scope = Scope {
            tenant,
            owner: crate::principal::Owner::Tenant,
        };
        if principal.tenant() != tenant {
            return Err(Forbidden {
                scope: tenant_scope,
                access,
            }
            .into());
        }
        let record = self
            .ports
            .metadata
            .get(tenant, id)
            .await
            .map_err(database)?
            .ok_or(LookupError::NotFound)?;
        authorize(principal, record.scope(), access)?;
        Ok(record)
    }

    /// The one path by which a pending file becomes available.
    async fn finish(&self, record: FileRecord) -> Result<FileRecord, CompleteError> {
        match record.state {
            FileState::Available => return Ok(record),
            FileState::Deleted => return Err(CompleteError::NotFound),
            FileState::Pending => {}
        }
        let info = self
            .ports
            .objects
            .inspect(&record.object_key())
            .await
            .map_err(object_store)?
            .ok_or(CompleteError::NotUploaded)?;
        if let Some(declared) = record.size
            && declared != info.size
        {
            return Err(CompleteError::Mismatch(Mismatch::Size {
                declared,
                stored: info.size,
            }));
        }
        if info.sha256 != Some(record.sha256) {
            return Err(CompleteError::Mismatch(Mismatch::Sha256));
        }
        let now = self.ports.clock.now();
        // The event goes into the outbox in the same transaction that makes the file available;
        // the relay publishes it (see `crate::relay`).
        let event = FileUploaded::new(Uuid::new_v4(), &record, info.size, self.bucket(), now);
        let metadata = &self.ports.metadata;
        let Some(available) = metadata
            .mark_available(record.tenant, record.id, info.size, now, &event)
            .await
            .map_err(database)?
        else {
            // Someone else completed (or deleted) it in the meantime.
            return match metadata.get(record.tenant, record.id).await.map_err(database)? {
                Some(current) if current.state == FileState::Available => Ok(current),
                _ => Err(CompleteError::NotFound),
            };
        };
        Ok(available)
    }
}
