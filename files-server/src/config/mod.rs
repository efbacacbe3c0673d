//! Typed configuration from `FILES_*` variables, one struct per concern, loaded once.
//!
//! Every variable is one entry of its concern's table (`tables.rs`): its name, its default (the
//! adapter's constant), its bounds, whether it is a secret, and what it sets. The reader
//! (`vars.rs`, `sections.rs`), the config file's keys, [`VARIABLES`] and the test that
//! docs/configuration.md documents every variable with its default all come from the tables.
//!
//! A config file (`FILES_CONFIG`, TOML) may hold any setting under its variable's name without
//! `FILES_`, in lower case (`max_upload_size = 1000`); a variable overrides the file. Every name
//! the server reads is in [`VARIABLES`]. A wrong value stops start-up with a message naming the
//! variable (and the file's key when the value came from the file); an unknown key in the file
//! stops it too. Secrets are kept in [`SecretString`] and never printed.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{ClaimNames, JwtConfig, RemoteJwks, SignatureLibrary};
use files_adapters::postgres::PostgresConfig;
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{JanitorSettings, ServiceConfig};
use secrecy::SecretString;
use url::Url;

mod sections;
mod table;
mod tables;
mod vars;

use sections::{amqp, database, janitor, limits, log, redis, shutdown, store, tokens};
pub use table::{Value, Var};
use tables::TABLES;
use vars::{Vars, read_file};

/// A variable that is missing or holds a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable, e.g. `FILES_LISTEN`.
    pub variable: &'static str,
    /// What is wrong with it (never its value when it is a secret).
    pub problem: String,
}

/// Every variable the server reads, from the tables (`tables.rs`): the one list that the config
/// file's keys, the warning about unknown variables, and the deployment files' tests (compose,
/// Kubernetes) are checked against.
pub static VARIABLES: LazyLock<Vec<&'static str>> = LazyLock::new(|| variables().map(|var| var.name).collect());

/// Every variable the server reads with its default, bounds, secrecy and description, concern
/// by concern.
pub fn variables() -> impl Iterator<Item = &'static Var> {
    TABLES.iter().flat_map(|table| table.iter())
}

/// The settings every production deployment sets (compose and the Kubernetes manifests are
/// tested against it): each dependency off its embedded default, the addresses a container
/// needs, and `/metrics` on its own address. Tokens are not in it: the compose stack signs
/// them with the development key, a real deployment sets `FILES_JWKS_URL` (see
/// docs/operations.md).
pub const PRODUCTION_VARIABLES: &[&str] = &[
    "FILES_LISTEN",
    "FILES_METRICS_LISTEN",
    "FILES_DATABASE_URL",
    "FILES_REDIS_URL",
    "FILES_AMQP_URL",
    "FILES_S3_ENDPOINT",
    "FILES_S3_ACCESS_KEY",
    "FILES_S3_SECRET_KEY",
    "FILES_EVENTS_SECRET",
];

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
    /// Reads the process environment (and the config file `FILES_CONFIG` names).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().filter(|(k, _)| k.starts_with("FILES_")))
    }

    /// Reads the given variables (tests pass their own), on top of the config file that
    /// `FILES_CONFIG` among them names.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong, or `FILES_CONFIG` when the file
    /// cannot be read, is not TOML, or has a key that is not a setting.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        let unknown_variables = env
            .keys()
            .filter(|name| name.starts_with("FILES_") && !VARIABLES.contains(&name.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut values = HashMap::new();
        let mut from_file = HashMap::new();
        if let Some(path) = env
            .get(tables::config::FILE.name)
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            for (variable, value) in read_file(path)? {
                from_file.insert(variable.clone(), path.to_owned());
                values.insert(variable, value);
            }
        }
        for (name, value) in env {
            if !value.trim().is_empty() {
                from_file.remove(&name);
                values.insert(name, value);
            }
        }
        let vars = Vars {
            values,
            from_file,
            read: RefCell::default(),
        };
        let mut settings = Self::read(&vars).map_err(|e| vars.locate(e))?;
        settings.unknown_variables = unknown_variables;
        Ok(settings)
    }

    fn read(vars: &Vars) -> Result<Self, ConfigError> {
        use tables::{events, metrics, server, tokens::DEV_DIR};
        Ok(Self {
            listen: vars.get(&server::LISTEN)?,
            store: store(vars)?,
            tokens: tokens(vars)?,
            limits: limits(vars)?,
            events_secret: vars.secret(&events::SECRET),
            body_timeout: vars.duration(&server::BODY_TIMEOUT)?,
            metrics_listen: vars.parse(&server::METRICS_LISTEN)?,
            workers: vars.parse(&server::WORKERS)?,
            dev_dir: vars
                .raw(&DEV_DIR)
                .map_or_else(files_adapters::jwks::DevKey::default_dir, PathBuf::from),
            metrics_max_devices: vars.number(&metrics::MAX_DEVICES)?,
            database: database(vars)?,
            redis: redis(vars)?,
            amqp: amqp(vars)?,
            log: log(vars)?,
            shutdown: shutdown(vars)?,
            janitor: janitor(vars)?,
            unknown_variables: Vec::new(),
        })
    }

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

#[cfg(test)]
mod tests;
