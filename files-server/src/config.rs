//! Typed configuration from `FILES_*` variables, one struct per concern, loaded once.
//!
//! A wrong value stops start-up with a message naming the variable. Secrets are kept in
//! [`SecretString`] and never printed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{ClaimNames, JwtConfig, RemoteJwks};
use files_adapters::postgres::PostgresConfig;
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{MAX_EXPIRY, ServiceConfig};
use secrecy::SecretString;
use url::Url;

/// A variable that is missing or holds a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable, e.g. `FILES_LISTEN`.
    pub variable: &'static str,
    /// What is wrong with it (never its value when it is a secret).
    pub problem: String,
}

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
    /// `FILES_MAX_UPLOAD_SIZE`.
    pub limits: ServiceConfig,
    /// `FILES_EVENTS_SECRET`: the shared secret of the storage-events webhook (off when unset).
    pub events_secret: Option<SecretString>,
    /// `FILES_BODY_TIMEOUT_SECS` (default 10): how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// `FILES_METRICS_LISTEN`: where `/metrics` is served, alone; unset, it is served on the
    /// API's address (convenient in development; production sets it).
    pub metrics_listen: Option<SocketAddr>,
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

struct Vars(HashMap<String, String>);

impl Vars {
    fn raw(&self, variable: &'static str) -> Option<&str> {
        self.0
            .get(variable)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn parse<T>(&self, variable: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.raw(variable)
            .map(|v| {
                v.trim().parse::<T>().map_err(|e| ConfigError {
                    variable,
                    problem: format!("{e} (got {v:?})"),
                })
            })
            .transpose()
    }

    fn or<T>(&self, variable: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.parse(variable)?.unwrap_or(default))
    }

    fn string(&self, variable: &'static str, default: &str) -> String {
        self.raw(variable).unwrap_or(default).to_owned()
    }

    fn required(&self, variable: &'static str, because: &str) -> Result<String, ConfigError> {
        self.raw(variable).map(str::to_owned).ok_or_else(|| ConfigError {
            variable,
            problem: format!("required {because}"),
        })
    }

    fn secret(&self, variable: &'static str) -> Option<SecretString> {
        self.raw(variable).map(|v| SecretString::from(v.to_owned()))
    }

    fn millis(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let millis: u64 = self.or(variable, default)?;
        if millis == 0 {
            return Err(ConfigError {
                variable,
                problem: "must be at least 1 ms".to_owned(),
            });
        }
        Ok(Duration::from_millis(millis))
    }

    fn seconds(&self, variable: &'static str, default: u64, max: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.or(variable, default)?;
        if secs == 0 || secs > max {
            return Err(ConfigError {
                variable,
                problem: format!("must be between 1 and {max} seconds"),
            });
        }
        Ok(Duration::from_secs(secs))
    }

    fn url(&self, variable: &'static str) -> Result<Option<Url>, ConfigError> {
        let url: Option<Url> = self.parse(variable)?;
        match url {
            Some(url) if !matches!(url.scheme(), "http" | "https") => Err(ConfigError {
                variable,
                problem: "must be an http:// or https:// URL".to_owned(),
            }),
            other => Ok(other),
        }
    }
}

const SEVEN_DAYS: u64 = MAX_EXPIRY.as_secs();

fn secs(duration: Duration) -> u64 {
    duration.as_secs()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Settings {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().filter(|(k, _)| k.starts_with("FILES_")))
    }

    /// Reads the given variables (tests pass their own).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars = Vars(vars.into_iter().collect());
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
            store: store(&vars)?,
            tokens: tokens(&vars)?,
            limits,
            events_secret: vars.secret("FILES_EVENTS_SECRET"),
            body_timeout: vars.seconds("FILES_BODY_TIMEOUT_SECS", 10, 3600)?,
            metrics_listen: vars.parse("FILES_METRICS_LISTEN")?,
            dev_dir: vars
                .raw("FILES_DEV_DIR")
                .map_or_else(files_adapters::jwks::DevKey::default_dir, PathBuf::from),
            metrics_max_devices: vars.or("FILES_METRICS_MAX_DEVICES", 1000)?,
            database: database(&vars)?,
            redis: redis(&vars)?,
            amqp: amqp(&vars)?,
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

fn store(vars: &Vars) -> Result<StoreSettings, ConfigError> {
    let bucket = vars.string("FILES_S3_BUCKET", S3Config::DEFAULT_BUCKET);
    let region = vars.string("FILES_S3_REGION", S3Config::DEFAULT_REGION);
    let Some(endpoint) = vars.url("FILES_S3_ENDPOINT")? else {
        return Ok(StoreSettings::Embedded {
            listen: vars.or("FILES_EMBEDDED_S3_LISTEN", SocketAddr::from(([127, 0, 0, 1], 0)))?,
            bucket,
            region,
        });
    };
    let access_key = vars.required("FILES_S3_ACCESS_KEY", "with FILES_S3_ENDPOINT")?;
    let secret_key = vars.secret("FILES_S3_SECRET_KEY").ok_or_else(|| ConfigError {
        variable: "FILES_S3_SECRET_KEY",
        problem: "required with FILES_S3_ENDPOINT".to_owned(),
    })?;
    let defaults = S3Config::new(endpoint, access_key, secret_key);
    Ok(StoreSettings::S3(Box::new(S3Config {
        public_endpoint: vars.url("FILES_S3_PUBLIC_ENDPOINT")?,
        region,
        bucket,
        path_style: vars.or("FILES_S3_PATH_STYLE", defaults.path_style)?,
        timeout: vars.millis("FILES_S3_TIMEOUT_MS", millis(defaults.timeout))?,
        ..defaults
    })))
}

fn tokens(vars: &Vars) -> Result<TokenSettings, ConfigError> {
    let keys = match (jwks_url(vars)?, vars.raw("FILES_JWKS_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                variable: "FILES_JWKS_FILE",
                problem: "set either FILES_JWKS_URL or FILES_JWKS_FILE, not both".to_owned(),
            });
        }
        (Some((url, allow_http)), None) => {
            let defaults = RemoteJwks::new(url.as_str());
            KeySource::Url(RemoteJwks {
                allow_http,
                refresh_interval: vars.seconds(
                    "FILES_JWKS_REFRESH_SECS",
                    secs(defaults.refresh_interval),
                    SEVEN_DAYS,
                )?,
                min_refetch_interval: vars.seconds(
                    "FILES_JWKS_MIN_REFETCH_SECS",
                    secs(defaults.min_refetch_interval),
                    SEVEN_DAYS,
                )?,
                ..defaults
            })
        }
        (None, Some(path)) => KeySource::File(PathBuf::from(path)),
        (None, None) => KeySource::DevKey,
    };
    let (issuer, audience) = if matches!(keys, KeySource::DevKey) {
        (
            vars.string("FILES_TOKEN_ISSUER", DEV_ISSUER),
            vars.string("FILES_TOKEN_AUDIENCE", DEV_AUDIENCE),
        )
    } else {
        (
            vars.required("FILES_TOKEN_ISSUER", "with FILES_JWKS_URL or FILES_JWKS_FILE")?,
            vars.required("FILES_TOKEN_AUDIENCE", "with FILES_JWKS_URL or FILES_JWKS_FILE")?,
        )
    };
    let defaults = JwtConfig::new(issuer, audience);
    let claims = ClaimNames {
        tenant_id: vars.string("FILES_CLAIM_TENANT_ID", &defaults.claims.tenant_id),
        device_id: vars.string("FILES_CLAIM_DEVICE_ID", &defaults.claims.device_id),
        scope: vars.string("FILES_CLAIM_SCOPE", &defaults.claims.scope),
    };
    let jwt = JwtConfig {
        leeway: Duration::from_secs(vars.or("FILES_TOKEN_LEEWAY_SECS", secs(defaults.leeway))?),
        token_cache_capacity: vars.or("FILES_TOKEN_CACHE_CAPACITY", defaults.token_cache_capacity)?,
        claims,
        ..defaults
    };
    Ok(TokenSettings { keys, jwt })
}

/// `FILES_JWKS_URL` and `FILES_JWKS_ALLOW_HTTP`: an `https://` URL, or `http://` when allowed.
/// A wrong value is quoted with its user info and query hidden.
fn jwks_url(vars: &Vars) -> Result<Option<(Url, bool)>, ConfigError> {
    const VARIABLE: &str = "FILES_JWKS_URL";
    let Some(raw) = vars.raw(VARIABLE).map(str::trim) else {
        return Ok(None);
    };
    let problem = |problem: String| ConfigError {
        variable: VARIABLE,
        problem,
    };
    let shown = RemoteJwks::new(raw).redacted_url();
    let url = Url::parse(raw).map_err(|e| problem(format!("{e} (got {shown:?})")))?;
    let allow_http: bool = vars.or("FILES_JWKS_ALLOW_HTTP", false)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(problem(
                "plain http:// is refused (anyone on the path could replace the keys): use https://, \
                 or set FILES_JWKS_ALLOW_HTTP=true"
                    .to_owned(),
            ));
        }
        _ => return Err(problem("must be an https:// (or allowed http://) URL".to_owned())),
    }
    Ok(Some((url, allow_http)))
}

fn database(vars: &Vars) -> Result<Option<PostgresConfig>, ConfigError> {
    let Some(url) = vars.secret("FILES_DATABASE_URL") else {
        return Ok(None);
    };
    let defaults = PostgresConfig::new(url);
    Ok(Some(PostgresConfig {
        pool_size: vars.or("FILES_DATABASE_POOL_SIZE", defaults.pool_size)?,
        connect_timeout: vars.millis("FILES_DATABASE_CONNECT_TIMEOUT_MS", millis(defaults.connect_timeout))?,
        query_timeout: vars.millis("FILES_DATABASE_TIMEOUT_MS", millis(defaults.query_timeout))?,
        ..defaults
    }))
}

fn redis(vars: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = vars.secret("FILES_REDIS_URL") else {
        return Ok(None);
    };
    let defaults = RedisConfig::new(url);
    Ok(Some(RedisConfig {
        key_prefix: vars.string("FILES_REDIS_PREFIX", &defaults.key_prefix),
        ttl: vars.seconds("FILES_REDIS_TTL_SECS", secs(defaults.ttl), SEVEN_DAYS)?,
        pool_size: vars.or("FILES_REDIS_POOL_SIZE", defaults.pool_size)?,
        timeout: vars.millis("FILES_REDIS_TIMEOUT_MS", millis(defaults.timeout))?,
        ..defaults
    }))
}

fn amqp(vars: &Vars) -> Result<Option<AmqpSettings>, ConfigError> {
    let Some(url) = vars.secret("FILES_AMQP_URL") else {
        if vars.raw("FILES_AMQP_INGEST_QUEUE").is_some() {
            return Err(ConfigError {
                variable: "FILES_AMQP_INGEST_QUEUE",
                problem: "needs FILES_AMQP_URL".to_owned(),
            });
        }
        return Ok(None);
    };
    let defaults = AmqpConfig::new(url);
    let config = AmqpConfig {
        exchange: vars.string("FILES_AMQP_EXCHANGE", &defaults.exchange),
        timeout: vars.millis("FILES_AMQP_TIMEOUT_MS", millis(defaults.timeout))?,
        ..defaults
    };
    config.validate().map_err(|e| ConfigError {
        variable: "FILES_AMQP_URL",
        problem: e.to_string(),
    })?;
    Ok(Some(AmqpSettings {
        config,
        ingest_queue: vars.raw("FILES_AMQP_INGEST_QUEUE").map(str::to_owned),
    }))
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
    fn wrong_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 9] = [
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
