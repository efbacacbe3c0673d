//! Upload notifications end to end against RabbitMQ and Postgres: completions by `complete`,
//! by the webhook (both JSON shapes) and by the AMQP ingest each yield exactly one
//! `file.uploaded` event; none is lost while the broker is cut, nor with two relays.
//!
//! Delivery is at least once: a publish whose confirm was lost is published again, with the
//! same `event_id`. So the tests count distinct events (by `event_id`), wait until every
//! expected one has come, and assert none is missing; a duplicate message is never a failure.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::app::AppOptions;
use files_core::FileUploaded;
use files_testkit::amqp::{self, Received, TestIngestQueue, TestQueue};
use files_testkit::eventually;
use files_testkit::proxy::TcpProxy;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, json_of, tenant_scope};
use crate::real::{RedisRoute, Stack, stack_with};
use files_testkit::sha256_hex;

const SECRET: &str = "events-test-secret";
const EXCHANGE: &str = "files.events";
const WAIT: Duration = Duration::from_secs(15);

/// A stack (Postgres, Redis, garage, JWKS) publishing to RabbitMQ at `amqp_url`.
pub(crate) async fn events_stack(test: &str, amqp_url: &str, extra: &[(&str, &str)]) -> Option<Stack> {
    let mut options = AppOptions::default()
        .var("FILES_AMQP_URL", amqp_url)
        .var("FILES_EVENTS_SECRET", SECRET);
    for (name, value) in extra {
        options = options.var(name, *value);
    }
    stack_with(test, false, RedisRoute::Direct, options).await
}

/// A second instance's options: the same database, Redis prefix, store, broker and DSTS as `s`.
pub(crate) fn second_instance(s: &Stack, amqp_url: &str, s3: &files_testkit::services::TestS3) -> AppOptions {
    let mut options = AppOptions::default()
        .var("FILES_AMQP_URL", amqp_url)
        .var("FILES_DATABASE_URL", s.db.url())
        .var("FILES_REDIS_URL", files_testkit::services::redis_url())
        .var("FILES_REDIS_PREFIX", s.redis_prefix.clone())
        .var("FILES_JWKS_URL", s.h.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", s.h.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", s.h.dsts.audience());
    options.vars.extend(s3.server_vars());
    options
}

pub(crate) async fn tenant_queue(url: &str, h: &Harness) -> Events {
    let queue = TestQueue::bind(url, EXCHANGE, &format!("file.uploaded.{}.*", h.tenant))
        .await
        .unwrap();
    Events {
        queue,
        distinct: Vec::new(),
        event_ids: HashSet::new(),
        duplicates: 0,
    }
}

/// The events a queue receives, de-duplicated by `event_id`.
pub(crate) struct Events {
    queue: TestQueue,
    /// Each distinct event, first delivery, in arrival order.
    distinct: Vec<(Received, FileUploaded)>,
    event_ids: HashSet<uuid::Uuid>,
    /// Deliveries of an event already received.
    duplicates: usize,
}

impl Events {
    /// Reads one message within `left`; whether one came.
    async fn read(&mut self, left: Duration) -> bool {
        let Some(message) = self.queue.next(left).await else {
            return false;
        };
        let event: FileUploaded = message.json().unwrap();
        if self.event_ids.insert(event.event_id) {
            self.distinct.push((message, event));
        } else {
            self.duplicates += 1;
        }
        true
    }

    /// Reads until an event of each of `files` has come, or `within` passes; the files whose
    /// event did not come.
    pub(crate) async fn until(&mut self, files: &HashSet<String>, within: Duration) -> HashSet<String> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let missing: HashSet<String> = files.difference(&self.files()).cloned().collect();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if missing.is_empty() || left.is_zero() || !self.read(left).await {
                return missing;
            }
        }
    }

    /// The first message of `file`'s event, once it has come (within [`WAIT`]).
    async fn of(&mut self, file: &str) -> Received {
        let missing = self.until(&HashSet::from([file.to_owned()]), WAIT).await;
        assert!(missing.is_empty(), "no event for {file} within {WAIT:?}");
        self.distinct
            .iter()
            .find(|(_, event)| event.file.file_id.to_string() == file)
            .map(|(message, _)| message.clone())
            .unwrap()
    }

    /// The files of the distinct events received.
    pub(crate) fn files(&self) -> HashSet<String> {
        self.distinct.iter().map(|(_, e)| e.file.file_id.to_string()).collect()
    }

    /// How many distinct events each file has.
    pub(crate) fn per_file(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (_, event) in &self.distinct {
            *counts.entry(event.file.file_id.to_string()).or_default() += 1;
        }
        counts
    }
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
    let message = queue.of(&by_complete).await;
    let event = assert_event(&message, &by_complete, &device_routing);
    assert_eq!(event.file.sha256.to_hex(), sha256_hex(b"complete"));
    assert_eq!(event.file.size, 8);
    assert_eq!(event.file.file_name.as_str(), "a.log");
    assert_eq!(event.file.device_id, Some(h.device));
    assert_eq!(event.file.object_key, device_key(&by_complete));

    // 2 and 3. The webhook, AWS's shape then MinIO's.
    let mut webhooks = Vec::new();
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
        assert_event(&queue.of(&id).await, &id, &device_routing);
        // The same notification again: no second event, no error.
        assert_eq!(notify().await.unwrap().status(), StatusCode::OK);
        webhooks.push(id);
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
    let message = queue.of(&id).await;
    let event = assert_event(&message, &id, &format!("file.uploaded.{}.tenant", h.tenant));
    assert_eq!(event.file.device_id, None);

    // Events go out in order: once one more upload's event is here, any other event the
    // completions above had caused is here too. Each file has one event (redeliveries of it
    // carry its event_id), and no event of anything else came.
    let last = h.api.upload(&h.scope(), h.tenant, &token, "last.log", b"last").await;
    let message = queue.of(&last).await;
    assert_event(&message, &last, &device_routing);
    let completed: HashSet<String> = [by_complete, last, id].into_iter().chain(webhooks).collect();
    assert_eq!(queue.files(), completed, "events of these files and no other");
    for (file, count) in queue.per_file() {
        assert_eq!(count, 1, "{file} has {count} distinct events");
    }
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
    let warm = h.api.upload(&h.scope(), h.tenant, &token, "warm.log", b"warm").await;
    queue.of(&warm).await;

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

    // At least once: any event may come again (a confirm can be lost in the cut); distinct
    // event ids are what count, and every one of the 20 must come.
    let missing = queue.until(&expected, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "events lost: {missing:?}");
    let per_file = queue.per_file();
    for file in &expected {
        assert_eq!(per_file[file], 1, "{file}: one event, whatever its deliveries");
    }
    assert!(
        metric_reaches(h, "files_outbox_depth", |v| v == 0.0).await,
        "the outbox drained"
    );
}

/// Polls a metric until `ok` holds for it, or a deadline passes; a missing series fails.
async fn metric_reaches(h: &Harness, name: &str, ok: impl Fn(f64) -> bool) -> bool {
    eventually(WAIT, async || ok(h.metric(name).await)).await
}

/// Events each instance's relay published, from that instance's own `/metrics` (each server
/// has its own registry); 0 before its relay has made a pass.
async fn published_by(api: &crate::helpers::Api) -> f64 {
    let text = api.metrics_text().await;
    crate::helpers::metric_in(&text, "files_outbox_publishes_total{outcome=\"published\"}").unwrap_or(0.0)
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
    let options = second_instance(&s, &url, &s3);
    let second = crate::app::spawn_app(options).await.unwrap();
    let second_api = crate::helpers::Api::new(second.address.clone());

    let h = &s.h;
    let mut queue = tenant_queue(&url, h).await;
    let token = h.device_token();
    let mut expected = HashSet::new();
    // At least 20 uploads, through either instance in turn, and more until both relays have
    // published some of the events, for at most a minute. Which relay claims an event is a race
    // between their passes (every 200 ms each): when their passes fall close together one may
    // win most of them, but passes drift with the work they do, so only a relay that never
    // runs publishes nothing for a minute.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let split = loop {
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
        n += 1;
        if n >= 20 && n % 10 == 0 {
            let split = (published_by(&h.api).await, published_by(&second_api).await);
            if (split.0 > 0.0 && split.1 > 0.0) || tokio::time::Instant::now() > until {
                break split;
            }
        }
    };
    eprintln!(
        "two relays: {n} events, published {} by the first and {} by the second when both were seen",
        split.0, split.1
    );
    assert!(
        split.0 > 0.0 && split.1 > 0.0,
        "one relay published everything ({split:?} of {n} events in a minute): the other never ran"
    );
    let missing = queue.until(&expected, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "events lost: {missing:?}");
    // Between them they published every event (a publish is counted once confirmed and marked
    // sent, so the count may trail the delivery a little).
    let mut counted = split;
    let all = eventually(WAIT, async || {
        counted = (published_by(&h.api).await, published_by(&second_api).await);
        counted.0 + counted.1 >= expected.len() as f64
    })
    .await;
    assert!(
        all,
        "the relays counted {counted:?} publishes for {} events",
        expected.len()
    );
    // A delivery twice (the other relay's lease having run out, a lost confirm) is allowed, a
    // second distinct event for a file is not.
    assert_eq!(queue.files(), expected, "events of these files and no other");
    for (file, count) in queue.per_file() {
        assert_eq!(count, 1, "{file} has {count} distinct events");
    }
    if queue.duplicates > 0 {
        eprintln!(
            "two relays: {} messages delivered again (at least once)",
            queue.duplicates
        );
    }
}
