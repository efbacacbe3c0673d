//! The Redis cache's near cache, on the machine's Redis: warm reads served in process, changes
//! by another instance (or another client) seen, nothing served while Redis does not track the
//! keys, nothing stale kept after an outage or a race.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use files_adapters::redis::{NEAR_CACHE_PING_INTERVAL, NEAR_CACHE_PING_TIMEOUT, RedisCache, RedisConfig, driver};
use files_core::{Cache, Dependency, FileRecord, Metrics, Owner};
use files_testkit::contract::cache::{self, fresh_device, fresh_tenant, sample_record};
use files_testkit::eventually;
use files_testkit::proxy::TcpProxy;
use files_testkit::services;
use uuid::Uuid;

use crate::contract_cache::TestRedis;

/// Generous enough that a loaded test machine does not fail calls to a healthy Redis.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How long tracking gets to come on (a connection, `CLIENT TRACKING`, or a backoff of at most
/// 5 s after a failure, then that), and a change to reach another instance.
const SETTLE: Duration = Duration::from_secs(15);

/// Two caches on one prefix, as two instances of the service would be: `near` with its near
/// cache on (through `url` when given), `other` with it off, plus a raw connection.
async fn two_instances(test: &str, url: Option<&str>, timeout: Duration) -> Option<(TestRedis, RedisCache)> {
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let near = TestRedis::connect_with(
        test,
        url,
        RedisConfig::DEFAULT_TTL,
        timeout,
        prefix.clone(),
        RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY,
    )
    .await?;
    let other = RedisCache::new(RedisConfig {
        key_prefix: prefix,
        timeout: TIMEOUT,
        near_cache_capacity: 0,
        ..RedisConfig::new(services::redis_url())
    })
    .unwrap();
    assert!(
        eventually(SETTLE, async || tracking(&near.cache)).await,
        "the near cache's key tracking did not come on within {SETTLE:?}"
    );
    Some((near, other))
}

/// What a cache told its metrics: its tracking losses, and its reads of records from Redis.
#[derive(Debug, Default)]
struct Counted {
    losses: AtomicU64,
    record_reads: AtomicU64,
}

impl Metrics for Counted {
    fn near_cache_tracking_lost(&self) {
        self.losses.fetch_add(1, Ordering::SeqCst);
    }

    fn dependency_call(&self, dependency: Dependency, operation: &'static str, _ok: bool, _elapsed: Duration) {
        if dependency == Dependency::Cache && operation == "get_file" {
            self.record_reads.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Counted {
    fn losses(&self) -> u64 {
        self.losses.load(Ordering::SeqCst)
    }

    fn record_reads(&self) -> u64 {
        self.record_reads.load(Ordering::SeqCst)
    }
}

/// The near cache's key tracking, not yet run.
type TrackingFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// As [`two_instances`], but `near` counts in `metrics` and its tracking is handed to the test
/// to run; `None` when Redis is not there.
async fn two_instances_tracking_unrun(
    test: &str,
    prefix: &str,
    metrics: Arc<Counted>,
) -> Option<(RedisCache, TrackingFuture, RedisCache)> {
    let config = |near_cache_capacity| RedisConfig {
        key_prefix: prefix.to_owned(),
        timeout: TIMEOUT,
        near_cache_capacity,
        ..RedisConfig::new(services::redis_url())
    };
    let near = RedisCache::new(config(RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY))
        .unwrap()
        .with_metrics(metrics);
    if let Err(error) = near.ping().await {
        return services::unavailable(test, "Redis", &error);
    }
    let tracking: TrackingFuture = Box::pin(near.background().unwrap());
    let other = RedisCache::new(config(0)).unwrap();
    Some((near, tracking, other))
}

fn tracking(cache: &RedisCache) -> bool {
    cache.near_cache_stats().is_some_and(|stats| stats.tracking)
}

fn hits(cache: &RedisCache) -> u64 {
    cache.near_cache_stats().map_or(0, |stats| stats.hits)
}

/// Reads `record` until a read is served in process: the push of the write that put it there
/// may arrive after the first read kept it, and drop it (as it must).
async fn warm(cache: &RedisCache, record: &FileRecord) {
    let served = eventually(SETTLE, async || {
        let before = hits(cache);
        assert_eq!(
            cache.get_file(record.tenant, record.id).await.unwrap(),
            Some(record.clone())
        );
        hits(cache) > before
    })
    .await;
    assert!(served, "no read of the record was served in process within {SETTLE:?}");
}

fn resized(record: &FileRecord, size: u64) -> FileRecord {
    FileRecord {
        size: Some(size),
        ..record.clone()
    }
}

#[tokio::test]
async fn the_redis_cache_passes_the_contract_with_its_near_cache_on() {
    let test = "the_redis_cache_passes_the_contract_with_its_near_cache_on";
    let Some((redis, _other)) = two_instances(test, None, TIMEOUT).await else {
        return;
    };
    cache::run(&redis.cache).await;
    // Twice: the second pass reads entries the first left in the near cache.
    cache::run(&redis.cache).await;
    assert!(hits(&redis.cache) > 0, "the contract's reads never hit the near cache");
    let Some(neighbour) = TestRedis::connect_with(
        test,
        None,
        RedisConfig::DEFAULT_TTL,
        TIMEOUT,
        format!("files-test-{}", Uuid::new_v4()),
        RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY,
    )
    .await
    else {
        return;
    };
    cache::run_clear(&redis.cache, &neighbour.cache).await;
    redis.clean_up().await;
    neighbour.clean_up().await;
}

#[tokio::test]
async fn warm_reads_are_served_in_process_and_another_instances_changes_reach_them() {
    let test = "warm_reads_are_served_in_process_and_another_instances_changes_reach_them";
    let Some((mut redis, other)) = two_instances(test, None, TIMEOUT).await else {
        return;
    };
    let (tenant, owner) = (fresh_tenant(), Owner::Device(fresh_device()));
    let record = sample_record(tenant, owner, "fw.bin");
    let (scope, name) = (record.scope(), record.name.clone());
    other.put_file(&record).await.unwrap();
    other.put_latest(scope, &name, record.id).await.unwrap();

    // The first reads go to Redis; the next ones are served in process.
    let cache = &redis.cache;
    warm(cache, &record).await;
    assert!(
        eventually(SETTLE, async || {
            let before = hits(cache);
            assert_eq!(cache.get_latest(scope, &name).await.unwrap(), Some(record.id));
            hits(cache) > before
        })
        .await
    );
    let before = hits(cache);
    for _ in 0..10 {
        assert_eq!(cache.get_file(tenant, record.id).await.unwrap(), Some(record.clone()));
        assert_eq!(cache.get_latest(scope, &name).await.unwrap(), Some(record.id));
    }
    assert_eq!(hits(cache), before + 20, "warm reads went to Redis");

    // Another instance changes the record, then the name's latest version: both are seen.
    let changed = resized(&record, 4242);
    other.put_file(&changed).await.unwrap();
    assert!(
        eventually(SETTLE, async || cache.get_file(tenant, record.id).await.unwrap()
            == Some(changed.clone()))
        .await,
        "another instance's write never reached the near cache"
    );
    other.remove_latest(scope, &name).await.unwrap();
    assert!(
        eventually(SETTLE, async || cache.get_latest(scope, &name).await.unwrap().is_none()).await,
        "another instance's delete never reached the near cache"
    );

    // Any other client's change too: a raw DEL of the record.
    assert_eq!(cache.get_file(tenant, record.id).await.unwrap(), Some(changed.clone()));
    let key = redis.file_key(&record);
    let deleted: i64 = driver::cmd("DEL").arg(&key).query_async(&mut redis.raw).await.unwrap();
    assert_eq!(deleted, 1);
    assert!(
        eventually(SETTLE, async || cache
            .get_file(tenant, record.id)
            .await
            .unwrap()
            .is_none())
        .await,
        "a raw DEL never reached the near cache"
    );

    // This instance's own writes are seen at once, without waiting for Redis's push.
    cache.put_file(&record).await.unwrap();
    assert_eq!(cache.get_file(tenant, record.id).await.unwrap(), Some(record.clone()));
    cache.put_file(&changed).await.unwrap();
    assert_eq!(cache.get_file(tenant, record.id).await.unwrap(), Some(changed.clone()));
    cache.remove_file(tenant, record.id).await.unwrap();
    assert_eq!(cache.get_file(tenant, record.id).await.unwrap(), None);
    redis.clean_up().await;
}

#[tokio::test]
async fn without_key_tracking_nothing_is_served_in_process_and_an_outage_leaves_nothing_stale() {
    let test = "without_key_tracking_nothing_is_served_in_process_and_an_outage_leaves_nothing_stale";
    let (proxy, url) = TcpProxy::for_url(&services::redis_url()).await.unwrap();
    let timeout = Duration::from_millis(500);
    let Some((redis, other)) = two_instances(test, Some(&url), timeout).await else {
        return;
    };
    let cache = &redis.cache;
    let record = sample_record(fresh_tenant(), Owner::Tenant, "update.bin");
    other.put_file(&record).await.unwrap();
    warm(cache, &record).await;

    // Cut: the tracking connection closes, so the entry must not be served any more.
    assert!(
        proxy.cut_and_wait(Duration::from_secs(5)).await,
        "the proxy did not close its connections"
    );
    assert!(
        eventually(SETTLE, async || !tracking(cache)).await,
        "tracking still on after its connection was closed"
    );
    let read = cache.get_file(record.tenant, record.id).await;
    assert!(read.is_err(), "with Redis cut, a read was answered: {read:?}");
    // Meanwhile another instance changes it.
    let changed = resized(&record, 7);
    other.put_file(&changed).await.unwrap();

    proxy.restore();
    assert!(
        eventually(SETTLE, async || tracking(cache)).await,
        "tracking did not come back on within {SETTLE:?}"
    );
    assert_eq!(
        cache.get_file(record.tenant, record.id).await.unwrap(),
        Some(changed.clone()),
        "the entry from before the outage was served"
    );

    // A connection that hangs without closing is noticed by the ping.
    warm(cache, &changed).await;
    proxy.hang();
    let noticed = NEAR_CACHE_PING_INTERVAL + NEAR_CACHE_PING_TIMEOUT + Duration::from_secs(5);
    assert!(
        eventually(noticed, async || !tracking(cache)).await,
        "a hanging tracking connection was not noticed within {noticed:?}"
    );
    let read = cache.get_file(record.tenant, record.id).await;
    assert!(read.is_err(), "with Redis hanging, a read was answered: {read:?}");
    proxy.restore();
    assert!(eventually(SETTLE, async || tracking(cache)).await);
    redis.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_with_another_instances_writes_keep_no_stale_value() {
    // Round after round, readers fill the near cache while another instance writes a new
    // version; once the write is done, the readers must come to the new version. A read whose
    // answer was overtaken by the write's invalidation must not be kept, or it would be served
    // until the TTL. The window is microseconds wide, so this only catches it sometimes; the
    // unit tests of `near.rs` pin the rule itself.
    let test = "reads_racing_with_another_instances_writes_keep_no_stale_value";
    let Some((redis, other)) = two_instances(test, None, TIMEOUT).await else {
        return;
    };
    let record = sample_record(fresh_tenant(), Owner::Tenant, "racy.bin");
    const ROUNDS: u64 = 100;
    for size in 1..=ROUNDS {
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, done, record) = (redis.cache.clone(), done.clone(), record.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) {
                        cache.get_file(record.tenant, record.id).await.unwrap();
                        // A hit awaits nothing: let the writer run.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let current = resized(&record, size);
        other.put_file(&current).await.unwrap();
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        assert!(
            eventually(Duration::from_secs(2), async || redis
                .cache
                .get_file(record.tenant, record.id)
                .await
                .unwrap()
                == Some(current.clone()))
            .await,
            "round {size}: an older version stayed in the near cache"
        );
    }
    // And it stays: nothing older was kept to come back.
    let last = resized(&record, ROUNDS);
    for _ in 0..100 {
        assert_eq!(
            redis.cache.get_file(record.tenant, record.id).await.unwrap(),
            Some(last.clone())
        );
    }
    redis.clean_up().await;
}

/// How long the runtime that runs the tracking future is held busy: over a ping interval plus
/// the ping's timeout before it had a thread of its own (the call timeout, 250 ms), so that a
/// ping falls within it, with room for a change to reach the near cache meanwhile.
const HELD: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_tracking_goes_on_while_the_runtime_that_runs_it_is_held_busy() {
    // A server runs the tracking future on its main runtime, beside the relay, the janitor and
    // readiness, while other threads serve requests from the near cache. Here that runtime is a
    // current-thread one on a thread of the test's (the owner), whose only worker is held busy
    // for `HELD` while this test's runtime reads and another instance writes.
    //
    // When the tracking connection ran on the owner's runtime, this failed: its reader was held
    // too, so the push of the other instance's write waited for the end of the hold while the
    // reads here were served the old entry ("seen while held" below); and a ping in flight when
    // the hold began waited it out, past its timeout, dropping every entry. On a thread of its
    // own the connection waits for neither.
    let test = "key_tracking_goes_on_while_the_runtime_that_runs_it_is_held_busy";
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let counted = Arc::new(Counted::default());
    let Some((cache, tracking_future, other)) = two_instances_tracking_unrun(test, &prefix, counted.clone()).await
    else {
        return;
    };
    let hold = Arc::new(tokio::sync::Notify::new());
    let held = Arc::new(AtomicBool::new(false));
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let owner = std::thread::spawn({
        let (hold, held) = (hold.clone(), held.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tracking = tokio::spawn(tracking_future);
                hold.notified().await;
                held.store(true, Ordering::SeqCst);
                let until = std::time::Instant::now() + HELD;
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                held.store(false, Ordering::SeqCst);
                let _ = released.await;
                tracking.abort();
                let _ = tracking.await;
            });
        }
    });
    assert!(
        eventually(SETTLE, async || tracking(&cache)).await,
        "the near cache's key tracking did not come on within {SETTLE:?}"
    );
    let record = sample_record(fresh_tenant(), Owner::Tenant, "held.bin");
    other.put_file(&record).await.unwrap();
    warm(&cache, &record).await;

    hold.notify_one();
    assert!(
        eventually(SETTLE, async || held.load(Ordering::SeqCst)).await,
        "the owner's runtime was not held"
    );
    let changed = resized(&record, 99);
    other.put_file(&changed).await.unwrap();
    let mut seen_while_held = false;
    let seen = eventually(SETTLE, async || {
        let read = cache.get_file(record.tenant, record.id).await.unwrap();
        // Still held after the read: it was held while the read was served.
        seen_while_held = held.load(Ordering::SeqCst);
        read == Some(changed.clone())
    })
    .await;
    assert!(seen, "another instance's change never reached the near cache");
    assert!(
        seen_while_held,
        "another instance's change reached the near cache only once the runtime that runs its \
         tracking future was free again"
    );
    assert!(
        eventually(HELD + SETTLE, async || !held.load(Ordering::SeqCst)).await,
        "the owner's runtime was never free again"
    );
    assert!(tracking(&cache), "tracking is off after the owner's runtime was held");
    assert_eq!(
        counted.losses(),
        0,
        "tracking was lost while the owner's runtime was held"
    );
    warm(&cache, &changed).await;

    // The owner stops it: tracking off, for good.
    release.send(()).unwrap();
    tokio::task::spawn_blocking(move || owner.join())
        .await
        .unwrap()
        .unwrap();
    assert!(!tracking(&cache), "tracking still on after its owner stopped it");
    files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &prefix);
}

#[tokio::test]
async fn concurrent_misses_of_a_key_read_redis_once_and_share_the_answer() {
    let test = "concurrent_misses_of_a_key_read_redis_once_and_share_the_answer";
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let counted = Arc::new(Counted::default());
    let Some((cache, tracking_future, other)) = two_instances_tracking_unrun(test, &prefix, counted.clone()).await
    else {
        return;
    };
    // Written before tracking is on, so that no push of theirs arrives while the reads begin.
    let (shared, abandoned) = (
        sample_record(fresh_tenant(), Owner::Tenant, "shared.bin"),
        sample_record(fresh_tenant(), Owner::Tenant, "abandoned.bin"),
    );
    other.put_file(&shared).await.unwrap();
    other.put_file(&abandoned).await.unwrap();
    let tracking_task = tokio::spawn(tracking_future);
    assert!(
        eventually(SETTLE, async || tracking(&cache)).await,
        "the near cache's key tracking did not come on within {SETTLE:?}"
    );

    // Polled together: the first read leads, and the others join it before its answer can
    // come back.
    const READERS: usize = 16;
    let reads = (0..READERS).map(|_| cache.get_file(shared.tenant, shared.id));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read.unwrap(), Some(shared.clone()));
    }
    assert_eq!(
        counted.record_reads(),
        1,
        "{READERS} concurrent misses of one key read it from Redis more than once"
    );

    // A leader whose caller gives up leaves no one waiting: its joiner reads for itself.
    let before = counted.record_reads();
    let mut leader = Box::pin(cache.get_file(abandoned.tenant, abandoned.id));
    assert!(futures::poll!(leader.as_mut()).is_pending());
    let mut joined = Box::pin(cache.get_file(abandoned.tenant, abandoned.id));
    assert!(futures::poll!(joined.as_mut()).is_pending());
    drop(leader);
    let read = tokio::time::timeout(SETTLE, joined)
        .await
        .expect("a read that joined a dropped leader was left waiting");
    assert_eq!(read.unwrap(), Some(abandoned.clone()));
    // The dropped read never finished, so it is not counted: one read, the joiner's own.
    assert_eq!(counted.record_reads(), before + 1);
    tracking_task.abort();
    files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &prefix);
}

#[tokio::test]
async fn a_read_that_joined_before_a_change_shares_the_old_answer_which_is_not_kept() {
    // The leader is polled once (its GET sent), then held until this instance has changed the
    // record and read it again. A read that joined it before the change gets its answer; the
    // read after the change does not join it (it would wait for the held leader past its
    // timeout) and gets the new version; and the leader's answer, older than the change, is
    // not kept. The order in which Redis applies the leader's GET and the change is not
    // controlled: a round where the GET came second shows nothing, and another is run.
    let test = "a_read_that_joined_before_a_change_shares_the_old_answer_which_is_not_kept";
    let prefix = format!("files-test-{}", Uuid::new_v4());
    let counted = Arc::new(Counted::default());
    let Some((cache, tracking_future, other)) = two_instances_tracking_unrun(test, &prefix, counted).await else {
        return;
    };
    const ROUNDS: usize = 10;
    // Written before tracking is on, so that no push of theirs arrives while a round's reads
    // begin.
    let records: Vec<FileRecord> = (0..ROUNDS)
        .map(|_| sample_record(fresh_tenant(), Owner::Tenant, "changed.bin"))
        .collect();
    for record in &records {
        other.put_file(record).await.unwrap();
    }
    let tracking_task = tokio::spawn(tracking_future);
    assert!(
        eventually(SETTLE, async || tracking(&cache)).await,
        "the near cache's key tracking did not come on within {SETTLE:?}"
    );
    // A pooled connection for the leader, so that its GET leaves at its first poll.
    cache.ping().await.unwrap();

    let mut shown = false;
    for record in &records {
        let changed = resized(record, 4242);
        let opened = tokio::sync::Notify::new();
        let leader = async {
            let mut read = Box::pin(cache.get_file(record.tenant, record.id));
            assert!(futures::poll!(read.as_mut()).is_pending());
            opened.notified().await;
            read.await.unwrap()
        };
        let joined = async { cache.get_file(record.tenant, record.id).await.unwrap() };
        let change = async {
            cache.put_file(&changed).await.unwrap();
            let after = cache.get_file(record.tenant, record.id).await;
            opened.notify_one();
            after
        };
        let (led, joined, after) = tokio::join!(leader, joined, change);
        match after {
            Ok(after) => assert_eq!(after, Some(changed.clone())),
            Err(error) => panic!("the read after the change joined the flight begun before it: {error:?}"),
        }
        assert_eq!(joined, led, "a read that joined the leader got another answer");
        if led == Some(changed.clone()) {
            continue;
        }
        assert_eq!(led, Some(record.clone()));
        assert_eq!(
            cache.get_file(record.tenant, record.id).await.unwrap(),
            Some(changed.clone()),
            "the leader's answer, older than the change, was kept"
        );
        shown = true;
        break;
    }
    assert!(
        shown,
        "in {ROUNDS} rounds Redis never applied the leader's GET before the change"
    );
    tracking_task.abort();
    files_testkit::redis::delete_prefix_blocking(&services::redis_url(), &prefix);
}
