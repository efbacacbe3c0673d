//! Retention end to end (must-show 3 of issue 23): on Postgres, Redis, garage and RabbitMQ,
//! with TWO instances sharing the database, each running its janitor every second. A tenant
//! with `retention_secs` of 2 loses its device file (the object in garage, then the record,
//! with exactly one `file.deleted` of reason `retention`, counted `retained` once across both
//! instances) and keeps its tenant-root file. Nothing sleeps: every wait polls with a deadline.

use std::collections::HashSet;
use std::time::Duration;

use files_core::{ObjectKey, ObjectStore as _, Owner};
use files_testkit::amqp::TestQueue;
use files_testkit::eventually;
use files_testkit::services::TestS3;
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::deletion_events::before_marker;
use crate::events::{events_stack, second_instance};
use crate::helpers::{counter_or_zero, tenant_scope};
use crate::multipart::objects_of;

const EXCHANGE: &str = "files.events";
const RETAINED: &str = r#"files_janitor_actions_total{action="retained"}"#;
const JANITOR: &[(&str, &str)] = &[("FILES_JANITOR_INTERVAL_SECS", "1")];
/// How long the janitors may take: the retention (2 s), a pass, the relay, a loaded machine.
const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn retention_deletes_a_device_file_once_on_two_instances_and_keeps_the_tenant_root_file() {
    let test = "retention_deletes_a_device_file_once_on_two_instances_and_keeps_the_tenant_root_file";
    let Some(url) = files_testkit::amqp::available(test).await else {
        return;
    };
    let Some(s3) = TestS3::from_env(test).await else { return };
    let Some(s) = events_stack(test, &url, JANITOR).await else {
        return;
    };
    let mut options = second_instance(&s, &url, &s3);
    for (name, value) in JANITOR {
        options = options.var(name, *value);
    }
    let second = crate::app::spawn_app(options).await.unwrap();
    let h = &s.h;
    let objects = objects_of(&s3);
    let mut deletions = TestQueue::bind(&url, EXCHANGE, &format!("file.deleted.{}.*", h.tenant))
        .await
        .unwrap();

    crate::tenants::set(h, h.tenant, json!({"retention_secs": 2})).await;
    let (token, service) = (h.device_token(), h.service_token());
    let device_file = h.api.upload(&h.scope(), h.tenant, &token, "old.log", b"old").await;
    let root_content = b"firmware, kept";
    let root_file = h
        .api
        .upload(&tenant_scope(h.tenant), h.tenant, &service, "fw.bin", root_content)
        .await;
    let device_key = ObjectKey {
        tenant: h.tenant,
        owner: Owner::Device(h.device),
        file: device_file.parse().unwrap(),
    };
    assert!(objects.inspect(&device_key).await.unwrap().is_some(), "uploaded");

    // The record goes (GET answers 404) and the object with it.
    let path = format!("/v1/tenants/{}/files/{device_file}", h.tenant);
    let gone = eventually(WITHIN, async || {
        h.api.get(&path, &token).await.status() == StatusCode::NOT_FOUND
            && objects.inspect(&device_key).await.unwrap().is_none()
    })
    .await;
    assert!(gone, "{device_file} still there after {WITHIN:?}");

    // Exactly one file.deleted of reason retention arrives for it (redeliveries de-duplicated
    // by event_id), and none for the tenant-root file.
    let until = Instant::now() + WITHIN;
    let mut event_ids = HashSet::new();
    while event_ids.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let Some(message) = deletions.next(left).await else {
            panic!("no file.deleted of {device_file} within {WITHIN:?}");
        };
        let body: serde_json::Value = message.json().unwrap();
        if body["file"]["file_id"] == device_file.as_str() {
            assert_eq!(body["reason"], "retention", "{body}");
            assert_eq!(message.routing_key, format!("file.deleted.{}.{}", h.tenant, h.device));
            event_ids.insert(body["event_id"].as_str().unwrap().to_owned());
        }
    }
    // Another pass of each janitor, so a second deletion would have been recorded by now.
    let passes = async |metrics: String| {
        let text = reqwest::get(metrics).await.unwrap().text().await.unwrap();
        counter_or_zero(
            &text,
            r#"files_dependency_call_duration_seconds_count{dependency="database",operation="claim_retained"}"#,
        )
    };
    let (a_before, b_before) = (
        passes(h.app.url("/metrics")).await,
        passes(second.url("/metrics")).await,
    );
    assert!(
        eventually(WITHIN, async || {
            passes(h.app.url("/metrics")).await >= a_before + 2.0
                && passes(second.url("/metrics")).await >= b_before + 2.0
        })
        .await,
        "the janitors stopped claiming"
    );
    for message in before_marker(&url, &mut deletions, &format!("file.deleted.{}.tenant", h.tenant)).await {
        let body: serde_json::Value = message.json().unwrap();
        assert_ne!(
            body["file"]["file_id"],
            root_file.as_str(),
            "the tenant-root file is kept"
        );
        if body["file"]["file_id"] == device_file.as_str() {
            assert_eq!(body["reason"], "retention", "{body}");
            event_ids.insert(body["event_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(event_ids.len(), 1, "one distinct event: {event_ids:?}");
    let recorded = format!(
        "outbox WHERE payload->>'event_type' = 'file.deleted' AND payload->'file'->>'file_id' = '{device_file}'"
    );
    assert_eq!(s.db.count(&recorded).await, 1, "one deletion recorded");

    // Counted once across both instances.
    let retained = async || {
        let a = h.counter_or_zero(RETAINED).await;
        let text = reqwest::get(second.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        a + counter_or_zero(&text, RETAINED)
    };
    assert_eq!(retained().await, 1.0, "retained counted once across both instances");

    // The tenant-root file is still downloadable.
    let (status, ticket) = h
        .api
        .download_url(&tenant_scope(h.tenant), &service, &json!({"file_id": root_file}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let body = h
        .api
        .client
        .get(ticket["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], root_content);
}
