//! The whole flow against the real services: PostgreSQL, Redis, the garage S3 store that
//! `scripts/test` starts, and a JWKS over HTTP. Each test has its own database, key prefix and
//! tenants; a missing service skips loudly, or fails under `CI=true`.

use std::time::{Duration, Instant};

use crate::app::AppOptions;
use files_testkit::eventually;
use files_testkit::postgres::TestDatabase;
use files_testkit::proxy::TcpProxy;
use files_testkit::services::{self, TestS3};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, json_of};

/// How the server reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisRoute {
    Direct,
    /// Through a proxy the test can cut.
    Proxy,
    /// Through a proxy that is cut before the server starts.
    DownFromTheStart,
}

pub struct Stack {
    pub h: Harness,
    pub db: TestDatabase,
    pub pg_proxy: Option<TcpProxy>,
    pub redis_proxy: Option<TcpProxy>,
    pub redis_prefix: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &self.redis_prefix);
    }
}

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

async fn stack(test: &str, pg_via_proxy: bool, redis: RedisRoute) -> Option<Stack> {
    stack_with(test, pg_via_proxy, redis, AppOptions::default()).await
}

pub async fn stack_with(test: &str, pg_via_proxy: bool, redis: RedisRoute, options: AppOptions) -> Option<Stack> {
    let s3 = TestS3::from_env(test).await?;
    let db = TestDatabase::create(test).await?;
    let redis_address = host_port(&services::redis_url());
    if !services::reachable(&redis_address).await {
        return services::unavailable(test, "Redis", &format!("nothing listens at {redis_address}"));
    }
    let pg_proxy = if pg_via_proxy {
        Some(TcpProxy::start(&host_port(db.url())).await.unwrap())
    } else {
        None
    };
    let database_url = match &pg_proxy {
        Some(proxy) => db.url().replace(&host_port(db.url()), &proxy.addr().to_string()),
        None => db.url().to_owned(),
    };
    let redis_proxy = match redis {
        RedisRoute::Direct => None,
        RedisRoute::Proxy | RedisRoute::DownFromTheStart => Some(TcpProxy::start(&redis_address).await.unwrap()),
    };
    if redis == RedisRoute::DownFromTheStart {
        redis_proxy.as_ref().unwrap().cut();
    }
    let redis_url = match &redis_proxy {
        Some(proxy) => format!("redis://{}", proxy.addr()),
        None => services::redis_url(),
    };
    let redis_prefix = format!("files-test-{}", uuid::Uuid::new_v4().simple());
    // Short bounds where the test cuts the database (its 503 must come fast); elsewhere bounds a
    // loaded test machine does not reach with a healthy PostgreSQL (in one CI run a 1 s bound
    // failed an insert, and the relay's call, while the other tests loaded the machine).
    let timeout_ms = if pg_proxy.is_some() { "1000" } else { "5000" };
    let mut options = options
        .var("FILES_DATABASE_URL", database_url)
        .var("FILES_DATABASE_TIMEOUT_MS", timeout_ms)
        .var("FILES_DATABASE_CONNECT_TIMEOUT_MS", timeout_ms)
        .var("FILES_REDIS_URL", redis_url)
        .var("FILES_REDIS_PREFIX", redis_prefix.clone());
    options.vars.extend(s3.server_vars());
    let h = Harness::start_with(options).await;
    Some(Stack {
        h,
        db,
        pg_proxy,
        redis_proxy,
        redis_prefix,
    })
}

#[tokio::test]
async fn the_flow_permissions_and_versions_on_real_services() {
    let Some(s) = stack(
        "the_flow_permissions_and_versions_on_real_services",
        false,
        RedisRoute::Direct,
    )
    .await
    else {
        return;
    };
    crate::flow::device_flow(&s.h.api, s.h.tenant, s.h.device, &s.h.device_token()).await;
    crate::permissions::permission_table(&s.h).await;
    crate::versions::versions(&s.h).await;
    crate::flow::content_type_is_signed(&s.h.api, s.h.tenant, s.h.device, &s.h.device_token()).await;
    for call in [
        r#"files_dependency_call_duration_seconds_count{dependency="database",operation="insert",outcome="ok"}"#,
        r#"files_dependency_call_duration_seconds_count{dependency="database",operation="mark_available",outcome="ok"}"#,
        r#"files_dependency_call_duration_seconds_count{dependency="object_store",operation="inspect",outcome="ok"}"#,
    ] {
        assert!(s.h.metric(call).await > 0.0, "{call}");
    }
    assert!(
        s.h.metric("files_cache_operations_total{operation=\"get_file\",outcome=\"hit\"}")
            .await
            > 0.0
    );
    assert_eq!(
        s.h.counter_or_zero("files_cache_operations_total{operation=\"get_file\",outcome=\"error\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn redis_down_from_the_start_fails_no_request() {
    let Some(s) = stack(
        "redis_down_from_the_start_fails_no_request",
        false,
        RedisRoute::DownFromTheStart,
    )
    .await
    else {
        return;
    };
    crate::flow::device_flow(&s.h.api, s.h.tenant, s.h.device, &s.h.device_token()).await;
    crate::versions::versions(&s.h).await;
    // Counted as cache errors: after the first failed write, reads no longer try Redis but the
    // deletion of what it missed (`remove_file`, `remove_latest`, whichever a repair tries
    // first), which fails in their stead.
    let errors = s.h.metric("files_cache_operations_total{outcome=\"error\"}").await;
    assert!(errors > 0.0, "no cache error counted");
    let mut repairs = 0.0;
    for operation in ["remove_file", "remove_latest"] {
        repairs +=
            s.h.counter_or_zero(&format!(
                "files_cache_operations_total{{operation=\"{operation}\",outcome=\"error\"}}"
            ))
            .await;
    }
    assert!(repairs > 0.0, "no failed repair counted");
}

#[tokio::test]
async fn redis_cut_mid_run_fails_no_request() {
    let Some(s) = stack("redis_cut_mid_run_fails_no_request", false, RedisRoute::Proxy).await else {
        return;
    };
    let (h, token) = (&s.h, s.h.device_token());
    let first = h
        .api
        .upload(&h.scope(), h.tenant, &token, "before.txt", b"before")
        .await;
    let errors_before = h
        .counter_or_zero("files_cache_operations_total{operation=\"get_file\",outcome=\"error\"}")
        .await;
    let (status, ready) = json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, &ready["status"], &ready["dependencies"]["cache"]),
        (StatusCode::OK, &json!("ready"), &json!("ok"))
    );
    let proxy = s.redis_proxy.as_ref().unwrap();
    assert!(
        proxy.cut_and_wait(Duration::from_secs(10)).await,
        "the proxy did not close its connections in time"
    );
    // Still ready: the service serves without its cache, and says so (once the background
    // measurement has seen the cut).
    let mut last = None;
    eventually(Duration::from_secs(10), async || {
        let ready = json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await;
        let seen = ready.1["dependencies"]["cache"] == "unavailable";
        last = Some(ready);
        seen
    })
    .await;
    let (status, ready) = last.unwrap();
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["dependencies"]["cache"], "unavailable");
    // Reads and writes go on while Redis is gone.
    let path = format!("/v1/tenants/{}/files/{first}", h.tenant);
    assert_eq!(h.api.get(&path, &token).await.status(), StatusCode::OK);
    let during = h
        .api
        .upload(&h.scope(), h.tenant, &token, "during.txt", b"during")
        .await;
    let (status, _) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "during.txt"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h.metric("files_cache_operations_total{operation=\"get_file\",outcome=\"error\"}")
            .await
            > errors_before
    );
    s.redis_proxy.as_ref().unwrap().restore();
    let (status, body) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_id": during}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.api.upload(&h.scope(), h.tenant, &token, "after.txt", b"after").await;
}

#[tokio::test]
async fn a_redis_outage_leaves_no_stale_read_once_redis_is_back() {
    // The finding: with Redis cut, DELETE of the latest version and a completion; once Redis
    // was back the deleted version was still served by name and by id, and the completed file
    // read `pending` (a second `complete` answered 404).
    let Some(s) = stack(
        "a_redis_outage_leaves_no_stale_read_once_redis_is_back",
        false,
        RedisRoute::Proxy,
    )
    .await
    else {
        return;
    };
    let (h, token) = (&s.h, s.h.device_token());
    let file = |id: &str| format!("/v1/tenants/{}/files/{id}", h.tenant);
    let by_name = json!({"file_name": "fw.bin"});
    let v1 = h.api.upload(&h.scope(), h.tenant, &token, "fw.bin", b"version 1").await;
    let v2 = h.api.upload(&h.scope(), h.tenant, &token, "fw.bin", b"version 2").await;
    let (_, ticket) = h.api.upload_url(&h.scope(), &token, "late.txt", b"late").await;
    let late = ticket["file_id"].as_str().unwrap().to_owned();
    assert!(h.api.put(&ticket, b"late").await.status().is_success());
    // Read through the cache: it holds v2 as the latest of the name, v2, and the pending file.
    let (_, latest) = h.api.download_url(&h.scope(), &token, &by_name).await;
    assert_eq!(latest["file_id"], v2.as_str());
    let (status, _) = h.api.download_url(&h.scope(), &token, &json!({"file_id": v2})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = json_of(h.api.get(&file(&late), &token).await).await;
    assert_eq!(read["state"], "pending");

    let proxy = s.redis_proxy.as_ref().unwrap();
    assert!(
        proxy.cut_and_wait(Duration::from_secs(10)).await,
        "the proxy did not close its connections in time"
    );
    assert_eq!(h.api.delete(&file(&v2), &token).await.status(), StatusCode::NO_CONTENT);
    let (status, body) = h.api.complete(h.tenant, &late, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    proxy.restore();
    let cache_back = eventually(Duration::from_secs(10), async || {
        let (_, ready) = json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await;
        ready["dependencies"]["cache"] == "ok"
    })
    .await;
    assert!(cache_back, "Redis is not ok in /readyz 10 s after the restore");

    let (status, latest) = h.api.download_url(&h.scope(), &token, &by_name).await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["file_id"], v1.as_str(), "the deleted version is served by name");
    assert_eq!(h.api.fetch(&latest).await, (StatusCode::OK, b"version 1".to_vec()));
    let (status, body) = h.api.download_url(&h.scope(), &token, &json!({"file_id": v2})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the deleted version by id: {body}");
    assert_eq!(h.api.get(&file(&v2), &token).await.status(), StatusCode::NOT_FOUND);
    let (_, read) = json_of(h.api.get(&file(&late), &token).await).await;
    assert_eq!(read["state"], "available", "the completed file reads {read}");
    let (status, body) = h.api.complete(h.tenant, &late, &token).await;
    assert_eq!(status, StatusCode::OK, "a second complete: {body}");
    // And Redis now holds what Postgres holds.
    files_testkit::redis::assert_cache_matches_store(
        &services::redis_url(),
        &s.redis_prefix,
        s.db.url(),
        h.tenant,
        &[&v2, &late],
    )
    .await;
}

#[tokio::test]
async fn postgres_cut_mid_run_is_503_then_recovers() {
    let Some(s) = stack("postgres_cut_mid_run_is_503_then_recovers", true, RedisRoute::Direct).await else {
        return;
    };
    let (h, token) = (&s.h, s.h.device_token());
    h.api
        .upload(&h.scope(), h.tenant, &token, "before.txt", b"before")
        .await;
    assert!(
        s.pg_proxy.as_ref().unwrap().cut_and_wait(Duration::from_secs(10)).await,
        "the proxy did not close its connections in time"
    );

    let started = Instant::now();
    let (status, body) = h.api.upload_url(&h.scope(), &token, "during.txt", b"during").await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(elapsed < Duration::from_secs(5), "answered after {elapsed:?}");
    assert_eq!(body["error"]["code"], "dependency_unavailable");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("database"),
        "{body}"
    );
    let mut last = None;
    eventually(Duration::from_secs(10), async || {
        let ready = json_of(h.api.client.get(h.app.url("/readyz")).send().await.unwrap()).await;
        let seen = ready.1["dependencies"]["database"] == "unavailable";
        last = Some(ready);
        seen
    })
    .await;
    let (status, ready) = last.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["dependencies"]["database"], "unavailable");

    s.pg_proxy.as_ref().unwrap().restore();
    // Recovers by itself: poll with a deadline, no restart.
    let mut last = None;
    let recovered = eventually(Duration::from_secs(20), async || {
        let (status, body) = h.api.upload_url(&h.scope(), &token, "after.txt", b"after").await;
        last = Some((status, body));
        status == StatusCode::CREATED
    })
    .await;
    if !recovered {
        let (status, body) = last.expect("polled at least once");
        panic!("still {status} after restore: {body}");
    }
    h.api.upload(&h.scope(), h.tenant, &token, "after2.txt", b"after").await;
}

#[tokio::test]
async fn reads_through_the_cache_return_what_postgres_holds() {
    let Some(s) = stack(
        "reads_through_the_cache_return_what_postgres_holds",
        false,
        RedisRoute::Direct,
    )
    .await
    else {
        return;
    };
    let (h, token) = (&s.h, s.h.device_token());
    let file = |id: &str| format!("/v1/tenants/{}/files/{id}", h.tenant);

    // A completion: the cached pending record is replaced.
    let (_, ticket) = h.api.upload_url(&h.scope(), &token, "cfg.json", b"{}").await;
    let v1 = ticket["file_id"].as_str().unwrap().to_owned();
    let (_, pending) = json_of(h.api.get(&file(&v1), &token).await).await;
    assert_eq!(pending["state"], "pending");
    assert!(h.api.put(&ticket, b"{}").await.status().is_success());
    assert_eq!(h.api.complete(h.tenant, &v1, &token).await.0, StatusCode::OK);
    let (_, read) = json_of(h.api.get(&file(&v1), &token).await).await;
    assert_eq!(read["state"], "available", "the cache still held the pending record");

    // A new version: the cached latest version of the name is replaced.
    let (_, latest) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "cfg.json"}))
        .await;
    assert_eq!(latest["file_id"], v1.as_str());
    let v2 = h
        .api
        .upload(&h.scope(), h.tenant, &token, "cfg.json", b"{\"v\":2}")
        .await;
    let (_, latest) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "cfg.json"}))
        .await;
    assert_eq!(
        latest["file_id"],
        v2.as_str(),
        "the cache still named the old latest version"
    );

    // A delete: neither the record nor the latest version is served from the cache.
    assert_eq!(h.api.delete(&file(&v2), &token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.api.get(&file(&v2), &token).await.status(), StatusCode::NOT_FOUND);
    let (_, latest) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "cfg.json"}))
        .await;
    assert_eq!(latest["file_id"], v1.as_str());

    // And the cache entries themselves equal the rows.
    files_testkit::redis::assert_cache_matches_store(
        &services::redis_url(),
        &s.redis_prefix,
        s.db.url(),
        h.tenant,
        &[&v1, &v2],
    )
    .await;
}

#[tokio::test]
async fn urls_are_signed_for_the_public_endpoint() {
    let Some(s3) = TestS3::from_env("urls_are_signed_for_the_public_endpoint").await else {
        return;
    };
    let public = s3.endpoint.replace("127.0.0.1", "localhost");
    let mut options = AppOptions::default().var("FILES_S3_PUBLIC_ENDPOINT", public.clone());
    options.vars.extend(s3.server_vars());
    let h = Harness::start_with(options).await;
    let token = h.device_token();
    let (status, ticket) = h.api.upload_url(&h.scope(), &token, "p.bin", b"public").await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(ticket["url"].as_str().unwrap().starts_with(&public), "{ticket}");
    // The device reaches the store at the public address; the service checks it at its own.
    let id = ticket["file_id"].as_str().unwrap().to_owned();
    assert!(h.api.put(&ticket, b"public").await.status().is_success());
    assert_eq!(h.api.complete(h.tenant, &id, &token).await.0, StatusCode::OK);
    let (_, download) = h.api.download_url(&h.scope(), &token, &json!({"file_id": id})).await;
    assert!(download["url"].as_str().unwrap().starts_with(&public));
    assert_eq!(h.api.fetch(&download).await.1, b"public");
}
