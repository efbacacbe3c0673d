//! The use cases, in one service over the ports: [`FilesService`], put together by
//! [`FilesService::builder`].

mod builder;
mod completion;
mod config;
mod errors;
mod files_service;
mod ingest;
mod janitor;
mod multipart;
mod rate;
mod requests;
mod tenancy;

use time::OffsetDateTime;
use uuid::Uuid;

pub use builder::{Ports, ServiceBuilder};
pub use config::{MAX_EXPIRY, ServiceConfig};
pub use errors::{
    CompleteError, Dependency, DependencyError, DownloadError, ExpiryOutOfRange, LookupError, Mismatch,
    PENDING_RETRY_AFTER, PartsError, QuotaExceeded, UploadError,
};
use errors::{database, object_store};
pub use files_service::FilesService;
pub use ingest::{IngestOutcome, Ingested, NotificationRecord, ObjectCreated, SkipReason};
pub use janitor::{Janitor, JanitorPass, JanitorSettings};
pub use multipart::{MultipartTicket, PartStatus, PartTicket, PartsRequest, PartsStatus};
pub use rate::RateLimited;
use requests::lifetime;
pub use requests::{DownloadRequest, DownloadTarget, Page, Ticket, UploadRequest};
pub use tenancy::{TenancyError, TenantUsageReport};

use crate::event::{Deletion, DeletionReason};
use crate::file::{FileRecord, FileState, ObjectKey};
use crate::ids::{FileId, TenantId};
use crate::metrics::{FileOperation, LimitRefusal, TokenOutcome};
use crate::multipart::MAX_PART_SIZE;
use crate::ports::{DownloadSpec, PortError, TokenError, UploadSpec};
use crate::principal::{Access, Forbidden, Principal, Scope, authorize};
use crate::tenancy::Policy;

impl FilesService {
    /// Starts building a service over `ports`; [`ServiceBuilder::build`] hands out the service
    /// and its outbox relay.
    pub fn builder(ports: Ports) -> ServiceBuilder {
        ServiceBuilder::new(ports)
    }

    /// The configuration in force.
    #[must_use]
    pub const fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The bucket URLs are signed for.
    #[must_use]
    pub fn bucket(&self) -> &str {
        self.signer.bucket()
    }

    /// The principal behind a bearer token.
    ///
    /// The outcome is counted ([`Metrics::token_verification`]).
    ///
    /// # Errors
    /// As [`TokenVerifier::verify`].
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        let result = self.tokens.verify(token).await;
        self.metrics.token_verification(match &result {
            Ok(_) => TokenOutcome::Verified,
            Err(TokenError::Invalid(reason)) => TokenOutcome::Invalid(*reason),
            Err(TokenError::Unavailable(_)) => TokenOutcome::Unavailable,
        });
        result
    }

    /// Counts a successful file operation.
    fn count(&self, tenant: TenantId, owner: crate::principal::Owner, operation: FileOperation) {
        self.metrics.file_operation(tenant, owner, operation);
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
        let database = self.metadata.get(nil_tenant, nil_file).await;
        let store = self.objects.inspect(&key).await;
        vec![
            (Dependency::Database, database.map(drop)),
            (Dependency::ObjectStore, store.map(drop)),
        ]
    }

    /// Records a pending version and signs its upload URL (one PUT of the whole file).
    ///
    /// # Errors
    /// [`UploadError`]: forbidden, over the size limit or one PUT's reach, unsignable, or the
    /// database is down.
    pub async fn request_upload(
        &self,
        principal: &Principal,
        scope: Scope,
        request: UploadRequest,
    ) -> Result<Ticket, UploadError> {
        authorize(principal, scope, Access::Write)?;
        let policy = self.upload_policy(scope, &request).await?;
        if request.size > MAX_PART_SIZE {
            return Err(UploadError::NeedsMultipart {
                size: request.size,
                max: MAX_PART_SIZE,
            });
        }
        let expires_in = lifetime(request.expires_in, policy.upload_expiry, policy.max_upload_expiry)?;
        let now = self.clock.now();
        let record = self.pending_record(scope, request, now, now + expires_in);
        let spec = UploadSpec {
            key: record.object_key(),
            sha256: record.sha256,
            size: record.size,
            content_type: record.content_type.clone(),
            expires_in,
        };
        // Sign first: a URL that cannot be signed must not leave a pending record behind.
        let request = self.signer.sign_upload(&spec)?;
        self.admit(&record, &policy).await?;
        self.count(scope.tenant, scope.owner, FileOperation::UploadUrl);
        Ok(Ticket {
            record,
            request,
            expires_at: now + expires_in,
            expires_in,
        })
    }

    /// The tenant's policy, once the upload was checked against its size and content-type
    /// rules (for every upload, single or in parts).
    async fn upload_policy(&self, scope: Scope, request: &UploadRequest) -> Result<Policy, UploadError> {
        let policy = self.policy(scope.tenant).await?;
        if request.size > policy.max_file_size {
            self.metrics.limit_refusal(scope.tenant, LimitRefusal::FileTooLarge);
            return Err(UploadError::TooLarge {
                size: request.size,
                max: policy.max_file_size,
            });
        }
        if !policy.admits_content_type(request.content_type.as_ref()) {
            self.metrics
                .limit_refusal(scope.tenant, LimitRefusal::ContentTypeNotAllowed);
            return Err(UploadError::ContentTypeNotAllowed {
                content_type: request.content_type.clone(),
            });
        }
        Ok(policy)
    }

    /// A new pending version from a validated request.
    fn pending_record(
        &self,
        scope: Scope,
        request: UploadRequest,
        now: OffsetDateTime,
        upload_expires_at: OffsetDateTime,
    ) -> FileRecord {
        FileRecord {
            id: FileId::new(),
            tenant: scope.tenant,
            owner: scope.owner,
            name: request.name,
            sha256: request.sha256,
            size: Some(request.size),
            content_type: request.content_type,
            state: FileState::Pending,
            created_at: now,
            completed_at: None,
            multipart: None,
            upload_expires_at: Some(upload_expires_at),
        }
    }

    /// Signs a download URL for the latest available version of a name, or for one version.
    ///
    /// # Errors
    /// [`DownloadError`]: forbidden, not found, not completed yet, an `expires_in` out of
    /// range, or the database is down.
    pub async fn request_download(
        &self,
        principal: &Principal,
        scope: Scope,
        request: impl Into<DownloadRequest>,
    ) -> Result<Ticket, DownloadError> {
        let request = request.into();
        authorize(principal, scope, Access::Read)?;
        let policy = self.policy(scope.tenant).await?;
        let expires_in = lifetime(request.expires_in, policy.download_expiry, policy.max_download_expiry)?;
        let metadata = &self.metadata;
        let record = match request.target {
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
                    FileState::Expired => return Err(DownloadError::Expired),
                    FileState::Deleted => return Err(DownloadError::NotFound),
                }
            }
        };
        let request = self.signer.sign_download(&DownloadSpec {
            key: record.object_key(),
            expires_in,
            content_disposition: request.attachment.then(|| crate::disposition::attachment(&record.name)),
        })?;
        let expires_at = self.clock.now() + expires_in;
        self.count(scope.tenant, scope.owner, FileOperation::DownloadUrl);
        self.count_download(principal);
        Ok(Ticket {
            record,
            request,
            expires_at,
            expires_in,
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
        self.count(scope.tenant, scope.owner, FileOperation::List);
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
        self.count(tenant, record.owner, FileOperation::Get);
        Ok(record)
    }

    /// Deletes a version: its metadata becomes a tombstone, then its object is deleted; returns
    /// the record as it was. Deleting again retries the object deletion and succeeds. Deleting
    /// an available version records its `file.deleted` event (reason `deleted`) in the outbox,
    /// with the tombstone: the relay publishes it.
    ///
    /// # Errors
    /// [`LookupError`]: forbidden, not found, or the database or the object store is down.
    pub async fn delete(&self, principal: &Principal, tenant: TenantId, id: FileId) -> Result<FileRecord, LookupError> {
        let record = self.find(principal, tenant, id, Access::Write).await?;
        if record.state != FileState::Deleted {
            // The store decides from the row it moves whether there is an event: this call's
            // copy of the record may be older than a concurrent `complete` or delete.
            let deletion = Deletion::new(DeletionReason::Deleted, self.clock.now(), self.bucket());
            self.metadata
                .mark_deleted(tenant, id, &deletion)
                .await
                .map_err(database)?;
        }
        self.clear_store(&record).await.map_err(object_store)?;
        self.count(tenant, record.owner, FileOperation::Delete);
        Ok(record)
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
        if principal.tenant() != Some(tenant) {
            return Err(Forbidden {
                scope: tenant_scope,
                access,
            }
            .into());
        }
        let record = self
            .metadata
            .get(tenant, id)
            .await
            .map_err(database)?
            .ok_or(LookupError::NotFound)?;
        authorize(principal, record.scope(), access)?;
        Ok(record)
    }
}
