//! Lifetimes asked per request (`expires_in`), ranged downloads and `disposition: attachment`,
//! on the embedded store and on garage.

use std::time::Duration;

use crate::app::AppOptions;
use files_testkit::eventually;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, json_of};
use crate::real::{RedisRoute, stack_with};
use files_testkit::sha256_hex;

async fn expires_in_is_asked_bounded_and_enforced_by_the_store(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    let content = b"expiring";
    let body = |expires_in: u64| json!({"file_name": "e.txt", "sha256": sha256_hex(content), "size": content.len(), "expires_in": expires_in});
    let (status, ticket) = json_of(
        h.api
            .post(&format!("{scope}/files/upload-url"), &token, &body(60))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["expires_in"], 60);
    assert!(ticket["url"].as_str().unwrap().contains("X-Amz-Expires=60"), "{ticket}");

    // Over the maximum (FILES_UPLOAD_URL_MAX_EXPIRY_SECS, 24 h by default): 400 naming it.
    let (status, refused) = json_of(
        h.api
            .post(&format!("{scope}/files/upload-url"), &token, &body(86_401))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_expires_in");
    assert_eq!(refused["error"]["field"], "expires_in");

    // A URL used after its expiry is refused by the store itself.
    let (status, short) = json_of(h.api.post(&format!("{scope}/files/upload-url"), &token, &body(1)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{short}");
    let refused_late = eventually(Duration::from_secs(10), async || {
        h.api.put(&short, content).await.status().is_client_error()
    })
    .await;
    assert!(refused_late, "the store kept accepting an expired upload URL");

    // Downloads: the default (5 min), an asked lifetime, and the maximum.
    let id = h.api.upload(&scope, h.tenant, &token, "d.bin", b"0123456789").await;
    let (status, ticket) = h.api.download_url(&scope, &token, &json!({"file_id": id})).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    assert_eq!(ticket["expires_in"], 300);
    let (_, ticket) = h
        .api
        .download_url(&scope, &token, &json!({"file_id": id, "expires_in": 60}))
        .await;
    assert_eq!(ticket["expires_in"], 60);
    assert!(ticket["url"].as_str().unwrap().contains("X-Amz-Expires=60"), "{ticket}");
    let (status, refused) = h
        .api
        .download_url(&scope, &token, &json!({"file_id": id, "expires_in": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "expires_in");
}

async fn a_ranged_get_returns_exactly_the_bytes_asked(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    let content: Vec<u8> = (0..=255_u8).cycle().take(10_000).collect();
    let id = h.api.upload(&scope, h.tenant, &token, "ranged.bin", &content).await;
    let (_, ticket) = h.api.download_url(&scope, &token, &json!({"file_id": id})).await;
    let url = ticket["url"].as_str().unwrap();
    for (range, expected) in [
        ("bytes=0-99", &content[..100]),
        ("bytes=4096-8191", &content[4096..8192]),
        ("bytes=9990-", &content[9990..]),
    ] {
        let response = h.api.client.get(url).header("range", range).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], expected, "{range}");
    }
}

async fn attachment_signs_the_file_name_as_the_disposition(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    let id = h
        .api
        .upload(&scope, h.tenant, &token, "rapport d'été.pdf", b"pdf")
        .await;
    let (status, ticket) = h
        .api
        .download_url(&scope, &token, &json!({"file_id": id, "disposition": "attachment"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let url = url::Url::parse(ticket["url"].as_str().unwrap()).unwrap();
    let disposition = url
        .query_pairs()
        .find(|(name, _)| name == "response-content-disposition")
        .map(|(_, value)| value.into_owned());
    assert_eq!(
        disposition.as_deref(),
        Some("attachment; filename=\"rapport d'_t_.pdf\"; filename*=UTF-8''rapport%20d%27%C3%A9t%C3%A9.pdf")
    );
    // The signature covers it: the URL works as signed, and not with another disposition.
    let response = h.api.client.get(url.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tampered = url.as_str().replace("attachment", "inline");
    let response = h.api.client.get(tampered).send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    // Without it, nothing is signed.
    let (_, plain) = h.api.download_url(&scope, &token, &json!({"file_id": id})).await;
    assert!(!plain["url"].as_str().unwrap().contains("response-content-disposition"));
}

#[tokio::test]
async fn expiry_ranges_and_disposition_on_the_embedded_store() {
    let h = Harness::start().await;
    expires_in_is_asked_bounded_and_enforced_by_the_store(&h).await;
    a_ranged_get_returns_exactly_the_bytes_asked(&h).await;
    attachment_signs_the_file_name_as_the_disposition(&h).await;
}

#[tokio::test]
async fn expiry_ranges_and_disposition_on_garage() {
    let test = "expiry_ranges_and_disposition_on_garage";
    let Some(s) = stack_with(test, false, RedisRoute::Direct, AppOptions::default()).await else {
        return;
    };
    expires_in_is_asked_bounded_and_enforced_by_the_store(&s.h).await;
    a_ranged_get_returns_exactly_the_bytes_asked(&s.h).await;
    attachment_signs_the_file_name_as_the_disposition(&s.h).await;
}
