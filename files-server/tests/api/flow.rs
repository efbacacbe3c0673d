//! The device flow end to end against the embedded store: upload URL, PUT, complete, download.

use files_core::{DeviceId, TenantId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Api, Harness, device_scope};
use files_testkit::sha256_hex;

/// The whole flow, including a PUT of other bytes that the store must refuse without storing.
/// Used in process here and against the real binary in `binary.rs`.
pub async fn device_flow(api: &Api, tenant: TenantId, device: DeviceId, token: &str) {
    let scope = device_scope(tenant, device);
    let content = b"2026-11-29T07:00:00Z boot ok\n".to_vec();
    let (status, ticket) = api.upload_url(&scope, token, "boot.log", &content).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let file_id = ticket["file_id"].as_str().unwrap().to_owned();
    let headers = ticket["headers"].as_object().unwrap();
    assert!(headers.contains_key("x-amz-checksum-sha256"), "{ticket}");
    assert_eq!(headers["content-length"], content.len().to_string());
    assert!(ticket["expires_at"].is_string());

    // Other bytes of the same length: the store refuses them and keeps nothing.
    let mut evil = content.clone();
    evil[0] ^= 0x01;
    let refused = api.put(&ticket, &evil).await;
    assert!(
        refused.status().is_client_error(),
        "the store accepted other bytes: {}",
        refused.status()
    );
    // Other bytes of another length than the signed one: refused too.
    let refused = api.put_with(&ticket, b"short", false).await;
    assert!(
        refused.status().is_client_error(),
        "the store accepted a short body: {}",
        refused.status()
    );

    // The store holds no object: complete says so, and the file stays pending.
    let (status, body) = api.complete(tenant, &file_id, token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["error"]["code"], "upload_missing",
        "nothing may have been stored: {body}"
    );
    let (status, body) = api.download_url(&scope, token, &json!({"file_id": file_id})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "upload_not_completed");
    let (status, body) = api.download_url(&scope, token, &json!({"file_name": "boot.log"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The right bytes still go through.
    let stored = api.put(&ticket, &content).await;
    assert!(stored.status().is_success(), "PUT answered {}", stored.status());
    let (status, body) = api.complete(tenant, &file_id, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "available");
    assert_eq!(body["size"], content.len());
    assert_eq!(body["sha256"], sha256_hex(&content));
    // Idempotent.
    let (status, _) = api.complete(tenant, &file_id, token).await;
    assert_eq!(status, StatusCode::OK);

    let (status, download) = api.download_url(&scope, token, &json!({"file_name": "boot.log"})).await;
    assert_eq!(status, StatusCode::OK, "{download}");
    assert_eq!(download["file_id"], file_id.as_str());
    assert_eq!(download["file_name"], "boot.log");
    assert_eq!(download["sha256"], sha256_hex(&content));
    assert_eq!(download["size"], content.len());
    let (status, fetched) = api.fetch(&download).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, content, "GET returns the bytes that were uploaded");
}

#[tokio::test]
async fn upload_put_complete_download_get() {
    let h = Harness::start().await;
    device_flow(&h.api, h.tenant, h.device, &h.device_token()).await;
}

#[tokio::test]
async fn the_embedded_store_notices_uploads_without_complete() {
    let h = Harness::start().await;
    let token = h.device_token();
    let content = b"noticed".to_vec();
    let (_, ticket) = h.api.upload_url(&h.scope(), &token, "n.txt", &content).await;
    let file_id = ticket["file_id"].as_str().unwrap();
    assert!(h.api.put(&ticket, &content).await.status().is_success());
    assert!(
        h.api.wait_for_state(h.tenant, file_id, &token, "available").await,
        "the PUT was not ingested"
    );
}

#[tokio::test]
async fn listing_get_and_delete() {
    let h = Harness::start().await;
    let token = h.device_token();
    let first = h.api.upload(&h.scope(), h.tenant, &token, "a.txt", b"a").await;
    let second = h.api.upload(&h.scope(), h.tenant, &token, "b.txt", b"b").await;
    let (_, pending) = h.api.upload_url(&h.scope(), &token, "c.txt", b"c").await;

    let (status, page) =
        crate::helpers::json_of(h.api.get(&format!("{}/files?limit=1", h.scope()), &token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["files"][0]["file_id"], second.as_str(), "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = crate::helpers::json_of(
        h.api
            .get(&format!("{}/files?limit=1&cursor={cursor}", h.scope()), &token)
            .await,
    )
    .await;
    assert_eq!(page["files"][0]["file_id"], first.as_str());
    assert!(page["next_cursor"].is_null(), "pending files are not listed: {page}");
    assert_ne!(pending["file_id"], page["files"][0]["file_id"]);

    let path = format!("/v1/tenants/{}/files/{first}", h.tenant);
    let (status, file) = crate::helpers::json_of(h.api.get(&path, &token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file["file_name"], "a.txt");
    assert_eq!(file["device_id"], h.device.to_string());

    let (status, before) = h.api.download_url(&h.scope(), &token, &json!({"file_id": first})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.api.delete(&path, &token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.api.get(&path, &token).await.status(), StatusCode::NOT_FOUND);
    let (status, _) = h.api.fetch(&before).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the object is gone from the store");
    assert_eq!(
        h.api.delete(&path, &token).await.status(),
        StatusCode::NO_CONTENT,
        "deleting again is harmless"
    );
    let never = format!("/v1/tenants/{}/files/{}", h.tenant, uuid::Uuid::now_v7());
    assert_eq!(h.api.delete(&never, &token).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::start().await;
    let token = h.device_token();
    h.api.upload(&h.scope(), h.tenant, &token, "m.txt", b"m").await;
    let client = &h.api.client;
    let healthz = client.get(h.app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    let (status, ready) = crate::helpers::json_of(client.get(h.app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["dependencies"]["database"], "ok");
    assert_eq!(ready["dependencies"]["object store"], "ok");
    let metrics = h.metrics_text().await;
    for expected in [
        "files_http_requests_total{method=\"POST\",route=\"/v1/tenants/{tenant_id}/devices/{device_id}/files/upload-url\",status=\"201\"} 1",
        "files_token_verifications_total{outcome=\"ok\"}",
        &format!(
            "files_tenant_operations_total{{operation=\"complete\",tenant=\"{}\"}} 1",
            h.tenant
        ),
        &format!(
            "files_device_operations_total{{device=\"{}\",operation=\"upload_url\"}} 1",
            h.device
        ),
        "files_cache_operations_total{operation=\"get_file\"",
        "files_key_set_refreshes_total{outcome=\"updated\"}",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in\n{metrics}");
    }
    assert!(!metrics.contains(&token), "no token in metrics");
}

/// A declared content type is signed: the store refuses a PUT with another one.
pub async fn content_type_is_signed(api: &Api, tenant: TenantId, device: DeviceId, token: &str) {
    let scope = device_scope(tenant, device);
    let content = br#"{"level":"info"}"#;
    let body = json!({"file_name": "c.json", "sha256": sha256_hex(content), "size": content.len(), "content_type": "application/json"});
    let (status, ticket) =
        crate::helpers::json_of(api.post(&format!("{scope}/files/upload-url"), token, &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["headers"]["content-type"], "application/json");
    assert_eq!(
        ticket["headers"]["content-length"],
        content.len().to_string(),
        "the size is always signed"
    );

    let mut request = api.client.put(ticket["url"].as_str().unwrap()).body(content.to_vec());
    request = request
        .header(
            "x-amz-checksum-sha256",
            ticket["headers"]["x-amz-checksum-sha256"].as_str().unwrap(),
        )
        .header("content-type", "text/html");
    let refused = request.send().await.unwrap();
    assert!(
        refused.status().is_client_error(),
        "another content type was accepted: {}",
        refused.status()
    );

    assert!(api.put(&ticket, content).await.status().is_success());
    let id = ticket["file_id"].as_str().unwrap();
    let (status, record) = api.complete(tenant, id, token).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["content_type"], "application/json");
}

#[tokio::test]
async fn a_declared_content_type_is_signed() {
    let h = Harness::start().await;
    content_type_is_signed(&h.api, h.tenant, h.device, &h.device_token()).await;
}
