//! Two server instances on one PostgreSQL database and one Redis key prefix, over HTTP, each
//! with its near cache on (the default): what one instance changes, the other serves within a
//! deadline, although it had the record in process. Each instance has its own embedded store;
//! only instance A stores and completes, B reads.

use std::sync::Arc;
use std::time::Duration;

use crate::app::{AppOptions, TestApp, spawn_app};
use files_adapters::redis::{RedisCache, RedisConfig};
use files_testkit::eventually;
use files_testkit::postgres::TestDatabase;
use files_testkit::services;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Api, Harness, json_of};

/// Bound on the near cache's tracking coming on, and on a read being served in process.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound on a change made through A being seen through B: Redis pushes the invalidation within
/// a millisecond; without it B would serve its copy for the whole TTL (5 minutes).
const SEEN: Duration = Duration::from_secs(5);

/// Instance A (a [`Harness`]: its own DSTS, Postgres at `db`, Redis under `prefix`) and
/// instance B on the same database, prefix and DSTS, its cache built here so the test can read
/// its near cache's statistics.
struct Pair {
    a: Harness,
    /// Kept running for the test.
    _b: TestApp,
    b_api: Api,
    b_cache: Arc<RedisCache>,
    _db: TestDatabase,
    prefix: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &self.prefix);
    }
}

async fn pair(test: &str) -> Option<Pair> {
    let db = TestDatabase::create(test).await?;
    let redis_address = services::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    if !services::reachable(&redis_address).await {
        return services::unavailable(test, "Redis", &format!("nothing listens at {redis_address}"));
    }
    let prefix = format!("files-test-{}", uuid::Uuid::new_v4().simple());
    let a = Harness::start_with(
        AppOptions::default()
            .var("FILES_DATABASE_URL", db.url())
            .var("FILES_REDIS_URL", services::redis_url())
            .var("FILES_REDIS_PREFIX", prefix.clone())
            // A healthy Redis on a loaded machine must not time out.
            .var("FILES_REDIS_TIMEOUT_MS", "2000"),
    )
    .await;
    let b_cache = Arc::new(
        RedisCache::new(RedisConfig {
            key_prefix: prefix.clone(),
            timeout: Duration::from_secs(2),
            ..RedisConfig::new(services::redis_url())
        })
        .unwrap(),
    );
    b_cache.spawn_background();
    let mut options = AppOptions::default()
        .var("FILES_DATABASE_URL", db.url())
        .var("FILES_JWKS_URL", a.dsts.jwks_url())
        .var("FILES_JWKS_ALLOW_HTTP", "true")
        .var("FILES_TOKEN_ISSUER", a.dsts.issuer())
        .var("FILES_TOKEN_AUDIENCE", a.dsts.audience());
    options.overrides.cache = Some(b_cache.clone());
    let b = spawn_app(options).await.unwrap();
    let b_api = Api::new(b.address.clone());
    assert!(
        eventually(SETTLE, async || b_cache.near_cache_stats().is_some_and(|s| s.tracking)).await,
        "instance B's near cache did not start tracking within {SETTLE:?}"
    );
    Some(Pair {
        a,
        _b: b,
        b_api,
        b_cache,
        _db: db,
        prefix,
    })
}

impl Pair {
    fn near_hits(&self) -> u64 {
        self.b_cache.near_cache_stats().map_or(0, |s| s.hits)
    }

    /// Asks B with `ask` until one answer was served from B's near cache (its hit count moved:
    /// the push of A's last write may drop what the first read kept, as it must); that answer.
    async fn warm_b(&self, ask: impl AsyncFn(&Api) -> (StatusCode, Value)) -> (StatusCode, Value) {
        let mut last = None;
        let served = eventually(SETTLE, async || {
            let before = self.near_hits();
            last = Some(ask(&self.b_api).await);
            self.near_hits() > before
        })
        .await;
        let last = last.unwrap();
        assert!(
            served,
            "no read through B was served from its near cache; last {last:?}"
        );
        last
    }

    /// Asks B with `ask` until `seen` holds for its answer, within [`SEEN`]; the last answer.
    async fn b_sees(
        &self,
        ask: impl AsyncFn(&Api) -> (StatusCode, Value),
        seen: impl Fn(&(StatusCode, Value)) -> bool,
    ) -> (bool, (StatusCode, Value)) {
        let mut last = None;
        let ok = eventually(SEEN, async || {
            let answer = ask(&self.b_api).await;
            let ok = seen(&answer);
            last = Some(answer);
            ok
        })
        .await;
        (ok, last.unwrap())
    }
}

/// A file completed, then deleted, through A is seen so through B within [`SEEN`], by id and
/// by name, although B had read it (pending, then available) and held it in its near cache.
#[tokio::test]
async fn two_instances_see_each_others_completions_and_deletions_through_their_near_caches() {
    let test = "two_instances_see_each_others_completions_and_deletions_through_their_near_caches";
    let Some(p) = pair(test).await else { return };
    let h = &p.a;
    let token = h.device_token();
    let content = b"written through A, read through B";
    let (status, ticket) = h.api.upload_url(&h.scope(), &token, "shared.txt", content).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let file_id = ticket["file_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/tenants/{}/files/{file_id}", h.tenant);
    let by_id = async |api: &Api| json_of(api.get(&path, &token).await).await;
    let by_name = async |api: &Api| {
        api.download_url(&h.scope(), &token, &json!({"file_name": "shared.txt"}))
            .await
    };

    // B holds the pending record in process.
    let (status, file) = p.warm_b(by_id).await;
    assert_eq!((status, &file["state"]), (StatusCode::OK, &json!("pending")), "{file}");

    // Completed through A: B serves it available.
    assert!(h.api.put(&ticket, content).await.status().is_success());
    let (status, body) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (seen, last) = p
        .b_sees(by_id, |(status, file)| {
            *status == StatusCode::OK && file["state"] == "available"
        })
        .await;
    assert!(seen, "B still serves {last:?} {SEEN:?} after A completed the file");

    // B holds the available record and the name's latest version in process.
    let (status, file) = p.warm_b(by_id).await;
    assert_eq!(
        (status, &file["state"]),
        (StatusCode::OK, &json!("available")),
        "{file}"
    );
    let (status, download) = p.warm_b(by_name).await;
    assert_eq!(status, StatusCode::OK, "{download}");
    assert_eq!(download["file_id"], json!(file_id), "{download}");

    // Deleted through A: B answers 404 by id and by name.
    let response = h.api.delete(&path, &token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (seen, last) = p.b_sees(by_id, |(status, _)| *status == StatusCode::NOT_FOUND).await;
    assert!(seen, "B still serves {last:?} {SEEN:?} after A deleted the file");
    let (seen, last) = p.b_sees(by_name, |(status, _)| *status == StatusCode::NOT_FOUND).await;
    assert!(
        seen,
        "B still signs a download of {last:?} {SEEN:?} after A deleted the file"
    );
}
