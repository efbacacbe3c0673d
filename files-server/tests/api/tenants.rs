//! Tenants (API 1.2): settings set by the platform, the per-tenant policy, quotas exact across
//! instances and the usage routes. The quota and usage tests run on PostgreSQL (each its own
//! database) with two server instances, as a platform runs them.

use std::time::Duration;

use files_core::{DeviceId, TenantId};
use files_testkit::dsts::{Alg, TokenClaims};
use files_testkit::eventually;
use files_testkit::postgres::TestDatabase;
use files_testkit::services;
use files_testkit::sha256_hex;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{AppOptions, TestApp, spawn_app};
use crate::helpers::{Api, Harness, device_scope, json_of, new_device, new_tenant, tenant_scope};
use crate::real::{RedisRoute, stack_with};

/// The brief's bound on a settings change reaching every instance.
const APPLIES_WITHIN: Duration = Duration::from_secs(5);

/// A platform token from `h`'s DSTS.
pub fn platform_token(h: &Harness) -> String {
    h.dsts.token(
        Alg::Es256,
        &TokenClaims {
            tenant: None,
            device: None,
            scope: Some("files:platform".to_owned()),
        },
    )
}

fn settings_path(tenant: TenantId) -> String {
    format!("/v1/tenants/{tenant}/settings")
}

async fn put_settings(h: &Harness, tenant: TenantId, document: &Value) -> (StatusCode, Value) {
    json_of(
        h.api
            .send(
                reqwest::Method::PUT,
                &settings_path(tenant),
                &platform_token(h),
                Some(document),
            )
            .await,
    )
    .await
}

pub async fn set(h: &Harness, tenant: TenantId, document: Value) {
    let (status, body) = put_settings(h, tenant, &document).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `POST {scope}/files/upload-url` for `size` bytes of a name, with extra fields.
async fn upload_url(api: &Api, scope: &str, token: &str, size: usize, extra: Value) -> (StatusCode, Value) {
    let content = vec![b'x'; size];
    let mut body = json!({"file_name": format!("f-{}", uuid::Uuid::new_v4().simple()),
        "sha256": sha256_hex(&content), "size": size});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    json_of(api.post(&format!("{scope}/files/upload-url"), token, &body).await).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A second instance on `db_url`, trusting `h`'s DSTS.
async fn second_instance(h: &Harness, db_url: &str) -> (TestApp, Api) {
    let options = AppOptions::default()
        .var("FILES_DATABASE_URL", db_url)
        .var("FILES_DATABASE_TIMEOUT_MS", "5000")
        .var("FILES_JWKS_URL", h.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", h.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", h.dsts.audience());
    let app = spawn_app(options).await.unwrap();
    let api = Api::new(app.address.clone());
    (app, api)
}

/// Instance A on a fresh database, and instance B on the same one.
async fn two_instances(test: &str) -> Option<(Harness, TestApp, Api, TestDatabase)> {
    let db = TestDatabase::create(test).await?;
    let a = Harness::start_with(
        AppOptions::default()
            .var("FILES_DATABASE_URL", db.url())
            .var("FILES_DATABASE_TIMEOUT_MS", "5000"),
    )
    .await;
    let (b, b_api) = second_instance(&a, db.url()).await;
    Some((a, b, b_api, db))
}

#[tokio::test]
async fn settings_round_trip_for_the_platform_and_only_the_platform_sets_them() {
    let h = Harness::start().await;
    let document = json!({"max_file_size": 104_857_600,
        "allowed_content_types": ["application/gzip", "text/*"],
        "upload_url_max_expiry_secs": 3600, "download_url_max_expiry_secs": 3600,
        "retention_secs": 2_592_000,
        "quota": {"bytes": 10_737_418_240_u64, "files": 100_000,
                  "device_bytes_per_day": 1_073_741_824, "device_pending_uploads": 10},
        "rate_limit": {"device_requests_per_minute": 120, "tenant_requests_per_second": 500}});
    let (status, put) = put_settings(&h, h.tenant, &document).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["tenant_id"], h.tenant.to_string());
    assert!(put["updated_at"].is_string(), "{put}");
    let mut expected = document.clone();
    expected["tenant_id"] = put["tenant_id"].clone();
    expected["updated_at"] = put["updated_at"].clone();
    assert_eq!(
        put, expected,
        "the answer is the document with tenant_id and updated_at"
    );

    let path = settings_path(h.tenant);
    let (status, got) = json_of(h.api.get(&path, &h.service_token()).await).await;
    assert_eq!(
        (status, &got),
        (StatusCode::OK, &expected),
        "the tenant's service reads them"
    );
    let (status, got) = json_of(h.api.get(&path, &platform_token(&h)).await).await;
    assert_eq!((status, &got), (StatusCode::OK, &expected));

    let other = new_tenant();
    let (status, never) = json_of(h.api.get(&settings_path(other), &platform_token(&h)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(never, json!({"tenant_id": other.to_string(), "updated_at": null}));

    let other_service = h.dsts.service_token(Alg::Es256, other);
    for (who, token) in [
        ("a device", h.device_token()),
        ("another tenant's service", other_service.clone()),
    ] {
        let (status, body) = json_of(h.api.get(&path, &token).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} reads: {body}");
    }
    for (who, token) in [
        ("a device", h.device_token()),
        ("the tenant's service", h.service_token()),
        ("another tenant's service", other_service),
    ] {
        let response = h.api.send(reqwest::Method::PUT, &path, &token, Some(&json!({}))).await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} sets: {body}");
    }
    let (_, unchanged) = json_of(h.api.get(&path, &h.service_token()).await).await;
    assert_eq!(unchanged, expected, "a refused PUT changed nothing");

    // The platform has no access to files.
    let (status, body) = upload_url(&h.api, &h.scope(), &platform_token(&h), 10, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = upload_url(&h.api, &tenant_scope(h.tenant), &platform_token(&h), 10, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = json_of(h.api.get(&format!("{}/files", h.scope()), &platform_token(&h)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn each_bad_settings_document_is_a_400_naming_its_field() {
    let h = Harness::start().await;
    let over_ceiling = 6 * 1024 * 1024 * 1024_u64;
    let cases = [
        (json!({"colour": "blue"}), "colour"),
        (json!({"max_file_size": 0}), "max_file_size"),
        (json!({"max_file_size": -5}), "max_file_size"),
        (json!({"max_file_size": "large"}), "max_file_size"),
        (json!({"max_file_size": over_ceiling}), "max_file_size"),
        (
            json!({"upload_url_max_expiry_secs": 90_000}),
            "upload_url_max_expiry_secs",
        ),
        (
            json!({"download_url_max_expiry_secs": 0}),
            "download_url_max_expiry_secs",
        ),
        (json!({"retention_secs": -1}), "retention_secs"),
        (
            json!({"allowed_content_types": ["text/plain", "nonsense"]}),
            "allowed_content_types[1]",
        ),
        (json!({"allowed_content_types": "text/plain"}), "allowed_content_types"),
        (json!({"quota": {"bytes": 0}}), "quota.bytes"),
        (json!({"quota": {"files": -1}}), "quota.files"),
        (
            json!({"quota": {"device_pending_uploads": 1.5}}),
            "quota.device_pending_uploads",
        ),
        (json!({"quota": {"inodes": 5}}), "quota.inodes"),
        (
            json!({"rate_limit": {"device_requests_per_minute": 0}}),
            "rate_limit.device_requests_per_minute",
        ),
        (json!({"rate_limit": 5}), "rate_limit"),
    ];
    for (document, field) in cases {
        let (status, body) = put_settings(&h, h.tenant, &document).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{document}: {body}");
        assert_eq!(code(&body), "invalid_settings", "{document}: {body}");
        assert_eq!(body["error"]["field"], field, "{document}: {body}");
    }
    let (status, body) = put_settings(&h, h.tenant, &json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, got) = json_of(h.api.get(&settings_path(h.tenant), &h.service_token()).await).await;
    assert_eq!(got["updated_at"], Value::Null, "no refused document was stored: {got}");
}

#[tokio::test]
async fn the_tenant_policy_holds_uploads_to_its_size_types_and_expiries() {
    let h = Harness::start().await;
    set(
        &h,
        h.tenant,
        json!({"max_file_size": 1000, "allowed_content_types": ["application/gzip", "text/*"],
               "upload_url_max_expiry_secs": 600, "download_url_max_expiry_secs": 60}),
    )
    .await;
    let (scope, token) = (h.scope(), h.device_token());
    let text = json!({"content_type": "text/plain"});

    let (status, body) = upload_url(&h.api, &scope, &token, 1001, text.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
        "{body}"
    );
    let (status, body) = upload_url(&h.api, &scope, &token, 1000, text.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["expires_in"].as_u64().is_some_and(|secs| secs <= 600),
        "the default expiry is capped by the tenant's maximum: {body}"
    );

    for admitted in ["Text/Plain; charset=utf-8", "application/GZIP", "text/csv"] {
        let (status, body) = upload_url(&h.api, &scope, &token, 10, json!({"content_type": admitted})).await;
        assert_eq!(status, StatusCode::CREATED, "{admitted}: {body}");
    }
    for refused in [json!({"content_type": "application/octet-stream"}), json!({})] {
        let (status, body) = upload_url(&h.api, &scope, &token, 10, refused.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type_not_allowed"),
            "{refused}: {body}"
        );
    }
    let (status, body) = upload_url(
        &h.api,
        &scope,
        &token,
        10,
        json!({"content_type": "text/plain", "expires_in": 601}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_expires_in"),
        "{body}"
    );
    let (status, body) = json_of(
        h.api
            .post(
                &format!("{scope}/files/download-url"),
                &token,
                &json!({"file_name": "x", "expires_in": 61}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_expires_in"),
        "{body}"
    );

    // A multipart upload is held to the same policy.
    let multipart = |size: usize, content_type: &str| {
        let content = vec![b'm'; size];
        json!({"file_name": "parts.bin", "sha256": sha256_hex(&content), "size": size,
               "content_type": content_type,
               "parts": {"size": size, "sha256": [sha256_hex(&content)]}})
    };
    let path = format!("{scope}/files/upload-url");
    let (status, body) = json_of(h.api.post(&path, &token, &multipart(1001, "text/plain")).await).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
        "{body}"
    );
    let (status, body) = json_of(h.api.post(&path, &token, &multipart(1000, "image/png")).await).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type_not_allowed"),
        "{body}"
    );
    let (status, body) = json_of(h.api.post(&path, &token, &multipart(1000, "text/plain")).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another tenant keeps the server's defaults.
    let (other, device) = (new_tenant(), new_device());
    let other_token = h.dsts.device_token(Alg::Es256, other, device);
    let (status, body) = upload_url(
        &h.api,
        &device_scope(other, device),
        &other_token,
        1001,
        json!({"content_type": "application/octet-stream", "expires_in": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let refusals = h.metrics_text().await;
    assert!(
        refusals.contains(&format!(
            r#"files_limit_refusals_total{{reason="content_type_not_allowed",tenant_id="{}"}} 3"#,
            h.tenant
        )),
        "{refusals}"
    );
}

#[tokio::test]
async fn a_settings_change_on_one_instance_applies_on_the_other_within_5_seconds() {
    let Some((a, _b, b_api, _db)) = two_instances("a_settings_change_on_one_instance_applies_on_the_other").await
    else {
        return;
    };
    let (scope, token) = (a.scope(), a.device_token());
    let (status, body) = upload_url(&b_api, &scope, &token, 2000, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "B knows no limit yet: {body}");
    set(&a, a.tenant, json!({"max_file_size": 1000})).await;
    let started = std::time::Instant::now();
    let mut last = None;
    let applied = eventually(APPLIES_WITHIN, async || {
        let answer = upload_url(&b_api, &scope, &token, 2000, json!({})).await;
        let refused = answer.0 == StatusCode::PAYLOAD_TOO_LARGE;
        last = Some(answer);
        refused
    })
    .await;
    assert!(applied, "B still admits after {:?}: {last:?}", started.elapsed());
}

/// Quotas on PostgreSQL, the two instances taking turns.
#[tokio::test]
async fn quotas_hold_across_instances_with_their_codes_and_retry_after() {
    let Some((a, _b, b_api, _db)) = two_instances("quotas_hold_across_instances").await else {
        return;
    };
    let apis = [&a.api, &b_api];
    let (scope, token) = (a.scope(), a.device_token());

    // bytes: two 600-byte uploads against 1,000.
    set(&a, a.tenant, json!({"quota": {"bytes": 1000}})).await;
    let (status, first) = upload_url(apis[0], &scope, &token, 600, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = upload_url(apis[1], &scope, &token, 600, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        "{body}"
    );
    assert_eq!(body["error"]["quota"], "bytes", "{body}");
    let first_id = first["file_id"].as_str().unwrap();
    let response = a
        .api
        .delete(&format!("/v1/tenants/{}/files/{first_id}", a.tenant), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = upload_url(apis[1], &scope, &token, 600, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "the delete released the bytes: {body}");

    // files: tenant-root uploads count.
    let tenant = new_tenant();
    let device = new_device();
    let device_token = a.dsts.device_token(Alg::Es256, tenant, device);
    let service_token = a.dsts.service_token(Alg::Es256, tenant);
    set(&a, tenant, json!({"quota": {"files": 2}})).await;
    let (status, body) = upload_url(apis[0], &tenant_scope(tenant), &service_token, 10, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload_url(apis[1], &device_scope(tenant, device), &device_token, 10, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload_url(apis[0], &device_scope(tenant, device), &device_token, 10, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        "{body}"
    );
    assert_eq!(body["error"]["quota"], "files", "{body}");

    // device_pending_uploads: a device's third pending upload, on either instance.
    let tenant = new_tenant();
    let (device, other) = (new_device(), new_device());
    let token = a.dsts.device_token(Alg::Es256, tenant, device);
    set(&a, tenant, json!({"quota": {"device_pending_uploads": 2}})).await;
    for api in apis {
        let (status, body) = upload_url(api, &device_scope(tenant, device), &token, 10, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let response = b_api
        .post(
            &format!("{}/files/upload-url", device_scope(tenant, device)),
            &token,
            &json!({"file_name": "third", "sha256": sha256_hex(b"third"), "size": 5}),
        )
        .await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_pending_uploads"),
        "{body}"
    );
    assert_eq!(body["error"]["quota"], "device_pending_uploads");
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1, "{seconds}");
    let other_token = a.dsts.device_token(Alg::Es256, tenant, other);
    let (status, body) = upload_url(apis[0], &device_scope(tenant, other), &other_token, 10, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "another device has its own count: {body}");

    // device_bytes_per_day: declared bytes since 00:00 UTC.
    let tenant = new_tenant();
    let device = new_device();
    let token = a.dsts.device_token(Alg::Es256, tenant, device);
    set(&a, tenant, json!({"quota": {"device_bytes_per_day": 1000}})).await;
    let (status, body) = upload_url(apis[1], &device_scope(tenant, device), &token, 600, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let content = vec![b'y'; 600];
    // Refused by A: its refusal counter is the one read below.
    let response = a
        .api
        .post(
            &format!("{}/files/upload-url", device_scope(tenant, device)),
            &token,
            &json!({"file_name": "more", "sha256": sha256_hex(&content), "size": 600}),
        )
        .await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "daily_quota_exceeded"),
        "{body}"
    );
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let left = 86_400 - (u64::from(now.hour()) * 3600 + u64::from(now.minute()) * 60 + u64::from(now.second()));
    assert!(
        seconds.abs_diff(left) <= 5,
        "Retry-After {seconds} s, {left} s to midnight UTC"
    );
    let text = a.metrics_text().await;
    assert!(
        text.contains(&format!(
            r#"files_limit_refusals_total{{reason="daily_quota_exceeded",tenant_id="{tenant}"}} 1"#
        )),
        "{text}"
    );
}

#[tokio::test]
async fn twenty_concurrent_uploads_on_two_instances_admit_exactly_what_fits() {
    let Some((a, _b, b_api, _db)) = two_instances("twenty_concurrent_uploads_on_two_instances").await else {
        return;
    };
    set(&a, a.tenant, json!({"quota": {"bytes": 1000}})).await;
    let devices: Vec<(DeviceId, String)> = (0..20)
        .map(|_| {
            let device = new_device();
            (device, a.dsts.device_token(Alg::Es256, a.tenant, device))
        })
        .collect();
    let requests = devices.iter().enumerate().map(|(i, (device, token))| {
        let api = if i % 2 == 0 { &a.api } else { &b_api };
        let scope = device_scope(a.tenant, *device);
        async move { upload_url(api, &scope, token, 100, json!({})).await }
    });
    let answers = futures::future::join_all(requests).await;
    let admitted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, body)| *status == StatusCode::PAYLOAD_TOO_LARGE && code(body) == "quota_exceeded")
        .count();
    assert_eq!((admitted, refused), (10, 10), "{answers:?}");
    let (status, usage) = json_of(
        a.api
            .get(&format!("/v1/tenants/{}/usage", a.tenant), &a.service_token())
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["pending_bytes"], 1000, "{usage}");
    assert_eq!(usage["pending_uploads"], 10, "{usage}");
    assert_eq!(usage["quota"], json!({"bytes": 1000}), "{usage}");
}

#[tokio::test]
async fn with_redis_cut_quotas_still_hold_and_nothing_is_5xx() {
    let Some(s) = stack_with(
        "with_redis_cut_quotas_still_hold",
        false,
        RedisRoute::Proxy,
        AppOptions::default(),
    )
    .await
    else {
        return;
    };
    set(
        &s.h,
        s.h.tenant,
        json!({"quota": {"bytes": 1000, "device_pending_uploads": 3}}),
    )
    .await;
    let (scope, token) = (s.h.scope(), s.h.device_token());
    let (status, body) = upload_url(&s.h.api, &scope, &token, 400, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.redis_proxy.as_ref().unwrap().cut();
    let (status, body) = upload_url(&s.h.api, &scope, &token, 400, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload_url(&s.h.api, &scope, &token, 400, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        "{body}"
    );
    let (status, body) = json_of(s.h.api.get(&settings_path(s.h.tenant), &s.h.service_token()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = json_of(
        s.h.api
            .get(&format!("/v1/tenants/{}/usage", s.h.tenant), &s.h.service_token())
            .await,
    )
    .await;
    assert_eq!(
        (status, &body["pending_bytes"]),
        (StatusCode::OK, &json!(800)),
        "{body}"
    );
    let (status, body) = json_of(
        s.h.api
            .post(
                &format!("{scope}/files/download-url"),
                &token,
                &json!({"file_name": "absent"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        s.h.counter_or_zero(r#"files_cache_operations_total{outcome="error"}"#)
            .await
            > 0.0,
        "the cut was felt by the cache"
    );
}

/// The usage routes against the records, after uploads, completes, a delete and an expiry made
/// through two instances.
#[tokio::test]
async fn usage_equals_the_records_after_a_mixed_run_on_two_instances() {
    let Some(s3) = services::TestS3::from_env("usage_equals_the_records").await else {
        return;
    };
    let Some(db) = TestDatabase::create("usage_equals_the_records").await else {
        return;
    };
    let mut options = AppOptions::default()
        .var("FILES_DATABASE_URL", db.url())
        .var("FILES_DATABASE_TIMEOUT_MS", "5000")
        .var("FILES_JANITOR_INTERVAL_SECS", "1")
        .var("FILES_UPLOAD_GRACE_SECS", "0");
    options.vars.extend(s3.server_vars());
    let a = Harness::start_with(options).await;
    let mut b_options = AppOptions::default()
        .var("FILES_DATABASE_URL", db.url())
        .var("FILES_DATABASE_TIMEOUT_MS", "5000")
        .var("FILES_JWKS_URL", a.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", a.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", a.dsts.audience());
    b_options.vars.extend(s3.server_vars());
    let b = spawn_app(b_options).await.unwrap();
    let b_api = Api::new(b.address.clone());
    let apis = [&a.api, &b_api];
    let (tenant, token) = (a.tenant, a.device_token());
    let scope = a.scope();

    // Three completed uploads (one then deleted), one pending, one left to expire, one in the
    // tenant root; downloads of each available device file.
    let mut available = Vec::new();
    for (i, content) in [&b"first file"[..], b"second one", b"third and last"]
        .iter()
        .enumerate()
    {
        let id = apis[i % 2]
            .upload(&scope, tenant, &token, &format!("done-{i}"), content)
            .await;
        available.push(id);
    }
    let response = b_api
        .delete(&format!("/v1/tenants/{tenant}/files/{}", available[0]), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, pending) = upload_url(apis[0], &scope, &token, 77, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{pending}");
    let (status, expiring) = upload_url(apis[1], &scope, &token, 55, json!({"expires_in": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{expiring}");
    a.api
        .upload(
            &tenant_scope(tenant),
            tenant,
            &a.service_token(),
            "root",
            b"tenant root file",
        )
        .await;
    for (i, name) in ["done-1", "done-2"].iter().enumerate() {
        let (status, body) = apis[i % 2]
            .download_url(&scope, &token, &json!({"file_name": name}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let expiring_id = expiring["file_id"].as_str().unwrap();
    assert!(
        a.api.wait_for_state(tenant, expiring_id, &token, "expired").await,
        "the janitor expired the abandoned upload"
    );

    let bytes_of =
        |state: &str, owner: &str| format!("files WHERE tenant_id = '{tenant}' AND state = '{state}' AND {owner}");
    let device_owner = format!("device_id = '{}'", a.device);
    let records = (
        db.count(&bytes_of("available", "true")).await,
        db.count(&bytes_of("pending", "true")).await,
        db.count(&bytes_of("available", &device_owner)).await,
        db.count(&bytes_of("pending", &device_owner)).await,
    );
    assert_eq!(records, (3, 1, 2, 1), "the run left what it should");
    let available_bytes = (b"second one".len() + b"third and last".len() + b"tenant root file".len()) as u64;

    let (status, usage) = json_of(
        b_api
            .get(&format!("/v1/tenants/{tenant}/usage"), &a.service_token())
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(
        usage,
        json!({"tenant_id": tenant.to_string(), "files": 3, "bytes": available_bytes,
               "pending_uploads": 1, "pending_bytes": 77, "quota": {}}),
    );
    let device_path = format!("/v1/tenants/{tenant}/devices/{}/usage", a.device);
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let expected = json!({"tenant_id": tenant.to_string(), "device_id": a.device.to_string(),
        "files": 2, "bytes": b"second one".len() + b"third and last".len(), "pending_uploads": 1,
        "today": {"date": today, "upload_urls": 5,
                  "upload_bytes": b"first file".len() + b"second one".len() + b"third and last".len() + 77 + 55,
                  "uploads_completed": 3, "download_urls": 2}});
    let mut last = Value::Null;
    let caught_up = eventually(APPLIES_WITHIN, async || {
        let (_, usage) = json_of(apis[1].get(&device_path, &token).await).await;
        last = usage;
        last == expected
    })
    .await;
    assert!(caught_up, "device usage {last} is not {expected}");
    for token in [a.service_token(), platform_token(&a)] {
        let (status, body) = json_of(a.api.get(&device_path, &token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let other_device = a.dsts.device_token(Alg::Es256, tenant, new_device());
    let (status, body) = json_of(a.api.get(&device_path, &other_device).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another device: {body}");
    let (status, body) = json_of(a.api.get(&format!("/v1/tenants/{tenant}/usage"), &token).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a device reads no tenant usage: {body}");
}
