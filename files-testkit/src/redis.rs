//! Redis helpers for integration tests: cleaning a key prefix, and comparing the cache with
//! the database.

use bb8_redis::redis::Commands as _;
use files_adapters::postgres::{PostgresConfig, PostgresStore};
use files_adapters::redis::{RedisCache, RedisConfig};
use files_core::{Cache, FileId, MetadataStore, TenantId};

/// Deletes every key under `prefix` (blocking; for `Drop`). Failures are printed, not raised:
/// a test's cleanup must not hide its result.
pub fn delete_prefix_blocking(url: &str, prefix: &str) {
    let result = (|| -> Result<usize, bb8_redis::redis::RedisError> {
        let client = bb8_redis::redis::Client::open(url)?;
        let mut connection = client.get_connection_with_timeout(std::time::Duration::from_secs(2))?;
        let keys = connection
            .scan_match::<_, String>(format!("{prefix}:*"))?
            .collect::<Result<Vec<String>, _>>()?;
        for chunk in keys.chunks(500) {
            bb8_redis::redis::cmd("DEL").arg(chunk).exec(&mut connection)?;
        }
        Ok(keys.len())
    })();
    if let Err(error) = result {
        eprintln!("could not delete the Redis keys under {prefix}: {error}");
    }
}

/// Asserts that for each file id the cache holds exactly what the database holds.
///
/// # Panics
/// When they differ or either cannot be read.
pub async fn assert_cache_matches_store(
    redis_url: &str,
    prefix: &str,
    database_url: &str,
    tenant: TenantId,
    ids: &[&str],
) {
    let cache = RedisCache::new(RedisConfig {
        key_prefix: prefix.to_owned(),
        ..RedisConfig::new(redis_url)
    })
    .unwrap_or_else(|e| panic!("redis: {e}"));
    let store = PostgresStore::new(PostgresConfig::new(database_url)).unwrap_or_else(|e| panic!("postgres: {e}"));
    for id in ids {
        let id: FileId = id.parse().unwrap_or_else(|e| panic!("{e}"));
        let cached = cache
            .get_file(tenant, id)
            .await
            .unwrap_or_else(|e| panic!("cache: {e}"));
        let stored = store.get(tenant, id).await.unwrap_or_else(|e| panic!("store: {e}"));
        assert!(cached.is_some(), "{id} is not cached");
        assert_eq!(cached, stored, "the cache and the database disagree on {id}");
    }
}
