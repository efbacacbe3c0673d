//! One service over the fakes, on a fake clock, for the multipart and janitor tests.

use std::sync::Arc;
use std::time::Duration;

use files_core::{
    DeviceId, FileName, FileState, FileUploaded, FilesService, MultipartTicket, Owner, PartsRequest, Ports, Principal,
    Scope, ServiceConfig, TenantId, Ticket, UploadRequest,
};
use files_testkit::fakes::{FakeClock, FakeMetadataStore, FakeObjectStore, FakeTokenVerifier, RecordingNotifier};
use files_testkit::sha256_of;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long an upload URL lives in [`World`].
pub const UPLOAD_URL: Duration = Duration::from_secs(900);
/// How long a multipart upload lives in [`World`].
pub const MULTIPART: Duration = Duration::from_secs(3600);

pub struct World {
    pub service: FilesService,
    pub store: Arc<FakeMetadataStore>,
    pub objects: Arc<FakeObjectStore>,
    pub notifier: Arc<RecordingNotifier>,
    pub clock: Arc<FakeClock>,
    /// A device, writing to its own root.
    pub principal: Principal,
    pub scope: Scope,
}

impl World {
    pub fn new() -> Self {
        let store = Arc::new(FakeMetadataStore::default());
        let objects = Arc::new(FakeObjectStore::default());
        let notifier = Arc::new(RecordingNotifier::default());
        let clock = Arc::new(FakeClock::at(
            OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ));
        let (service, _relay) = FilesService::builder(Ports {
            tokens: Arc::new(FakeTokenVerifier::default()),
            store: store.clone(),
            signer: objects.clone(),
            objects: objects.clone(),
            notifier: notifier.clone(),
        })
        .clock(clock.clone())
        .config(ServiceConfig {
            upload_expiry: UPLOAD_URL,
            multipart_expiry: MULTIPART,
            ..ServiceConfig::default()
        })
        .build();
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let device = DeviceId::from_uuid(Uuid::new_v4());
        Self {
            service,
            store,
            objects,
            notifier,
            clock,
            principal: Principal::Device { tenant, device },
            scope: Scope {
                tenant,
                owner: Owner::Device(device),
            },
        }
    }

    /// An upload URL (one PUT) for `content` under `name`.
    pub async fn upload(&self, name: &str, content: &[u8]) -> Ticket {
        self.service
            .request_upload(
                &self.principal,
                self.scope,
                UploadRequest {
                    name: FileName::parse(name).unwrap(),
                    sha256: sha256_of(content),
                    size: content.len() as u64,
                    content_type: None,
                    expires_in: None,
                },
            )
            .await
            .unwrap()
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

    /// Runs the outbox relay once; every event published so far.
    pub async fn events(&self) -> Vec<FileUploaded> {
        let pass = files_core::relay_once(&*self.store, &*self.notifier, 100, Duration::from_secs(30)).await;
        assert!(pass.is_ok(), "{pass:?}");
        self.notifier.events()
    }
}
