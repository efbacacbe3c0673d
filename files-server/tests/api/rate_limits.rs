//! Rate limits (API 1.2): a device's `device_requests_per_minute` and a tenant's
//! `tenant_requests_per_second`, shared by two instances through Redis, limited by each
//! instance on its own while Redis is cut, shared again once it is back.

use std::time::{Duration, Instant};

use files_core::{DeviceId, TenantId};
use files_testkit::dsts::Alg;
use files_testkit::eventually;
use files_testkit::services;
use reqwest::StatusCode;
use serde_json::json;

use crate::app::{AppOptions, TestApp, spawn_app};
use crate::helpers::{Api, counter_or_zero, device_scope, json_of, new_device, new_tenant};
use crate::real::{RedisRoute, Stack, stack_with};
use crate::tenants::set;

/// Another instance on `s`'s database and Redis (through its proxy, when it has one), trusting
/// its DSTS. Started after the settings are set, so it reads them on first use.
async fn sibling(s: &Stack) -> (TestApp, Api) {
    let redis_url = match &s.redis_proxy {
        Some(proxy) => format!("redis://{}", proxy.addr()),
        None => services::redis_url(),
    };
    let options = AppOptions::default()
        .var("FILES_DATABASE_URL", s.db.url())
        .var("FILES_DATABASE_TIMEOUT_MS", "5000")
        .var("FILES_REDIS_URL", redis_url)
        .var("FILES_REDIS_PREFIX", s.redis_prefix.clone())
        .var("FILES_JWKS_URL", s.h.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", s.h.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", s.h.dsts.audience());
    let app = spawn_app(options).await.unwrap();
    let api = Api::new(app.address.clone());
    (app, api)
}

/// What `n` list requests of `devices` (taken in turn) answered, sent to `apis` in turn:
/// how many were admitted. Every other answer must be 429 `rate_limited` with an integer
/// `Retry-After` of at least 1; nothing else (no 5xx) is accepted.
async fn burst(apis: &[&Api], s: &Stack, tenant: TenantId, devices: &[DeviceId], n: usize) -> usize {
    let mut admitted = 0;
    for i in 0..n {
        let device = devices[i % devices.len()];
        let token = s.h.dsts.device_token(Alg::Es256, tenant, device);
        let response = apis[i % apis.len()]
            .get(&format!("{}/files", device_scope(tenant, device)), &token)
            .await;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = json_of(response).await;
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                let seconds: u64 = retry_after
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("an integer Retry-After: {retry_after:?}"));
                assert!(seconds >= 1, "Retry-After {seconds}");
            }
            other => panic!("request {i}: {other} {body}"),
        }
    }
    admitted
}

/// Redis round trips of the rate limiter that succeeded, on the instance of `text`.
fn round_trips(text: &str) -> f64 {
    counter_or_zero(
        text,
        r#"files_dependency_call_duration_seconds_count{dependency="cache",operation="rate_limit",outcome="ok"}"#,
    )
}

fn refusals(tenant: TenantId) -> String {
    format!(r#"files_limit_refusals_total{{reason="rate_limited",tenant_id="{tenant}"}}"#)
}

#[tokio::test]
async fn a_device_and_a_tenant_are_limited_across_two_instances_and_nothing_else_is() {
    let Some(s) = stack_with(
        "rate_limits_across_two_instances",
        false,
        RedisRoute::Direct,
        AppOptions::default(),
    )
    .await
    else {
        return;
    };
    let (tenant, device, other) = (s.h.tenant, s.h.device, new_device());
    set(&s.h, tenant, json!({"rate_limit": {"device_requests_per_minute": 6}})).await;
    let busy = new_tenant();
    set(&s.h, busy, json!({"rate_limit": {"tenant_requests_per_second": 5}})).await;
    let (_b, b) = sibling(&s).await;
    let both = [&s.h.api, &b];

    let admitted = burst(&both, &s, tenant, &[device], 12).await;
    assert!((6..=7).contains(&admitted), "6 (or 7) of 12 admitted: {admitted}");
    let refused = 12 - admitted;
    assert_eq!(
        burst(&both, &s, tenant, &[other], 4).await,
        4,
        "another device of the tenant has its own count"
    );
    for api in both {
        for _ in 0..3 {
            let status = api
                .client
                .get(format!("{}/healthz", api.base))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::OK, "health is never limited");
        }
    }
    let (a_metrics, b_metrics) = (s.h.api.metrics_text().await, b.metrics_text().await);
    let counted = counter_or_zero(&a_metrics, &refusals(tenant)) + counter_or_zero(&b_metrics, &refusals(tenant));
    assert_eq!(
        counted, refused as f64,
        "every refusal counted, on the instance that refused it"
    );
    assert_eq!(
        round_trips(&a_metrics) + round_trips(&b_metrics),
        16.0,
        "one Redis round trip per request of a limited device (a limit of 6 leases one request)"
    );

    // The tenant's limit counts all of its devices together: 5 a second, bursts of 5.
    let devices: Vec<DeviceId> = (0..6).map(|_| new_device()).collect();
    let started = Instant::now();
    let admitted = burst(&both, &s, busy, &devices, 30).await;
    let most = 5 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        (5..=most).contains(&admitted) && admitted < 30,
        "5 at once and 5 a second after: {admitted} of 30 in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_redis_cut_each_instance_limits_on_its_own_and_shares_again_once_it_is_back() {
    let Some(s) = stack_with(
        "rate_limits_with_redis_cut",
        false,
        RedisRoute::Proxy,
        AppOptions::default(),
    )
    .await
    else {
        return;
    };
    let tenant = s.h.tenant;
    set(&s.h, tenant, json!({"rate_limit": {"device_requests_per_minute": 6}})).await;
    let (_b, b) = sibling(&s).await;
    let proxy = s.redis_proxy.as_ref().unwrap();

    proxy.cut();
    let device = new_device();
    assert_eq!(
        burst(&[&s.h.api], &s, tenant, &[device], 10).await,
        6,
        "instance A on its own"
    );
    assert_eq!(
        burst(&[&b], &s, tenant, &[device], 10).await,
        6,
        "instance B on its own"
    );

    proxy.restore();
    // Shared again once both instances reach Redis: a fresh device's requests, alternated,
    // are counted once.
    let (a, b) = (&s.h.api, &b);
    let shared = eventually(Duration::from_secs(10), async || {
        let admitted = burst(&[a, b], &s, tenant, &[new_device()], 12).await;
        (6..=7).contains(&admitted)
    })
    .await;
    assert!(shared, "a device's requests on two instances counted once again");
}

/// A limit is counted only for a tenant that set one: a tenant without settings is never
/// refused however many requests it sends.
#[tokio::test]
async fn a_tenant_without_limits_is_never_limited() {
    let Some(s) = stack_with("rate_limits_none", false, RedisRoute::Direct, AppOptions::default()).await else {
        return;
    };
    let admitted = burst(&[&s.h.api], &s, s.h.tenant, &[s.h.device], 40).await;
    assert_eq!(admitted, 40);
    let text = s.h.api.metrics_text().await;
    assert!(
        text.lines()
            .any(|line| line.starts_with("files_dependency_call_duration_seconds_count{dependency=\"cache\"")),
        "the cache's calls are counted (so the count below could be other than 0)"
    );
    assert_eq!(
        round_trips(&text),
        0.0,
        "no Redis round trip for a tenant without limits"
    );
}

/// A large limit is taken from Redis in leases (1 % of its burst: 10 requests of a tenant's
/// 1,000 a second), so most requests cost no round trip, and none of them is refused.
#[tokio::test]
async fn a_large_limit_is_leased_so_most_requests_cost_no_round_trip() {
    let Some(s) = stack_with("rate_limits_leased", false, RedisRoute::Direct, AppOptions::default()).await else {
        return;
    };
    set(
        &s.h,
        s.h.tenant,
        json!({"rate_limit": {"tenant_requests_per_second": 1000}}),
    )
    .await;
    let (_b, b) = sibling(&s).await;
    let devices: Vec<DeviceId> = (0..4).map(|_| new_device()).collect();
    let admitted = burst(&[&s.h.api, &b], &s, s.h.tenant, &devices, 200).await;
    assert_eq!(admitted, 200, "200 requests under a limit of 1,000 at once");
    let a_text = s.h.api.metrics_text().await;
    let trips = round_trips(&a_text) + round_trips(&b.metrics_text().await);
    assert!(
        (2.0..=40.0).contains(&trips),
        "about one round trip per 10 requests and instance (leases last 1 s): {trips}"
    );
}
