//! Typed configuration from `FILES_*` variables, one struct per concern, loaded once.
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
use std::time::Duration;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{ClaimNames, JwtConfig, RemoteJwks};
use files_adapters::postgres::PostgresConfig;
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{JanitorSettings, MAX_EXPIRY, ServiceConfig};
use secrecy::SecretString;
use url::Url;

mod sections;
mod vars;

use sections::{amqp, database, janitor, log, redis, store, tokens};
use vars::{SEVEN_DAYS, TEN_YEARS, Vars, millis, read_file, secs};

/// A variable that is missing or holds a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable, e.g. `FILES_LISTEN`.
    pub variable: &'static str,
    /// What is wrong with it (never its value when it is a secret).
    pub problem: String,
}

/// Every variable the server reads: the one list that the config file's keys, the warning about
/// unknown variables, and the deployment files' tests (compose, Kubernetes) are checked against.
pub const VARIABLES: &[&str] = &[
    "FILES_CONFIG",
    "FILES_LISTEN",
    "FILES_METRICS_LISTEN",
    "FILES_LOG",
    "FILES_LOG_FORMAT",
    "FILES_BODY_TIMEOUT_SECS",
    "FILES_WORKERS",
    "FILES_SHUTDOWN_DELAY_SECS",
    "FILES_SHUTDOWN_GRACE_SECS",
    "FILES_S3_ENDPOINT",
    "FILES_S3_PUBLIC_ENDPOINT",
    "FILES_S3_REGION",
    "FILES_S3_BUCKET",
    "FILES_S3_ACCESS_KEY",
    "FILES_S3_SECRET_KEY",
    "FILES_S3_PATH_STYLE",
    "FILES_S3_TIMEOUT_MS",
    "FILES_EMBEDDED_S3_LISTEN",
    "FILES_JWKS_URL",
    "FILES_JWKS_ALLOW_HTTP",
    "FILES_JWKS_FILE",
    "FILES_JWKS_REFRESH_SECS",
    "FILES_JWKS_MIN_REFETCH_SECS",
    "FILES_TOKEN_ISSUER",
    "FILES_TOKEN_AUDIENCE",
    "FILES_TOKEN_LEEWAY_SECS",
    "FILES_TOKEN_CACHE_CAPACITY",
    "FILES_TOKEN_MAX_LIFETIME_SECS",
    "FILES_TOKEN_VERIFIER",
    "FILES_CLAIM_TENANT_ID",
    "FILES_CLAIM_DEVICE_ID",
    "FILES_CLAIM_SCOPE",
    "FILES_DEV_DIR",
    "FILES_UPLOAD_URL_EXPIRY_SECS",
    "FILES_DOWNLOAD_URL_EXPIRY_SECS",
    "FILES_UPLOAD_URL_MAX_EXPIRY_SECS",
    "FILES_DOWNLOAD_URL_MAX_EXPIRY_SECS",
    "FILES_MULTIPART_EXPIRY_SECS",
    "FILES_MAX_UPLOAD_SIZE",
    "FILES_EVENTS_SECRET",
    "FILES_METRICS_MAX_DEVICES",
    "FILES_DATABASE_URL",
    "FILES_DATABASE_POOL_SIZE",
    "FILES_DATABASE_CONNECT_TIMEOUT_MS",
    "FILES_DATABASE_TIMEOUT_MS",
    "FILES_REDIS_URL",
    "FILES_REDIS_PREFIX",
    "FILES_REDIS_TTL_SECS",
    "FILES_REDIS_POOL_SIZE",
    "FILES_REDIS_TIMEOUT_MS",
    "FILES_REDIS_NEAR_CACHE_CAPACITY",
    "FILES_REDIS_NEAR_CACHE_MAX_BYTES",
    "FILES_AMQP_URL",
    "FILES_AMQP_EXCHANGE",
    "FILES_AMQP_TIMEOUT_MS",
    "FILES_AMQP_INGEST_QUEUE",
    "FILES_JANITOR_INTERVAL_SECS",
    "FILES_UPLOAD_GRACE_SECS",
    "FILES_OUTBOX_RETENTION_SECS",
    "FILES_JANITOR_BATCH",
];

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
    /// `FILES_LISTEN`: where the HTTP API listens (default `127.0.0.1:8080`; port 0 picks one).
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
    /// `FILES_BODY_TIMEOUT_SECS` (default 10): how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// `FILES_METRICS_LISTEN`: where `/metrics` is served, alone; unset, it is served on the
    /// API's address (convenient in development; production sets it).
    pub metrics_listen: Option<SocketAddr>,
    /// `FILES_WORKERS`: the HTTP worker threads; unset, one per CPU the process may use.
    pub workers: Option<std::num::NonZeroUsize>,
    /// `FILES_DEV_DIR`: where the embedded default keeps its development key (default
    /// [`DevKey::default_dir`](files_adapters::jwks::DevKey::default_dir), a per-user directory).
    pub dev_dir: PathBuf,
    /// `FILES_METRICS_MAX_DEVICES` (default 1000): distinct devices with their own metric series.
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
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// `FILES_LOG`: a `tracing` filter (`info,files_adapters=debug`); unset, `RUST_LOG` or `info`.
    pub filter: Option<String>,
    /// `FILES_LOG_FORMAT`: `human` (the default) or `json`.
    pub format: LogFormat,
}

/// `FILES_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, the request's fields in its span (`request{request_id=…}`).
    #[default]
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
    /// `FILES_SHUTDOWN_DELAY_SECS` (default 0): how long `/readyz` answers 503 while the
    /// listener still accepts, so load balancers stop sending before it closes.
    pub delay: Duration,
    /// `FILES_SHUTDOWN_GRACE_SECS` (default 20): how long in-flight requests, then the relay,
    /// may take to finish once the listener has closed.
    pub grace: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            grace: Duration::from_secs(20),
        }
    }
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
        /// `FILES_EMBEDDED_S3_LISTEN` (default `127.0.0.1:0`).
        listen: SocketAddr,
        /// `FILES_S3_BUCKET` (default `files`).
        bucket: String,
        /// `FILES_S3_REGION` (default `us-east-1`).
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
        if let Some(path) = env.get("FILES_CONFIG").map(|p| p.trim()).filter(|p| !p.is_empty()) {
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
        let defaults = ServiceConfig::default();
        let limits = ServiceConfig {
            upload_expiry: vars.seconds("FILES_UPLOAD_URL_EXPIRY_SECS", secs(defaults.upload_expiry), SEVEN_DAYS)?,
            download_expiry: vars.seconds(
                "FILES_DOWNLOAD_URL_EXPIRY_SECS",
                secs(defaults.download_expiry),
                SEVEN_DAYS,
            )?,
            max_upload_size: vars.or("FILES_MAX_UPLOAD_SIZE", defaults.max_upload_size)?,
            max_upload_expiry: vars.seconds(
                "FILES_UPLOAD_URL_MAX_EXPIRY_SECS",
                secs(defaults.max_upload_expiry),
                SEVEN_DAYS,
            )?,
            max_download_expiry: vars.seconds(
                "FILES_DOWNLOAD_URL_MAX_EXPIRY_SECS",
                secs(defaults.max_download_expiry),
                SEVEN_DAYS,
            )?,
            multipart_expiry: vars.seconds(
                "FILES_MULTIPART_EXPIRY_SECS",
                secs(defaults.multipart_expiry),
                SEVEN_DAYS,
            )?,
            ..defaults
        };
        for (variable, default, max) in [
            (
                "FILES_UPLOAD_URL_EXPIRY_SECS",
                limits.upload_expiry,
                limits.max_upload_expiry,
            ),
            (
                "FILES_DOWNLOAD_URL_EXPIRY_SECS",
                limits.download_expiry,
                limits.max_download_expiry,
            ),
        ] {
            if default > max {
                return Err(ConfigError {
                    variable,
                    problem: format!("must not exceed its maximum of {} seconds", max.as_secs()),
                });
            }
        }
        Ok(Self {
            listen: vars.or("FILES_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            store: store(vars)?,
            tokens: tokens(vars)?,
            limits,
            events_secret: vars.secret("FILES_EVENTS_SECRET"),
            body_timeout: vars.seconds("FILES_BODY_TIMEOUT_SECS", 10, 3600)?,
            metrics_listen: vars.parse("FILES_METRICS_LISTEN")?,
            workers: vars.parse("FILES_WORKERS")?,
            dev_dir: vars
                .raw("FILES_DEV_DIR")
                .map_or_else(files_adapters::jwks::DevKey::default_dir, PathBuf::from),
            metrics_max_devices: vars.or("FILES_METRICS_MAX_DEVICES", 1000)?,
            database: database(vars)?,
            redis: redis(vars)?,
            amqp: amqp(vars)?,
            log: log(vars)?,
            shutdown: ShutdownSettings {
                delay: vars.seconds_or_zero("FILES_SHUTDOWN_DELAY_SECS", 0, 300)?,
                grace: vars.seconds("FILES_SHUTDOWN_GRACE_SECS", 20, 3600)?,
            },
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
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn nothing_set_is_the_embedded_default() -> Result<(), ConfigError> {
        let s = settings(&[])?;
        assert!(s.is_embedded_default());
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(s.limits.upload_expiry, Duration::from_secs(900));
        assert_eq!(s.limits.download_expiry, Duration::from_secs(300));
        Ok(())
    }

    #[test]
    fn workers_and_the_near_cache_are_read() -> Result<(), ConfigError> {
        let s = settings(&[])?;
        assert_eq!(s.workers, None);
        let s = settings(&[
            ("FILES_WORKERS", "3"),
            ("FILES_REDIS_URL", "redis://x"),
            ("FILES_REDIS_NEAR_CACHE_CAPACITY", "0"),
            ("FILES_REDIS_NEAR_CACHE_MAX_BYTES", "1048576"),
        ])?;
        assert_eq!(s.workers.map(std::num::NonZeroUsize::get), Some(3));
        let near = |s: &Settings| {
            s.redis
                .as_ref()
                .map(|redis| (redis.near_cache_capacity, redis.near_cache_max_bytes))
        };
        assert_eq!(near(&s), Some((0, 1_048_576)));
        let s = settings(&[("FILES_REDIS_URL", "redis://x")])?;
        assert_eq!(
            near(&s),
            Some((
                RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY,
                RedisConfig::DEFAULT_NEAR_CACHE_MAX_BYTES
            ))
        );
        Ok(())
    }

    #[test]
    fn the_signature_library_is_read_and_must_be_built_in() {
        use files_adapters::jwks::SignatureLibrary;
        let library = |vars: &[(&str, &str)]| settings(vars).map(|s| s.tokens.jwt.signature_library);
        assert_eq!(library(&[]).ok(), Some(SignatureLibrary::JwtSimple));
        assert_eq!(
            library(&[("FILES_TOKEN_VERIFIER", "jwt-simple")]).ok(),
            Some(SignatureLibrary::JwtSimple)
        );
        let jsonwebtoken = library(&[("FILES_TOKEN_VERIFIER", "jsonwebtoken")]);
        if SignatureLibrary::JsonWebToken.is_built() {
            assert_eq!(jsonwebtoken.ok(), Some(SignatureLibrary::JsonWebToken));
        } else {
            let error = jsonwebtoken.err().map(|e| (e.variable, e.problem));
            assert!(
                error
                    .as_ref()
                    .is_some_and(|(variable, problem)| *variable == "FILES_TOKEN_VERIFIER"
                        && problem.contains("--features jsonwebtoken")),
                "{error:?}"
            );
        }
        let error = library(&[("FILES_TOKEN_VERIFIER", "ring")]).err();
        assert!(
            error.as_ref().is_some_and(
                |e| e.variable == "FILES_TOKEN_VERIFIER" && e.problem.contains("jwt-simple or jsonwebtoken")
            ),
            "{error:?}"
        );
    }

    #[test]
    fn wrong_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 13] = [
            (&[("FILES_WORKERS", "0")], "FILES_WORKERS"),
            (
                &[
                    ("FILES_REDIS_URL", "redis://x"),
                    ("FILES_REDIS_NEAR_CACHE_CAPACITY", "-1"),
                ],
                "FILES_REDIS_NEAR_CACHE_CAPACITY",
            ),
            (
                &[
                    ("FILES_REDIS_URL", "redis://x"),
                    ("FILES_REDIS_NEAR_CACHE_CAPACITY", "many"),
                ],
                "FILES_REDIS_NEAR_CACHE_CAPACITY",
            ),
            (
                &[
                    ("FILES_REDIS_URL", "redis://x"),
                    ("FILES_REDIS_NEAR_CACHE_MAX_BYTES", "64MiB"),
                ],
                "FILES_REDIS_NEAR_CACHE_MAX_BYTES",
            ),
            (
                &[
                    ("FILES_DATABASE_URL", "postgres://x"),
                    ("FILES_DATABASE_TIMEOUT_MS", "0"),
                ],
                "FILES_DATABASE_TIMEOUT_MS",
            ),
            (
                &[("FILES_REDIS_URL", "redis://x"), ("FILES_REDIS_TTL_SECS", "abc")],
                "FILES_REDIS_TTL_SECS",
            ),
            (&[("FILES_LISTEN", "not-an-address")], "FILES_LISTEN"),
            (&[("FILES_S3_ENDPOINT", "ftp://x")], "FILES_S3_ENDPOINT"),
            (&[("FILES_S3_ENDPOINT", "http://x")], "FILES_S3_ACCESS_KEY"),
            (&[("FILES_JWKS_URL", "https://dsts/jwks")], "FILES_TOKEN_ISSUER"),
            (
                &[("FILES_UPLOAD_URL_EXPIRY_SECS", "604801")],
                "FILES_UPLOAD_URL_EXPIRY_SECS",
            ),
            (&[("FILES_MAX_UPLOAD_SIZE", "-1")], "FILES_MAX_UPLOAD_SIZE"),
            (
                &[("FILES_AMQP_INGEST_QUEUE", "minio-events")],
                "FILES_AMQP_INGEST_QUEUE",
            ),
        ];
        for (vars, variable) in cases {
            let error = settings(vars).err().map(|e| e.variable);
            assert_eq!(error, Some(variable), "{vars:?}");
        }
    }

    #[test]
    fn secrets_are_not_printed() -> Result<(), ConfigError> {
        let s = settings(&[
            ("FILES_S3_ENDPOINT", "http://127.0.0.1:3900"),
            ("FILES_S3_ACCESS_KEY", "GK1"),
            ("FILES_S3_SECRET_KEY", "very-secret-value"),
            ("FILES_EVENTS_SECRET", "hook-secret-value"),
            ("FILES_DATABASE_URL", "postgres://files:db-password-value@db/files"),
            ("FILES_REDIS_URL", "redis://:redis-password-value@cache:6379"),
            ("FILES_AMQP_URL", "amqp://files:amqp-password-value@broker:5672/%2f"),
        ])?;
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret-value"));
        assert!(!printed.contains("hook-secret-value"));
        assert!(!printed.contains("db-password-value"));
        assert!(!printed.contains("redis-password-value"));
        assert!(!printed.contains("amqp-password-value"));
        Ok(())
    }

    #[test]
    fn the_jwks_url_needs_https_or_an_explicit_allowance() -> Result<(), ConfigError> {
        let url = "http://dsts:8080/jwks?access_token=query-secret-value";
        let issuer = [("FILES_TOKEN_ISSUER", "iss"), ("FILES_TOKEN_AUDIENCE", "aud")];
        let refused = settings(&[&issuer[..], &[("FILES_JWKS_URL", url)]].concat()).err();
        assert_eq!(refused.as_ref().map(|e| e.variable), Some("FILES_JWKS_URL"));
        assert!(refused.is_some_and(|e| e.problem.contains("FILES_JWKS_ALLOW_HTTP")));
        let wrong = settings(
            &[
                &issuer[..],
                &[("FILES_JWKS_URL", url), ("FILES_JWKS_ALLOW_HTTP", "yes")],
            ]
            .concat(),
        );
        assert_eq!(wrong.err().map(|e| e.variable), Some("FILES_JWKS_ALLOW_HTTP"));

        let allowed = settings(
            &[
                &issuer[..],
                &[("FILES_JWKS_URL", url), ("FILES_JWKS_ALLOW_HTTP", "true")],
            ]
            .concat(),
        )?;
        assert!(matches!(&allowed.tokens.keys, KeySource::Url(source) if source.allow_http && source.url == url));
        let https = settings(&[&issuer[..], &[("FILES_JWKS_URL", "https://dsts/jwks")]].concat())?;
        assert!(matches!(&https.tokens.keys, KeySource::Url(source) if !source.allow_http));
        Ok(())
    }

    #[test]
    fn the_jwks_url_is_never_printed_whole() -> Result<(), ConfigError> {
        let url = "https://user:url-password-value@dsts/jwks?access_token=query-secret-value";
        let s = settings(&[
            ("FILES_JWKS_URL", url),
            ("FILES_TOKEN_ISSUER", "iss"),
            ("FILES_TOKEN_AUDIENCE", "aud"),
        ])?;
        let printed = format!("{s:?}");
        assert!(printed.contains("https://***@dsts/jwks?***"), "{printed}");
        assert!(!printed.contains("url-password-value") && !printed.contains("query-secret-value"));
        // A value that does not parse is quoted redacted too.
        let wrong = settings(&[(
            "FILES_JWKS_URL",
            "https://user:url-password-value@dsts:port/?query-secret-value",
        )]);
        let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("FILES_JWKS_URL: "), "{message}");
        assert!(!message.contains("url-password-value") && !message.contains("query-secret-value"));
        Ok(())
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("write: {e}"));
        file
    }

    fn with_file(file: &tempfile::NamedTempFile, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let path = file.path().display().to_string();
        let mut vars = vec![("FILES_CONFIG".to_owned(), path)];
        vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Settings::from_vars(vars)
    }

    #[test]
    fn the_config_file_is_read_and_variables_override_it() -> Result<(), ConfigError> {
        let file = config_file(
            "max_upload_size = 1000\nlisten = \"127.0.0.1:9999\"\ns3_path_style = false\n\
             s3_endpoint = \"http://store:9000\"\ns3_access_key = \"GK1\"\ns3_secret_key = \"x\"\n\
             log_format = \"json\"\nshutdown_grace_secs = 7\n",
        );
        let s = with_file(&file, &[])?;
        assert_eq!(s.limits.max_upload_size, 1000);
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 9999)));
        assert!(matches!(&s.store, StoreSettings::S3(c) if !c.path_style));
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.shutdown.grace, Duration::from_secs(7));

        let s = with_file(
            &file,
            &[("FILES_MAX_UPLOAD_SIZE", "2000"), ("FILES_LOG_FORMAT", "human")],
        )?;
        assert_eq!(s.limits.max_upload_size, 2000, "the variable wins");
        assert_eq!(s.log.format, LogFormat::Human);
        assert_eq!(
            s.listen,
            SocketAddr::from(([127, 0, 0, 1], 9999)),
            "the rest still from the file"
        );
        Ok(())
    }

    #[test]
    fn an_unknown_key_stops_start_up_naming_it() {
        let file = config_file("max_upload_size = 1000\nmax_uplaod_size = 5\n");
        let error = with_file(&file, &[]).err();
        assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("unknown key `max_uplaod_size`"), "{message}");
        // Keys are the variables' names in lower case, without FILES_; FILES_CONFIG is not one.
        for text in [
            "MAX_UPLOAD_SIZE = 5",
            "files_max_upload_size = 5",
            "config = \"x.toml\"",
            "[database]\nurl = \"x\"",
        ] {
            let error = with_file(&config_file(text), &[]).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("unknown key")),
                "{text}: {error:?}"
            );
        }
    }

    #[test]
    fn a_wrong_value_in_the_file_names_the_variable_and_the_key() {
        let file = config_file("redis_url = \"redis://cache\"\nredis_ttl_secs = \"1h\"\n");
        let error = with_file(&file, &[]).err();
        assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_REDIS_TTL_SECS"));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("`redis_ttl_secs`") && message.contains("1h"),
            "{message}"
        );
        // The same value from the environment is not blamed on the file.
        let error = with_file(&file, &[("FILES_REDIS_TTL_SECS", "1h")])
            .err()
            .map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| !e.contains("redis_ttl_secs")),
            "{error:?}"
        );

        let error = with_file(&config_file("body_timeout_secs = 1.5"), &[]).err();
        assert_eq!(error.map(|e| e.variable), Some("FILES_BODY_TIMEOUT_SECS"));
        let error = with_file(&config_file("log_format = \"xml\""), &[]).err();
        assert_eq!(error.map(|e| e.variable), Some("FILES_LOG_FORMAT"));
    }

    #[test]
    fn a_file_that_is_not_toml_or_missing_names_files_config_without_quoting_it() {
        let file = config_file("s3_secret_key = \"half-a-secret\n");
        let error = with_file(&file, &[]).err();
        assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("line 1") && !message.contains("half-a-secret"),
            "{message}"
        );
        let missing = settings(&[("FILES_CONFIG", "/nonexistent/files.toml")]).err();
        assert_eq!(missing.map(|e| e.variable), Some("FILES_CONFIG"));
    }

    #[test]
    fn the_token_lifetime_is_read_and_bounded() -> Result<(), ConfigError> {
        let lifetime = |s: &Settings| s.tokens.jwt.max_token_lifetime;
        assert_eq!(lifetime(&settings(&[])?), Duration::from_secs(86_400));
        let s = settings(&[("FILES_TOKEN_MAX_LIFETIME_SECS", "3600")])?;
        assert_eq!(lifetime(&s), Duration::from_secs(3600));
        for wrong in ["0", "315360001", "1d"] {
            let error = settings(&[("FILES_TOKEN_MAX_LIFETIME_SECS", wrong)]).err();
            assert_eq!(
                error.map(|e| e.variable),
                Some("FILES_TOKEN_MAX_LIFETIME_SECS"),
                "{wrong}"
            );
        }
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_config_file_others_could_change_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let file = config_file("max_upload_size = 1000\n");
        let set_mode = |mode: u32| {
            std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod: {e}"));
        };
        let refused = |problem: &str| {
            let error = with_file(&file, &[]).err();
            assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
            let message = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(problem), "{message}");
        };
        for mode in [0o600, 0o644, 0o400] {
            set_mode(mode);
            let read = with_file(&file, &[]).map(|s| s.limits.max_upload_size);
            assert_eq!(read.ok(), Some(1000), "mode {mode:o}");
        }
        for mode in [0o664, 0o620, 0o602, 0o666, 0o622] {
            set_mode(mode);
            refused("writable by its group or others");
        }
        set_mode(0o600);
        // Owned by another user (only root can give a file away).
        let nobody = 65534;
        match std::os::unix::fs::chown(file.path(), Some(nobody), Some(nobody)) {
            Ok(()) => refused("owned by uid 65534"),
            Err(error) => eprintln!("not checking ownership (needs root): {error}"),
        }
    }

    #[test]
    fn unknown_variables_are_reported() -> Result<(), ConfigError> {
        let s = settings(&[("FILES_MAX_UPLAOD_SIZE", "5"), ("FILES_LISTEN", "127.0.0.1:1")])?;
        assert_eq!(s.unknown_variables, ["FILES_MAX_UPLAOD_SIZE"]);
        Ok(())
    }

    /// [`VARIABLES`] is exactly what [`Settings`] reads, across the configurations that read
    /// different variables (each branch of the store, the key source, the optional services).
    #[test]
    fn variables_is_what_is_read() -> Result<(), ConfigError> {
        let mut read = BTreeSet::new();
        let configurations: [&[(&str, &str)]; 4] = [
            &[],
            &[
                ("FILES_S3_ENDPOINT", "http://store:9000"),
                ("FILES_S3_ACCESS_KEY", "GK1"),
                ("FILES_S3_SECRET_KEY", "x"),
                ("FILES_JWKS_URL", "https://dsts/jwks"),
                ("FILES_TOKEN_ISSUER", "iss"),
                ("FILES_TOKEN_AUDIENCE", "aud"),
                ("FILES_DATABASE_URL", "postgres://db/files"),
                ("FILES_REDIS_URL", "redis://cache"),
                ("FILES_AMQP_URL", "amqp://broker:5672/%2f"),
                ("FILES_LOG", "info"),
            ],
            &[
                ("FILES_JWKS_FILE", "/keys.pem"),
                ("FILES_TOKEN_ISSUER", "iss"),
                ("FILES_TOKEN_AUDIENCE", "aud"),
            ],
            &[("FILES_CONFIG", "")],
        ];
        for pairs in configurations {
            let vars = Vars {
                values: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                from_file: HashMap::new(),
                read: RefCell::default(),
            };
            Settings::read(&vars)?;
            read.extend(vars.read.take());
        }
        read.insert("FILES_CONFIG"); // read by from_vars, before the rest
        let listed: BTreeSet<&str> = VARIABLES.iter().copied().collect();
        assert_eq!(read, listed);
        assert_eq!(listed.len(), VARIABLES.len(), "no name twice");
        assert!(PRODUCTION_VARIABLES.iter().all(|v| listed.contains(v)));
        Ok(())
    }

    #[test]
    fn the_dev_dir_defaults_to_a_per_user_directory() -> Result<(), ConfigError> {
        let s = settings(&[])?;
        assert_eq!(s.dev_dir, files_adapters::jwks::DevKey::default_dir());
        assert_ne!(s.dev_dir, std::env::temp_dir().join("files-server-dev"));
        assert_eq!(
            settings(&[("FILES_DEV_DIR", "/srv/dev")])?.dev_dir,
            PathBuf::from("/srv/dev")
        );
        Ok(())
    }
}
