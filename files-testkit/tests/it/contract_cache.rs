//! The cache contract against the fake and against Redis, and what only Redis can get wrong:
//! key layout and TTLs, unreadable entries, Redis down from the start or cut mid-run.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use files_adapters::redis::{RedisCache, RedisConfig, driver};
use files_core::{
    Cache, CacheOutcome, FileId, FileRecord, FileState, MetadataStore, Owner, PortError, Scope, WriteThrough,
};
use files_testkit::contract::cache::{self, fresh_device, fresh_tenant, name, sample_record};
use files_testkit::contract::metadata::{deletion, uploaded_event};
use files_testkit::eventually;
use files_testkit::fakes::{FakeCache, FakeMetadataStore};
use files_testkit::proxy::TcpProxy;
use files_testkit::services;
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

/// A bound on a hang, not a benchmark: a call to an unreachable Redis must return by then.
const FAST: Duration = Duration::from_secs(2);

/// Generous enough that a loaded test machine does not fail calls to a healthy Redis.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a cache cut off by the proxy gets to answer again once the proxy is restored.
const RECONNECT: Duration = Duration::from_secs(10);

/// How long the proxy gets to close its connections once cut.
const CLOSE: Duration = Duration::from_secs(5);

/// A Redis cache with a key prefix of its own, and a raw connection to inspect and clean up.
pub(crate) struct TestRedis {
    pub(crate) cache: RedisCache,
    pub(crate) config: RedisConfig,
    pub(crate) raw: driver::aio::MultiplexedConnection,
}

impl TestRedis {
    /// A cache on the machine's Redis (through `url` when given), or `None` when Redis is not
    /// there (a skip, or a failure under `CI=true`). Its near cache is off: these tests change
    /// keys behind the cache's back with a raw connection and read them at once, which the near
    /// cache sees only when Redis's push arrives (`near_cache.rs` tests it).
    async fn connect(test: &str, url: Option<&str>, ttl: Duration, timeout: Duration) -> Option<Self> {
        Self::connect_with(test, url, ttl, timeout, format!("files-test-{}", Uuid::new_v4()), 0).await
    }

    /// As [`TestRedis::connect`], with the key prefix `prefix`.
    async fn connect_with_prefix(
        test: &str,
        url: Option<&str>,
        ttl: Duration,
        timeout: Duration,
        prefix: String,
    ) -> Option<Self> {
        Self::connect_with(test, url, ttl, timeout, prefix, 0).await
    }

    /// As [`TestRedis::connect_with_prefix`], with a near cache of `near` entries (0: off).
    pub(crate) async fn connect_with(
        test: &str,
        url: Option<&str>,
        ttl: Duration,
        timeout: Duration,
        prefix: String,
        near: u64,
    ) -> Option<Self> {
        let direct = services::redis_url();
        let raw = match driver::Client::open(direct.as_str()) {
            Ok(client) => {
                match tokio::time::timeout(HEALTHY_TIMEOUT, client.get_multiplexed_async_connection()).await {
                    Ok(Ok(raw)) => raw,
                    Ok(Err(error)) => return services::unavailable(test, "Redis", &error),
                    Err(_) => return services::unavailable(test, "Redis", &"no connection within 2 s"),
                }
            }
            Err(error) => return services::unavailable(test, "Redis", &error),
        };
        let config = RedisConfig {
            key_prefix: prefix,
            ttl,
            timeout,
            near_cache_capacity: near,
            ..RedisConfig::new(url.unwrap_or(&direct))
        };
        let cache = RedisCache::new(config.clone()).unwrap();
        // The near cache's key tracking, as a server runs it.
        cache.spawn_background();
        Some(Self { cache, config, raw })
    }

    /// Every key under the prefix (its glob characters escaped: only its own keys).
    async fn keys(&mut self) -> Vec<String> {
        let escaped: String = self
            .config
            .key_prefix
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '\\').then_some('\\');
                escape.into_iter().chain(std::iter::once(c))
            })
            .collect();
        let pattern = format!("{escaped}:*");
        let mut keys = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, batch): (u64, Vec<String>) = driver::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.raw)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    async fn set(&mut self, key: &str, value: impl driver::ToRedisArgs) {
        let () = driver::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(60)
            .query_async(&mut self.raw)
            .await
            .unwrap();
    }

    async fn exists(&mut self, key: &str) -> bool {
        driver::cmd("EXISTS").arg(key).query_async(&mut self.raw).await.unwrap()
    }

    pub(crate) fn file_key(&self, record: &FileRecord) -> String {
        format!("{}:v2:file:{}:{}", self.config.key_prefix, record.tenant, record.id)
    }

    fn latest_key(&self, scope: Scope, file_name: &str) -> String {
        let owner = match scope.owner {
            Owner::Device(device) => device.to_string(),
            Owner::Tenant => "_tenant".to_owned(),
        };
        let hash = files_testkit::sha256_hex(file_name.as_bytes());
        format!("{}:v1:latest:{}:{owner}:{hash}", self.config.key_prefix, scope.tenant)
    }

    /// Deletes every key under the prefix; the test's last step.
    pub(crate) async fn clean_up(mut self) {
        let keys = self.keys().await;
        if !keys.is_empty() {
            let _: i64 = driver::cmd("DEL").arg(&keys).query_async(&mut self.raw).await.unwrap();
        }
        assert!(self.keys().await.is_empty());
    }
}

/// Runs `call`, asserting it fails as unavailable and returns before [`FAST`].
async fn fails_fast<T: std::fmt::Debug>(what: &str, call: impl Future<Output = Result<T, PortError>>) {
    let started = Instant::now();
    let result = tokio::time::timeout(FAST, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {FAST:?}"));
    assert!(
        matches!(result, Err(PortError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(started.elapsed() < FAST, "{what} took {:?}", started.elapsed());
}

/// Every cache call fails as unavailable, quickly.
async fn every_call_fails_fast(cache: &RedisCache) {
    let record = sample_record(fresh_tenant(), Owner::Tenant, "a.txt");
    let file = name("a.txt");
    fails_fast("ping", cache.ping()).await;
    fails_fast("get_file", cache.get_file(record.tenant, record.id)).await;
    fails_fast("put_file", cache.put_file(&record)).await;
    fails_fast("get_latest", cache.get_latest(record.scope(), &file)).await;
    fails_fast("put_latest", cache.put_latest(record.scope(), &file, record.id)).await;
    fails_fast("remove_latest", cache.remove_latest(record.scope(), &file)).await;
    fails_fast("remove_file", cache.remove_file(record.tenant, record.id)).await;
    fails_fast("clear", cache.clear()).await;
}

#[tokio::test]
async fn the_fake_cache_passes_the_contract() {
    cache::run(&FakeCache::default()).await;
}

#[tokio::test]
async fn the_fake_cache_passes_the_clear_contract() {
    cache::run_clear(&FakeCache::default(), &FakeCache::default()).await;
}

#[tokio::test]
async fn the_redis_cache_passes_the_contract() {
    let test = "the_redis_cache_passes_the_contract";
    let Some(redis) = TestRedis::connect(test, None, RedisConfig::DEFAULT_TTL, HEALTHY_TIMEOUT).await else {
        return;
    };
    redis.cache.ping().await.unwrap();
    cache::run(&redis.cache).await;
    // Twice on the same cache: the contract's fresh tenants keep runs apart.
    cache::run(&redis.cache).await;
    redis.clean_up().await;
}

#[tokio::test]
async fn redis_keys_follow_the_layout_and_all_expire() {
    let test = "redis_keys_follow_the_layout_and_all_expire";
    let ttl = Duration::from_secs(120);
    let Some(mut redis) = TestRedis::connect(test, None, ttl, HEALTHY_TIMEOUT).await else {
        return;
    };
    let device = fresh_device();
    let record = sample_record(fresh_tenant(), Owner::Device(device), "Crash Dump: 2024/01/01.dmp");
    redis.cache.put_file(&record).await.unwrap();
    redis
        .cache
        .put_latest(record.scope(), &record.name, record.id)
        .await
        .unwrap();
    let tenant_root = Scope {
        tenant: record.tenant,
        owner: Owner::Tenant,
    };
    redis
        .cache
        .put_latest(tenant_root, &record.name, record.id)
        .await
        .unwrap();

    let file_key = redis.file_key(&record);
    let device_latest = redis.latest_key(record.scope(), record.name.as_str());
    let tenant_latest = redis.latest_key(tenant_root, record.name.as_str());
    assert!(file_key.ends_with(&format!(":v2:file:{}:{}", record.tenant, record.id)));
    assert!(device_latest.contains(&format!(":v1:latest:{}:{device}:", record.tenant)));
    assert!(tenant_latest.contains(&format!(":v1:latest:{}:_tenant:", record.tenant)));
    for key in [&file_key, &device_latest, &tenant_latest] {
        assert!(redis.exists(key).await, "{key} was not written");
    }
    let id: String = driver::cmd("GET")
        .arg(&device_latest)
        .query_async(&mut redis.raw)
        .await
        .unwrap();
    assert_eq!(id, record.id.to_string());

    // The whole contract's keys too: every key carries a TTL, none over the configured one.
    cache::run(&redis.cache).await;
    let keys = redis.keys().await;
    assert!(keys.len() > 20, "expected the contract's keys, found {}", keys.len());
    for key in &keys {
        let seconds: i64 = driver::cmd("TTL").arg(key).query_async(&mut redis.raw).await.unwrap();
        assert!(
            seconds > 0 && seconds <= 120,
            "{key} has TTL {seconds} (-1: none), expected 1..=120"
        );
    }
    redis.clean_up().await;
}

#[tokio::test]
async fn redis_clear_deletes_every_key_under_its_prefix_and_no_other() {
    let test = "redis_clear_deletes_every_key_under_its_prefix_and_no_other";
    // Glob characters in the prefix: an unescaped `SCAN MATCH` would take the neighbour's keys
    // (`[*]` matches `*`, `?` matches `x`).
    let base = format!("files-test-{}-", Uuid::new_v4());
    let ttl = Duration::from_secs(120);
    let Some(mut redis) = TestRedis::connect_with_prefix(test, None, ttl, HEALTHY_TIMEOUT, format!("{base}[*]?")).await
    else {
        return;
    };
    let Some(mut neighbour) =
        TestRedis::connect_with_prefix(test, None, ttl, HEALTHY_TIMEOUT, format!("{base}*x")).await
    else {
        return;
    };
    cache::run_clear(&redis.cache, &neighbour.cache).await;

    // More keys than one SCAN batch looks at.
    let tenant = fresh_tenant();
    for n in 0..2500 {
        let record = sample_record(tenant, Owner::Tenant, &format!("many-{n}.bin"));
        redis.cache.put_file(&record).await.unwrap();
    }
    let kept = sample_record(fresh_tenant(), Owner::Tenant, "kept.bin");
    neighbour.cache.put_file(&kept).await.unwrap();
    assert!(redis.keys().await.len() >= 2500);
    redis.cache.clear().await.unwrap();
    assert_eq!(redis.keys().await, Vec::<String>::new(), "keys left under the prefix");
    let kept_key = neighbour.file_key(&kept);
    assert!(
        neighbour.exists(&kept_key).await,
        "the neighbour's {kept_key} was deleted"
    );
    assert_eq!(
        neighbour.cache.get_file(kept.tenant, kept.id).await.unwrap(),
        Some(kept)
    );
    redis.clean_up().await;
    neighbour.clean_up().await;
}

#[tokio::test]
async fn unreadable_redis_entries_read_as_misses_and_are_deleted() {
    let test = "unreadable_redis_entries_read_as_misses_and_are_deleted";
    let Some(mut redis) = TestRedis::connect(test, None, RedisConfig::DEFAULT_TTL, HEALTHY_TIMEOUT).await else {
        return;
    };
    let record = sample_record(fresh_tenant(), Owner::Tenant, "config.json");
    let file_key = redis.file_key(&record);
    let record_json = serde_json::to_value(&record).unwrap();

    // The documented shape reads back: {"v": 2, "file": record}.
    redis
        .set(&file_key, serde_json::json!({"v": 2, "file": record_json}).to_string())
        .await;
    assert_eq!(
        redis.cache.get_file(record.tenant, record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut other_id = record_json.clone();
    other_id["id"] = serde_json::json!(FileId::new());
    let unreadable: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{not json".to_vec()),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x80]),
        ("empty", Vec::new()),
        ("a bare record without version", record_json.to_string().into_bytes()),
        (
            "another schema version",
            serde_json::json!({"v": 1, "file": record_json})
                .to_string()
                .into_bytes(),
        ),
        (
            "version 2 of another shape",
            serde_json::json!({"v": 2, "file": {"id": record.id, "name": 7}})
                .to_string()
                .into_bytes(),
        ),
        (
            "the record of another file",
            serde_json::json!({"v": 2, "file": other_id}).to_string().into_bytes(),
        ),
    ];
    for (what, value) in unreadable {
        redis.set(&file_key, value).await;
        let got = redis.cache.get_file(record.tenant, record.id).await;
        assert!(matches!(got, Ok(None)), "{what}: expected a miss, got {got:?}");
        assert!(!redis.exists(&file_key).await, "{what}: the entry was not deleted");
    }

    let latest_key = redis.latest_key(record.scope(), record.name.as_str());
    for (what, value) in [
        ("not a UUID", b"latest".to_vec()),
        ("not UTF-8", vec![0xc3, 0x28]),
        ("JSON", b"{\"v\":1}".to_vec()),
    ] {
        redis.set(&latest_key, value).await;
        let got = redis.cache.get_latest(record.scope(), &record.name).await;
        assert!(matches!(got, Ok(None)), "latest {what}: expected a miss, got {got:?}");
        assert!(
            !redis.exists(&latest_key).await,
            "latest {what}: the entry was not deleted"
        );
    }

    // And the cache keeps working after them.
    redis.cache.put_file(&record).await.unwrap();
    assert_eq!(
        redis.cache.get_file(record.tenant, record.id).await.unwrap(),
        Some(record)
    );
    redis.clean_up().await;
}

#[tokio::test]
async fn redis_down_from_the_start_every_call_fails_fast() {
    // Neither needs a running Redis: a proxy that is cut before the first connection, and a
    // port where nothing listens.
    let proxy = TcpProxy::start(("127.0.0.1", 6379)).await.unwrap();
    proxy.cut();
    for url in [
        format!("redis://127.0.0.1:{}", proxy.port()),
        "redis://127.0.0.1:1".to_owned(),
    ] {
        let cache = RedisCache::new(RedisConfig::new(url.as_str())).expect("built without Redis");
        every_call_fails_fast(&cache).await;
        // Still failing fast on a second round (nothing piles up in the pool).
        every_call_fails_fast(&cache).await;
        // The cause says what happened.
        let Err(PortError::Unavailable(cause)) = cache.ping().await else {
            panic!("expected Unavailable");
        };
        assert!(cause.to_string().contains("Redis"), "{cause}");
    }
}

#[tokio::test]
async fn redis_cut_mid_run_fails_fast_then_recovers_without_rebuilding() {
    let test = "redis_cut_mid_run_fails_fast_then_recovers_without_rebuilding";
    let (proxy, url) = TcpProxy::for_url(&services::redis_url()).await.unwrap();
    let timeout = Duration::from_millis(500);
    let Some(redis) = TestRedis::connect(test, Some(&url), RedisConfig::DEFAULT_TTL, timeout).await else {
        return;
    };
    let cache = &redis.cache;
    let record = sample_record(fresh_tenant(), Owner::Tenant, "before.txt");
    cache.put_file(&record).await.unwrap();
    assert_eq!(
        cache.get_file(record.tenant, record.id).await.unwrap(),
        Some(record.clone())
    );

    assert!(
        proxy.cut_and_wait(CLOSE).await,
        "the proxy did not close its connections in time"
    );
    every_call_fails_fast(cache).await;
    every_call_fails_fast(cache).await;

    proxy.restore();
    // The same cache, not rebuilt: it reconnects by itself.
    let expected = &record;
    assert!(
        eventually(RECONNECT, async || {
            matches!(cache.get_file(expected.tenant, expected.id).await, Ok(Some(ref got)) if got == expected)
        })
        .await,
        "the cache answers again after the restore: not within {RECONNECT:?}"
    );
    cache.ping().await.unwrap();
    cache::run(cache).await;

    // A second outage heals the same way.
    assert!(
        proxy.cut_and_wait(CLOSE).await,
        "the proxy did not close its connections in time"
    );
    fails_fast(
        "get_file during the second cut",
        cache.get_file(record.tenant, record.id),
    )
    .await;
    proxy.restore();
    assert!(
        eventually(RECONNECT, async || cache.ping().await.is_ok()).await,
        "the cache answers after the second restore: not within {RECONNECT:?}"
    );
    redis.clean_up().await;
}

#[tokio::test]
async fn a_redis_connection_lost_while_idle_is_replaced_within_the_call() {
    let test = "a_redis_connection_lost_while_idle_is_replaced_within_the_call";
    let (proxy, url) = TcpProxy::for_url(&services::redis_url()).await.unwrap();
    let Some(redis) = TestRedis::connect(test, Some(&url), RedisConfig::DEFAULT_TTL, HEALTHY_TIMEOUT).await else {
        return;
    };
    let record = sample_record(fresh_tenant(), Owner::Tenant, "idle.txt");
    redis.cache.put_file(&record).await.unwrap();
    assert!(proxy.connections() > 0);
    // As when Redis restarts between two requests: the pooled connection dies while idle.
    proxy.cut();
    assert!(
        eventually(CLOSE, async || proxy.connections() == 0).await,
        "the proxy closed its connections: not within {CLOSE:?}"
    );
    proxy.restore();
    // The very next call succeeds: the dead connection is dropped and replaced inside it.
    assert_eq!(
        redis.cache.get_file(record.tenant, record.id).await.unwrap(),
        Some(record)
    );
    redis.clean_up().await;
}

/// Keeps the cache calls the write-through composition reports.
#[derive(Debug, Default)]
struct Outcomes(Mutex<Vec<(&'static str, CacheOutcome)>>);

impl Outcomes {
    fn outcomes(&self) -> Vec<CacheOutcome> {
        self.0.lock().unwrap().iter().map(|(_, outcome)| *outcome).collect()
    }

    fn count(&self, operation: &str, outcome: CacheOutcome) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|call| **call == (operation, outcome))
            .count()
    }
}

impl files_core::Metrics for Outcomes {
    fn cache_call(&self, operation: files_core::CacheOperation, outcome: CacheOutcome, _: Duration) {
        self.0.lock().unwrap().push((operation.label(), outcome));
    }
}

#[tokio::test]
async fn with_redis_down_every_metadata_call_is_served_by_the_store() {
    // The brief: when Redis is down, the service serves from Postgres and no request fails.
    let proxy = TcpProxy::start(("127.0.0.1", 6379)).await.unwrap();
    proxy.cut();
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}", proxy.port()));
    let cache = Arc::new(RedisCache::new(config).unwrap());
    let outcomes = Arc::new(Outcomes::default());
    let metadata = WriteThrough::new(Arc::new(FakeMetadataStore::default()), cache, outcomes.clone());

    let record = sample_record(fresh_tenant(), Owner::Device(fresh_device()), "diagnostics.tar");
    let scope = record.scope();
    let started = Instant::now();
    metadata.insert(&record).await.unwrap();
    assert_eq!(
        metadata.get(record.tenant, record.id).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        metadata
            .latest(scope, &record.name, FileState::Available)
            .await
            .unwrap(),
        None
    );
    let completed_at = OffsetDateTime::now_utc();
    let available = metadata
        .mark_available(
            record.tenant,
            record.id,
            1234,
            completed_at,
            &uploaded_event(&record, 1234, completed_at),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(available.state, FileState::Available);
    assert_eq!(available.size, Some(1234));
    assert_eq!(
        metadata
            .latest(scope, &record.name, FileState::Available)
            .await
            .unwrap(),
        Some(available.clone())
    );
    assert_eq!(
        metadata.list(scope, FileState::Available, None, 10).await.unwrap(),
        vec![available.clone()]
    );
    let deleted = metadata
        .mark_deleted(record.tenant, record.id, &deletion(OffsetDateTime::now_utc()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.state, FileState::Deleted);
    assert_eq!(metadata.get(record.tenant, record.id).await.unwrap(), Some(deleted));
    assert_eq!(
        metadata
            .latest(scope, &record.name, FileState::Available)
            .await
            .unwrap(),
        None
    );

    let outcomes = outcomes.outcomes();
    assert!(!outcomes.is_empty());
    assert!(
        outcomes.iter().all(|o| *o == CacheOutcome::Error),
        "every cache call must be counted as an error: {outcomes:?}"
    );
    // Each cache call is bounded by the cache's timeout (250 ms by default).
    let bound = RedisConfig::DEFAULT_TIMEOUT * u32::try_from(outcomes.len()).unwrap() + FAST;
    assert!(
        started.elapsed() < bound,
        "took {:?} for {} cache calls",
        started.elapsed(),
        outcomes.len()
    );
}

/// Records `record` as pending, then available, through `metadata`; the available record.
async fn make_available(metadata: &WriteThrough, record: &FileRecord) -> FileRecord {
    metadata.insert(record).await.unwrap();
    complete(metadata, record).await
}

/// Marks a pending `record` available through `metadata`.
async fn complete(metadata: &WriteThrough, record: &FileRecord) -> FileRecord {
    let at = OffsetDateTime::now_utc();
    metadata
        .mark_available(record.tenant, record.id, 7, at, &uploaded_event(record, 7, at))
        .await
        .unwrap()
        .expect("the record was pending")
}

/// A Redis reached through a proxy the test can cut, and a write-through composition over it
/// (a fake store behind) whose cache calls are counted; `None` when Redis is not there.
async fn behind_a_proxy(test: &str) -> Option<(TcpProxy, TestRedis, Arc<Outcomes>, WriteThrough)> {
    let (proxy, url) = TcpProxy::for_url(&services::redis_url()).await.unwrap();
    let timeout = Duration::from_millis(500);
    // The near cache on: an outage must leave nothing stale in it either.
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let near = RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY;
    let redis = TestRedis::connect_with(test, Some(&url), RedisConfig::DEFAULT_TTL, timeout, prefix, near).await?;
    let outcomes = Arc::new(Outcomes::default());
    let metadata = WriteThrough::new(
        Arc::new(FakeMetadataStore::default()),
        Arc::new(redis.cache.clone()),
        outcomes.clone(),
    );
    Some((proxy, redis, outcomes, metadata))
}

#[tokio::test]
async fn a_redis_outage_leaves_no_stale_entry_once_redis_is_back() {
    // The finding: with Redis cut, the latest version is deleted and a pending file completed;
    // once Redis is back, the cache must not serve the deleted version nor the pending record.
    let test = "a_redis_outage_leaves_no_stale_entry_once_redis_is_back";
    let Some((proxy, mut redis, outcomes, metadata)) = behind_a_proxy(test).await else {
        return;
    };
    let (tenant, owner) = (fresh_tenant(), Owner::Device(fresh_device()));
    let v1 = make_available(&metadata, &sample_record(tenant, owner, "fw.bin")).await;
    let v2 = make_available(&metadata, &sample_record(tenant, owner, "fw.bin")).await;
    let late = sample_record(tenant, owner, "late.bin");
    metadata.insert(&late).await.unwrap();
    let (scope, fw) = (v1.scope(), v1.name.clone());
    // Read through the cache: it holds v2 as the latest of the name, v2, and the pending file.
    assert_eq!(
        metadata.latest(scope, &fw, FileState::Available).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(metadata.get(tenant, late.id).await.unwrap(), Some(late.clone()));
    for key in [
        redis.file_key(&v2),
        redis.file_key(&late),
        redis.latest_key(scope, fw.as_str()),
    ] {
        assert!(redis.exists(&key).await, "{key} is not cached");
    }

    assert!(
        proxy.cut_and_wait(CLOSE).await,
        "the proxy did not close its connections in time"
    );
    let deleted = metadata
        .mark_deleted(tenant, v2.id, &deletion(OffsetDateTime::now_utc()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.state, FileState::Deleted);
    let completed = complete(&metadata, &late).await;
    // Meanwhile the store answers.
    assert_eq!(
        metadata.latest(scope, &fw, FileState::Available).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(metadata.get(tenant, late.id).await.unwrap(), Some(completed.clone()));

    proxy.restore();
    assert!(
        eventually(RECONNECT, async || redis.cache.ping().await.is_ok()).await,
        "the cache answers again after the restore: not within {RECONNECT:?}"
    );
    assert_eq!(
        metadata.latest(scope, &fw, FileState::Available).await.unwrap(),
        Some(v1.clone()),
        "the deleted version is still the cached latest"
    );
    assert_eq!(
        metadata.get(tenant, v2.id).await.unwrap(),
        Some(deleted.clone()),
        "the deleted version is still cached as available"
    );
    assert_eq!(
        metadata.get(tenant, late.id).await.unwrap(),
        Some(completed.clone()),
        "the completed file is still cached as pending"
    );
    // Redis itself holds nothing stale any more, and serves the reads again.
    for (record, current) in [(&v2, &deleted), (&late, &completed)] {
        let cached = redis.cache.get_file(tenant, record.id).await.unwrap();
        assert!(cached.is_none() || cached.as_ref() == Some(current), "{cached:?}");
    }
    let latest = redis.cache.get_latest(scope, &fw).await.unwrap();
    assert!(latest.is_none() || latest == Some(v1.id), "{latest:?}");
    let hits = outcomes.count("get_file", CacheOutcome::Hit);
    assert_eq!(metadata.get(tenant, late.id).await.unwrap(), Some(completed));
    assert_eq!(outcomes.count("get_file", CacheOutcome::Hit), hits + 1);
    assert!(outcomes.count("remove_file", CacheOutcome::Written) >= 2);
    assert_eq!(outcomes.count("clear", CacheOutcome::Written), 0);
    redis.clean_up().await;
}

#[tokio::test]
async fn past_its_bound_a_redis_outage_flushes_the_prefix_once_redis_is_back() {
    let test = "past_its_bound_a_redis_outage_flushes_the_prefix_once_redis_is_back";
    let Some((proxy, mut redis, outcomes, metadata)) = behind_a_proxy(test).await else {
        return;
    };
    let metadata = metadata.with_max_dirty(3);
    let (tenant, owner) = (fresh_tenant(), Owner::Device(fresh_device()));
    let v1 = make_available(&metadata, &sample_record(tenant, owner, "fw.bin")).await;
    let other = make_available(&metadata, &sample_record(tenant, owner, "other.bin")).await;
    let (scope, fw) = (v1.scope(), v1.name.clone());
    assert_eq!(
        metadata.latest(scope, &fw, FileState::Available).await.unwrap(),
        Some(v1.clone())
    );
    // An entry the composition never wrote: only a flush of the prefix removes it.
    let planted = sample_record(fresh_tenant(), Owner::Tenant, "planted.bin");
    redis.cache.put_file(&planted).await.unwrap();

    assert!(
        proxy.cut_and_wait(CLOSE).await,
        "the proxy did not close its connections in time"
    );
    // Two entries (v1 and its name), then two more (another file and its name): one more
    // than remembered.
    let deleted = metadata
        .mark_deleted(tenant, v1.id, &deletion(OffsetDateTime::now_utc()))
        .await
        .unwrap()
        .unwrap();
    metadata
        .mark_deleted(tenant, other.id, &deletion(OffsetDateTime::now_utc()))
        .await
        .unwrap()
        .unwrap();
    proxy.restore();
    assert!(
        eventually(RECONNECT, async || redis.cache.ping().await.is_ok()).await,
        "the cache answers again after the restore: not within {RECONNECT:?}"
    );
    assert_eq!(
        metadata.latest(scope, &fw, FileState::Available).await.unwrap(),
        None,
        "the deleted version is still the cached latest"
    );
    assert_eq!(outcomes.count("clear", CacheOutcome::Written), 1);
    assert!(
        !redis.exists(&redis.file_key(&planted)).await,
        "the prefix was not flushed"
    );
    assert_eq!(metadata.get(tenant, v1.id).await.unwrap(), Some(deleted.clone()));
    // Trusted again: the next read is a hit.
    let hits = outcomes.count("get_file", CacheOutcome::Hit);
    assert_eq!(metadata.get(tenant, v1.id).await.unwrap(), Some(deleted));
    assert_eq!(outcomes.count("get_file", CacheOutcome::Hit), hits + 1);
    redis.clean_up().await;
}
