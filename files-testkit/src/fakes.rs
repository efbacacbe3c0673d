//! In-memory fakes of every port, each with a [`Switch`] that makes it fail.
//!
//! The metadata store and cache fakes are the embedded default's memory adapters behind a
//! switch, so they pass the same contract as what the embedded default runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use files_adapters::memory::{MemoryCache, MemoryMetadataStore};
use files_core::{
    Cache, CacheOutcome, Clock, CompletedMultipart, DownloadSpec, FileId, FileName, FileOperation, FileRecord,
    FileState, FileUploaded, Housekeeping, JanitorAction, MetadataStore, NoSuchUpload, Notifier, ObjectInfo, ObjectKey,
    ObjectStore, Outbox, OutboxEntry, OutboxStats, Owner, PartSpec, PortError, PresignedRequest, Principal, Scope,
    Sha256, SignError, StorageEventOutcome, StoredPart, TenantId, TokenError, TokenOutcome, TokenVerifier, UploadSpec,
    UrlSigner,
};
use sha2::Digest as _;
use time::OffsetDateTime;
use uuid::Uuid;

/// Makes a fake fail while it is on. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Switch(Arc<AtomicU8>);

const WORKS: u8 = 0;
const UNAVAILABLE: u8 = 1;
const FAILED: u8 = 2;

impl Switch {
    /// Every call fails with [`PortError::Unavailable`] from now on (the dependency is down).
    pub fn fail(&self) {
        self.0.store(UNAVAILABLE, Ordering::SeqCst);
    }

    /// Every call fails with [`PortError::Failed`] from now on (the dependency answers wrongly).
    pub fn answer_wrongly(&self) {
        self.0.store(FAILED, Ordering::SeqCst);
    }

    /// Calls succeed again.
    pub fn recover(&self) {
        self.0.store(WORKS, Ordering::SeqCst);
    }

    /// Fails the call when the switch is on.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] or [`PortError::Failed`] while on.
    pub fn check(&self) -> Result<(), PortError> {
        match self.0.load(Ordering::SeqCst) {
            UNAVAILABLE => Err(PortError::unavailable("switched off by the test")),
            FAILED => Err(PortError::failed("made to answer wrongly by the test")),
            _ => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The metadata store fake.
#[derive(Debug, Default)]
pub struct FakeMetadataStore {
    inner: MemoryMetadataStore,
    /// Fails every call while on.
    pub switch: Switch,
    gets: AtomicUsize,
}

impl FakeMetadataStore {
    /// How many times [`MetadataStore::get`] was called.
    #[must_use]
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl MetadataStore for FakeMetadataStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.insert(record).await
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.switch.check()?;
        self.inner.get(tenant, id).await
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.latest(scope, name, state).await
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.list(scope, state, before, limit).await
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_available(tenant, id, size, at, event).await
    }

    async fn mark_deleted(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_deleted(tenant, id).await
    }

    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.mark_expired(tenant, id).await
    }
}

#[async_trait]
impl Housekeeping for FakeMetadataStore {
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.claim_stale(cutoff, limit, lease).await
    }

    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.mark_swept(tenant, id).await
    }

    async fn count_pending(&self) -> Result<u64, PortError> {
        self.switch.check()?;
        self.inner.count_pending().await
    }

    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError> {
        self.switch.check()?;
        self.inner.prune_sent(before, limit).await
    }
}

#[async_trait]
impl Outbox for FakeMetadataStore {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError> {
        self.switch.check()?;
        self.inner.claim(limit, lease).await
    }

    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.mark_sent(event_ids).await
    }

    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.release(event_ids).await
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        self.switch.check()?;
        self.inner.stats().await
    }
}

/// The cache fake.
#[derive(Debug, Default)]
pub struct FakeCache {
    inner: MemoryCache,
    /// Fails every call while on.
    pub switch: Switch,
}

#[async_trait]
impl Cache for FakeCache {
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.switch.check()?;
        self.inner.get_file(tenant, id).await
    }

    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.put_file(record).await
    }

    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError> {
        self.switch.check()?;
        self.inner.get_latest(scope, name).await
    }

    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.put_latest(scope, name, id).await
    }

    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.remove_latest(scope, name).await
    }

    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.remove_file(tenant, id).await
    }

    async fn clear(&self) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.clear().await
    }
}

/// An object as the fake store keeps it.
#[derive(Debug, Clone)]
struct FakeObject {
    info: ObjectInfo,
    /// The bytes, when it was uploaded through [`FakeObjectStore::receive_put`] (not when a test
    /// planted only its description with [`FakeObjectStore::put`]).
    bytes: Option<Vec<u8>>,
}

/// A multipart upload in progress in the fake store.
#[derive(Debug, Clone)]
struct FakeUpload {
    key: String,
    /// The verified parts by number: bytes and SHA-256.
    parts: BTreeMap<u16, (Vec<u8>, Sha256)>,
}

/// What a query value of the fake's URLs escapes: all but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// S3's smallest part but the last.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The fake's ETag of a part.
fn part_etag(sha256: &Sha256) -> String {
    format!("\"{}\"", sha256.to_hex())
}

/// Why the fake store refused a request sent to one of its URLs, as a real store would.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeStoreRefusal {
    /// The store's switch is on.
    Unavailable,
    /// Another method than the URL was signed for.
    Method(String),
    /// Not a URL of this fake (`memory://fake-bucket/{key}?...`), or not one of our keys.
    Url(String),
    /// The upload declares no `x-amz-checksum-sha256`, or one that is not a SHA-256.
    MissingChecksum,
    /// The body's SHA-256 is not the declared one (S3's `BadDigest`).
    BadDigest,
    /// The body's length is not the declared `content-length`.
    Length {
        /// What `content-length` said.
        declared: String,
        /// What was received.
        received: usize,
    },
    /// There is no object (or no bytes) under the key.
    NotFound,
    /// A part sent for a multipart upload the store does not know (never created, completed or
    /// aborted), or for another key than the upload's.
    NoSuchUpload(String),
}

impl std::fmt::Display for FakeStoreRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("the fake store is switched off"),
            Self::Method(method) => write!(f, "method {method} is not the one signed for"),
            Self::Url(url) => write!(f, "{url:?} is not a URL of the fake store"),
            Self::MissingChecksum => f.write_str("no valid x-amz-checksum-sha256 declared"),
            Self::BadDigest => f.write_str("the body does not match its x-amz-checksum-sha256"),
            Self::Length { declared, received } => {
                write!(f, "content-length is {declared} but {received} bytes were received")
            }
            Self::NotFound => f.write_str("no such object"),
            Self::NoSuchUpload(upload_id) => write!(f, "no multipart upload {upload_id} for this key"),
        }
    }
}

impl std::error::Error for FakeStoreRefusal {}

/// An object store in a map, with a signer whose URLs name the key (`memory://bucket/key`).
/// Tests put objects with [`FakeObjectStore::put`], as a device's PUT would, or send the signed
/// requests themselves with [`FakeObjectStore::receive_put`] and
/// [`FakeObjectStore::serve_get`], which check them as a real store does.
#[derive(Debug, Default)]
pub struct FakeObjectStore {
    objects: Mutex<HashMap<String, FakeObject>>,
    /// Multipart uploads in progress, by upload id.
    uploads: Mutex<HashMap<String, FakeUpload>>,
    /// Fails inspections, deletions, uploads and downloads while on (signing needs no call and
    /// never fails).
    pub switch: Switch,
}

impl FakeObjectStore {
    /// The bucket of the fake's URLs.
    pub const BUCKET: &'static str = "fake-bucket";

    /// Stores an object as the store would after a verified PUT (its description only: a
    /// download of it finds no bytes).
    pub fn put(&self, key: &ObjectKey, info: ObjectInfo) {
        lock(&self.objects).insert(key.to_string(), FakeObject { info, bytes: None });
    }

    /// Whether an object is stored under the key.
    #[must_use]
    pub fn contains(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).contains_key(&key.to_string())
    }

    /// Receives an upload sent to a URL from [`UrlSigner::sign_upload`] with `body`, checking it
    /// as S3 does: the method is `PUT`, the URL is one of this fake's, the body's SHA-256 is the
    /// declared `x-amz-checksum-sha256` and its length the declared `content-length` (when one
    /// is declared). Only then is it stored, replacing any object under the key; a refused
    /// upload changes nothing.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] naming the first check that failed.
    pub fn receive_put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "PUT" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        if Self::query_of(&request.url, "uploadId").is_some() {
            // A part URL: see `receive_part`.
            return Err(FakeStoreRefusal::Url(request.url.chars().take(200).collect()));
        }
        let digest = Self::verify_body(request, body)?;
        let info = ObjectInfo {
            size: body.len() as u64,
            sha256: Some(digest),
            sha256_of_parts: None,
        };
        lock(&self.objects).insert(
            key,
            FakeObject {
                info,
                bytes: Some(body.to_vec()),
            },
        );
        Ok(())
    }

    /// The body's SHA-256, when it is the declared `x-amz-checksum-sha256` and its length the
    /// declared `content-length` (when one is declared), as S3 checks a PUT and a part.
    fn verify_body(request: &PresignedRequest, body: &[u8]) -> Result<Sha256, FakeStoreRefusal> {
        let declared = request
            .headers
            .get("x-amz-checksum-sha256")
            .and_then(|value| Sha256::parse(value).ok())
            .ok_or(FakeStoreRefusal::MissingChecksum)?;
        if let Some(length) = request.headers.get("content-length")
            && length.parse::<usize>().ok() != Some(body.len())
        {
            return Err(FakeStoreRefusal::Length {
                declared: length.clone(),
                received: body.len(),
            });
        }
        let digest = Sha256::from_bytes(sha2::Sha256::digest(body).into());
        if digest != declared {
            return Err(FakeStoreRefusal::BadDigest);
        }
        Ok(digest)
    }

    /// Receives a part sent to a URL from [`UrlSigner::sign_part`] with `body`, checking it as
    /// S3 does with a part of an upload created with the SHA-256 algorithm: the method is `PUT`,
    /// the URL is one of this fake's naming a known upload of its key, the body's SHA-256 is the
    /// declared `x-amz-checksum-sha256` and its length the declared `content-length`. Only then
    /// is the part kept, replacing one of the same number; a refused part changes nothing.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] naming the first check that failed
    /// ([`FakeStoreRefusal::NoSuchUpload`] for an unknown upload).
    pub fn receive_part(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "PUT" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        let refused = || FakeStoreRefusal::Url(request.url.chars().take(200).collect());
        let part_number = Self::query_of(&request.url, "partNumber")
            .and_then(|n| n.parse::<u16>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(refused)?;
        let upload_id = Self::query_of(&request.url, "uploadId")
            .and_then(|id| percent_encoding::percent_decode_str(id).decode_utf8().ok())
            .ok_or_else(refused)?;
        let digest = Self::verify_body(request, body)?;
        let mut uploads = lock(&self.uploads);
        let upload = uploads
            .get_mut(upload_id.as_ref())
            .filter(|upload| upload.key == key)
            .ok_or_else(|| FakeStoreRefusal::NoSuchUpload(upload_id.clone().into_owned()))?;
        upload.parts.insert(part_number, (body.to_vec(), digest));
        Ok(())
    }

    /// The value of a query parameter of one of the fake's URLs (its values need no decoding).
    fn query_of<'u>(url: &'u str, name: &str) -> Option<&'u str> {
        let (_, query) = url.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Serves a download sent to a URL from [`UrlSigner::sign_download`]: the object's bytes.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] for another method or a foreign URL, and
    /// [`FakeStoreRefusal::NotFound`] when there is no object, or it was planted without bytes.
    pub fn serve_get(&self, request: &PresignedRequest) -> Result<Vec<u8>, FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "GET" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        lock(&self.objects)
            .get(&key)
            .and_then(|object| object.bytes.clone())
            .ok_or(FakeStoreRefusal::NotFound)
    }

    /// The key a URL of this fake names, checked to be one of ours.
    fn key_of(url: &str) -> Result<String, FakeStoreRefusal> {
        let refused = || FakeStoreRefusal::Url(url.chars().take(200).collect());
        let path = url
            .strip_prefix("memory://")
            .and_then(|rest| rest.strip_prefix(Self::BUCKET))
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(refused)?;
        let key = path.split_once('?').map_or(path, |(key, _)| key);
        key.parse::<ObjectKey>().map_err(|_| refused())?;
        Ok(key.to_owned())
    }
}

#[async_trait]
impl ObjectStore for FakeObjectStore {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        self.switch.check()?;
        Ok(lock(&self.objects)
            .get(&key.to_string())
            .map(|object| object.info.clone()))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.objects).remove(&key.to_string());
        Ok(())
    }

    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        self.switch.check()?;
        let upload_id = Uuid::new_v4().simple().to_string();
        lock(&self.uploads).insert(
            upload_id.clone(),
            FakeUpload {
                key: key.to_string(),
                parts: BTreeMap::new(),
            },
        );
        Ok(upload_id)
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        self.switch.check()?;
        let uploads = lock(&self.uploads);
        let upload = uploads
            .get(upload_id)
            .filter(|upload| upload.key == key.to_string())
            .ok_or_else(|| no_such_upload(upload_id))?;
        Ok(upload
            .parts
            .iter()
            .map(|(number, (bytes, sha256))| StoredPart {
                part_number: *number,
                size: bytes.len() as u64,
                sha256: Some(*sha256),
                etag: part_etag(sha256),
            })
            .collect())
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        self.switch.check()?;
        let mut uploads = lock(&self.uploads);
        let upload = uploads
            .get(upload_id)
            .filter(|upload| upload.key == key.to_string())
            .ok_or_else(|| no_such_upload(upload_id))?;
        if parts.is_empty() {
            return Err(PortError::failed("InvalidRequest: no parts to complete with"));
        }
        let mut bytes = Vec::new();
        let mut composite = sha2::Sha256::new();
        let mut previous = 0;
        for (index, part) in parts.iter().enumerate() {
            if part.part_number <= previous {
                return Err(PortError::failed("InvalidPartOrder: parts must ascend"));
            }
            previous = part.part_number;
            let (held, sha256) = upload
                .parts
                .get(&part.part_number)
                .ok_or_else(|| PortError::failed(format!("InvalidPart: no part {}", part.part_number)))?;
            if part.etag != part_etag(sha256) || part.sha256.is_some_and(|given| given != *sha256) {
                return Err(PortError::failed(format!(
                    "InvalidPart: part {} has another ETag or checksum",
                    part.part_number
                )));
            }
            if index + 1 < parts.len() && held.len() < MIN_PART_SIZE {
                return Err(PortError::failed(format!("EntityTooSmall: part {}", part.part_number)));
            }
            composite.update(sha256.as_bytes());
            bytes.extend_from_slice(held);
        }
        uploads.remove(upload_id);
        drop(uploads);
        let composite = format!(
            "{}-{}",
            Sha256::from_bytes(composite.finalize().into()).to_base64(),
            parts.len()
        );
        let size = bytes.len() as u64;
        lock(&self.objects).insert(
            key.to_string(),
            FakeObject {
                // Like S3: a composite checksum is no SHA-256 of the object.
                info: ObjectInfo {
                    size,
                    sha256: None,
                    sha256_of_parts: Some(composite.clone()),
                },
                bytes: Some(bytes),
            },
        );
        Ok(CompletedMultipart {
            composite_sha256: Some(composite),
            size: Some(size),
        })
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        self.switch.check()?;
        let mut uploads = lock(&self.uploads);
        if uploads
            .get(upload_id)
            .is_some_and(|upload| upload.key == key.to_string())
        {
            uploads.remove(upload_id);
        }
        Ok(())
    }
}

fn no_such_upload(upload_id: &str) -> PortError {
    PortError::failed(NoSuchUpload {
        upload_id: upload_id.to_owned(),
    })
}

impl UrlSigner for FakeObjectStore {
    fn bucket(&self) -> &str {
        Self::BUCKET
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        let mut headers = BTreeMap::new();
        headers.insert("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64());
        if let Some(size) = spec.size {
            headers.insert("content-length".to_owned(), size.to_string());
        }
        if let Some(content_type) = &spec.content_type {
            headers.insert("content-type".to_owned(), content_type.as_str().to_owned());
        }
        Ok(PresignedRequest {
            method: "PUT",
            url: format!(
                "memory://{}/{}?expires={}",
                Self::BUCKET,
                spec.key,
                spec.expires_in.as_secs()
            ),
            headers,
        })
    }

    fn sign_part(&self, spec: &PartSpec) -> Result<PresignedRequest, SignError> {
        if spec.part_number == 0 || spec.part_number > 10_000 {
            return Err(SignError(format!(
                "part number {} is outside 1..=10000",
                spec.part_number
            )));
        }
        let headers = BTreeMap::from([
            ("content-length".to_owned(), spec.size.to_string()),
            ("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64()),
        ]);
        let upload_id: String = percent_encoding::utf8_percent_encode(&spec.upload_id, QUERY_VALUE).collect();
        Ok(PresignedRequest {
            method: "PUT",
            url: format!(
                "memory://{}/{}?partNumber={}&uploadId={upload_id}&expires={}",
                Self::BUCKET,
                spec.key,
                spec.part_number,
                spec.expires_in.as_secs()
            ),
            headers,
        })
    }

    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError> {
        let mut url = format!(
            "memory://{}/{}?expires={}",
            Self::BUCKET,
            spec.key,
            spec.expires_in.as_secs()
        );
        if let Some(disposition) = &spec.content_disposition {
            url.push_str("&response-content-disposition=");
            url.extend(percent_encoding::utf8_percent_encode(
                disposition,
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        Ok(PresignedRequest {
            method: "GET",
            url,
            headers: BTreeMap::new(),
        })
    }
}

/// A notifier that keeps what it is given.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    events: Mutex<Vec<FileUploaded>>,
    /// Fails every publication while on.
    pub switch: Switch,
}

impl RecordingNotifier {
    /// Every event published so far.
    #[must_use]
    pub fn events(&self) -> Vec<FileUploaded> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.events).push(event.clone());
        Ok(())
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    /// A clock at `now`.
    #[must_use]
    pub fn at(now: OffsetDateTime) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.0);
        *now += by;
    }
}

#[async_trait]
impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }

    /// Moves the clock instead of waiting, then lets other tasks run: loops driven by this
    /// clock run without real sleeps.
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}

/// A token verifier that knows a fixed set of tokens.
#[derive(Debug, Default)]
pub struct FakeTokenVerifier {
    tokens: Mutex<HashMap<String, Principal>>,
    /// Answers [`TokenError::Unavailable`] while on.
    pub switch: Switch,
}

impl FakeTokenVerifier {
    /// Makes `token` stand for `principal`.
    pub fn insert(&self, token: impl Into<String>, principal: Principal) {
        lock(&self.tokens).insert(token.into(), principal);
    }
}

#[async_trait]
impl TokenVerifier for FakeTokenVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.switch.check().map_err(|e| TokenError::Unavailable(e.into()))?;
        lock(&self.tokens)
            .get(token)
            .cloned()
            .ok_or(TokenError::Invalid(files_core::InvalidToken::UnknownKey))
    }
}

/// One thing a [`RecordingMetrics`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// [`files_core::Metrics::file_operation`].
    FileOperation(TenantId, Owner, FileOperation),
    /// [`files_core::Metrics::token_verification`].
    Token(TokenOutcome),
    /// [`files_core::Metrics::storage_event`].
    StorageEvent(StorageEventOutcome),
    /// [`files_core::Metrics::janitor_action`]: the action and its count.
    Janitor(JanitorAction, u64),
    /// [`files_core::Metrics::cache_call`] (latency left out).
    Cache(&'static str, CacheOutcome),
    /// [`files_core::Metrics::outbox_published`].
    Published(u64),
    /// [`files_core::Metrics::outbox_publish_failed`].
    PublishFailed,
    /// [`files_core::Metrics::outbox_state`] (the lag left out).
    OutboxDepth(u64),
}

/// Metrics that remember what they were told, in order.
#[derive(Debug, Default)]
pub struct RecordingMetrics(Mutex<Vec<Recorded>>);

impl RecordingMetrics {
    /// Everything recorded so far.
    #[must_use]
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.0).clone()
    }

    fn push(&self, recorded: Recorded) {
        lock(&self.0).push(recorded);
    }
}

impl files_core::Metrics for RecordingMetrics {
    fn file_operation(&self, tenant: TenantId, owner: Owner, operation: FileOperation) {
        self.push(Recorded::FileOperation(tenant, owner, operation));
    }

    fn token_verification(&self, outcome: TokenOutcome) {
        self.push(Recorded::Token(outcome));
    }

    fn cache_call(&self, operation: &'static str, outcome: CacheOutcome, _: Duration) {
        self.push(Recorded::Cache(operation, outcome));
    }

    fn storage_event(&self, outcome: StorageEventOutcome) {
        self.push(Recorded::StorageEvent(outcome));
    }

    fn janitor_action(&self, action: JanitorAction, count: u64) {
        self.push(Recorded::Janitor(action, count));
    }

    fn outbox_published(&self, events: u64) {
        if events > 0 {
            self.push(Recorded::Published(events));
        }
    }

    fn outbox_publish_failed(&self) {
        self.push(Recorded::PublishFailed);
    }

    fn outbox_state(&self, depth: u64, _: f64) {
        self.push(Recorded::OutboxDepth(depth));
    }
}
