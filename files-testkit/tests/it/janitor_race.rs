//! The janitor racing other actors, each paused exactly between two of its steps by a
//! [`Gate`] on the object store: a device that finishes its multipart upload between the
//! janitor's check and its clean-up (on the fake and on garage), and a second janitor while the
//! first is midway. Whatever the interleaving, a file is either available with its object in the
//! store, or expired with nothing left, and never both available and gone.

use std::sync::Arc;
use std::time::Duration;

use files_adapters::s3::{S3Config, S3Objects, S3Signer};
use files_core::{
    CompleteError, FileName, FileRecord, FileState, FilesService, JanitorPass, JanitorSettings, MultipartTicket,
    NoSuchUpload, ObjectStore, Owner, PartsRequest, PortError, Ports, Principal, Scope, ServiceConfig, TenantId,
    UploadRequest, UrlSigner,
};
use files_testkit::contract::objects::{FakeTransport, HttpTransport, Transport};
use files_testkit::fakes::{FakeClock, FakeMetadataStore, FakeObjectStore, FakeTokenVerifier, RecordingNotifier};
use files_testkit::gate::{Call, Gate, GatedObjects, When};
use files_testkit::services::TestS3;
use time::OffsetDateTime;
use uuid::Uuid;

use files_testkit::sha256_of;

const MIB: usize = 1024 * 1024;
const GRACE: Duration = Duration::from_secs(600);
const MULTIPART: Duration = Duration::from_secs(60);
/// Part URLs outlive the multipart upload: the device in these races still holds a valid one.
const PART_URL: Duration = Duration::from_secs(3600);
/// A bound on a hang, not a benchmark.
const WITHIN: Duration = Duration::from_secs(30);

/// Where the device's bytes go.
enum Store {
    Fake(Arc<FakeObjectStore>),
    Real(HttpTransport),
}

impl Store {
    async fn put(&self, request: &files_core::PresignedRequest, body: &[u8]) {
        let sent = match self {
            Self::Fake(store) => FakeTransport(store).put(request, body).await,
            Self::Real(http) => http.put(request, body).await,
        };
        assert!(sent.is_ok(), "the store refused the part: {sent:?}");
    }
}

/// A service whose object store pauses where a test arms its gate, over a fake metadata store
/// on a fake clock (the janitor's time) and a fake or real object store (real time for URLs).
struct Race {
    service: FilesService,
    metadata: Arc<FakeMetadataStore>,
    /// The store without the gate, for the test's own checks.
    objects: Arc<dyn ObjectStore>,
    gate: Arc<Gate>,
    store: Store,
    notifier: Arc<RecordingNotifier>,
    clock: Arc<FakeClock>,
    principal: Principal,
    scope: Scope,
}

impl Race {
    fn new(signer: Arc<dyn UrlSigner>, objects: Arc<dyn ObjectStore>, store: Store) -> Self {
        let metadata = Arc::new(FakeMetadataStore::default());
        let notifier = Arc::new(RecordingNotifier::default());
        let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
        let gate = Gate::new();
        let (service, _relay) = FilesService::builder(Ports {
            tokens: Arc::new(FakeTokenVerifier::default()),
            store: metadata.clone(),
            signer,
            objects: Arc::new(GatedObjects::new(objects.clone(), gate.clone())),
            notifier: notifier.clone(),
        })
        .clock(clock.clone())
        .config(ServiceConfig {
            upload_expiry: PART_URL,
            multipart_expiry: MULTIPART,
            ..ServiceConfig::default()
        })
        .build();
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let device = files_core::DeviceId::from_uuid(Uuid::new_v4());
        Self {
            service,
            metadata,
            objects,
            gate,
            store,
            notifier,
            clock,
            principal: Principal::Device { tenant, device },
            scope: Scope {
                tenant,
                owner: Owner::Device(device),
            },
        }
    }

    fn fake() -> Self {
        let store = Arc::new(FakeObjectStore::default());
        Self::new(store.clone(), store.clone(), Store::Fake(store))
    }

    async fn garage(test: &str) -> Option<Self> {
        let s3 = TestS3::from_env(test).await?;
        let config = S3Config {
            endpoint: s3.endpoint.parse().unwrap(),
            public_endpoint: None,
            region: s3.region,
            bucket: s3.bucket,
            access_key: s3.access_key,
            secret_key: s3.secret_key.into(),
            path_style: true,
            timeout: Duration::from_secs(10),
        };
        let signer = Arc::new(S3Signer::new(&config).unwrap());
        let objects = Arc::new(S3Objects::new(&config).unwrap());
        Some(Self::new(
            signer,
            objects,
            Store::Real(HttpTransport::new(Duration::from_secs(30))),
        ))
    }

    /// A multipart upload of two parts, the first one stored and the second not (yet): an upload
    /// the device is still working on when its time runs out. Answers the ticket and part 2.
    async fn half_sent(&self) -> (MultipartTicket, Vec<u8>) {
        let first: Vec<u8> = (0..5 * MIB).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect();
        let second = b"the last part, sent late".to_vec();
        let whole = [first.as_slice(), second.as_slice()].concat();
        let ticket = self
            .service
            .request_multipart_upload(
                &self.principal,
                self.scope,
                UploadRequest {
                    name: FileName::parse("dump.bin").unwrap(),
                    sha256: sha256_of(&whole),
                    size: whole.len() as u64,
                    content_type: None,
                    expires_in: None,
                },
                PartsRequest {
                    part_size: 5 * MIB as u64,
                    sha256: vec![sha256_of(&first), sha256_of(&second)],
                },
            )
            .await
            .unwrap();
        assert_eq!(ticket.parts.len(), 2);
        self.store.put(&ticket.parts[0].request, &first).await;
        (ticket, second)
    }

    fn janitor(&self) -> files_core::Janitor {
        self.service.janitor(
            self.metadata.clone(),
            JanitorSettings {
                grace: GRACE,
                batch: 10,
                ..JanitorSettings::default()
            },
        )
    }

    /// Past the multipart upload's expiry and the grace: the janitor's turn.
    fn expire(&self) {
        self.clock.advance(MULTIPART + GRACE + Duration::from_secs(1));
    }

    /// One janitor pass on a task, returned once it paused at the armed gate.
    async fn pass_until_paused(&self) -> tokio::task::JoinHandle<Result<JanitorPass, PortError>> {
        let janitor = self.janitor();
        let pass = tokio::spawn(async move { janitor.pass().await });
        let paused = tokio::time::timeout(WITHIN, self.gate.reached()).await;
        assert!(paused.is_ok(), "the janitor never reached the armed call");
        pass
    }

    async fn state(&self, record: &FileRecord) -> FileState {
        use files_core::MetadataStore as _;
        self.metadata
            .get(record.tenant, record.id)
            .await
            .unwrap()
            .map_or(FileState::Deleted, |r| r.state)
    }

    async fn events(&self) -> usize {
        let pass = files_core::relay_once(&*self.metadata, &*self.notifier, 100, Duration::from_secs(30)).await;
        assert!(pass.is_ok(), "{pass:?}");
        self.notifier.events().len()
    }

    /// Whether the store still knows the multipart upload.
    async fn upload_known(&self, record: &FileRecord) -> bool {
        let upload = record.multipart.as_ref().unwrap();
        match self.objects.list_parts(&record.object_key(), &upload.upload_id).await {
            Ok(_) => true,
            Err(PortError::Failed(cause)) if cause.is::<NoSuchUpload>() => false,
            Err(error) => panic!("cannot list the parts: {error:?}"),
        }
    }
}

/// The janitor has listed the parts (one missing) and is paused before acting on that: the
/// device sends the last part and completes. The device wins: the file is available, and its
/// object survives the janitor's pass.
async fn device_completing_after_the_janitors_check_keeps_its_file(race: Race) {
    let (ticket, last) = race.half_sent().await;
    let record = ticket.record;
    race.expire();
    race.gate.arm(Call::ListParts, When::After);
    let pass = race.pass_until_paused().await;

    race.store.put(&ticket.parts[1].request, &last).await;
    let done = race.service.complete(&race.principal, record.tenant, record.id).await;
    assert!(done.is_ok(), "the device's complete: {done:?}");

    race.gate.release();
    let pass = pass.await.unwrap().unwrap();
    assert_eq!(
        (pass.claimed, pass.expired, pass.skipped, pass.failed),
        (1, 0, 1, 0),
        "the janitor must leave a file the device completed alone: {pass:?}"
    );
    assert_eq!(race.state(&record).await, FileState::Available);
    let object = race.objects.inspect(&record.object_key()).await.unwrap();
    assert!(object.is_some(), "the janitor deleted the object of an available file");
    assert_eq!(race.events().await, 1, "one event, the device's");
}

/// The janitor has decided the upload is abandoned and is paused before its clean-up reaches
/// the store (as a proxy holding its `AbortMultipartUpload` would): the device sends the last
/// part and completes. The device is told its upload expired, and nothing is left: no object,
/// no multipart upload, no event.
async fn device_completing_before_the_janitors_clean_up_is_told_it_expired(race: Race) {
    let (ticket, last) = race.half_sent().await;
    let record = ticket.record;
    race.expire();
    race.gate.arm(Call::AbortMultipart, When::Before);
    let pass = race.pass_until_paused().await;

    race.store.put(&ticket.parts[1].request, &last).await;
    let done = race.service.complete(&race.principal, record.tenant, record.id).await;
    assert!(
        matches!(done, Err(CompleteError::UploadExpired)),
        "the device's complete after the janitor expired the upload: {done:?}"
    );

    race.gate.release();
    let pass = pass.await.unwrap().unwrap();
    assert_eq!((pass.claimed, pass.expired, pass.failed), (1, 1, 0), "{pass:?}");
    assert_eq!(race.state(&record).await, FileState::Expired);
    assert_eq!(race.objects.inspect(&record.object_key()).await.unwrap(), None);
    assert!(!race.upload_known(&record).await, "the multipart upload is left");
    assert_eq!(race.events().await, 0);
    // Swept once: nothing left for a later pass.
    race.clock.advance(Duration::from_secs(3600));
    assert_eq!(race.janitor().pass().await.unwrap().claimed, 0);
}

/// The device completed the upload on the store and is paused before it records that; the
/// janitor's pass runs whole meanwhile. The store no longer knows the upload, the object
/// verifies, so the janitor completes the file; the device's `complete` then succeeds too, and
/// there is one event.
async fn janitor_finding_the_object_a_paused_device_completed_makes_it_available(race: Race) {
    let (ticket, last) = race.half_sent().await;
    let record = ticket.record;
    race.store.put(&ticket.parts[1].request, &last).await;
    race.gate.arm(Call::CompleteMultipart, When::After);
    let service = race.service.clone();
    let principal = race.principal.clone();
    let device = tokio::spawn(async move { service.complete(&principal, record.tenant, record.id).await });
    let paused = tokio::time::timeout(WITHIN, race.gate.reached()).await;
    assert!(paused.is_ok(), "the device never reached its completion on the store");

    race.expire();
    let pass = race.janitor().pass().await.unwrap();
    assert_eq!((pass.claimed, pass.completed, pass.failed), (1, 1, 0), "{pass:?}");

    race.gate.release();
    let done = device.await.unwrap();
    assert!(done.is_ok(), "the device's complete: {done:?}");
    assert_eq!(race.state(&record).await, FileState::Available);
    assert!(race.objects.inspect(&record.object_key()).await.unwrap().is_some());
    assert_eq!(race.events().await, 1);
}

#[tokio::test]
async fn janitor_race_device_completing_after_the_check_keeps_its_file_on_the_fake() {
    device_completing_after_the_janitors_check_keeps_its_file(Race::fake()).await;
}

#[tokio::test]
async fn janitor_race_device_completing_before_the_clean_up_is_told_it_expired_on_the_fake() {
    device_completing_before_the_janitors_clean_up_is_told_it_expired(Race::fake()).await;
}

#[tokio::test]
async fn janitor_race_a_paused_device_completion_is_made_good_on_the_fake() {
    janitor_finding_the_object_a_paused_device_completed_makes_it_available(Race::fake()).await;
}

#[tokio::test]
async fn janitor_race_device_completing_after_the_check_keeps_its_file_on_garage() {
    let test = "janitor_race_device_completing_after_the_check_keeps_its_file_on_garage";
    let Some(race) = Race::garage(test).await else { return };
    device_completing_after_the_janitors_check_keeps_its_file(race).await;
}

#[tokio::test]
async fn janitor_race_device_completing_before_the_clean_up_is_told_it_expired_on_garage() {
    let test = "janitor_race_device_completing_before_the_clean_up_is_told_it_expired_on_garage";
    let Some(race) = Race::garage(test).await else { return };
    device_completing_before_the_janitors_clean_up_is_told_it_expired(race).await;
}

#[tokio::test]
async fn janitor_race_a_paused_device_completion_is_made_good_on_garage() {
    let test = "janitor_race_a_paused_device_completion_is_made_good_on_garage";
    let Some(race) = Race::garage(test).await else { return };
    janitor_finding_the_object_a_paused_device_completed_makes_it_available(race).await;
}

/// Two janitors, the first paused midway through a record (after its look at the object): the
/// second one's pass must not take the same record (the claim's lease holds it), so the store
/// is asked once and the file is completed once.
#[tokio::test]
async fn janitor_race_a_second_janitor_leaves_a_record_the_first_is_working_on() {
    let race = Race::fake();
    let Store::Fake(store) = &race.store else {
        unreachable!()
    };
    let content = b"a PUT nobody completed";
    let ticket = race
        .service
        .request_upload(
            &race.principal,
            race.scope,
            UploadRequest {
                name: FileName::parse("put.log").unwrap(),
                sha256: sha256_of(content),
                size: content.len() as u64,
                content_type: None,
                expires_in: Some(Duration::from_secs(60)),
            },
        )
        .await
        .unwrap();
    store.receive_put(&ticket.request, content).unwrap();
    race.clock
        .advance(Duration::from_secs(60) + GRACE + Duration::from_secs(1));
    race.gate.arm(Call::Inspect, When::After);
    let first = race.pass_until_paused().await;

    let second = race.janitor().pass().await.unwrap();
    assert_eq!(
        second.claimed, 0,
        "the second janitor took a record under the first one's lease: {second:?}"
    );

    race.gate.release();
    let first = first.await.unwrap().unwrap();
    assert_eq!((first.claimed, first.completed), (1, 1), "{first:?}");
    assert_eq!(
        race.gate.calls(Call::Inspect),
        1,
        "the object was looked at by both janitors"
    );
    assert_eq!(race.state(&ticket.record).await, FileState::Available);
    assert_eq!(race.events().await, 1);
}
