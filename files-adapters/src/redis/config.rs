//! How the cache reaches Redis, and why a configuration cannot be used.

use std::fmt;
use std::time::Duration;

use bb8_redis::redis as driver;
use secrecy::{ExposeSecret as _, SecretString};

use crate::redact::redact_url;

/// How the cache reaches Redis.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for TLS, when the driver
    /// supports it). May hold a password: a secret, never logged ([`fmt::Debug`] hides it).
    pub url: SecretString,
    /// Prepended to every key, so several services or tests can share one Redis.
    pub key_prefix: String,
    /// How long an entry lives; at least one second.
    pub ttl: Duration,
    /// The most connections the pool opens.
    pub pool_size: u32,
    /// Bound on each call, pool checkout included. A cache must never slow a request much.
    pub timeout: Duration,
    /// The most entries kept in process, served while Redis tracks their keys for this
    /// instance (see [`near`](super::near)); 0 turns the near cache off.
    pub near_cache_capacity: u64,
    /// The most bytes those entries may hold in process, by an estimate of each entry's size
    /// (its key, its record with the multipart plan's 32 bytes per part, and the cache's own
    /// bookkeeping); 0 turns the near cache off. Both bounds hold: each entry counts at least
    /// `near_cache_max_bytes / near_cache_capacity` bytes.
    pub near_cache_max_bytes: u64,
}

impl RedisConfig {
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &str = "files";
    /// The default time to live of an entry.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default pool size. Each call holds a connection for its round trip, so the pool
    /// bounds the cache calls in flight; with 32, download-url does not wait for a connection
    /// at 32 concurrent requests (docs/performance.md). Redis connections are cheap.
    pub const DEFAULT_POOL_SIZE: u32 = 32;
    /// The default bound on each call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
    /// The default number of entries of the near cache. download-url by name takes two
    /// entries per device: 25,000 devices each reading a file of its own, or any number reading
    /// the same tenant files.
    pub const DEFAULT_NEAR_CACHE_CAPACITY: u64 = 50_000;
    /// The default byte budget of the near cache, 64 MiB: 50,000 entries of a single-PUT
    /// record (under 1 KiB each with the cache's bookkeeping) fit, and so do about 2,000
    /// records with a 1,024-part plan (about 33 KiB each), where a count of entries alone
    /// would let 50,000 of those take 1.6 GiB.
    pub const DEFAULT_NEAR_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;

    /// The defaults for a Redis at `url`.
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            ttl: Self::DEFAULT_TTL,
            pool_size: Self::DEFAULT_POOL_SIZE,
            timeout: Self::DEFAULT_TIMEOUT,
            near_cache_capacity: Self::DEFAULT_NEAR_CACHE_CAPACITY,
            near_cache_max_bytes: Self::DEFAULT_NEAR_CACHE_MAX_BYTES,
        }
    }
}

impl Default for RedisConfig {
    /// The defaults for a Redis on this machine (`redis://127.0.0.1:6379`).
    fn default() -> Self {
        Self::new("redis://127.0.0.1:6379")
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("near_cache_capacity", &self.near_cache_capacity)
            .field("near_cache_max_bytes", &self.near_cache_max_bytes)
            .finish()
    }
}

/// The Redis configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL is not a Redis URL the driver accepts.
    #[error("invalid Redis URL")]
    Url(#[source] driver::RedisError),
    /// A setting is out of range.
    #[error("invalid Redis cache setting: {0}")]
    Setting(&'static str),
    /// The pool must be built inside a Tokio runtime (it spawns its maintenance task).
    #[error("the Redis cache must be created inside a Tokio runtime")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_passwords() {
        for (url, shown) in [
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("redis://user:s3cret@host", "redis://user:***@host"),
            ("redis://host:6379", "redis://host:6379"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("s3cret", "***"),
        ] {
            let debug = format!("{:?}", RedisConfig::new(url));
            assert!(!debug.contains("s3cret"), "{debug}");
            assert!(debug.contains(shown), "{debug}");
        }
    }
}
