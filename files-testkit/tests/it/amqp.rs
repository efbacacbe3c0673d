//! The RabbitMQ adapters against the real broker: what the publisher sends (body, properties,
//! routing keys, bindings), how it heals when the broker goes away, and the ingest consumer
//! (acks, requeues, reconnects).
//!
//! Each test has its own queues and fresh tenant ids (the events exchange is shared).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use files_adapters::amqp::{AmqpConfig, AmqpIngest, AmqpPublisher, Disposition, IngestHandler};
use files_core::{
    ContentType, Deletion, DeletionReason, DeviceId, FileEvent, FileId, FileName, FileRecord, FileState, FileUploaded,
    Notifier, Owner, PortError, Sha256, TenantId,
};
use files_testkit::amqp::{TestIngestQueue, TestQueue, available};
use files_testkit::eventually;
use files_testkit::proxy::TcpProxy;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Bound on anything that should arrive: a lost message fails the test instead of stalling it.
const ARRIVE: Duration = Duration::from_secs(10);

/// Publishes `marker` straight to the exchange with `routing_key` and asserts it is the next
/// message of `queue`: nothing else came before it. Publishes are confirmed, and the broker
/// confirms only once a message is in every queue it routes to, so whatever was published
/// (and confirmed) earlier sits ahead of the marker: no window of time to wait out.
async fn assert_next_is_the_marker(url: &str, queue: &mut TestQueue, routing_key: &str, why: &str) {
    let marker = format!("marker {}", Uuid::new_v4()).into_bytes();
    files_testkit::amqp::publish_raw(url, EXCHANGE, routing_key, &marker)
        .await
        .unwrap();
    let next = queue.next(ARRIVE).await.expect("the marker did not arrive");
    assert_eq!(next.body, marker, "{why}: got {}", String::from_utf8_lossy(&next.body));
}

/// The publisher's timeout in the failure tests.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The exchange of the tests: the default one, declared by whoever comes first.
const EXCHANGE: &str = AmqpConfig::DEFAULT_EXCHANGE;

fn fresh_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v4())
}

fn fresh_device() -> DeviceId {
    DeviceId::from_uuid(Uuid::new_v4())
}

/// The event of a freshly uploaded file in `owner`'s root of `tenant`.
fn uploaded(tenant: TenantId, owner: Owner) -> FileEvent {
    let now = OffsetDateTime::now_utc();
    let record = available_file(tenant, owner);
    FileUploaded::new(Uuid::new_v4(), &record, 1234, "files-test", now).into()
}

/// The event of deleting a freshly uploaded file in `owner`'s root of `tenant`.
fn deleted(tenant: TenantId, owner: Owner) -> FileEvent {
    let deletion = Deletion::new(DeletionReason::Deleted, OffsetDateTime::now_utc(), "files-test");
    deletion
        .event_for(&available_file(tenant, owner))
        .expect("an available file's deletion has an event")
        .into()
}

fn available_file(tenant: TenantId, owner: Owner) -> FileRecord {
    let now = OffsetDateTime::now_utc();
    FileRecord {
        id: FileId::new(),
        tenant,
        owner,
        name: FileName::parse("logs/crash-2024.txt").unwrap(),
        sha256: Sha256::from_bytes([0x5a; 32]),
        size: Some(1234),
        content_type: Some(ContentType::parse("text/plain").unwrap()),
        state: FileState::Available,
        created_at: now,
        completed_at: Some(now),
        multipart: None,
        upload_expires_at: None,
    }
}

fn publisher(url: &str) -> AmqpPublisher {
    AmqpPublisher::new(AmqpConfig {
        timeout: TIMEOUT,
        ..AmqpConfig::new(url)
    })
}

#[tokio::test]
async fn the_message_has_the_briefs_body_and_properties() {
    let Some(url) = available("the_message_has_the_briefs_body_and_properties").await else {
        return;
    };
    let tenant = fresh_tenant();
    let device = fresh_device();
    let mut queue = TestQueue::bind(&url, EXCHANGE, &format!("file.uploaded.{tenant}.*"))
        .await
        .unwrap();
    let event = uploaded(tenant, Owner::Device(device));

    publisher(&url).publish(&event).await.unwrap();

    let message = queue.next(ARRIVE).await.expect("no message");
    assert_eq!(message.routing_key, format!("file.uploaded.{tenant}.{device}"));
    assert_eq!(message.json::<FileEvent>().unwrap(), event);
    let body: serde_json::Value = message.json().unwrap();
    assert_eq!(body["event_type"], "file.uploaded");
    assert_eq!(body["schema_version"], 1);
    assert_eq!(body["file"]["device_id"], device.to_string());
    assert_eq!(message.delivery_mode, Some(2), "persistent");
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(message.message_id, Some(event.event_id().to_string()));
    assert_eq!(message.kind.as_deref(), Some("file.uploaded"));
    assert_eq!(message.app_id.as_deref(), Some("files-service"));
    assert_eq!(
        message.timestamp,
        Some(u64::try_from(event.occurred_at().unix_timestamp()).unwrap())
    );
}

#[tokio::test]
async fn routing_keys_let_consumers_bind_to_a_tenant_a_device_or_the_tenant_root() {
    let Some(url) = available("routing_keys_let_consumers_bind_to_a_tenant_a_device_or_the_tenant_root").await else {
        return;
    };
    let tenant = fresh_tenant();
    let device = fresh_device();
    let bind = |pattern: String| {
        let url = url.clone();
        async move { TestQueue::bind(&url, EXCHANGE, &pattern).await.unwrap() }
    };
    let mut whole_tenant = bind(format!("file.uploaded.{tenant}.*")).await;
    let mut one_device = bind(format!("file.uploaded.{tenant}.{device}")).await;
    let mut tenant_root = bind(format!("file.uploaded.{tenant}.tenant")).await;
    let another_tenant = fresh_tenant();
    let mut other_tenant = bind(format!("file.uploaded.{another_tenant}.*")).await;
    let on_device = uploaded(tenant, Owner::Device(device));
    let on_root = uploaded(tenant, Owner::Tenant);
    let on_another_device = uploaded(tenant, Owner::Device(fresh_device()));

    let publisher = publisher(&url);
    for event in [&on_device, &on_root, &on_another_device] {
        publisher.publish(event).await.unwrap();
    }

    let ids = |messages: Vec<files_testkit::amqp::Received>| -> Vec<Uuid> {
        messages
            .iter()
            .map(|m| m.json::<FileEvent>().unwrap().event_id())
            .collect()
    };
    let all = whole_tenant.collect(3, ARRIVE).await;
    let keys: Vec<_> = all.iter().map(|m| m.routing_key.clone()).collect();
    assert_eq!(
        keys,
        [
            format!("file.uploaded.{tenant}.{device}"),
            format!("file.uploaded.{tenant}.tenant"),
            on_another_device.routing_key(),
        ]
    );
    assert_eq!(
        ids(all),
        [on_device.event_id(), on_root.event_id(), on_another_device.event_id()]
    );
    assert_eq!(ids(one_device.collect(1, ARRIVE).await), [on_device.event_id()]);
    assert_eq!(ids(tenant_root.collect(1, ARRIVE).await), [on_root.event_id()]);
    assert_next_is_the_marker(
        &url,
        &mut one_device,
        &format!("file.uploaded.{tenant}.{device}"),
        "the device's queue got another's event",
    )
    .await;
    assert_next_is_the_marker(
        &url,
        &mut tenant_root,
        &format!("file.uploaded.{tenant}.tenant"),
        "the tenant root's queue got a device's event",
    )
    .await;
    assert_next_is_the_marker(
        &url,
        &mut other_tenant,
        &format!("file.uploaded.{another_tenant}.tenant"),
        "another tenant's queue got an event",
    )
    .await;
}

#[tokio::test]
async fn deletions_have_their_own_routing_keys_type_and_message_id() {
    let Some(url) = available("deletions_have_their_own_routing_keys_type_and_message_id").await else {
        return;
    };
    let (tenant, device) = (fresh_tenant(), fresh_device());
    let bind = |pattern: String| {
        let url = url.clone();
        async move { TestQueue::bind(&url, EXCHANGE, &pattern).await.unwrap() }
    };
    let mut deletions = bind(format!("file.deleted.{tenant}.*")).await;
    let mut uploads = bind(format!("file.uploaded.{tenant}.*")).await;
    let mut both = bind(format!("file.*.{tenant}.*")).await;
    let upload = uploaded(tenant, Owner::Device(device));
    let on_device = deleted(tenant, Owner::Device(device));
    let on_root = deleted(tenant, Owner::Tenant);
    let publisher = publisher(&url);
    for event in [&upload, &on_device, &on_root] {
        publisher.publish(event).await.unwrap();
    }

    let received = deletions.collect(2, ARRIVE).await;
    let keys: Vec<_> = received.iter().map(|m| m.routing_key.clone()).collect();
    assert_eq!(
        keys,
        [
            format!("file.deleted.{tenant}.{device}"),
            format!("file.deleted.{tenant}.tenant")
        ]
    );
    for (message, event) in received.iter().zip([&on_device, &on_root]) {
        assert_eq!(&message.json::<FileEvent>().unwrap(), event);
        assert_eq!(message.json::<serde_json::Value>().unwrap()["reason"], "deleted");
        assert_eq!(message.message_id, Some(event.event_id().to_string()));
        assert_eq!(message.kind.as_deref(), Some("file.deleted"));
        assert_eq!(message.delivery_mode, Some(2), "persistent");
    }
    let kinds: Vec<_> = both.collect(3, ARRIVE).await.into_iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [Some("file.uploaded"), Some("file.deleted"), Some("file.deleted")].map(|k| k.map(str::to_owned))
    );
    assert_eq!(uploads.next(ARRIVE).await.unwrap().json::<FileEvent>().unwrap(), upload);
    assert_next_is_the_marker(
        &url,
        &mut uploads,
        &format!("file.uploaded.{tenant}.{device}"),
        "a queue bound to uploads got a deletion",
    )
    .await;
}

#[tokio::test]
async fn a_mandatory_event_no_queue_is_bound_for_fails() {
    let Some(url) = available("a_mandatory_event_no_queue_is_bound_for_fails").await else {
        return;
    };
    let publisher = AmqpPublisher::new(AmqpConfig {
        mandatory: true,
        timeout: TIMEOUT,
        ..AmqpConfig::new(url.as_str())
    });
    let tenant = fresh_tenant();
    let error = publisher.publish(&uploaded(tenant, Owner::Tenant)).await.unwrap_err();
    assert!(matches!(error, PortError::Failed(_)), "{error:?}");

    // The same publisher still works once someone listens.
    let mut queue = TestQueue::bind(&url, EXCHANGE, &format!("file.uploaded.{tenant}.#"))
        .await
        .unwrap();
    let event = uploaded(tenant, Owner::Tenant);
    publisher.publish(&event).await.unwrap();
    let message = queue.next(ARRIVE).await.expect("no message");
    assert_eq!(message.json::<FileEvent>().unwrap(), event);
}

/// Publishes, asserting it fails as unavailable within the publisher's timeout (plus slack).
async fn assert_publish_unavailable(publisher: &AmqpPublisher, event: &FileEvent) {
    let started = Instant::now();
    let result = tokio::time::timeout(TIMEOUT * 3, publisher.publish(event))
        .await
        .expect("the publish hung past its timeout");
    assert!(
        matches!(result, Err(PortError::Unavailable(_))),
        "expected unavailable, got {result:?}"
    );
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_publisher_heals_by_itself_after_the_broker_goes_away() {
    files_testkit::init_logging();
    let Some(url) = available("the_publisher_heals_by_itself_after_the_broker_goes_away").await else {
        return;
    };
    let tenant = fresh_tenant();
    let mut queue = TestQueue::bind(&url, EXCHANGE, &format!("file.uploaded.{tenant}.*"))
        .await
        .unwrap();
    let (proxy, proxied) = TcpProxy::for_url(&url).await.unwrap();
    let publisher = publisher(&proxied);

    let before = uploaded(tenant, Owner::Tenant);
    publisher.publish(&before).await.unwrap();
    assert_eq!(queue.next(ARRIVE).await.unwrap().json::<FileEvent>().unwrap(), before);

    assert!(proxy.cut_and_wait(ARRIVE).await);
    let during = uploaded(tenant, Owner::Tenant);
    assert_publish_unavailable(&publisher, &during).await;
    // Still down: the reconnect attempt fails as fast.
    assert_publish_unavailable(&publisher, &during).await;

    proxy.restore();
    let after = uploaded(tenant, Owner::Tenant);
    publisher.publish(&after).await.unwrap();
    let message = queue.next(ARRIVE).await.expect("no message after the restore");
    assert_eq!(message.json::<FileEvent>().unwrap(), after);
    assert_next_is_the_marker(
        &url,
        &mut queue,
        &after.routing_key(),
        "the failed publishes must not have arrived",
    )
    .await;
}

#[tokio::test]
async fn a_ping_to_a_broker_that_stopped_answering_says_unavailable_and_recovers() {
    // Finding: the ping looked at the connection's status alone. Behind a partition (nothing
    // closes, nothing answers) that status reads open, and readiness said the broker was ok.
    let test = "a_ping_to_a_broker_that_stopped_answering_says_unavailable_and_recovers";
    let Some(url) = available(test).await else { return };
    let (proxy, proxied) = TcpProxy::for_url(&url).await.unwrap();
    let publisher = publisher(&proxied);
    publisher.ping().await.unwrap();
    assert_eq!(proxy.connections(), 1);

    proxy.hang();
    let started = Instant::now();
    let result = publisher.ping().await;
    assert!(matches!(result, Err(PortError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < TIMEOUT * 3, "took {:?}", started.elapsed());

    // Cut, after the hang: the connections close; asked once the proxy holds none, the ping
    // meets a broker that is gone.
    assert!(proxy.cut_and_wait(ARRIVE).await);
    let result = publisher.ping().await;
    assert!(matches!(result, Err(PortError::Unavailable(_))), "{result:?}");

    proxy.restore();
    let mut last = None;
    let back = eventually(ARRIVE, async || {
        let result = publisher.ping().await;
        let ok = result.is_ok();
        last = Some(result);
        ok
    })
    .await;
    assert!(back, "the ping did not reconnect: {last:?}");
    assert!(proxy.connections() > 0, "the ping did not go through the proxy");
}

#[tokio::test]
async fn a_publisher_made_while_the_broker_is_unreachable_works_once_it_is_back() {
    let Some(url) = available("a_publisher_made_while_the_broker_is_unreachable_works_once_it_is_back").await else {
        return;
    };
    let tenant = fresh_tenant();
    let mut queue = TestQueue::bind(&url, EXCHANGE, &format!("file.uploaded.{tenant}.*"))
        .await
        .unwrap();
    let (proxy, proxied) = TcpProxy::for_url(&url).await.unwrap();
    proxy.cut();
    let publisher = publisher(&proxied);

    assert_publish_unavailable(&publisher, &uploaded(tenant, Owner::Tenant)).await;

    proxy.restore();
    let event = uploaded(tenant, Owner::Device(fresh_device()));
    publisher.publish(&event).await.unwrap();
    assert_eq!(queue.next(ARRIVE).await.unwrap().json::<FileEvent>().unwrap(), event);
}

#[tokio::test]
async fn a_publisher_on_a_port_where_nothing_listens_is_unavailable_quickly() {
    let closed = files_testkit::services::ClosedPort::bind().unwrap();
    let publisher = publisher(&format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed.port()));
    assert_publish_unavailable(&publisher, &uploaded(fresh_tenant(), Owner::Tenant)).await;
}

/// Records every body it is handed; answers `Requeue` the first time it sees a body when told
/// to, `Ack` otherwise.
struct Recorder {
    seen: mpsc::UnboundedSender<Vec<u8>>,
    requeue_first: bool,
    requeued: Mutex<HashSet<Vec<u8>>>,
}

impl Recorder {
    fn new(requeue_first: bool) -> (Arc<Self>, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (seen, receiver) = mpsc::unbounded_channel();
        let recorder = Self {
            seen,
            requeue_first,
            requeued: Mutex::new(HashSet::new()),
        };
        (Arc::new(recorder), receiver)
    }
}

#[async_trait]
impl IngestHandler for Recorder {
    async fn handle(&self, body: &[u8]) -> Disposition {
        let _ = self.seen.send(body.to_vec());
        if self.requeue_first && self.requeued.lock().unwrap().insert(body.to_vec()) {
            Disposition::Requeue
        } else {
            Disposition::Ack
        }
    }
}

/// The next `n` bodies the handler sees, within [`ARRIVE`] in all.
async fn seen(receiver: &mut mpsc::UnboundedReceiver<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    let until = tokio::time::Instant::now() + ARRIVE;
    let mut bodies = Vec::new();
    while bodies.len() < n {
        match tokio::time::timeout_at(until, receiver.recv()).await {
            Ok(Some(body)) => bodies.push(body),
            _ => break,
        }
    }
    bodies
}

/// The bodies the handler sees until it has seen each of `expected`, within [`ARRIVE`] in all.
async fn seen_until(receiver: &mut mpsc::UnboundedReceiver<Vec<u8>>, expected: &[&Vec<u8>]) -> Vec<Vec<u8>> {
    let until = tokio::time::Instant::now() + ARRIVE;
    let mut bodies = Vec::new();
    while !expected.iter().all(|body| bodies.contains(*body)) {
        match tokio::time::timeout_at(until, receiver.recv()).await {
            Ok(Some(body)) => bodies.push(body),
            _ => panic!("the handler did not see all of {expected:?} in time; it saw {bodies:?}"),
        }
    }
    bodies
}

fn notification(n: usize) -> Vec<u8> {
    format!(r#"{{"Records": [], "test": {n}, "nonce": "{}"}}"#, Uuid::new_v4()).into_bytes()
}

fn ingest_config(url: &str) -> AmqpConfig {
    AmqpConfig {
        timeout: TIMEOUT,
        ..AmqpConfig::new(url)
    }
}

#[tokio::test]
async fn the_ingest_hands_each_notification_to_the_handler_and_acks_it() {
    let Some(url) = available("the_ingest_hands_each_notification_to_the_handler_and_acks_it").await else {
        return;
    };
    let queue = TestIngestQueue::create(&url).await.unwrap();
    let bodies: Vec<_> = (0..3).map(notification).collect();
    // One waits in the queue before the ingest starts, the others come while it runs.
    queue.publish(&bodies[0]).await.unwrap();
    let (handler, mut receiver) = Recorder::new(false);
    let ingest = AmqpIngest::start(ingest_config(&url), queue.name().to_owned(), handler);
    for body in &bodies[1..] {
        queue.publish(body).await.unwrap();
    }

    assert_eq!(seen(&mut receiver, 3).await, bodies);
    ingest.shutdown().await;
    // Closed, the connection would have given back anything unacknowledged.
    assert_eq!(queue.ready().await.unwrap(), 0, "messages were not acknowledged");
    assert!(receiver.try_recv().is_err(), "a message was handled twice");

    let name = queue.name().to_owned();
    drop(queue);
    assert!(
        !TestIngestQueue::exists(&url, &name).await.unwrap(),
        "the test queue outlived its test"
    );
}

#[tokio::test]
async fn a_requeued_notification_comes_back_to_the_handler() {
    let Some(url) = available("a_requeued_notification_comes_back_to_the_handler").await else {
        return;
    };
    let queue = TestIngestQueue::create(&url).await.unwrap();
    let (handler, mut receiver) = Recorder::new(true);
    let ingest = AmqpIngest::start(ingest_config(&url), queue.name().to_owned(), handler);
    let body = notification(1);
    queue.publish(&body).await.unwrap();

    assert_eq!(seen(&mut receiver, 2).await, [body.clone(), body]);
    ingest.shutdown().await;
    assert_eq!(queue.ready().await.unwrap(), 0, "acknowledged the second time");
}

#[tokio::test]
async fn the_ingest_reconnects_by_itself_after_the_broker_goes_away() {
    files_testkit::init_logging();
    let Some(url) = available("the_ingest_reconnects_by_itself_after_the_broker_goes_away").await else {
        return;
    };
    let queue = TestIngestQueue::create(&url).await.unwrap();
    let (proxy, proxied) = TcpProxy::for_url(&url).await.unwrap();
    let (handler, mut receiver) = Recorder::new(false);
    let ingest = AmqpIngest::start(ingest_config(&proxied), queue.name().to_owned(), handler);
    let first = notification(1);
    queue.publish(&first).await.unwrap();
    assert_eq!(seen(&mut receiver, 1).await, std::slice::from_ref(&first));

    let refused_before = proxy.refused();
    assert!(proxy.cut_and_wait(ARRIVE).await);
    // Published straight to the broker while the ingest cannot reach it: waits in the queue.
    let during = notification(2);
    queue.publish(&during).await.unwrap();
    // The outage lasts until the ingest has tried to reconnect, twice, and been refused.
    assert!(
        eventually(ARRIVE, async || proxy.refused() >= refused_before + 2).await,
        "the ingest did not try to reconnect"
    );
    proxy.restore();
    let after = notification(3);
    queue.publish(&after).await.unwrap();

    // The ack of `first` may have been lost in the cut: then it comes again (at-least-once).
    let handled = seen_until(&mut receiver, &[&during, &after]).await;
    assert!(
        handled.iter().all(|body| [&first, &during, &after].contains(&body)),
        "handled something else"
    );
    assert!(
        proxy.connections() > 0,
        "the ingest did not come back through the proxy"
    );
    ingest.shutdown().await;
    assert_eq!(queue.ready().await.unwrap(), 0);
}

#[tokio::test]
async fn dropping_the_ingest_stops_it() {
    let Some(url) = available("dropping_the_ingest_stops_it").await else {
        return;
    };
    let queue = TestIngestQueue::create(&url).await.unwrap();
    let (proxy, proxied) = TcpProxy::for_url(&url).await.unwrap();
    let (handler, mut receiver) = Recorder::new(false);
    let ingest = AmqpIngest::start(ingest_config(&proxied), queue.name().to_owned(), handler);
    let first = notification(1);
    queue.publish(&first).await.unwrap();
    assert_eq!(seen(&mut receiver, 1).await, [first]);

    drop(ingest);
    assert!(
        eventually(ARRIVE, async || proxy.connections() == 0).await,
        "the dropped ingest kept its connection"
    );
    // Nothing consumes any more: a new message stays in the queue (once the broker has seen
    // the connection go, it is ready rather than delivered).
    queue.publish(&notification(2)).await.unwrap();
    assert!(
        eventually(ARRIVE, async || queue.ready().await.unwrap() == 1).await,
        "the message did not stay in the queue"
    );
    assert!(receiver.try_recv().is_err(), "the dropped ingest handled a message");
}

/// Panics on the first body it is handed, records and acknowledges the rest.
struct PanicsOnce {
    panicked: std::sync::atomic::AtomicBool,
    seen: mpsc::UnboundedSender<Vec<u8>>,
}

#[async_trait]
impl IngestHandler for PanicsOnce {
    async fn handle(&self, body: &[u8]) -> Disposition {
        if !self.panicked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a bug in the handler");
        }
        let _ = self.seen.send(body.to_vec());
        Disposition::Ack
    }
}

#[tokio::test]
async fn a_panicking_handler_does_not_end_the_ingest_nor_lose_the_message() {
    let Some(url) = available("a_panicking_handler_does_not_end_the_ingest_nor_lose_the_message").await else {
        return;
    };
    let queue = TestIngestQueue::create(&url).await.unwrap();
    let (seen_tx, mut receiver) = mpsc::unbounded_channel();
    let handler = Arc::new(PanicsOnce {
        panicked: std::sync::atomic::AtomicBool::new(false),
        seen: seen_tx,
    });
    let ingest = AmqpIngest::start(ingest_config(&url), queue.name().to_owned(), handler);
    let body = notification(1);
    queue.publish(&body).await.unwrap();

    assert_eq!(seen(&mut receiver, 1).await, std::slice::from_ref(&body));
    ingest.shutdown().await;
    assert_eq!(queue.ready().await.unwrap(), 0);
}
