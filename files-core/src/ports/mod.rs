//! The ports: one small trait per capability the use cases need.
//!
//! Adapters in `files-adapters` implement them against real technologies; `files-testkit` has
//! in-memory fakes that pass the same contract suites. No driver type appears here.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::FileUploaded;
use crate::file::{FileRecord, FileState, ObjectKey};
use crate::ids::{FileId, TenantId};
use crate::principal::{Principal, Scope};
use crate::values::{ContentType, FileName, Sha256};

mod housekeeping;
mod tenancy;

pub use housekeeping::{Housekeeping, JanitorStore};
pub use tenancy::{
    Admission, DailyUsage, DeviceUsage, DownloadCount, Limits, QuotaRefusal, SettingsStore, StoredSettings,
    TenantUsage, UsageStore,
};

/// The cause of a port failure, kept for logs (never shown to callers).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its sources, `: `-separated, for logs.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a token was refused. Never carries the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not a JWS compact token, or its header or claims are not JSON of the expected shape.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not one we accept, or does not match the key's type.
    #[error("algorithm not accepted for this key")]
    Algorithm,
    /// No key with the token's `kid` (or no `kid` and no single key to try).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    Audience,
    /// A required claim is missing or of the wrong type.
    #[error("missing or invalid claim {0}")]
    Claim(&'static str),
    /// Neither a device (`device_id`) nor a tenant service (`files:admin` scope).
    #[error("token names neither a device nor a tenant service")]
    NotAPrincipal,
}

impl InvalidToken {
    /// A stable label for metrics and logs.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Claim(_) => "claim",
            Self::NotAPrincipal => "not_a_principal",
        }
    }
}

/// A token verification that did not produce a principal.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not acceptable (401).
    #[error(transparent)]
    Invalid(#[from] InvalidToken),
    /// No keys could be had to check it with (503).
    #[error("signing keys unavailable")]
    Unavailable(#[source] BoxError),
}

/// Checks bearer tokens against the DSTS keys.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The principal a token stands for.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for any token that is not acceptable (bad signature, wrong
    /// algorithm for the key, wrong `iss`/`aud`, expired, not yet valid, missing claims);
    /// [`TokenError::Unavailable`] when no key set has ever been obtained.
    async fn verify(&self, token: &str) -> Result<Principal, TokenError>;
}

/// A failure of a dependency behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The dependency cannot be reached or did not answer in time; retrying later may work.
    #[error("unavailable")]
    Unavailable(#[source] BoxError),
    /// The dependency answered with something unexpected.
    #[error("failed")]
    Failed(#[source] BoxError),
}

impl PortError {
    /// Wraps a cause as [`PortError::Unavailable`].
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// Wraps a cause as [`PortError::Failed`].
    pub fn failed(cause: impl Into<BoxError>) -> Self {
        Self::Failed(cause.into())
    }
}

/// The metadata of files: the source of truth.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Records a new version.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the database cannot be reached; [`PortError::Failed`]
    /// when it refuses the record (for example an id that already exists).
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError>;

    /// One version by id, in any state, or `None`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError>;

    /// The newest version (highest id) of `name` in `scope` that is in `state`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError>;

    /// Up to `limit` versions in `scope` in `state`, newest (highest id) first, with ids below
    /// `before` when it is given.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError>;

    /// Moves a pending version to available with its stored size and, in the same
    /// transaction, records `event` in the outbox (see [`Outbox`]); returns the updated record,
    /// or `None` when it was not pending (already available, deleted, or absent) — then no event
    /// is recorded. Exactly one of several concurrent callers gets `Some`, so a file gets exactly
    /// one event.
    ///
    /// # Errors
    /// [`PortError`] when the database fails; then neither change happened.
    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError>;

    /// Marks a version deleted (a tombstone that is never served); returns the updated record,
    /// or `None` when there is no such version.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn mark_deleted(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError>;

    /// Moves a pending version to expired (an abandoned upload); returns the updated record, or
    /// `None` when it was not pending. The default refuses: a store without a janitor need not
    /// implement it.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let _ = (tenant, id);
        Err(PortError::failed("this metadata store has no janitor support"))
    }
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The event to publish.
    pub event: FileUploaded,
    /// When it was recorded.
    pub recorded_at: OffsetDateTime,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Events not yet published.
    pub depth: u64,
    /// When the oldest of them was recorded.
    pub oldest: Option<OffsetDateTime>,
}

/// The transactional outbox: events recorded by [`MetadataStore::mark_available`], waiting to
/// be published. Safe with several relays on one store: a claimed event is not handed to
/// another claimer until its lease runs out or it is released or marked sent.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` unsent events whose lease is free, oldest first, for `lease`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError>;

    /// Marks events published; they are never handed out again.
    ///
    /// # Errors
    /// [`PortError`] when the database fails (the events will be published again: at least once).
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError>;

    /// Gives claimed events back before their lease runs out (after a failed publish).
    ///
    /// # Errors
    /// [`PortError`] when the database fails (the lease then runs out by itself).
    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError>;

    /// How many events wait, and since when.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn stats(&self) -> Result<OutboxStats, PortError>;
}

/// A metadata store whose outbox lives in the same database (so that marking a file available
/// and recording its event are one transaction).
pub trait TransactionalStore: MetadataStore + Outbox {}

impl<T: MetadataStore + Outbox> TransactionalStore for T {}

/// A cache in front of the metadata store. Every failure is survivable: callers fall back to
/// the store.
#[async_trait]
pub trait Cache: Send + Sync {
    /// A cached record.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails or holds something unreadable.
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError>;

    /// Stores a record, or replaces the cached copy unless that copy is newer: one at a later
    /// [`FileState::stage`](crate::file::FileState::stage) (an entry never moves backwards).
    /// The check and the write are one atomic step, so a fill from a read that raced with a
    /// change on another instance cannot overwrite the changed entry.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError>;

    /// The cached id of the latest available version of a name.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError>;

    /// Caches the id of the latest available version of a name.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails.
    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError>;

    /// Forgets the latest version of a name; forgetting an absent one succeeds.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails; the entry may then still be there.
    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError>;

    /// Forgets a record; forgetting an absent one succeeds.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails; the record may then still be cached.
    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError>;

    /// Forgets every entry of this cache: on a store shared with others (one Redis, several key
    /// prefixes), every entry of its own and nothing of theirs. Bounded in time like every call;
    /// a cache too large to clear in time fails.
    ///
    /// # Errors
    /// [`PortError`] when the cache fails or does not finish in time; some entries may then be
    /// left.
    async fn clear(&self) -> Result<(), PortError>;
}

/// What an upload URL must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    /// Where the bytes go.
    pub key: ObjectKey,
    /// Signed as `x-amz-checksum-sha256`: the store refuses other bytes.
    pub sha256: Sha256,
    /// Signed as `content-length` when given (the service always gives it).
    pub size: Option<u64>,
    /// Signed as `content-type` when given.
    pub content_type: Option<ContentType>,
    /// How long the URL is valid.
    pub expires_in: Duration,
}

/// What a download URL must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSpec {
    /// What to read.
    pub key: ObjectKey,
    /// How long the URL is valid.
    pub expires_in: Duration,
    /// Signed as `response-content-disposition`, when given: the store answers with this
    /// `Content-Disposition` (browsers then save the file under its name).
    pub content_disposition: Option<String>,
}

/// What a part upload URL of a multipart upload must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// The object the multipart upload will make.
    pub key: ObjectKey,
    /// The upload id [`ObjectStore::create_multipart`] gave.
    pub upload_id: String,
    /// The part's number, from 1 (S3 allows up to 10 000).
    pub part_number: u16,
    /// Signed as `content-length`: the store refuses a part of another length.
    pub size: u64,
    /// Signed as `x-amz-checksum-sha256`: the store refuses other bytes for this part.
    pub sha256: Sha256,
    /// How long the URL is valid.
    pub expires_in: Duration,
}

/// A pre-signed request: the caller sends `method` to `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// `PUT` or `GET`.
    pub method: &'static str,
    /// The full URL with its signature.
    pub url: String,
    /// Every header the caller must send, lower-case names.
    pub headers: BTreeMap<String, String>,
}

/// A URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign URL: {0}")]
pub struct SignError(pub String);

/// Signs URLs for the object store. Pure computation: no network call.
pub trait UrlSigner: Send + Sync {
    /// The bucket URLs are signed for.
    fn bucket(&self) -> &str;

    /// A PUT URL signed for the key, checksum, and the size and content type when given.
    ///
    /// # Errors
    /// [`SignError`] when the spec cannot be expressed (for example an expiry over 7 days).
    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError>;

    /// A GET URL for the key (with a `response-content-disposition` when the spec has one).
    ///
    /// # Errors
    /// [`SignError`] when the expiry cannot be expressed.
    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError>;

    /// A PUT URL for one part of a multipart upload (`partNumber` and `uploadId` in the query),
    /// signed for the part's `content-length` and `x-amz-checksum-sha256`.
    ///
    /// The default refuses: a signer for a store without multipart uploads need not implement
    /// it.
    ///
    /// # Errors
    /// [`SignError`] when the spec cannot be expressed (a part number of 0, an expiry over 7
    /// days), or when the signer does not support multipart uploads.
    fn sign_part(&self, spec: &PartSpec) -> Result<PresignedRequest, SignError> {
        Err(SignError(format!(
            "multipart uploads are not supported (part {} of {})",
            spec.part_number, spec.key
        )))
    }
}

/// What the store says of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 the store verified on upload, when it reports one (a single PUT).
    pub sha256: Option<Sha256>,
    /// The composite checksum of a multipart object, `base64(sha256(d1‖…‖dN))-N`, when the
    /// store reports one.
    pub sha256_of_parts: Option<String>,
}

/// A part of a multipart upload, as the store holds it (or as it is to be completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Its number, from 1.
    pub part_number: u16,
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 the store verified for it, when it reports one.
    pub sha256: Option<Sha256>,
    /// Its entity tag as the store gave it (quotes included), to be sent back on completion.
    pub etag: String,
}

/// What the store says of a completed multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedMultipart {
    /// The composite checksum, `base64(sha256(d1‖d2‖…))-N` where `dᵢ` is the SHA-256 of part
    /// `i` and `N` the number of parts, when the store reports one.
    pub composite_sha256: Option<String>,
    /// The object's length in bytes, when the store reports it.
    pub size: Option<u64>,
}

/// The cause of a multipart call the store or adapter does not support (the default bodies of
/// [`ObjectStore`]'s multipart methods).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("multipart uploads are not supported by this object store")]
pub struct MultipartUnsupported;

/// The cause of a [`PortError::Failed`] from [`ObjectStore::list_parts`] or
/// [`ObjectStore::complete_multipart`] when the store knows no such upload (never created,
/// completed, or aborted). Find it with `error.source()` and `downcast_ref`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no multipart upload {upload_id}")]
pub struct NoSuchUpload {
    /// The upload id asked for.
    pub upload_id: String,
}

/// The object store's calls that the service makes itself: inspecting and deleting objects,
/// and driving multipart uploads (whose parts devices send to URLs from
/// [`UrlSigner::sign_part`]).
///
/// The multipart methods have default bodies that fail with [`PortError::Failed`] caused by
/// [`MultipartUnsupported`], so a store without multipart uploads implements only
/// [`ObjectStore::inspect`] and [`ObjectStore::delete`].
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's size and stored SHA-256, or `None` when there is no such object.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached; [`PortError::Failed`] when it
    /// answers with an error.
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError>;

    /// Deletes the object; deleting an absent object succeeds.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`].
    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError>;

    /// Starts a multipart upload of `key` whose parts carry SHA-256 checksums (S3
    /// `CreateMultipartUpload` with `x-amz-checksum-algorithm: SHA256`); returns its upload id.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`]; [`PortError::Failed`] caused by
    /// [`MultipartUnsupported`] by default.
    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        let _ = key;
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Every part the store holds for the upload (all pages), by part number.
    ///
    /// # Errors
    /// [`PortError::Failed`] caused by [`NoSuchUpload`] when the store knows no such upload
    /// (a store that cannot tell may answer an empty list instead); otherwise as for
    /// [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        let _ = (key, upload_id);
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Completes the upload from `parts` (in part-number order, each with the ETag and, when it
    /// has one, the SHA-256 the store reported), making the object; returns what the store
    /// says of it.
    ///
    /// # Errors
    /// [`PortError::Failed`] caused by [`NoSuchUpload`] when the store knows no such upload;
    /// [`PortError::Failed`] when the store refuses the parts (a missing part, a wrong ETag or
    /// checksum, a part other than the last under 5 MiB); otherwise as for
    /// [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        let _ = (key, upload_id, parts);
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Aborts the upload and frees its parts; aborting an unknown (or already aborted or
    /// completed) upload succeeds.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        let _ = (key, upload_id);
        Err(PortError::failed(MultipartUnsupported))
    }
}

/// Tells interested services that an upload landed.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes one event.
    ///
    /// # Errors
    /// [`PortError`] when the event could not be handed over.
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError>;
}

/// The time, so tests can move it; background loops wait through it too.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;

    /// Waits `duration` (by default on the tokio timer; a test clock may return at once).
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
