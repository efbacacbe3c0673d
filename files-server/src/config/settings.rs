//! The settings the server runs with, one struct per concern.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{JwtConfig, RemoteJwks};
use files_adapters::postgres::PostgresConfig;
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{JanitorSettings, ServiceConfig};
use secrecy::SecretString;

/// Everything the server reads from its environment: each adapter's own configuration (which
/// owns its defaults and keeps its secrets in [`SecretString`]), filled from `FILES_*` variables.
#[derive(Debug)]
pub struct Settings {
    /// `FILES_LISTEN`: where the HTTP API listens (port 0 picks one).
    pub listen: SocketAddr,
    /// The object store.
    pub store: StoreSettings,
    /// Token verification.
    pub tokens: TokenSettings,
    /// Limits and URL lifetimes: `FILES_UPLOAD_URL_EXPIRY_SECS`, `FILES_DOWNLOAD_URL_EXPIRY_SECS`,
    /// their `_MAX_` bounds, `FILES_MULTIPART_EXPIRY_SECS`, `FILES_MAX_UPLOAD_SIZE`.
    pub limits: ServiceConfig,
    /// `FILES_EVENTS_SECRET`: the shared secret of the storage-events webhook (off when unset).
    pub events_secret: Option<SecretString>,
    /// `FILES_BODY_TIMEOUT_SECS`: how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// `FILES_METRICS_LISTEN`: where `/metrics` is served, alone; unset, it is served on the
    /// API's address (convenient in development; production sets it).
    pub metrics_listen: Option<SocketAddr>,
    /// `FILES_WORKERS`: the HTTP worker threads; unset, one per CPU the process may use.
    pub workers: Option<std::num::NonZeroUsize>,
    /// `FILES_DEV_DIR`: where the embedded default keeps its development key; unset,
    /// [`DevKey::default_dir`](files_adapters::jwks::DevKey::default_dir), a per-user directory.
    pub dev_dir: PathBuf,
    /// `FILES_METRICS_MAX_DEVICES`: distinct devices with their own metric series.
    pub metrics_max_devices: usize,
    /// `FILES_DATABASE_*`; metadata in memory when `FILES_DATABASE_URL` is unset.
    pub database: Option<PostgresConfig>,
    /// `FILES_REDIS_*`; the cache in memory when `FILES_REDIS_URL` is unset.
    pub redis: Option<RedisConfig>,
    /// `FILES_AMQP_*`; events are only logged when `FILES_AMQP_URL` is unset.
    pub amqp: Option<AmqpSettings>,
    /// `FILES_LOG`, `FILES_LOG_FORMAT`.
    pub log: LogSettings,
    /// `FILES_SHUTDOWN_*`.
    pub shutdown: ShutdownSettings,
    /// `FILES_JANITOR_INTERVAL_SECS`, `FILES_UPLOAD_GRACE_SECS`, `FILES_OUTBOX_RETENTION_SECS`,
    /// `FILES_JANITOR_BATCH`.
    pub janitor: JanitorSettings,
    /// `FILES_*` variables of the environment that the server does not know (a typo?): warned
    /// about at start-up.
    pub unknown_variables: Vec<String>,
}

/// How the server logs.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `FILES_LOG`: a `tracing` filter (`info,files_adapters=debug`); unset, `RUST_LOG` or `info`.
    pub filter: Option<String>,
    /// `FILES_LOG_FORMAT`: `human` or `json`.
    pub format: LogFormat,
}

/// `FILES_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, the request's fields in its span (`request{request_id=…}`).
    Human,
    /// One JSON object per line, the request's fields under `span`.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err("must be human or json".to_owned()),
        }
    }
}

/// How the server stops on SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// `FILES_SHUTDOWN_DELAY_SECS`: how long `/readyz` answers 503 while the
    /// listener still accepts, so load balancers stop sending before it closes.
    pub delay: Duration,
    /// `FILES_SHUTDOWN_GRACE_SECS`: how long in-flight requests, then the relay,
    /// may take to finish once the listener has closed.
    pub grace: Duration,
}

/// `FILES_AMQP_*`.
#[derive(Debug)]
pub struct AmqpSettings {
    /// `FILES_AMQP_URL` (secret), `FILES_AMQP_EXCHANGE`, `FILES_AMQP_TIMEOUT_MS`.
    pub config: AmqpConfig,
    /// `FILES_AMQP_INGEST_QUEUE`: a queue of the store's bucket notifications (MinIO's AMQP
    /// target) to consume; none when unset.
    pub ingest_queue: Option<String>,
}

/// Where the bytes live.
#[derive(Debug)]
pub enum StoreSettings {
    /// No `FILES_S3_ENDPOINT`: an S3-compatible store in process.
    Embedded {
        /// `FILES_EMBEDDED_S3_LISTEN`.
        listen: SocketAddr,
        /// `FILES_S3_BUCKET`.
        bucket: String,
        /// `FILES_S3_REGION`.
        region: String,
    },
    /// A real S3 or S3-compatible store: `FILES_S3_*`.
    S3(Box<S3Config>),
}

/// Where the token keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// The embedded default's development key in `FILES_DEV_DIR`.
    DevKey,
    /// `FILES_JWKS_URL`, with `FILES_JWKS_ALLOW_HTTP`, `FILES_JWKS_REFRESH_SECS` and
    /// `FILES_JWKS_MIN_REFETCH_SECS`.
    Url(RemoteJwks),
    /// `FILES_JWKS_FILE`: a JWKS document or a PEM public key.
    File(PathBuf),
}

/// Token verification.
#[derive(Debug)]
pub struct TokenSettings {
    /// The key source.
    pub keys: KeySource,
    /// `FILES_TOKEN_ISSUER`, `FILES_TOKEN_AUDIENCE` (required with a JWKS; `files-dev` and
    /// `files` for the dev key), `FILES_TOKEN_LEEWAY_SECS`, and the claim names
    /// `FILES_CLAIM_TENANT_ID`, `FILES_CLAIM_DEVICE_ID`, `FILES_CLAIM_SCOPE`.
    pub jwt: JwtConfig,
}

/// The issuer of development tokens.
pub const DEV_ISSUER: &str = "files-dev";
/// The audience of development tokens.
pub const DEV_AUDIENCE: &str = "files";

impl Settings {
    /// True when no dependency is configured: everything runs in process.
    #[must_use]
    pub fn is_embedded_default(&self) -> bool {
        matches!(self.store, StoreSettings::Embedded { .. })
            && matches!(self.tokens.keys, KeySource::DevKey)
            && self.database.is_none()
            && self.redis.is_none()
            && self.amqp.is_none()
    }
}
