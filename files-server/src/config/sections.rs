//! Each concern's settings from the variables.

#![allow(clippy::wildcard_imports)]

use super::*;

pub(super) fn log(vars: &Vars) -> Result<LogSettings, ConfigError> {
    let filter = vars.raw("FILES_LOG").map(str::to_owned);
    if let Some(filter) = &filter {
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| ConfigError {
            variable: "FILES_LOG",
            problem: format!("not a log filter: {e} (got {filter:?})"),
        })?;
    }
    Ok(LogSettings {
        filter,
        format: vars.or("FILES_LOG_FORMAT", LogFormat::Human)?,
    })
}

pub(super) fn store(vars: &Vars) -> Result<StoreSettings, ConfigError> {
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

pub(super) fn tokens(vars: &Vars) -> Result<TokenSettings, ConfigError> {
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
    let signature_library = vars.or("FILES_TOKEN_VERIFIER", defaults.signature_library)?;
    if !signature_library.is_built() {
        return Err(ConfigError {
            variable: "FILES_TOKEN_VERIFIER",
            problem: format!("this build has no {signature_library}: build files-server with --features jsonwebtoken"),
        });
    }
    let jwt = JwtConfig {
        leeway: Duration::from_secs(vars.or("FILES_TOKEN_LEEWAY_SECS", secs(defaults.leeway))?),
        token_cache_capacity: vars.or("FILES_TOKEN_CACHE_CAPACITY", defaults.token_cache_capacity)?,
        max_token_lifetime: vars.seconds(
            "FILES_TOKEN_MAX_LIFETIME_SECS",
            secs(defaults.max_token_lifetime),
            TEN_YEARS,
        )?,
        signature_library,
        claims,
        ..defaults
    };
    Ok(TokenSettings { keys, jwt })
}

/// `FILES_JWKS_URL` and `FILES_JWKS_ALLOW_HTTP`: an `https://` URL, or `http://` when allowed.
/// A wrong value is quoted with its user info and query hidden.
pub(super) fn jwks_url(vars: &Vars) -> Result<Option<(Url, bool)>, ConfigError> {
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

pub(super) fn database(vars: &Vars) -> Result<Option<PostgresConfig>, ConfigError> {
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

pub(super) fn redis(vars: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = vars.secret("FILES_REDIS_URL") else {
        return Ok(None);
    };
    let defaults = RedisConfig::new(url);
    Ok(Some(RedisConfig {
        key_prefix: vars.string("FILES_REDIS_PREFIX", &defaults.key_prefix),
        ttl: vars.seconds("FILES_REDIS_TTL_SECS", secs(defaults.ttl), SEVEN_DAYS)?,
        pool_size: vars.or("FILES_REDIS_POOL_SIZE", defaults.pool_size)?,
        timeout: vars.millis("FILES_REDIS_TIMEOUT_MS", millis(defaults.timeout))?,
        near_cache_capacity: vars.or("FILES_REDIS_NEAR_CACHE_CAPACITY", defaults.near_cache_capacity)?,
        near_cache_max_bytes: vars.or("FILES_REDIS_NEAR_CACHE_MAX_BYTES", defaults.near_cache_max_bytes)?,
        ..defaults
    }))
}

pub(super) fn amqp(vars: &Vars) -> Result<Option<AmqpSettings>, ConfigError> {
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

/// The janitor's pace: `FILES_JANITOR_INTERVAL_SECS` (default 60), `FILES_UPLOAD_GRACE_SECS`
/// (default 600, 0 allowed), `FILES_OUTBOX_RETENTION_SECS` (default 7 days),
/// `FILES_JANITOR_BATCH` (default 100, 1 to 10,000).
pub(super) fn janitor(vars: &Vars) -> Result<JanitorSettings, ConfigError> {
    let defaults = JanitorSettings::default();
    let batch: usize = vars.or("FILES_JANITOR_BATCH", defaults.batch)?;
    if !(1..=10_000).contains(&batch) {
        return Err(ConfigError {
            variable: "FILES_JANITOR_BATCH",
            problem: "must be between 1 and 10000".to_owned(),
        });
    }
    Ok(JanitorSettings {
        interval: vars.seconds("FILES_JANITOR_INTERVAL_SECS", defaults.interval.as_secs(), 86_400)?,
        grace: vars.seconds_or_zero("FILES_UPLOAD_GRACE_SECS", defaults.grace.as_secs(), 7 * 86_400)?,
        outbox_retention: vars.seconds_or_zero(
            "FILES_OUTBOX_RETENTION_SECS",
            defaults.outbox_retention.as_secs(),
            366 * 86_400,
        )?,
        batch,
        ..defaults
    })
}
