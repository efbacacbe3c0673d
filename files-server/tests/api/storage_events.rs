//! The storage-events webhook: its secret, both S3 event shapes, duplicates and bad content.

use std::sync::Arc;

use crate::app::AppOptions;
use files_server::Overrides;
use files_testkit::eventually;
use files_testkit::fakes::RecordingNotifier;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of};

const SECRET: &str = "webhook-secret-for-tests";

fn aws(bucket: &str, key: &str, size: u64) -> Value {
    let key = key.replace(' ', "+");
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}}]})
}

fn minio(bucket: &str, key: &str, size: u64) -> Value {
    json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("{bucket}/{key}"),
        "Records": [{"eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace('/', "%2F"), "size": size}}}]})
}

async fn notify(h: &Harness, authorization: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = h.api.client.post(h.app.url("/v1/storage/events")).body(body.to_owned());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    json_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn the_webhook_is_off_without_a_secret() {
    let h = Harness::start().await;
    let (status, _) = notify(&h, Some("Bearer anything"), &json!({"Records": []}).to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secret_shapes_duplicates_and_bad_content() {
    let notifier = Arc::new(RecordingNotifier::default());
    let options = AppOptions {
        overrides: Overrides {
            notifier: Some(notifier.clone()),
            ..Overrides::default()
        },
        ..AppOptions::default()
    }
    .var("FILES_EVENTS_SECRET", SECRET);
    let h = Harness::start_with(options).await;
    let token = h.device_token();
    let file_id = h.api.upload(&h.scope(), h.tenant, &token, "log.txt", b"log").await;
    let key = format!("{}/{}/{file_id}", h.tenant, h.device);
    assert_eq!(wait_for_events(&notifier, 1).await.len(), 1);

    let body = aws("files", &key, 3).to_string();
    for authorization in [None, Some("Bearer wrong"), Some("wrong"), Some("Basic d2ViaG9vaw==")] {
        let (status, answer) = notify(&h, authorization, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_secret");
    }

    // Both shapes, both ways of presenting the secret: duplicates of a completed upload.
    let bearer = format!("Bearer {SECRET}");
    for (authorization, body) in [
        (bearer.as_str(), aws("files", &key, 3)),
        (SECRET, minio("files", &key, 3)),
    ] {
        let (status, answer) = notify(&h, Some(authorization), &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer, json!({"completed": 0, "skipped": 1}));
    }

    // Records that are not ours or not well formed are skipped; the rest of the batch is read.
    let mixed = json!({"Records": [
        {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "files"}, "object": {"key": key}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "../../etc/passwd", "size": 1}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "other"}, "object": {"key": key, "size": 3}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "%ZZ"}}},
        {"no": "event"},
    ]});
    let (status, answer) = notify(&h, Some(&bearer), &mixed.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"completed": 0, "skipped": 6}));

    let huge = format!(r#"{{"Records": [], "pad": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (status, answer) = notify(&h, Some(&bearer), &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "body_too_large");

    for bad in ["not json", "[]", "{}", r#"{"Records": 5}"#] {
        let (status, answer) = notify(&h, Some(&bearer), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_notification");
    }
    // Events are relayed in order: once the next upload's event is out, anything the
    // notifications above had caused would be out too.
    let next = h.api.upload(&h.scope(), h.tenant, &token, "next.txt", b"next").await;
    let events = wait_for_events(&notifier, 2).await;
    let ids: Vec<String> = events.iter().map(|e| e.file.file_id.to_string()).collect();
    assert_eq!(
        ids,
        vec![file_id, next],
        "duplicate and malformed notifications published nothing"
    );
}

/// Polls until the notifier has at least `n` events (or a deadline passes), then returns them.
async fn wait_for_events(notifier: &RecordingNotifier, n: usize) -> Vec<files_core::FileUploaded> {
    eventually(std::time::Duration::from_secs(10), async || {
        notifier.events().len() >= n
    })
    .await;
    notifier.events()
}

#[tokio::test]
async fn a_notification_for_a_pending_file_without_its_object_completes_nothing() {
    let options = AppOptions::default().var("FILES_EVENTS_SECRET", SECRET);
    let h = Harness::start_with(options).await;
    let token = h.device_token();
    let (_, ticket) = h.api.upload_url(&h.scope(), &token, "p.txt", b"pending").await;
    let file_id = ticket["file_id"].as_str().unwrap();
    let key = format!("{}/{}/{file_id}", h.tenant, h.device);
    let (status, answer) = notify(&h, Some(SECRET), &minio("files", &key, 7).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"completed": 0, "skipped": 1}),
        "the store has no such object"
    );
    let (_, file) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
            .await,
    )
    .await;
    assert_eq!(file["state"], "pending");
}
