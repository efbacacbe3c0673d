//! In-memory fakes of every port, each with a [`Switch`] that makes it fail.
//!
//! The metadata store and cache fakes are the embedded default's memory adapters behind a
//! switch, so they pass the same contract as what the embedded default runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use files_adapters::memory::{MemoryCache, MemoryMetadataStore};
use files_core::{
    Cache, Clock, FileId, FileName, FileRecord, FileState, FileUploaded, MetadataStore, Notifier, ObjectInfo,
    ObjectKey, ObjectStore, Outbox, OutboxEntry, OutboxStats, PortError, PresignedRequest, Principal, Scope, SignError,
    TenantId, TokenError, TokenVerifier, UploadSpec, UrlSigner,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// Makes a fake fail while it is on. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Switch(Arc<AtomicBool>);

impl Switch {
    /// Every call fails with [`PortError::Unavailable`] from now on.
    pub fn fail(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Calls succeed again.
    pub fn recover(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Fails the call when the switch is on.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] while on.
    pub fn check(&self) -> Result<(), PortError> {
        if self.0.load(Ordering::SeqCst) {
            Err(PortError::unavailable("switched off by the test"))
        } else {
            Ok(())
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
}

#[async_trait]
impl MetadataStore for FakeMetadataStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        self.switch.check()?;
        self.inner.insert(record).await
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
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
}

/// An object store in a map, with a signer whose URLs name the key (`memory://bucket/key`).
/// Tests put objects with [`FakeObjectStore::put`], as a device's PUT would.
#[derive(Debug, Default)]
pub struct FakeObjectStore {
    objects: Mutex<HashMap<String, ObjectInfo>>,
    /// Fails inspections and deletions while on (signing needs no call and never fails).
    pub switch: Switch,
}

impl FakeObjectStore {
    /// The bucket of the fake's URLs.
    pub const BUCKET: &'static str = "fake-bucket";

    /// Stores an object as the store would after a verified PUT.
    pub fn put(&self, key: &ObjectKey, info: ObjectInfo) {
        lock(&self.objects).insert(key.to_string(), info);
    }

    /// Whether an object is stored under the key.
    #[must_use]
    pub fn contains(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).contains_key(&key.to_string())
    }
}

#[async_trait]
impl ObjectStore for FakeObjectStore {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        self.switch.check()?;
        Ok(lock(&self.objects).get(&key.to_string()).cloned())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.objects).remove(&key.to_string());
        Ok(())
    }
}

impl UrlSigner for FakeObjectStore {
    fn bucket(&self) -> &str {
        Self::BUCKET
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        let mut headers = BTreeMap::new();
        headers.insert("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64());
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

    fn sign_download(&self, key: &ObjectKey, expires_in: Duration) -> Result<PresignedRequest, SignError> {
        Ok(PresignedRequest {
            method: "GET",
            url: format!("memory://{}/{key}?expires={}", Self::BUCKET, expires_in.as_secs()),
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

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
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
