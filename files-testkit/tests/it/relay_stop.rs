//! `Relay::run_until`: a stop asked for while a pass is under way waits for the pass, so every
//! claimed event is published and marked sent (or released): the relay leaves no claim behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use files_core::{
    DeviceId, FileEvent, FileName, FilesService, Notifier, ObjectInfo, Outbox as _, Owner, PortError, Ports, Principal,
    Scope, TenantId, UploadRequest,
};
use files_testkit::fakes::{FakeMetadataStore, FakeObjectStore, FakeTokenVerifier};
use files_testkit::sha256_of;
use tokio::sync::{Notify, Semaphore, oneshot};
use uuid::Uuid;

/// A broker that holds each publication until the test lets it through.
struct Gate {
    entered: Notify,
    open: Semaphore,
    published: Mutex<Vec<FileEvent>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: Notify::new(),
            open: Semaphore::new(0),
            published: Mutex::default(),
        }
    }
}

#[async_trait]
impl Notifier for Gate {
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError> {
        self.entered.notify_one();
        self.open
            .acquire()
            .await
            .map_err(|e| PortError::Failed(Box::new(e)))?
            .forget();
        self.published.lock().unwrap().push(event.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_stop_during_a_pass_waits_for_it_and_leaves_no_claim() {
    let store = Arc::new(FakeMetadataStore::default());
    let objects = Arc::new(FakeObjectStore::default());
    let gate = Arc::new(Gate::default());
    let (service, relay) = FilesService::builder(Ports {
        tokens: Arc::new(FakeTokenVerifier::default()),
        store: store.clone(),
        signer: objects.clone(),
        objects: objects.clone(),
        notifier: gate.clone(),
    })
    .build();
    let (tenant, device) = (TenantId::from_uuid(Uuid::new_v4()), DeviceId::from_uuid(Uuid::new_v4()));
    let principal = Principal::Device { tenant, device };
    let content = b"relayed before the stop";
    let sha = sha256_of(content);
    let ticket = service
        .request_upload(
            &principal,
            Scope {
                tenant,
                owner: Owner::Device(device),
            },
            UploadRequest {
                name: FileName::parse("stop.log").unwrap(),
                sha256: sha,
                size: content.len() as u64,
                content_type: None,
                expires_in: None,
            },
        )
        .await
        .unwrap();
    objects.put(
        &ticket.record.object_key(),
        ObjectInfo {
            size: content.len() as u64,
            sha256: Some(sha),
            sha256_of_parts: None,
        },
    );
    service.complete(&principal, tenant, ticket.record.id).await.unwrap();

    let (stop, stopped) = oneshot::channel::<()>();
    let mut task = tokio::spawn(relay.run_until(async move {
        let _ = stopped.await;
    }));
    // The relay has claimed the event and is publishing it; then the stop comes.
    tokio::time::timeout(Duration::from_secs(5), gate.entered.notified())
        .await
        .expect("the relay publishes");
    stop.send(()).unwrap();
    let early = tokio::time::timeout(Duration::from_millis(200), &mut task).await;
    assert!(early.is_err(), "the relay returned in the middle of its pass");
    assert!(
        store.claim(10, Duration::from_secs(30)).await.unwrap().is_empty(),
        "the event is still claimed by the relay meanwhile"
    );

    gate.open.add_permits(1);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the relay stops once its pass is done")
        .unwrap();
    assert_eq!(gate.published.lock().unwrap().len(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.depth, 0, "published and marked sent, not left claimed");
}

#[tokio::test]
async fn an_idle_relay_stops_at_once() {
    let store = Arc::new(FakeMetadataStore::default());
    let objects = Arc::new(FakeObjectStore::default());
    let (_service, relay) = FilesService::builder(Ports {
        tokens: Arc::new(FakeTokenVerifier::default()),
        store,
        signer: objects.clone(),
        objects,
        notifier: Arc::new(Gate::default()),
    })
    .build();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run_until(async move {
        let _ = stopped.await;
    }));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("an idle relay stops during its pause")
        .unwrap();
}
