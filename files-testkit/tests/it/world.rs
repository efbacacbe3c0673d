//! One service over the fakes, on a fake clock, for the tests of the use cases: a device of a
//! fresh tenant writing to its own root. [`World::new`] is the plain one; [`World::builder`]
//! changes what a test needs otherwise (the service's config, a cache in front of the store,
//! a metrics recorder, when the clock starts).

use std::sync::Arc;
use std::time::Duration;

use files_core::{
    DeviceId, FileName, FileRecord, FileState, FileUploaded, FilesService, Metrics, MultipartTicket, NoMetrics,
    ObjectInfo, Owner, PartsRequest, Ports, Principal, Relay, Scope, ServiceConfig, TenantId, Ticket, UploadRequest,
};
use files_testkit::fakes::{
    FakeCache, FakeClock, FakeMetadataStore, FakeObjectStore, FakeTokenVerifier, RecordingNotifier,
};
use files_testkit::sha256_of;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long an upload URL lives in [`World::new`]'s config.
pub const UPLOAD_URL: Duration = Duration::from_secs(900);
/// How long a multipart upload lives in [`World::new`]'s config.
pub const MULTIPART: Duration = Duration::from_secs(3600);

/// The service, the fakes behind it, and the device that calls it. `M` is the metrics recorder
/// the service reports to.
pub struct World<M = NoMetrics> {
    pub service: FilesService,
    /// The relay the service was built with, not running: a test that wants it spawns it.
    pub relay: Option<Relay>,
    pub store: Arc<FakeMetadataStore>,
    pub objects: Arc<FakeObjectStore>,
    pub notifier: Arc<RecordingNotifier>,
    pub tokens: Arc<FakeTokenVerifier>,
    pub clock: Arc<FakeClock>,
    pub metrics: Arc<M>,
    /// The cache in front of the store, when the world was built with one.
    cache: Option<Arc<FakeCache>>,
    pub tenant: TenantId,
    pub device: DeviceId,
    /// The device, writing to its own root ([`World::scope`]).
    pub principal: Principal,
    pub scope: Scope,
}

/// How to build a [`World`]: by default [`UPLOAD_URL`] and [`MULTIPART`] expiries, no cache,
/// no metrics, and a clock at a fixed instant.
pub struct WorldBuilder<M> {
    config: ServiceConfig,
    cache: bool,
    metrics: Arc<M>,
    start: OffsetDateTime,
}

impl World {
    /// The plain world.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A world to configure before [`WorldBuilder::build`].
    pub fn builder() -> WorldBuilder<NoMetrics> {
        WorldBuilder {
            config: ServiceConfig {
                upload_expiry: UPLOAD_URL,
                multipart_expiry: MULTIPART,
                ..ServiceConfig::default()
            },
            cache: false,
            metrics: Arc::new(NoMetrics),
            start: OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }
}

impl<M: Metrics + 'static> WorldBuilder<M> {
    /// The service's whole config, instead of the default one.
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// A [`FakeCache`] in front of the store (see [`World::cache`]).
    pub fn cached(mut self) -> Self {
        self.cache = true;
        self
    }

    /// The service reports to `metrics` (then [`World::metrics`]).
    pub fn metrics<N: Metrics + 'static>(self, metrics: N) -> WorldBuilder<N> {
        WorldBuilder {
            config: self.config,
            cache: self.cache,
            metrics: Arc::new(metrics),
            start: self.start,
        }
    }

    /// The fake clock starts at `start`.
    pub fn clock_at(mut self, start: OffsetDateTime) -> Self {
        self.start = start;
        self
    }

    /// The service over fresh fakes, and a fresh tenant and device.
    pub fn build(self) -> World<M> {
        let store = Arc::new(FakeMetadataStore::default());
        let objects = Arc::new(FakeObjectStore::default());
        let notifier = Arc::new(RecordingNotifier::default());
        let tokens = Arc::new(FakeTokenVerifier::default());
        let clock = Arc::new(FakeClock::at(self.start));
        let cache = self.cache.then(|| Arc::new(FakeCache::default()));
        let mut builder = FilesService::builder(Ports {
            tokens: tokens.clone(),
            store: store.clone(),
            signer: objects.clone(),
            objects: objects.clone(),
            notifier: notifier.clone(),
        });
        if let Some(cache) = &cache {
            builder = builder.cache(cache.clone());
        }
        let (service, relay) = builder
            .tenancy(store.clone(), store.clone())
            .metrics(self.metrics.clone())
            .clock(clock.clone())
            .config(self.config)
            .build();
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let device = DeviceId::from_uuid(Uuid::new_v4());
        World {
            service,
            relay: Some(relay),
            store,
            objects,
            notifier,
            tokens,
            clock,
            metrics: self.metrics,
            cache,
            tenant,
            device,
            principal: Principal::Device { tenant, device },
            scope: Scope {
                tenant,
                owner: Owner::Device(device),
            },
        }
    }
}

impl<M> World<M> {
    /// The cache in front of the store.
    ///
    /// # Panics
    /// When the world was built without one ([`WorldBuilder::cached`]).
    pub fn cache(&self) -> &FakeCache {
        match &self.cache {
            Some(cache) => cache,
            None => panic!("this world has no cache: build it with World::builder().cached()"),
        }
    }

    /// An upload URL (one PUT) for `content` under `name`, asked for by the device.
    pub async fn upload(&self, name: &str, content: &[u8]) -> Ticket {
        self.upload_as(&self.principal, self.scope, name, content).await
    }

    /// An upload URL (one PUT) for `content` under `name` in `scope`, asked for by `principal`.
    pub async fn upload_as(&self, principal: &Principal, scope: Scope, name: &str, content: &[u8]) -> Ticket {
        let request = UploadRequest {
            name: FileName::parse(name).unwrap_or_else(|e| panic!("{e}")),
            sha256: sha256_of(content),
            size: content.len() as u64,
            content_type: None,
            expires_in: None,
        };
        match self.service.request_upload(principal, scope, request).await {
            Ok(ticket) => ticket,
            Err(e) => panic!("upload request failed: {e}"),
        }
    }

    /// What the store holds after a verified PUT of `content`.
    pub fn store_object(&self, record: &FileRecord, content: &[u8]) {
        self.objects.put(
            &record.object_key(),
            ObjectInfo {
                size: content.len() as u64,
                sha256: Some(sha256_of(content)),
                sha256_of_parts: None,
            },
        );
    }

    /// Upload URL, the object as a verified PUT would leave it, `complete`: by the device.
    pub async fn upload_and_complete(&self, name: &str, content: &[u8]) -> FileRecord {
        self.upload_and_complete_as(&self.principal, self.scope, name, content)
            .await
    }

    /// Upload URL, the object as a verified PUT would leave it, `complete`: in `scope`, by
    /// `principal`.
    pub async fn upload_and_complete_as(
        &self,
        principal: &Principal,
        scope: Scope,
        name: &str,
        content: &[u8],
    ) -> FileRecord {
        let record = self.upload_as(principal, scope, name, content).await.record;
        self.store_object(&record, content);
        match self.service.complete(principal, scope.tenant, record.id).await {
            Ok(record) => record,
            Err(e) => panic!("complete failed: {e}"),
        }
    }

    /// A multipart upload started by the device.
    pub async fn multipart(&self, request: UploadRequest, plan: PartsRequest) -> MultipartTicket {
        self.service
            .request_multipart_upload(&self.principal, self.scope, request, plan)
            .await
            .unwrap()
    }

    /// The ticket's file's state (`Deleted` when it is gone).
    pub async fn state(&self, ticket: &Ticket) -> FileState {
        self.service
            .get(&self.principal, ticket.record.tenant, ticket.record.id)
            .await
            .map_or(FileState::Deleted, |r| r.state)
    }

    /// Runs the outbox relay once (every publication must succeed); every event published so far.
    pub async fn events(&self) -> Vec<FileUploaded> {
        let pass = files_core::relay_once(&*self.store, &*self.notifier, 100, Duration::from_secs(30)).await;
        assert!(matches!(&pass, Ok(p) if p.publish_error.is_none()), "{pass:?}");
        self.notifier.events()
    }
}
