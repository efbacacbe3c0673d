//! `file.deleted` end to end against RabbitMQ and Postgres: `DELETE` of an available file
//! publishes exactly one, with the file object of its `file.uploaded` and its own routing key
//! (a queue bound to uploads never sees it); one deleted while the broker is cut is published
//! once the broker is back; deleting a pending file records none.
//!
//! What was recorded is read from the outbox table (each stack has its own database): exact,
//! with no window of time to wait out. What arrives is read from per-test queues, de-duplicated
//! by `event_id` where a redelivery is possible (delivery is at least once).

use std::collections::HashSet;
use std::time::Duration;

use files_core::{FileDeleted, FileUploaded};
use files_testkit::amqp::{self, Received, TestQueue};
use files_testkit::proxy::TcpProxy;
use files_testkit::sha256_hex;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::app::AppOptions;
use crate::events::events_stack;
use crate::helpers::{Harness, tenant_scope};
use crate::real::{RedisRoute, Stack, stack_with};

const EXCHANGE: &str = "files.events";
const WAIT: Duration = Duration::from_secs(15);

fn file_path(h: &Harness, file: &str) -> String {
    format!("/v1/tenants/{}/files/{file}", h.tenant)
}

/// The outbox rows (sent or not) of `event_type` for `file`.
async fn recorded(s: &Stack, event_type: &str, file: &str) -> i64 {
    s.db.count(&format!(
        "outbox WHERE payload->>'event_type' = '{event_type}' AND payload->'file'->>'file_id' = '{file}'"
    ))
    .await
}

/// Reads `queue` until a message of `event_type` about `file` comes, within [`WAIT`].
async fn next_of(queue: &mut TestQueue, event_type: &str, file: &str) -> Received {
    let until = Instant::now() + WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Some(message) = queue.next(left).await else {
            panic!("no {event_type} event of {file} within {WAIT:?}");
        };
        let body: serde_json::Value = message.json().unwrap();
        if body["event_type"] == event_type && body["file"]["file_id"] == file {
            return message;
        }
    }
}

/// Publishes a marker with `routing_key` (which `queue` is bound for) and reads `queue` up to
/// it: every message that came before. Publishes are confirmed once routed to every queue, so
/// whatever reached any queue before the marker was published sits ahead of it.
pub(crate) async fn before_marker(url: &str, queue: &mut TestQueue, routing_key: &str) -> Vec<Received> {
    let marker = format!("marker {}", uuid::Uuid::new_v4()).into_bytes();
    amqp::publish_raw(url, EXCHANGE, routing_key, &marker).await.unwrap();
    let mut before = Vec::new();
    loop {
        let message = queue.next(WAIT).await.expect("the marker did not arrive");
        if message.body == marker {
            return before;
        }
        before.push(message);
    }
}

/// The message is a `file.deleted` with reason `deleted`, the brief's properties and the
/// routing key given; the event.
fn assert_deletion(message: &Received, routing_key: &str) -> FileDeleted {
    let event: FileDeleted = message.json().unwrap();
    let body: serde_json::Value = message.json().unwrap();
    assert_eq!(message.routing_key, routing_key);
    assert_eq!(body["event_type"], "file.deleted");
    assert_eq!(body["reason"], "deleted");
    assert_eq!(body["schema_version"], 1);
    assert_eq!(message.message_id, Some(event.event_id.to_string()));
    assert_eq!(message.kind.as_deref(), Some("file.deleted"));
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(message.delivery_mode, Some(2), "persistent");
    event
}

#[tokio::test]
async fn deleting_an_available_file_publishes_one_file_deleted_and_no_upload_queue_sees_it() {
    let test = "deleting_an_available_file_publishes_one_file_deleted_and_no_upload_queue_sees_it";
    let Some(url) = amqp::available(test).await else { return };
    let Some(s) = events_stack(test, &url, &[]).await else {
        return;
    };
    let h = &s.h;
    let bind = async |pattern: String| TestQueue::bind(&url, EXCHANGE, &pattern).await.unwrap();
    let mut deletions = bind(format!("file.deleted.{}.*", h.tenant)).await;
    let mut uploads = bind("file.uploaded.#".to_owned()).await;
    let (token, service) = (h.device_token(), h.service_token());
    let content = b"deleted later";
    let on_device = h.api.upload(&h.scope(), h.tenant, &token, "a.log", content).await;
    let on_root = h
        .api
        .upload(&tenant_scope(h.tenant), h.tenant, &service, "fw.bin", b"fw")
        .await;
    let uploaded: FileUploaded = next_of(&mut uploads, "file.uploaded", &on_device).await.json().unwrap();
    let root_uploaded: FileUploaded = next_of(&mut uploads, "file.uploaded", &on_root).await.json().unwrap();

    for file in [&on_device, &on_root] {
        let path = file_path(h, file);
        assert_eq!(h.api.delete(&path, &service).await.status(), StatusCode::NO_CONTENT);
    }
    let message = next_of(&mut deletions, "file.deleted", &on_device).await;
    let event = assert_deletion(&message, &format!("file.deleted.{}.{}", h.tenant, h.device));
    assert_eq!(event.file, uploaded.file, "the file object of its upload");
    assert_eq!(event.file.sha256.to_hex(), sha256_hex(content));
    assert!(event.occurred_at >= uploaded.occurred_at);
    let message = next_of(&mut deletions, "file.deleted", &on_root).await;
    let event = assert_deletion(&message, &format!("file.deleted.{}.tenant", h.tenant));
    assert_eq!(event.file, root_uploaded.file);
    assert_eq!(event.file.device_id, None);

    // Deleting again records nothing more; two concurrent deletes of one file record one.
    let path = file_path(h, &on_device);
    assert_eq!(h.api.delete(&path, &token).await.status(), StatusCode::NO_CONTENT);
    let raced = h.api.upload(&h.scope(), h.tenant, &token, "raced.log", b"raced").await;
    let path = file_path(h, &raced);
    let (first, second) = futures::join!(h.api.delete(&path, &token), h.api.delete(&path, &service));
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT)
    );
    for file in [&on_device, &on_root, &raced] {
        assert_eq!(
            recorded(&s, "file.deleted", file).await,
            1,
            "{file}: one deletion event"
        );
    }
    next_of(&mut deletions, "file.deleted", &raced).await;

    // Nothing but redeliveries of these three came to the deletions queue, and no deletion
    // (of this test or any other) to the queue bound to uploads.
    let ids: HashSet<_> = before_marker(&url, &mut deletions, &format!("file.deleted.{}.tenant", h.tenant))
        .await
        .iter()
        .map(|m| m.json::<FileDeleted>().unwrap().file.file_id.to_string())
        .collect();
    assert!(ids.is_subset(&HashSet::from([on_device, on_root, raced])), "{ids:?}");
    let routing_key = format!("file.uploaded.{}.{}", h.tenant, h.device);
    for message in before_marker(&url, &mut uploads, &routing_key).await {
        assert_eq!(
            message.kind.as_deref(),
            Some("file.uploaded"),
            "{}",
            message.routing_key
        );
    }
}

#[tokio::test]
async fn a_deletion_while_the_broker_is_cut_is_published_once_it_is_back() {
    let test = "a_deletion_while_the_broker_is_cut_is_published_once_it_is_back";
    let Some(url) = amqp::available(test).await else { return };
    let (proxy, proxied_url) = TcpProxy::for_url(&url).await.unwrap();
    let Some(s) = events_stack(test, &proxied_url, &[("FILES_AMQP_TIMEOUT_MS", "1000")]).await else {
        return;
    };
    let h = &s.h;
    let mut deletions = TestQueue::bind(&url, EXCHANGE, &format!("file.deleted.{}.*", h.tenant))
        .await
        .unwrap();
    let token = h.device_token();
    let file = h.api.upload(&h.scope(), h.tenant, &token, "cut.log", b"cut").await;

    assert!(
        proxy.cut_and_wait(WAIT).await,
        "the proxy did not close its connections in time"
    );
    let path = file_path(h, &file);
    assert_eq!(h.api.delete(&path, &token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        recorded(&s, "file.deleted", &file).await,
        1,
        "recorded with the tombstone"
    );
    let failures = "files_outbox_publishes_total{outcome=\"failed\"}";
    assert!(
        files_testkit::eventually(WAIT, async || h.counter_or_zero(failures).await > 0.0).await,
        "no failed publish counted while the broker was cut"
    );
    let unsent = format!(
        "outbox WHERE sent_at IS NULL AND payload->'file'->>'file_id' = '{file}' AND payload->>'event_type' = 'file.deleted'"
    );
    assert_eq!(s.db.count(&unsent).await, 1, "waiting in the outbox");

    proxy.restore();
    let message = next_of(&mut deletions, "file.deleted", &file).await;
    assert_deletion(&message, &format!("file.deleted.{}.{}", h.tenant, h.device));
    assert!(
        files_testkit::eventually(WAIT, async || s.db.count(&unsent).await == 0).await,
        "marked sent once published"
    );
}

#[tokio::test]
async fn deleting_a_pending_file_records_no_event() {
    // No broker needed: the outbox is in Postgres whatever the notifier.
    let test = "deleting_a_pending_file_records_no_event";
    let Some(s) = stack_with(test, false, RedisRoute::Direct, AppOptions::default()).await else {
        return;
    };
    let h = &s.h;
    let token = h.device_token();
    let (status, ticket) = h.api.upload_url(&h.scope(), &token, "never.log", b"never").await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let file = ticket["file_id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.api.delete(&file_path(h, &file), &token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(recorded(&s, "file.deleted", &file).await, 0);
    assert_eq!(
        s.db.count(&format!("outbox WHERE payload->'file'->>'file_id' = '{file}'"))
            .await,
        0
    );
    // A PUT that comes too late completes nothing and records nothing either.
    let _ = h.api.put(&ticket, b"never").await;
    let (status, _) = h.api.complete(h.tenant, &file, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.db.count(&format!("outbox WHERE payload->'file'->>'file_id' = '{file}'"))
            .await,
        0
    );
}
