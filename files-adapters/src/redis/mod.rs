//! The cache on Redis, through a bb8 pool of multiplexed connections.
//!
//! Keys, all under a configurable prefix and all written with a TTL:
//! - `{prefix}:v2:file:{tenant}:{file_id}` → the record, as JSON `{"v": 2, "file": {...}}` (v2 since
//!   records carry a multipart plan; v1 entries of older instances are another key, never read);
//! - `{prefix}:v1:latest:{tenant}:{owner}:{sha256 of the name, hex}` → the file id, where
//!   `owner` is the device id or `_tenant`. The name is hashed: names are up to 255 bytes of
//!   arbitrary UTF-8 and must not shape the key space.
//!
//! [`Cache::clear`] deletes every key under the prefix (and no other: the prefix is escaped in
//! the `SCAN MATCH` pattern), a batch of `SCAN` and `UNLINK` at a time, the whole bounded by
//! [`CLEAR_BUDGET`] times the call timeout. A prefix must not be another prefix followed by `:`.
//!
//! Reads are served from a near cache in process while Redis tracks the keys for it (see
//! [`near`]): a warm read costs no round trip, and concurrent misses of a key wait for one read
//! of it and share its answer (one `GET` per key in flight). A write goes to Redis and drops the
//! key from the near cache at once. The tracking connection is kept by the future
//! [`RedisCache::background`] hands out, which the cache's owner runs (a server runs it with its
//! other background tasks; [`RedisCache::spawn_background`] spawns it); until it runs, reads go
//! to Redis. The connection itself runs on a thread of its own, which that future starts and
//! stops, so a busy runtime of the owner's holds up neither its pushes nor its ping.
//!
//! A cache must never slow a request much, nor fail one: every call is bounded by one timeout
//! (pool checkout included), and every failure is a [`PortError`] the caller can fall back
//! from. An entry of another schema version, or one that does not parse, reads as a miss and is
//! deleted. The pool is built without connecting, so a service starts while Redis is down; a
//! connection that failed or timed out is dropped from the pool, so calls succeed again as soon
//! as Redis is back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8::{Pool, RunError};
use bb8_redis::RedisConnectionManager;
use driver::{Cmd, FromRedisValue};
use files_core::file::TENANT_ROOT_SEGMENT;
use files_core::{Cache, Dependency, FileId, FileName, FileRecord, Metrics, Owner, PortError, Scope, TenantId};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::call::{Calls, TimedOut};

mod config;
mod near;
mod pool;
/// The rate limiter on the cache's connections (`RedisRateLimiter`). Not re-exported here: it
/// takes the cache from this module, which must not import it back.
pub mod rate;

pub use config::{RedisConfig, RedisError};
use driver::Client;
use near::{Answer, Entry, Flight, NearCache};
pub use near::{PING_INTERVAL as NEAR_CACHE_PING_INTERVAL, PING_TIMEOUT as NEAR_CACHE_PING_TIMEOUT};
use pool::{CallError, LastConnectError, Manager, command_error, resp3_client};

/// The Redis driver (the `redis` crate, as re-exported by `bb8-redis`), for tools and tests
/// that need raw access to the keys this adapter writes.
pub use bb8_redis::redis as driver;

/// The version of the cached record's shape. Bump it (and the `v2` in the file keys) when
/// [`FileRecord`]'s serialized form changes: entries of another version read as misses.
const SCHEMA_VERSION: u32 = 2;

/// [`Cache::put_file`] as one atomic step in Redis: the entry (`ARGV[1]`) is written with its
/// TTL (`ARGV[3]`) unless the key holds a copy of the record at a later stage than the new
/// one's (`ARGV[2]`, [`files_core::FileState::stage`]). A fill after a miss that raced with a
/// change on another instance is thereby refused instead of moving the entry backwards for a
/// whole TTL. An entry that does not parse is overwritten. Answers 1 when it wrote, 0 when not.
const PUT_FILE_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and type(entry.file) == 'table' then
    local stages = {pending = 0, available = 1, expired = 1, deleted = 2}
    local stage = stages[entry.file.state]
    if stage and stage > tonumber(ARGV[2]) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// How many call timeouts [`Cache::clear`] may take in all (5 s with the default timeout).
pub const CLEAR_BUDGET: u32 = 20;

/// How many keys one `SCAN` of [`Cache::clear`] looks at.
const CLEAR_SCAN_COUNT: u32 = 1000;

/// A Redis cache. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool<Manager>,
    prefix: Arc<str>,
    ttl_seconds: u64,
    calls: Calls,
    /// Tries per call: one per pooled connection that may have died while idle, plus one.
    attempts: u32,
    connect_errors: LastConnectError,
    /// `None` when its capacity or its byte budget is 0; with the RESP3 client of its tracking
    /// connection.
    near: Option<(Arc<NearCache>, Client)>,
}

/// What the near cache has done, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Whether Redis tracks the keys for it, so that it serves reads.
    pub tracking: bool,
    /// Reads it served so far.
    pub hits: u64,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("timeout", &self.calls.timeout())
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on the Redis of `config`. Does not connect: connections are opened on first use,
    /// so this succeeds (and the service starts) while Redis is down.
    ///
    /// # Errors
    /// [`RedisError::Url`] for a URL the driver refuses; [`RedisError::Setting`] for an empty
    /// key prefix, a TTL under one second, a zero pool size or a zero timeout;
    /// [`RedisError::NoRuntime`] outside a Tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, RedisError> {
        if config.key_prefix.is_empty() {
            return Err(RedisError::Setting("the key prefix must not be empty"));
        }
        if config.ttl < Duration::from_secs(1) {
            return Err(RedisError::Setting("the TTL must be at least one second"));
        }
        if config.pool_size == 0 {
            return Err(RedisError::Setting("the pool size must be at least 1"));
        }
        if config.timeout.is_zero() {
            return Err(RedisError::Setting("the timeout must not be zero"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisError::NoRuntime);
        }
        let manager = Manager(RedisConnectionManager::new(config.url.expose_secret()).map_err(RedisError::Url)?);
        let near = if config.near_cache_capacity == 0 || config.near_cache_max_bytes == 0 {
            None
        } else {
            let near = Arc::new(NearCache::new(
                config.near_cache_capacity,
                config.near_cache_max_bytes,
                config.ttl,
            ));
            Some((near, resp3_client(&config.url)?))
        };
        let connect_errors = LastConnectError::default();
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(config.timeout)
            // Broken connections are found by the calls themselves (see `Manager`): no PING
            // round trip before every command.
            .test_on_check_out(false)
            .error_sink(Box::new(connect_errors.clone()))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            prefix: config.key_prefix.into(),
            ttl_seconds: config.ttl.as_secs(),
            calls: Calls::new(Dependency::Cache, config.timeout),
            attempts: config.pool_size.saturating_add(1),
            connect_errors,
            near,
        })
    }

    /// Counts the near cache's state (tracking on or off, each loss) and its lookups (hits and
    /// misses) in `metrics`; nowhere by default. Applies to every clone; the first call wins.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        if let Some((near, _)) = &self.near {
            near.count_in(metrics.clone());
        }
        self.calls = self.calls.with_metrics(metrics);
        self
    }

    /// The near cache's background work: the connection on which Redis tracks its keys, kept
    /// up (reconnected with a backoff after any failure) for as long as the future runs and a
    /// handle on the cache lives. Until it runs the near cache serves nothing (reads go to
    /// Redis), and once it is dropped it never serves again. Its owner runs it once, stopping it
    /// by dropping it.
    ///
    /// The connection (its reader, its pushes, its ping, its reconnections) runs on a thread of
    /// its own with a current-thread runtime, which the future starts when first polled, waits
    /// for, and stops when dropped: the runtime that polls the future only has to poll it.
    ///
    /// `None` when the near cache is off, or when this cache (or a clone) handed it out before.
    #[must_use]
    pub fn background(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let (near, client) = self.near.as_ref()?;
        let tracking = near::tracking(near, client.clone(), self.prefix.to_string())?;
        Some(tracking.run())
    }

    /// [`RedisCache::background`] spawned on the current runtime, for tests and programs that
    /// embed the cache without a task owner of their own. The task ends with the last handle
    /// on the cache (or when aborted).
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn_background(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.background().map(tokio::spawn)
    }

    /// What the near cache has done; `None` when it is off.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.near.as_ref().map(|(near, _)| NearCacheStats {
            tracking: near.tracking(),
            hits: near.hits(),
        })
    }

    fn near(&self) -> Option<&NearCache> {
        self.near.as_ref().map(|(near, _)| near.as_ref())
    }

    /// Drops `key` from the near cache: this instance changed it (or tried to).
    fn near_forget(&self, key: &str) {
        if let Some(near) = self.near() {
            near.invalidate(key);
        }
    }

    /// Whether Redis answers, within the timeout. For readiness reports.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when Redis cannot be reached in time; [`PortError::Failed`]
    /// when it answers something other than `PONG`.
    pub async fn ping(&self) -> Result<(), PortError> {
        let reply: String = self.run("ping", &driver::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(PortError::failed(format!("Redis answered {reply:?} to PING")))
        }
    }

    // The keys are built on every read, warm ones included: with push_str and uuid's and hex's
    // encoders into buffers, not `format!` (whose `Display` of a UUID and `hex::encode` went
    // a character at a time: most of a near-cache hit's instructions).

    /// `{prefix}:v2:file:{tenant}:{id}`.
    fn file_key(&self, tenant: TenantId, id: FileId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 9 + 2 * 37);
        key.push_str(&self.prefix);
        key.push_str(":v2:file:");
        push_uuid(&mut key, tenant.as_uuid());
        key.push(':');
        push_uuid(&mut key, id.as_uuid());
        key
    }

    /// `{prefix}:v1:latest:{tenant}:{device or _tenant}:{SHA-256 of the name, hex}`.
    fn latest_key(&self, scope: Scope, name: &FileName) -> String {
        let digest = Sha256::digest(name.as_str().as_bytes());
        let mut key = String::with_capacity(self.prefix.len() + 11 + 2 * 37 + 64);
        key.push_str(&self.prefix);
        key.push_str(":v1:latest:");
        push_uuid(&mut key, scope.tenant.as_uuid());
        key.push(':');
        match scope.owner {
            Owner::Device(device) => push_uuid(&mut key, device.as_uuid()),
            Owner::Tenant => key.push_str(TENANT_ROOT_SEGMENT),
        }
        key.push(':');
        let mut hex = [0u8; 64];
        match hex::encode_to_slice(digest, &mut hex).map(|()| std::str::from_utf8(&hex)) {
            Ok(Ok(hash)) => key.push_str(hash),
            // 32 bytes always make 64 ASCII digits; the allocating encoder says the same.
            _ => key.push_str(&hex::encode(digest)),
        }
        key
    }

    fn set_command(&self, key: &str, value: impl driver::ToRedisArgs) -> Cmd {
        let mut command = driver::cmd("SET");
        command.arg(key).arg(value).arg("EX").arg(self.ttl_seconds);
        command
    }

    /// Runs one command: the only place that talks to Redis. Bounded as a whole by the
    /// timeout; a connection found dead (Redis restarted since it was pooled) is dropped and
    /// the command tried on another, which is safe because every command here is idempotent.
    async fn run<T: FromRedisValue>(&self, operation: &'static str, command: &Cmd) -> Result<T, PortError> {
        let attempts = async {
            let mut attempt = 1;
            loop {
                let mut connection = self.pool.get().await.map_err(|error| self.checkout_error(error))?;
                match connection.call(command).await {
                    Ok(value) => return Ok(value),
                    Err(error) if connection.healthy || attempt >= self.attempts => {
                        return Err(command_error(operation, error));
                    }
                    // A dead connection: dropped from the pool when `connection` goes; the next
                    // checkout takes another or opens a fresh one.
                    Err(error) => tracing::debug!(operation, %error, "dropping a dead Redis connection"),
                }
                attempt += 1;
            }
        };
        self.calls.run(operation, attempts).await
    }

    fn checkout_error(&self, error: RunError<driver::RedisError>) -> PortError {
        match error {
            RunError::User(error) => PortError::unavailable(CallError::Connect(error)),
            RunError::TimedOut => PortError::unavailable(CallError::NoConnection {
                timeout: self.calls.timeout(),
                last_error: self.connect_errors.recent(self.calls.timeout() * 4),
            }),
        }
    }

    /// The entry under `key`: from the near cache while it serves, else from Redis (a `GET` as
    /// `operation`, its value parsed by `parse`). With the near cache on, concurrent misses of
    /// `key` share one `GET`: the first leads it, the others wait for its answer, at most the
    /// call timeout (see `near::flight` for which may join and what is kept). A read whose
    /// leader was dropped before it answered reads again. With the near cache off, every read
    /// asks Redis.
    async fn read(
        &self,
        key: &str,
        operation: &'static str,
        parse: impl Fn(&[u8]) -> Option<Entry>,
    ) -> Result<Option<Entry>, PortError> {
        let Some(near) = self.near() else {
            let (answer, unreadable) = self.fetch(key, operation, &parse).await;
            if unreadable {
                self.discard(key).await;
            }
            return answer;
        };
        if let Some(entry) = near.get(key) {
            return Ok(Some(entry));
        }
        loop {
            match near.flight(key) {
                Flight::Lead(lead) => {
                    let (answer, unreadable) = self.fetch(key, operation, &parse).await;
                    // Landed first: whoever waits does not wait for the delete as well.
                    let answer = lead.land(answer);
                    if unreadable {
                        self.discard(key).await;
                    }
                    return answer;
                }
                Flight::Join(joined) => match tokio::time::timeout(self.calls.timeout(), joined.answer()).await {
                    Ok(Some(answer)) => return answer,
                    Ok(None) => {}
                    Err(_) => {
                        return Err(PortError::unavailable(TimedOut {
                            dependency: Dependency::Cache,
                            operation,
                            timeout: self.calls.timeout(),
                        }));
                    }
                },
            }
        }
    }

    /// One `GET` of `key`, its value parsed by `parse`; and whether Redis held a value `parse`
    /// could not read (which reads as none, and is for the caller to delete).
    async fn fetch(
        &self,
        key: &str,
        operation: &'static str,
        parse: &impl Fn(&[u8]) -> Option<Entry>,
    ) -> (Answer, bool) {
        match self
            .run::<Option<Vec<u8>>>(operation, driver::cmd("GET").arg(key))
            .await
        {
            Ok(Some(value)) => {
                let entry = parse(&value);
                let unreadable = entry.is_none();
                (Ok(entry), unreadable)
            }
            Ok(None) => (Ok(None), false),
            Err(error) => (Err(error), false),
        }
    }

    /// Deletes an unreadable entry; a failure only leaves it to expire.
    async fn discard(&self, key: &str) {
        if let Err(error) = self.run::<()>("discard", driver::cmd("DEL").arg(key)).await {
            tracing::debug!(error = %error, "could not delete an unreadable cache entry");
        }
        self.near_forget(key);
    }
}

/// The cached form of a record: versioned, so a change of [`FileRecord`]'s shape reads as a
/// miss instead of as an error.
#[derive(Serialize)]
struct StoredFileRef<'a> {
    v: u32,
    file: &'a FileRecord,
}

#[derive(Deserialize)]
struct StoredFile {
    v: u32,
    file: FileRecord,
}

/// `uuid` as the ids display it (hyphenated, lower case), without `fmt`.
fn push_uuid(key: &mut String, uuid: &uuid::Uuid) {
    let mut buffer = uuid::Uuid::encode_buffer();
    key.push_str(uuid.hyphenated().encode_lower(&mut buffer));
}

#[async_trait]
impl Cache for RedisCache {
    async fn get_file(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        let key = self.file_key(tenant, id);
        let entry = self
            .read(&key, "get_file", |value| {
                match serde_json::from_slice::<StoredFile>(value) {
                    Ok(stored)
                        if stored.v == SCHEMA_VERSION && stored.file.tenant == tenant && stored.file.id == id =>
                    {
                        Some(Entry::File(Box::new(stored.file)))
                    }
                    Ok(stored) => {
                        tracing::debug!(
                            key,
                            version = stored.v,
                            "cache entry of another version or file; a miss"
                        );
                        None
                    }
                    Err(error) => {
                        tracing::debug!(key, %error, "unreadable cache entry; a miss");
                        None
                    }
                }
            })
            .await?;
        Ok(match entry {
            Some(Entry::File(record)) => Some(*record),
            _ => None,
        })
    }

    async fn put_file(&self, record: &FileRecord) -> Result<(), PortError> {
        let value = serde_json::to_vec(&StoredFileRef {
            v: SCHEMA_VERSION,
            file: record,
        })
        .map_err(PortError::failed)?;
        let key = self.file_key(record.tenant, record.id);
        let mut command = driver::cmd("EVAL");
        command
            .arg(PUT_FILE_SCRIPT)
            .arg(1)
            .arg(&key)
            .arg(value)
            .arg(record.state.stage())
            .arg(self.ttl_seconds);
        let written = self.run::<i64>("put_file", &command).await.map(drop);
        self.near_forget(&key);
        written
    }

    async fn get_latest(&self, scope: Scope, name: &FileName) -> Result<Option<FileId>, PortError> {
        let key = self.latest_key(scope, name);
        let entry = self
            .read(&key, "get_latest", |value| {
                let id = std::str::from_utf8(value)
                    .ok()
                    .and_then(|text| text.parse::<FileId>().ok());
                if id.is_none() {
                    tracing::debug!(key, "unreadable latest-version entry; a miss");
                }
                id.map(Entry::Latest)
            })
            .await?;
        Ok(match entry {
            Some(Entry::Latest(id)) => Some(id),
            _ => None,
        })
    }

    async fn put_latest(&self, scope: Scope, name: &FileName, id: FileId) -> Result<(), PortError> {
        let key = self.latest_key(scope, name);
        let written = self.run("put_latest", &self.set_command(&key, id.to_string())).await;
        self.near_forget(&key);
        written
    }

    async fn remove_latest(&self, scope: Scope, name: &FileName) -> Result<(), PortError> {
        let key = self.latest_key(scope, name);
        let removed = self.run("remove_latest", driver::cmd("DEL").arg(&key)).await;
        self.near_forget(&key);
        removed
    }

    async fn remove_file(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        let key = self.file_key(tenant, id);
        let removed = self.run("remove_file", driver::cmd("DEL").arg(&key)).await;
        self.near_forget(&key);
        removed
    }

    async fn clear(&self) -> Result<(), PortError> {
        let pattern = prefix_pattern(&self.prefix);
        let budget = self.calls.timeout().saturating_mul(CLEAR_BUDGET);
        let pass = async {
            let mut cursor = 0_u64;
            loop {
                let mut scan = driver::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(CLEAR_SCAN_COUNT);
                let (next, keys): (u64, Vec<Vec<u8>>) = self.run("clear_scan", &scan).await?;
                if !keys.is_empty() {
                    let _: u64 = self.run("clear_unlink", driver::cmd("UNLINK").arg(&keys)).await?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        };
        let cleared = tokio::time::timeout(budget, pass)
            .await
            .unwrap_or_else(|_| Err(PortError::unavailable(CallError::ClearUnfinished { budget })));
        if let Some(near) = self.near() {
            near.invalidate_all();
        }
        cleared
    }
}

/// The `SCAN MATCH` pattern of every key under `prefix`, the prefix's own glob characters
/// escaped.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_settings() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(runtime) = runtime else { return };
        let _guard = runtime.enter();
        let bad = [
            RedisConfig {
                key_prefix: String::new(),
                ..RedisConfig::default()
            },
            RedisConfig {
                ttl: Duration::from_millis(500),
                ..RedisConfig::default()
            },
            RedisConfig {
                pool_size: 0,
                ..RedisConfig::default()
            },
            RedisConfig {
                timeout: Duration::ZERO,
                ..RedisConfig::default()
            },
        ];
        for config in bad {
            assert!(matches!(RedisCache::new(config), Err(RedisError::Setting(_))));
        }
        assert!(matches!(
            RedisCache::new(RedisConfig::new("http://nope")),
            Err(RedisError::Url(_))
        ));
        assert!(RedisCache::new(RedisConfig::default()).is_ok());
    }

    #[test]
    fn the_clear_pattern_matches_only_the_prefix() {
        assert_eq!(prefix_pattern("files"), "files:*");
        assert_eq!(prefix_pattern(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f:*");
        assert_eq!(prefix_pattern("été"), "été:*");
    }

    #[test]
    fn needs_a_runtime_instead_of_panicking() {
        assert!(matches!(
            RedisCache::new(RedisConfig::default()),
            Err(RedisError::NoRuntime)
        ));
    }
}
