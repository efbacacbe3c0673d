//! Upload notifications end to end against RabbitMQ and Postgres: completions by `complete`,
//! by the webhook (both JSON shapes) and by the AMQP ingest each yield exactly one
//! `file.uploaded` message; none is lost while the broker is cut, nor with two relays.

use std::collections::HashSet;
use std::time::Duration;

use files_core::FileUploaded;
use files_testkit::amqp::{self, Received, TestIngestQueue, TestQueue};
use files_testkit::proxy::TcpProxy;
use files_testkit::{AppOptions, eventually};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, json_of, sha256_hex, tenant_scope};
use crate::real::{RedisRoute, Stack, stack_with};

const SECRET: &str = "events-test-secret";
const EXCHANGE: &str = "files.events";
const WAIT: Duration = Duration::from_secs(15);

/// A stack (Postgres, Redis, garage, JWKS) publishing to RabbitMQ at `amqp_url`.
async fn events_stack(test: &str, amqp_url: &str, extra: &[(&str, &str)]) -> Option<Stack> {
    let mut options = AppOptions::default()
        .var("FILES_AMQP_URL", amqp_url)
        .var("FILES_EVENTS_SECRET", SECRET);
    for (name, value) in extra {
        options = options.var(name, *value);
    }
    stack_with(test, false, RedisRoute::Direct, options).await
}

async fn tenant_queue(url: &str, h: &Harness) -> TestQueue {
    TestQueue::bind(url, EXCHANGE, &format!("file.uploaded.{}.*", h.tenant))
        .await
        .unwrap()
}

/// The message's properties and body are the brief's.
fn assert_event(message: &Received, file_id: &str, routing_key: &str) -> FileUploaded {
    let event: FileUploaded = message.json().unwrap();
    assert_eq!(message.routing_key, routing_key);
    assert_eq!(event.file.file_id.to_string(), file_id);
    assert_eq!(event.event_type, "file.uploaded");
    assert_eq!(event.schema_version, 1);
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(message.message_id.as_deref(), Some(event.event_id.to_string().as_str()));
    assert_eq!(message.kind.as_deref(), Some("file.uploaded"));
    assert_eq!(message.delivery_mode, Some(2), "persistent");
    assert!(message.timestamp.is_some());
    event
}

#[tokio::test]
async fn each_way_of_completing_yields_exactly_one_event() {
    let test = "each_way_of_completing_yields_exactly_one_event";
    let Some(url) = amqp::available(test).await else { return };
    let Some(ingest) = TestIngestQueue::create(&url).await else {
        return;
    };
    let Some(s) = events_stack(test, &url, &[("FILES_AMQP_INGEST_QUEUE", ingest.name())]).await else {
        return;
    };
    let h = &s.h;
    let mut queue = tenant_queue(&url, h).await;
    let token = h.device_token();
    let device_key = |id: &str| format!("{}/{}/{id}", h.tenant, h.device);
    let device_routing = format!("file.uploaded.{}.{}", h.tenant, h.device);

    // 1. complete.
    let by_complete = h.api.upload(&h.scope(), h.tenant, &token, "a.log", b"complete").await;
    let message = queue.next(WAIT).await.expect("an event for complete");
    let event = assert_event(&message, &by_complete, &device_routing);
    assert_eq!(event.file.sha256.to_hex(), sha256_hex(b"complete"));
    assert_eq!(event.file.size, 8);
    assert_eq!(event.file.file_name.as_str(), "a.log");
    assert_eq!(event.file.device_id, Some(h.device));
    assert_eq!(event.file.object_key, device_key(&by_complete));

    // 2 and 3. The webhook, AWS's shape then MinIO's.
    for (n, minio) in [(1, false), (2, true)] {
        let content = format!("webhook {n}");
        let (_, ticket) = h.api.upload_url(&h.scope(), &token, "w.log", content.as_bytes()).await;
        let id = ticket["file_id"].as_str().unwrap().to_owned();
        assert!(h.api.put(&ticket, content.as_bytes()).await.status().is_success());
        let key = device_key(&id);
        let body = if minio {
            json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("files-test/{key}"), "Records": [{
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "files-test"}, "object": {"key": key.replace('/', "%2F"), "size": content.len()}}}]})
        } else {
            json!({"Records": [{"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "files-test"}, "object": {"key": key, "size": content.len()}}}]})
        };
        let notify = || {
            h.api
                .client
                .post(h.app.url("/v1/storage/events"))
                .bearer_auth(SECRET)
                .json(&body)
                .send()
        };
        let (status, answer) = json_of(notify().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["completed"], 1, "{answer}");
        assert_event(
            &queue.next(WAIT).await.expect("an event for the webhook"),
            &id,
            &device_routing,
        );
        // The same notification again: no second event, no error.
        assert_eq!(notify().await.unwrap().status(), StatusCode::OK);
    }

    // 4. The AMQP ingest, a tenant-root file: its routing key ends in `.tenant`.
    let service = h.service_token();
    let root = tenant_scope(h.tenant);
    let (_, ticket) = h.api.upload_url(&root, &service, "fw.bin", b"firmware").await;
    let id = ticket["file_id"].as_str().unwrap().to_owned();
    assert!(h.api.put(&ticket, b"firmware").await.status().is_success());
    let key = format!("{}/_tenant/{id}", h.tenant);
    let notification = json!({"EventName": "s3:ObjectCreated:Put", "Records": [{"eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": "files-test"}, "object": {"key": key.replace('/', "%2F"), "size": 8}}}]});
    ingest
        .publish(&serde_json::to_vec(&notification).unwrap())
        .await
        .unwrap();
    // A duplicate and a malformed notification on the queue change nothing.
    ingest
        .publish(&serde_json::to_vec(&notification).unwrap())
        .await
        .unwrap();
    ingest.publish(b"{not json").await.unwrap();
    let message = queue.next(WAIT).await.expect("an event for the AMQP ingest");
    let event = assert_event(&message, &id, &format!("file.uploaded.{}.tenant", h.tenant));
    assert_eq!(event.file.device_id, None);

    // Events go out in order: once one more upload's event is here, nothing else was sent.
    let last = h.api.upload(&h.scope(), h.tenant, &token, "last.log", b"last").await;
    let message = queue.next(WAIT).await.expect("the last event");
    assert_event(&message, &last, &device_routing);
    assert!(
        queue.next(Duration::from_millis(300)).await.is_none(),
        "no duplicate event"
    );
}

#[tokio::test]
async fn no_event_is_lost_while_the_broker_is_cut() {
    let test = "no_event_is_lost_while_the_broker_is_cut";
    let Some(url) = amqp::available(test).await else { return };
    let (proxy, proxied_url) = TcpProxy::for_url(&url).await.unwrap();
    let Some(s) = events_stack(test, &proxied_url, &[("FILES_AMQP_TIMEOUT_MS", "1000")]).await else {
        return;
    };
    let h = &s.h;
    let mut queue = tenant_queue(&url, h).await;
    let token = h.device_token();
    h.api.upload(&h.scope(), h.tenant, &token, "warm.log", b"warm").await;
    assert!(queue.next(WAIT).await.is_some(), "the broker works before the cut");

    // Readiness is asked once the proxy has closed every connection (it closes them in its
    // own tasks), and measured in the background: wait for it to see the cut.
    assert!(
        proxy.cut_and_wait(WAIT).await,
        "the proxy did not close its connections in time"
    );
    let mut last = None;
    eventually(WAIT, async || {
        let ready = json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await;
        let seen = ready.1["dependencies"]["broker"] == "unavailable";
        last = Some(ready);
        seen
    })
    .await;
    let (status, ready) = last.unwrap();
    assert_eq!(status, StatusCode::OK, "uploads go on without the broker: {ready}");
    assert_eq!(ready["dependencies"]["broker"], "unavailable");
    let mut expected = HashSet::new();
    for n in 0..20 {
        let id = h
            .api
            .upload(
                &h.scope(),
                h.tenant,
                &token,
                &format!("{n}.log"),
                format!("cut {n}").as_bytes(),
            )
            .await;
        expected.insert(id);
    }
    // The events wait in the outbox, and the failures are counted.
    assert!(
        metric_reaches(h, "files_outbox_depth", |v| v >= 20.0).await,
        "the outbox holds the 20 events"
    );
    let failures = "files_outbox_publishes_total{outcome=\"failed\"}";
    assert!(
        eventually(WAIT, async || h.counter_or_zero(failures).await > 0.0).await,
        "no failed publish counted"
    );
    proxy.restore();

    // At least once: the warm-up event may come again (its confirm can be lost in the cut);
    // consumers de-duplicate by event_id. The 20 events of the cut are what must all arrive.
    let mut events: Vec<FileUploaded> = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while events.len() < 20 {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let Some(message) = queue.next(left).await else { break };
        let event: FileUploaded = message.json().unwrap();
        if expected.contains(&event.file.file_id.to_string()) {
            events.push(event);
        }
    }
    let event_ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    let file_ids: HashSet<String> = events.iter().map(|e| e.file.file_id.to_string()).collect();
    assert_eq!(event_ids.len(), 20, "20 distinct event ids");
    assert_eq!(file_ids, expected, "none missing");
    assert!(
        metric_reaches(h, "files_outbox_depth", |v| v == 0.0).await,
        "the outbox drained"
    );
}

/// Polls a metric until `ok` holds for it, or a deadline passes; a missing series fails.
async fn metric_reaches(h: &Harness, name: &str, ok: impl Fn(f64) -> bool) -> bool {
    eventually(WAIT, async || ok(h.metric(name).await)).await
}

#[tokio::test]
async fn two_instances_relay_one_outbox_and_lose_nothing() {
    let test = "two_instances_relay_one_outbox_and_lose_nothing";
    let Some(url) = amqp::available(test).await else { return };
    let Some(s) = events_stack(test, &url, &[]).await else {
        return;
    };
    // A second instance on the same database, Redis prefix, store and broker.
    let s3 = files_testkit::services::TestS3::from_env(test).await.unwrap();
    let mut options = AppOptions::default()
        .var("FILES_AMQP_URL", url.clone())
        .var("FILES_DATABASE_URL", s.db.url())
        .var("FILES_REDIS_URL", files_testkit::services::redis_url())
        .var("FILES_REDIS_PREFIX", s.redis_prefix.clone())
        .var("FILES_JWKS_URL", s.h.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", s.h.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", s.h.dsts.audience());
    options.vars.extend(s3.server_vars());
    let second = files_testkit::spawn_app(options).await.unwrap();
    let second_api = crate::helpers::Api::new(second.address.clone());

    let h = &s.h;
    let mut queue = tenant_queue(&url, h).await;
    let token = h.device_token();
    let mut expected = HashSet::new();
    for n in 0..20 {
        let api = if n % 2 == 0 { &h.api } else { &second_api };
        expected.insert(
            api.upload(
                &h.scope(),
                h.tenant,
                &token,
                &format!("{n}.log"),
                format!("two {n}").as_bytes(),
            )
            .await,
        );
    }
    let messages = queue.collect(20, Duration::from_secs(60)).await;
    let file_ids: HashSet<String> = messages
        .iter()
        .map(|m| m.json::<FileUploaded>().unwrap().file.file_id.to_string())
        .collect();
    assert_eq!(file_ids, expected, "every event published, none lost");
    assert!(
        queue.next(Duration::from_millis(300)).await.is_none(),
        "no event published twice"
    );
}
