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
use crate::helpers::{Harness, json_of, sha256_hex};
use crate::multipart::{content, objects_of, plan, ticket};

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
    let text = h.metrics_text().await;
    assert!(crate::helpers::metric(&text, "files_pending_uploads") >= 0.0);
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
    let _second = files_testkit::spawn_app(options).await.unwrap();

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
