//! The janitor on Postgres, Redis, RabbitMQ and garage, with its settings small (a pass every
//! second, no grace, URLs of a few seconds): what nobody completed is made good or expired,
//! nothing is left in the store, two instances publish each event once.

use std::collections::HashSet;
use std::time::Duration;

use files_core::{ObjectKey, ObjectStore as _, Owner};
use files_testkit::eventually;
use files_testkit::services::TestS3;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::events::{events_stack, tenant_queue};
use crate::helpers::{Harness, json_of};
use crate::multipart::{content, objects_of, plan, ticket};
use files_testkit::sha256_hex;

const SMALL: &[(&str, &str)] = &[
    ("FILES_JANITOR_INTERVAL_SECS", "1"),
    ("FILES_UPLOAD_GRACE_SECS", "0"),
    ("FILES_MULTIPART_EXPIRY_SECS", "3"),
];
/// How long the janitor may take to get to a file once its URL expired.
const WITHIN: Duration = Duration::from_secs(30);

async fn upload_url(h: &Harness, name: &str, bytes: &[u8], expires_in: u64) -> Value {
    let body = json!({"file_name": name, "sha256": sha256_hex(bytes), "size": bytes.len(), "expires_in": expires_in});
    let (status, ticket) = json_of(
        h.api
            .post(&format!("{}/files/upload-url", h.scope()), &h.device_token(), &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    ticket
}

async fn state(h: &Harness, file_id: &str) -> String {
    let (_, file) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &h.device_token())
            .await,
    )
    .await;
    file["state"].as_str().unwrap_or("(none)").to_owned()
}

fn key(h: &Harness, file_id: &str) -> ObjectKey {
    ObjectKey {
        tenant: h.tenant,
        owner: Owner::Device(h.device),
        file: file_id.parse().unwrap(),
    }
}

#[tokio::test]
async fn janitor_makes_good_or_clears_what_nobody_completed_on_the_real_stack() {
    let test = "janitor_makes_good_or_clears_what_nobody_completed_on_the_real_stack";
    let Some(url) = files_testkit::amqp::available(test).await else {
        return;
    };
    let Some(s3) = TestS3::from_env(test).await else { return };
    let Some(s) = events_stack(test, &url, SMALL).await else {
        return;
    };
    let h = &s.h;
    let objects = objects_of(&s3);
    let mut queue = tenant_queue(&url, h).await;
    let token = h.device_token();

    // 0. Uploads whose URLs live an hour: pending, and not the janitor's business yet; the
    // pending count must be exactly these once the others are settled.
    let mut waiting = Vec::new();
    for n in 0..3 {
        let ticket = upload_url(h, &format!("waiting-{n}.log"), b"not sent yet", 3600).await;
        waiting.push(ticket["file_id"].as_str().unwrap().to_owned());
    }

    // 1. A PUT with no `complete` and no notification: available, exactly one event.
    let put_only = upload_url(h, "put-only.log", b"put, never completed", 2).await;
    let response = h.api.put(&put_only, b"put, never completed").await;
    assert!(response.status().is_success(), "{}", response.status());
    let put_only_id = put_only["file_id"].as_str().unwrap().to_owned();

    // 2. An upload URL never used.
    let unused = upload_url(h, "unused.log", b"never sent", 2).await;
    let unused_id = unused["file_id"].as_str().unwrap().to_owned();

    // 3. A multipart upload with one part stored, then abandoned (it lives 3 s; its part URLs
    // 60 s, so one can be tried after the janitor aborted the upload).
    let data = content(5 * 1024 * 1024 + 100, 5);
    let mut body = plan("abandoned.bin", &data, 5 * 1024 * 1024);
    body["expires_in"] = json!(60);
    let (status, multipart) = json_of(
        h.api
            .post(&format!("{}/files/upload-url", h.scope()), &token, &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{multipart}");
    let multipart_id = multipart["file_id"].as_str().unwrap().to_owned();
    let response = h.api.put(ticket(&multipart, 1), &data[..5 * 1024 * 1024]).await;
    assert!(response.status().is_success(), "{}", response.status());

    // 4. DELETE of a pending file, then a PUT through its still-valid URL.
    let late = upload_url(h, "late.log", b"a late PUT", 3).await;
    let late_id = late["file_id"].as_str().unwrap().to_owned();
    let response = h
        .api
        .delete(&format!("/v1/tenants/{}/files/{late_id}", h.tenant), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = h.api.put(&late, b"a late PUT").await;
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        objects.inspect(&key(h, &late_id)).await.unwrap().is_some(),
        "the late PUT stored its object"
    );

    // 1: made available, one event.
    assert!(
        eventually(WITHIN, async || state(h, &put_only_id).await == "available").await,
        "the PUT nobody completed was not made available"
    );
    let missing = queue.until(&HashSet::from([put_only_id.clone()]), WITHIN).await;
    assert!(missing.is_empty(), "no event for the file the janitor completed");
    assert_eq!(queue.per_file().get(&put_only_id), Some(&1));

    // 2: expired, not listed, not downloadable.
    assert!(
        eventually(WITHIN, async || state(h, &unused_id).await == "expired").await,
        "the unused upload did not expire"
    );
    let (_, page) = json_of(h.api.get(&format!("{}/files", h.scope()), &token).await).await;
    let listed: Vec<&str> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["file_id"].as_str())
        .collect();
    assert!(!listed.contains(&unused_id.as_str()), "an expired file is listed");
    assert!(listed.contains(&put_only_id.as_str()));
    let (status, refused) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_id": unused_id}))
        .await;
    assert_eq!(status, StatusCode::GONE, "{refused}");
    assert_eq!(refused["error"]["code"], "upload_expired");

    // 3: expired, no multipart upload and no object left.
    assert!(
        eventually(WITHIN, async || state(h, &multipart_id).await == "expired").await,
        "the abandoned multipart upload did not expire"
    );
    assert_eq!(objects.inspect(&key(h, &multipart_id)).await.unwrap(), None);
    assert!(
        h.api
            .put_is_refused(ticket(&multipart, 2), &data[5 * 1024 * 1024..])
            .await,
        "the store still takes parts of the abandoned upload"
    );

    // 4: the late object is gone once its URL expired.
    assert!(
        eventually(WITHIN, async || objects
            .inspect(&key(h, &late_id))
            .await
            .is_ok_and(|o| o.is_none()))
        .await,
        "the object a late PUT left after the deletion is still in the store"
    );

    // 7: the janitor's metrics. An action is counted after it is done (the object deleted,
    // then the record marked, then the count), so the count may trail what was seen above.
    for series in [
        r#"files_janitor_actions_total{action="completed"}"#,
        r#"files_janitor_actions_total{action="expired"}"#,
        r#"files_janitor_actions_total{action="swept"}"#,
    ] {
        assert!(
            eventually(WITHIN, async || crate::helpers::metric(&h.metrics_text().await, series)
                >= 1.0)
            .await,
            "{series}"
        );
    }
    // The pending count, as the janitor's passes measure it: the three waiting uploads and
    // nothing else (everything above was completed, expired or deleted), then one fewer once
    // one of them is deleted.
    let pending = async || crate::helpers::metric(&h.metrics_text().await, "files_pending_uploads");
    assert!(
        eventually(WITHIN, async || pending().await == 3.0).await,
        "files_pending_uploads is {}, not the 3 uploads still pending",
        pending().await
    );
    let response = h
        .api
        .delete(&format!("/v1/tenants/{}/files/{}", h.tenant, waiting[0]), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        eventually(WITHIN, async || pending().await == 2.0).await,
        "files_pending_uploads is {} after one of the 3 pending uploads was deleted, not 2",
        pending().await
    );
    for file in &waiting[1..] {
        assert_eq!(
            state(h, file).await,
            "pending",
            "the janitor touched an upload whose URL is valid"
        );
    }
    assert_eq!(queue.per_file().get(&put_only_id), Some(&1), "still one event");
}

#[tokio::test]
async fn janitor_two_instances_complete_eight_uploads_with_one_event_each() {
    let test = "janitor_two_instances_complete_eight_uploads_with_one_event_each";
    let Some(url) = files_testkit::amqp::available(test).await else {
        return;
    };
    let Some(s3) = TestS3::from_env(test).await else { return };
    let Some(s) = events_stack(test, &url, SMALL).await else {
        return;
    };
    let mut options = crate::events::second_instance(&s, &url, &s3);
    for (name, value) in SMALL {
        options = options.var(name, *value);
    }
    let _second = crate::app::spawn_app(options).await.unwrap();

    let h = &s.h;
    let mut queue = tenant_queue(&url, h).await;
    let mut expected = HashSet::new();
    for n in 0..8 {
        let bytes = format!("never completed {n}");
        let ticket = upload_url(h, &format!("{n}.log"), bytes.as_bytes(), 2).await;
        let response = h.api.put(&ticket, bytes.as_bytes()).await;
        assert!(response.status().is_success(), "{}", response.status());
        expected.insert(ticket["file_id"].as_str().unwrap().to_owned());
    }
    let missing = queue.until(&expected, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "uploads the janitors did not complete: {missing:?}");
    assert_eq!(queue.files(), expected, "events of these files and no other");
    for (file, count) in queue.per_file() {
        assert_eq!(count, 1, "{file} has {count} distinct events");
    }
}

/// The janitor of a running server prunes the outbox: a sent row older than
/// `FILES_OUTBOX_RETENTION_SECS` is removed and counted in
/// `files_janitor_actions_total{action="outbox_pruned"}`; an unsent row (the broker cut) older
/// than that is kept, and published once the broker is back, then pruned in its turn. On
/// PostgreSQL and RabbitMQ (through a proxy), with the embedded store.
#[tokio::test]
async fn janitor_prunes_sent_outbox_rows_and_keeps_unsent_ones_on_a_running_server() {
    const RETENTION_SECS: u64 = 3;
    let test = "janitor_prunes_sent_outbox_rows_and_keeps_unsent_ones_on_a_running_server";
    let Some(url) = files_testkit::amqp::available(test).await else {
        return;
    };
    let Some(db) = files_testkit::postgres::TestDatabase::create(test).await else {
        return;
    };
    let (broker, proxied) = files_testkit::proxy::TcpProxy::for_url(&url).await.unwrap();
    let options = crate::app::AppOptions::default()
        .var("FILES_DATABASE_URL", db.url())
        .var("FILES_AMQP_URL", proxied)
        .var("FILES_AMQP_TIMEOUT_MS", "1000")
        .var("FILES_JANITOR_INTERVAL_SECS", "1")
        .var("FILES_OUTBOX_RETENTION_SECS", RETENTION_SECS.to_string());
    let h = Harness::start_with(options).await;
    let mut queue = tenant_queue(&url, &h).await;
    let token = h.device_token();
    let pruned = r#"files_janitor_actions_total{action="outbox_pruned"}"#;
    let prune_calls = r#"files_dependency_call_duration_seconds_count{dependency="database",operation="prune_sent"}"#;
    let sent_rows = "outbox WHERE sent_at IS NOT NULL";

    // A: published, so its row is sent.
    let sent = h
        .api
        .upload(&h.scope(), h.tenant, &token, "sent.log", b"published")
        .await;
    assert!(
        queue.until(&HashSet::from([sent.clone()]), WITHIN).await.is_empty(),
        "no event for {sent}"
    );
    assert!(
        eventually(WITHIN, async || db.count(sent_rows).await == 1).await,
        "the published event's row is not marked sent"
    );

    // B: recorded with the broker cut, so its row stays unsent.
    assert!(
        broker.cut_and_wait(WITHIN).await,
        "the broker proxy still holds connections"
    );
    let failed = r#"files_outbox_publishes_total{outcome="failed"}"#;
    let failed_before = h.counter_or_zero(failed).await;
    let unsent = h.api.upload(&h.scope(), h.tenant, &token, "unsent.log", b"held").await;
    assert!(
        eventually(WITHIN, async || h.counter_or_zero(failed).await > failed_before).await,
        "the relay never failed to publish with the broker cut"
    );

    // A's row is pruned once older than the retention, and counted once.
    assert!(
        eventually(WITHIN, async || db.count(sent_rows).await == 0).await,
        "the sent row was not pruned"
    );
    assert!(
        eventually(WITHIN, async || h.counter_or_zero(pruned).await == 1.0).await,
        "{pruned} is {}, not the one row pruned",
        h.counter_or_zero(pruned).await
    );

    // B's row, older than the retention too, survives the janitor's passes after that.
    let old_unsent =
        format!("outbox WHERE sent_at IS NULL AND recorded_at < now() - interval '{RETENTION_SECS} seconds'");
    assert!(
        eventually(WITHIN, async || db.count(&old_unsent).await == 1).await,
        "the unsent row is not there, or never older than the retention"
    );
    // Two more pruning calls: the second started after the row was older than the retention.
    let calls = h.metric(prune_calls).await;
    assert!(
        eventually(WITHIN, async || h.metric(prune_calls).await >= calls + 2.0).await,
        "the janitor stopped pruning"
    );
    assert_eq!(
        db.count("outbox WHERE sent_at IS NULL").await,
        1,
        "the unsent row was pruned"
    );
    assert_eq!(
        h.counter_or_zero(pruned).await,
        1.0,
        "an unsent row was counted as pruned"
    );

    // The broker back: B is published (nothing was lost), then pruned in its turn.
    broker.restore();
    assert!(
        queue
            .until(&HashSet::from([unsent.clone()]), Duration::from_secs(60))
            .await
            .is_empty(),
        "the unsent event was lost"
    );
    assert!(
        eventually(WITHIN, async || db.count("outbox").await == 0).await,
        "the event published after the restore was not pruned"
    );
    assert!(
        eventually(WITHIN, async || h.counter_or_zero(pruned).await == 2.0).await,
        "{pruned} is {}, not the two rows pruned",
        h.counter_or_zero(pruned).await
    );
    assert_eq!(queue.per_file().get(&sent), Some(&1));
    assert_eq!(queue.per_file().get(&unsent), Some(&1));
}
