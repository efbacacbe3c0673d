//! Outages end to end through the server: the real object store (garage) cut with the
//! testkit's proxy, and the DSTS's key server refusing, then hanging, after its keys were
//! loaded. Time bounds here are bounds on a hang, not benchmarks.

use std::time::{Duration, Instant};

use crate::app::AppOptions;
use files_adapters::jwks::RemoteJwks;
use files_adapters::redis::{RedisCache, RedisConfig};
use files_core::ports::error_chain;
use files_testkit::dsts::{Attack, FakeDsts};
use files_testkit::proxy::TcpProxy;
use files_testkit::services::TestS3;
use files_testkit::{eventually, services};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Harness, counter_or_zero, json_of, metric};

/// Bound on anything that should be quick (a proxy closing its connections, a background
/// measurement catching up): generous, the machine is shared.
const SOON: Duration = Duration::from_secs(15);

/// `/readyz`'s status and body.
async fn readyz(h: &Harness) -> (StatusCode, Value) {
    json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await
}

/// Polls `/readyz` until the dependency `name` reads `state`; the last answer.
async fn readyz_until(h: &Harness, name: &str, state: &str) -> (StatusCode, Value) {
    let mut last = None;
    eventually(SOON, async || {
        let ready = readyz(h).await;
        let seen = ready.1["dependencies"][name] == state;
        last = Some(ready);
        seen
    })
    .await;
    last.unwrap()
}

#[tokio::test]
async fn with_the_store_cut_urls_are_signed_complete_is_503_and_it_recovers() {
    let test = "with_the_store_cut_urls_are_signed_complete_is_503_and_it_recovers";
    let Some(s3) = TestS3::from_env(test).await else { return };
    let garage = s3
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // The service reaches garage through the proxy; devices reach it directly (the public
    // endpoint), so only the service's side of the store is cut.
    let proxy = TcpProxy::start(garage.as_str()).await.unwrap();
    let mut options = AppOptions::default();
    options.vars.extend(s3.server_vars());
    let options = options
        .var("FILES_S3_ENDPOINT", format!("http://{}", proxy.addr()))
        .var("FILES_S3_PUBLIC_ENDPOINT", s3.endpoint.clone())
        .var("FILES_S3_TIMEOUT_MS", "2000");
    let h = Harness::start_with(options).await;
    let token = h.device_token();
    let file = |id: &str| format!("/v1/tenants/{}/files/{id}", h.tenant);

    let before = h
        .api
        .upload(&h.scope(), h.tenant, &token, "before.txt", b"before")
        .await;
    let (status, ticket) = h.api.upload_url(&h.scope(), &token, "late.txt", b"late").await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let late = ticket["file_id"].as_str().unwrap().to_owned();
    assert!(h.api.put(&ticket, b"late").await.status().is_success());
    let (status, ready) = readyz(&h).await;
    assert_eq!(
        (status, &ready["dependencies"]["object store"]),
        (StatusCode::OK, &json!("ok")),
        "{ready}"
    );

    assert!(proxy.cut_and_wait(SOON).await, "the proxy still holds connections");

    // Signing needs no store: upload and download URLs are still given, and work (the store
    // itself is up for devices).
    let (status, during) = h.api.upload_url(&h.scope(), &token, "during.txt", b"during").await;
    assert_eq!(status, StatusCode::CREATED, "{during}");
    assert!(during["url"].as_str().unwrap().starts_with(&s3.endpoint), "{during}");
    assert!(h.api.put(&during, b"during").await.status().is_success());
    let (status, download) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_id": before}))
        .await;
    assert_eq!(status, StatusCode::OK, "{download}");
    assert_eq!(h.api.fetch(&download).await, (StatusCode::OK, b"before".to_vec()));

    // `complete` must ask the store: 503 naming it, answered within a bound.
    let started = Instant::now();
    let (status, body) = h.api.complete(h.tenant, &late, &token).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("object store"),
        "{body}"
    );
    assert!(elapsed < SOON, "complete answered after {elapsed:?}");
    let (_, read) = json_of(h.api.get(&file(&late), &token).await).await;
    assert_eq!(read["state"], "pending", "{read}");

    // Readiness, measured in the background, says so.
    let (status, ready) = readyz_until(&h, "object store", "unavailable").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["dependencies"]["object store"], "unavailable", "{ready}");

    proxy.restore();
    // Recovers by itself: the same `complete` succeeds, polled under a deadline.
    let mut last = None;
    let completed = eventually(SOON, async || {
        let answer = h.api.complete(h.tenant, &late, &token).await;
        let done = answer.0 == StatusCode::OK;
        last = Some(answer);
        done
    })
    .await;
    let (status, body) = last.unwrap();
    assert!(completed, "complete after the restore: {status} {body}");
    assert_eq!(body["state"], "available", "{body}");
    let during = during["file_id"].as_str().unwrap();
    let (status, body) = h.api.complete(h.tenant, during, &token).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("available")),
        "{body}"
    );
    let (status, ready) = readyz_until(&h, "object store", "ok").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
}

/// A GET of the device's listing with `token`: the status and how long it took.
async fn list_with(h: &Harness, token: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let status = h.api.get(&format!("{}/files", h.scope()), token).await.status();
    (status, started.elapsed())
}

/// The count of key-set fetches that failed, from `/metrics`.
async fn failed_fetches(h: &Harness) -> f64 {
    h.counter_or_zero("files_key_set_refreshes_total{outcome=\"failed\"}")
        .await
}

/// Lookups in the verified-token cache that missed, from `/metrics`.
async fn token_cache_misses(h: &Harness) -> f64 {
    h.counter_or_zero("files_token_cache_lookups_total{outcome=\"miss\"}")
        .await
}

/// A device token and a service token never seen before are served, each within `within`:
/// missed by the verified-token cache (so checked against the keys the verifier holds now),
/// and accepted.
async fn fresh_tokens_are_served(h: &Harness, within: Duration, when: &str) {
    let misses = token_cache_misses(h).await;
    for token in [h.fresh_device_token(), h.fresh_service_token()] {
        let (status, took) = list_with(h, &token).await;
        assert_eq!(status, StatusCode::OK, "a token never seen before, {when}");
        assert!(took < within, "a token never seen before waited {took:?}, {when}");
    }
    assert!(
        token_cache_misses(h).await >= misses + 2.0,
        "the fresh tokens were answered from the verified-token cache, {when}"
    );
}

/// Through the server, with tokens never seen before in every phase (a token verified once is
/// answered from the verified-token cache without its key, which would hide an outage): the
/// key server refusing connections, then hanging them, then back with a rotated key.
#[tokio::test]
async fn with_the_key_server_refusing_then_hanging_the_last_keys_serve_and_unknown_kids_are_401() {
    let dsts = FakeDsts::start().await;
    let (proxy, jwks_url) = TcpProxy::for_url(&dsts.jwks_url()).await.unwrap();
    // A token with an unknown kid may refetch once a second, so each phase sees fetches.
    let options = AppOptions::default().var("FILES_JWKS_MIN_REFETCH_SECS", "1");
    let h = Harness::start_with_dsts(dsts, &jwks_url, options).await;
    let fetch_timeout = RemoteJwks::new(jwks_url.clone()).timeout;
    // A 401 must come within the fetch timeout; the margin is for a loaded machine.
    let bound = fetch_timeout + Duration::from_secs(10);
    let unknown_kid = || h.dsts.attack(Attack::UnknownKey, h.tenant, h.device);

    // Keys loaded, fetched through the proxy.
    fresh_tokens_are_served(&h, bound, "with the key server up").await;
    assert!(h.dsts.jwks_requests() >= 1);
    assert_eq!(list_with(&h, &unknown_kid()).await.0, StatusCode::UNAUTHORIZED);

    // Refusing: every connection closed, new ones refused.
    assert!(proxy.cut_and_wait(SOON).await);
    let failed_before = failed_fetches(&h).await;
    let requests_before = h.dsts.jwks_requests();
    let refused_before = proxy.refused();
    // Unknown kids until one of them has made a fetch that failed.
    let fetched = eventually(SOON, async || {
        let (status, took) = list_with(&h, &unknown_kid()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            took < bound,
            "an unknown kid answered after {took:?} with the key server refusing"
        );
        failed_fetches(&h).await > failed_before
    })
    .await;
    assert!(fetched, "no failed key-set fetch counted while the key server refused");
    assert!(proxy.refused() > refused_before, "no fetch met the refusing key server");
    assert_eq!(
        h.dsts.jwks_requests(),
        requests_before,
        "the cut proxy let a fetch through"
    );
    fresh_tokens_are_served(&h, bound, "with the key server refusing: the last good keys are kept").await;

    // Hanging: connections are accepted and never answered.
    proxy.hang();
    let failed_before = failed_fetches(&h).await;
    let mut caught_hanging = false;
    let deadline = Instant::now() + SOON;
    while !caught_hanging && Instant::now() < deadline {
        let api = crate::helpers::Api::new(h.app.address.clone());
        let (path, token) = (format!("{}/files", h.scope()), unknown_kid());
        let pending = tokio::spawn(async move {
            let started = Instant::now();
            let status = api.get(&path, &token).await.status();
            (status, started.elapsed())
        });
        // Either this request's fetch is held by the proxy, or it was answered without a
        // fetch (the refetch interval had not passed): then try again.
        eventually(SOON, async || proxy.held() > 0 || pending.is_finished()).await;
        caught_hanging = proxy.held() > 0;
        if caught_hanging {
            // While the fetch hangs, tokens never seen before are served at once from the
            // last keys.
            fresh_tokens_are_served(&h, fetch_timeout, "while a fetch hangs").await;
        }
        let (status, took) = pending.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            took < bound,
            "an unknown kid answered after {took:?} with the key server hanging"
        );
    }
    assert!(caught_hanging, "no unknown kid made a fetch to the hanging key server");
    assert!(
        failed_fetches(&h).await > failed_before,
        "the fetch to the hanging key server is not counted as failed"
    );
    fresh_tokens_are_served(&h, bound, "after the hanging fetch failed").await;

    // Back: a key rotated in meanwhile is fetched for the first token that uses it.
    proxy.restore();
    h.dsts.rotate();
    let rotated = h.device_token();
    assert!(
        eventually(SOON, async || list_with(&h, &rotated).await.0 == StatusCode::OK).await,
        "a token of the rotated key is still refused after the restore"
    );
}

/// The near cache's `files_near_cache_*` series of `/metrics`: (tracking, losses, hits, misses).
async fn near_cache_metrics(h: &Harness) -> (f64, f64, f64, f64) {
    let text = h.metrics_text().await;
    (
        metric(&text, "files_near_cache_tracking"),
        counter_or_zero(&text, "files_near_cache_tracking_losses_total"),
        counter_or_zero(&text, "files_near_cache_hits_total"),
        counter_or_zero(&text, "files_near_cache_misses_total"),
    )
}

#[tokio::test]
async fn the_near_cache_tracking_goes_down_and_up_in_the_metrics_with_redis() {
    let test = "the_near_cache_tracking_goes_down_and_up_in_the_metrics_with_redis";
    let probe = RedisCache::new(RedisConfig {
        near_cache_capacity: 0,
        ..RedisConfig::new(services::redis_url())
    })
    .unwrap();
    if let Err(error) = probe.ping().await {
        let _: Option<()> = services::unavailable(test, "Redis", &error_chain(&error));
        return;
    }
    let (proxy, redis_url) = TcpProxy::for_url(&services::redis_url()).await.unwrap();
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let h = Harness::start_with(
        AppOptions::default()
            .var("FILES_REDIS_URL", redis_url)
            .var("FILES_REDIS_PREFIX", prefix.clone())
            // A healthy Redis on a loaded machine must not time out.
            .var("FILES_REDIS_TIMEOUT_MS", "2000"),
    )
    .await;
    let token = h.device_token();

    // Up: tracking on, and a record read twice is served in process.
    assert!(
        eventually(SOON, async || near_cache_metrics(&h).await.0 == 1.0).await,
        "files_near_cache_tracking did not turn 1: {:?}",
        near_cache_metrics(&h).await
    );
    let (status, ticket) = h.api.upload_url(&h.scope(), &token, "near.bin", b"near").await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let file = format!("/v1/tenants/{}/files/{}", h.tenant, ticket["file_id"].as_str().unwrap());
    assert!(
        eventually(SOON, async || {
            assert_eq!(h.api.get(&file, &token).await.status(), StatusCode::OK);
            near_cache_metrics(&h).await.2 > 0.0
        })
        .await,
        "no read was served by the near cache: {:?}",
        near_cache_metrics(&h).await
    );
    let (_, losses, _, misses) = near_cache_metrics(&h).await;
    assert!(
        misses > 0.0,
        "the first read missed the near cache, and was not counted"
    );

    // Down: Redis cut, tracking off and one more loss.
    proxy.cut();
    assert!(
        eventually(SOON, async || {
            let (tracking, now_losses, _, _) = near_cache_metrics(&h).await;
            tracking == 0.0 && now_losses > losses
        })
        .await,
        "tracking was not seen lost: {:?}",
        near_cache_metrics(&h).await
    );
    // Up again once Redis is back.
    proxy.restore();
    assert!(
        eventually(SOON, async || near_cache_metrics(&h).await.0 == 1.0).await,
        "files_near_cache_tracking did not come back to 1: {:?}",
        near_cache_metrics(&h).await
    );
    files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &prefix);
}
