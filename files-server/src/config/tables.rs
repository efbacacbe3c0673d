//! Every variable the server reads, one table per concern (docs/configuration.md documents each
//! with its default, which a test holds it to). A default is the adapter's constant where it has
//! one, or what its constructor gives ([`Value::Of`]), so it is written once.

use std::time::Duration;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{
    ClaimNames, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_TOKEN_CACHE_CAPACITY, JwtConfig, RemoteJwks,
};
use files_adapters::postgres::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_QUERY_TIMEOUT};
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{JanitorSettings, MAX_EXPIRY, ServiceConfig};

use super::table::{Value, Var, table};

/// The longest URL lifetime S3 signs.
const SEVEN_DAYS: u64 = MAX_EXPIRY.as_secs();

/// The longest `FILES_TOKEN_MAX_LIFETIME_SECS`: the longest token `files-server dev-token` mints.
const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

const DAY: u64 = 86_400;

/// Every concern's table.
pub(super) const TABLES: &[&[Var]] = &[
    config::ALL,
    server::ALL,
    log::ALL,
    shutdown::ALL,
    store::ALL,
    tokens::ALL,
    limits::ALL,
    events::ALL,
    janitor::ALL,
    metrics::ALL,
    database::ALL,
    redis::ALL,
    amqp::ALL,
];

fn secs(duration: Duration) -> String {
    duration.as_secs().to_string()
}

/// The config file.
pub(crate) mod config {
    use super::*;

    table! {
        FILE = Var::new("FILES_CONFIG", "a TOML file of settings, overridden by variables");
    }
}

/// The HTTP server.
pub(crate) mod server {
    use super::*;

    table! {
        LISTEN = Var::new("FILES_LISTEN", "address:port of the HTTP API").default(Value::Text("127.0.0.1:8080"));
        METRICS_LISTEN = Var::new("FILES_METRICS_LISTEN", "address:port where /metrics is served alone");
        BODY_TIMEOUT = Var::new("FILES_BODY_TIMEOUT_SECS", "how long a request body may take to arrive")
            .default(Value::Duration(Duration::from_secs(10)))
            .bounds(1..=3600);
        WORKERS = Var::new("FILES_WORKERS", "HTTP worker threads; unset, one per CPU");
    }
}

/// Logging.
pub(crate) mod log {
    use super::*;

    table! {
        FILTER = Var::new("FILES_LOG", "a tracing filter; unset, RUST_LOG or info");
        FORMAT = Var::new("FILES_LOG_FORMAT", "human or json").default(Value::Text("human"));
    }
}

/// Stopping on SIGTERM or SIGINT.
pub(crate) mod shutdown {
    use super::*;

    table! {
        DELAY = Var::new("FILES_SHUTDOWN_DELAY_SECS", "how long /readyz answers 503 before the listener closes")
            .default(Value::Duration(Duration::ZERO))
            .bounds(0..=300);
        GRACE = Var::new("FILES_SHUTDOWN_GRACE_SECS", "how long requests in flight, then the relay, may take")
            .default(Value::Duration(Duration::from_secs(20)))
            .bounds(1..=3600);
    }
}

/// The object store: S3 with `FILES_S3_ENDPOINT`, else the embedded store.
pub(crate) mod store {
    use super::*;

    table! {
        ENDPOINT = Var::new("FILES_S3_ENDPOINT", "the store's endpoint; unset, the embedded store");
        PUBLIC_ENDPOINT = Var::new("FILES_S3_PUBLIC_ENDPOINT", "the endpoint devices reach, URLs are signed for");
        REGION = Var::new("FILES_S3_REGION", "the region signed for").default(Value::Text(S3Config::DEFAULT_REGION));
        BUCKET = Var::new("FILES_S3_BUCKET", "the bucket").default(Value::Text(S3Config::DEFAULT_BUCKET));
        ACCESS_KEY = Var::new("FILES_S3_ACCESS_KEY", "access key id, required with an endpoint");
        SECRET_KEY = Var::new("FILES_S3_SECRET_KEY", "secret access key, required with an endpoint").secret();
        PATH_STYLE = Var::new("FILES_S3_PATH_STYLE", "path-style URLs (true) or virtual-host ones")
            .default(Value::Flag(S3Config::DEFAULT_PATH_STYLE));
        TIMEOUT = Var::new("FILES_S3_TIMEOUT_MS", "bound on each call to the store")
            .default(Value::Duration(S3Config::DEFAULT_TIMEOUT))
            .bounds(1..=u64::MAX);
        EMBEDDED_LISTEN = Var::new("FILES_EMBEDDED_S3_LISTEN", "where the embedded store listens")
            .default(Value::Text("127.0.0.1:0"));
    }
}

/// Token verification and the key source.
pub(crate) mod tokens {
    use super::*;

    table! {
        JWKS_URL = Var::new("FILES_JWKS_URL", "the DSTS's JWKS URL; unset, the development key");
        JWKS_ALLOW_HTTP = Var::new("FILES_JWKS_ALLOW_HTTP", "accept a plain http:// JWKS URL")
            .default(Value::Flag(false));
        JWKS_FILE = Var::new("FILES_JWKS_FILE", "a JWKS or PEM key file instead of a URL");
        JWKS_REFRESH = Var::new("FILES_JWKS_REFRESH_SECS", "period of the JWKS URL's refresh")
            .default(Value::Of(|| secs(RemoteJwks::new("").refresh_interval)))
            .bounds(1..=SEVEN_DAYS);
        JWKS_MIN_REFETCH = Var::new("FILES_JWKS_MIN_REFETCH_SECS", "least time between fetches for an unknown kid")
            .default(Value::Of(|| secs(RemoteJwks::new("").min_refetch_interval)))
            .bounds(1..=SEVEN_DAYS);
        ISSUER = Var::new("FILES_TOKEN_ISSUER", "the only accepted iss, required with a key set");
        AUDIENCE = Var::new("FILES_TOKEN_AUDIENCE", "the audience aud must contain, required with a key set");
        LEEWAY = Var::new("FILES_TOKEN_LEEWAY_SECS", "clock skew allowed on exp, nbf and iat")
            .default(Value::Of(|| secs(JwtConfig::new("", "").leeway)));
        CACHE_CAPACITY = Var::new("FILES_TOKEN_CACHE_CAPACITY", "verified tokens remembered; 0 turns the cache off")
            .default(Value::Number(DEFAULT_TOKEN_CACHE_CAPACITY));
        MAX_LIFETIME = Var::new("FILES_TOKEN_MAX_LIFETIME_SECS", "the longest a token may live")
            .default(Value::Duration(DEFAULT_MAX_TOKEN_LIFETIME))
            .bounds(1..=TEN_YEARS);
        VERIFIER = Var::new("FILES_TOKEN_VERIFIER", "the signature library: jwt-simple or jsonwebtoken")
            .default(Value::Of(|| JwtConfig::new("", "").signature_library.to_string()));
        CLAIM_TENANT_ID = Var::new("FILES_CLAIM_TENANT_ID", "name of the tenant claim")
            .default(Value::Of(|| ClaimNames::default().tenant_id));
        CLAIM_DEVICE_ID = Var::new("FILES_CLAIM_DEVICE_ID", "name of the device claim")
            .default(Value::Of(|| ClaimNames::default().device_id));
        CLAIM_SCOPE = Var::new("FILES_CLAIM_SCOPE", "name of the scope claim")
            .default(Value::Of(|| ClaimNames::default().scope));
        DEV_DIR = Var::new("FILES_DEV_DIR", "where the development key is kept; unset, a per-user directory");
    }
}

/// Limits and URL lifetimes.
pub(crate) mod limits {
    use super::*;

    table! {
        UPLOAD_URL_EXPIRY = Var::new("FILES_UPLOAD_URL_EXPIRY_SECS", "lifetime of an upload URL by default")
            .default(Value::Of(|| secs(ServiceConfig::default().upload_expiry)))
            .bounds(1..=SEVEN_DAYS);
        DOWNLOAD_URL_EXPIRY = Var::new("FILES_DOWNLOAD_URL_EXPIRY_SECS", "lifetime of a download URL by default")
            .default(Value::Of(|| secs(ServiceConfig::default().download_expiry)))
            .bounds(1..=SEVEN_DAYS);
        UPLOAD_URL_MAX_EXPIRY = Var::new("FILES_UPLOAD_URL_MAX_EXPIRY_SECS", "the longest upload URL asked for")
            .default(Value::Of(|| secs(ServiceConfig::default().max_upload_expiry)))
            .bounds(1..=SEVEN_DAYS);
        DOWNLOAD_URL_MAX_EXPIRY = Var::new("FILES_DOWNLOAD_URL_MAX_EXPIRY_SECS", "the longest download URL asked for")
            .default(Value::Of(|| secs(ServiceConfig::default().max_download_expiry)))
            .bounds(1..=SEVEN_DAYS);
        MULTIPART_EXPIRY = Var::new("FILES_MULTIPART_EXPIRY_SECS", "how long a multipart upload may take")
            .default(Value::Of(|| secs(ServiceConfig::default().multipart_expiry)))
            .bounds(1..=SEVEN_DAYS);
        MAX_UPLOAD_SIZE = Var::new("FILES_MAX_UPLOAD_SIZE", "largest upload, in bytes")
            .default(Value::Of(|| ServiceConfig::default().max_upload_size.to_string()));
        TENANT_SETTINGS_TTL = Var::new("FILES_TENANT_SETTINGS_TTL_SECS", "how long an instance applies its copy of a tenant's settings")
            .default(Value::Of(|| secs(ServiceConfig::default().settings_ttl)))
            .bounds(1..=5);
    }
}

/// The storage-events webhook.
pub(crate) mod events {
    use super::*;

    table! {
        SECRET = Var::new("FILES_EVENTS_SECRET", "the webhook's shared secret; unset, the webhook is off").secret();
    }
}

/// The janitor's pace.
pub(crate) mod janitor {
    use super::*;

    table! {
        INTERVAL = Var::new("FILES_JANITOR_INTERVAL_SECS", "seconds between the janitor's passes")
            .default(Value::Of(|| secs(JanitorSettings::default().interval)))
            .bounds(1..=DAY);
        UPLOAD_GRACE = Var::new("FILES_UPLOAD_GRACE_SECS", "how long an expired upload is left alone")
            .default(Value::Of(|| secs(JanitorSettings::default().grace)))
            .bounds(0..=7 * DAY);
        OUTBOX_RETENTION = Var::new("FILES_OUTBOX_RETENTION_SECS", "how long sent outbox rows are kept")
            .default(Value::Of(|| secs(JanitorSettings::default().outbox_retention)))
            .bounds(0..=366 * DAY);
        BATCH = Var::new("FILES_JANITOR_BATCH", "records per claim (stale uploads, files past retention) and outbox rows per pass")
            .default(Value::Of(|| JanitorSettings::default().batch.to_string()))
            .bounds(1..=10_000);
    }
}

/// Metrics.
pub(crate) mod metrics {
    use super::*;

    table! {
        MAX_DEVICES = Var::new("FILES_METRICS_MAX_DEVICES", "distinct devices with their own metric series")
            .default(Value::Number(1000));
    }
}

/// Metadata and the outbox in PostgreSQL (in memory without `FILES_DATABASE_URL`).
pub(crate) mod database {
    use super::*;

    table! {
        URL = Var::new("FILES_DATABASE_URL", "postgres:// URL; unset, metadata in memory").secret();
        POOL_SIZE = Var::new("FILES_DATABASE_POOL_SIZE", "pooled connections")
            .default(Value::Number(DEFAULT_POOL_SIZE as u64));
        CONNECT_TIMEOUT = Var::new("FILES_DATABASE_CONNECT_TIMEOUT_MS", "bound on getting a connection")
            .default(Value::Duration(DEFAULT_CONNECT_TIMEOUT))
            .bounds(1..=u64::MAX);
        TIMEOUT = Var::new("FILES_DATABASE_TIMEOUT_MS", "bound on each query")
            .default(Value::Duration(DEFAULT_QUERY_TIMEOUT))
            .bounds(1..=u64::MAX);
    }
}

/// The cache in Redis (in memory without `FILES_REDIS_URL`).
pub(crate) mod redis {
    use super::*;

    table! {
        URL = Var::new("FILES_REDIS_URL", "redis:// URL; unset, the cache in memory").secret();
        PREFIX = Var::new("FILES_REDIS_PREFIX", "every key starts with {prefix}:")
            .default(Value::Text(RedisConfig::DEFAULT_KEY_PREFIX));
        TTL = Var::new("FILES_REDIS_TTL_SECS", "lifetime of a cache entry")
            .default(Value::Duration(RedisConfig::DEFAULT_TTL))
            .bounds(1..=SEVEN_DAYS);
        POOL_SIZE = Var::new("FILES_REDIS_POOL_SIZE", "pooled connections")
            .default(Value::Number(RedisConfig::DEFAULT_POOL_SIZE as u64));
        TIMEOUT = Var::new("FILES_REDIS_TIMEOUT_MS", "bound on each cache call")
            .default(Value::Duration(RedisConfig::DEFAULT_TIMEOUT))
            .bounds(1..=u64::MAX);
        NEAR_CACHE_CAPACITY = Var::new("FILES_REDIS_NEAR_CACHE_CAPACITY", "near-cache entries in process; 0: off")
            .default(Value::Number(RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY));
        NEAR_CACHE_MAX_BYTES = Var::new("FILES_REDIS_NEAR_CACHE_MAX_BYTES", "bytes those entries hold; 0 turns it off")
            .default(Value::Number(RedisConfig::DEFAULT_NEAR_CACHE_MAX_BYTES));
    }
}

/// Events to RabbitMQ (only logged without `FILES_AMQP_URL`), and the bucket-notification ingest.
pub(crate) mod amqp {
    use super::*;

    table! {
        URL = Var::new("FILES_AMQP_URL", "amqp:// or amqps:// URL; unset, events are only logged").secret();
        EXCHANGE = Var::new("FILES_AMQP_EXCHANGE", "the topic exchange events are published to")
            .default(Value::Text(AmqpConfig::DEFAULT_EXCHANGE));
        TIMEOUT = Var::new("FILES_AMQP_TIMEOUT_MS", "bound on connecting and on each publish")
            .default(Value::Duration(AmqpConfig::DEFAULT_TIMEOUT))
            .bounds(1..=u64::MAX);
        INGEST_QUEUE = Var::new("FILES_AMQP_INGEST_QUEUE", "a queue of the store's bucket notifications to consume");
    }
}
