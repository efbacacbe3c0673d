//! Each concern's settings from the variables of its table.

#![allow(clippy::wildcard_imports)]

use std::path::PathBuf;

use files_adapters::amqp::AmqpConfig;
use files_adapters::jwks::{ClaimNames, JwtConfig, RemoteJwks, SignatureLibrary};
use files_adapters::postgres::PostgresConfig;
use files_adapters::redis::RedisConfig;
use files_adapters::s3::S3Config;
use files_core::{JanitorSettings, ServiceConfig};
use url::Url;

use super::error::ConfigError;
use super::settings::{
    AmqpSettings, DEV_AUDIENCE, DEV_ISSUER, KeySource, LogSettings, ShutdownSettings, StoreSettings, TokenSettings,
};
use super::tables;
use super::vars::Vars;

pub(super) fn log(vars: &Vars) -> Result<LogSettings, ConfigError> {
    use tables::log::{FILTER, FORMAT};
    let filter = vars.string(&FILTER);
    if let Some(filter) = &filter {
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| ConfigError {
            variable: FILTER.name,
            problem: format!("not a log filter: {e} (got {filter:?})"),
        })?;
    }
    Ok(LogSettings {
        filter,
        format: vars.get(&FORMAT)?,
    })
}

pub(super) fn shutdown(vars: &Vars) -> Result<ShutdownSettings, ConfigError> {
    use tables::shutdown::{DELAY, GRACE};
    Ok(ShutdownSettings {
        delay: vars.duration(&DELAY)?,
        grace: vars.duration(&GRACE)?,
    })
}

pub(super) fn store(vars: &Vars) -> Result<StoreSettings, ConfigError> {
    use tables::store::*;
    let bucket = vars.get(&BUCKET)?;
    let region = vars.get(&REGION)?;
    let Some(endpoint) = vars.url(&ENDPOINT)? else {
        return Ok(StoreSettings::Embedded {
            listen: vars.get(&EMBEDDED_LISTEN)?,
            bucket,
            region,
        });
    };
    let access_key = vars.required(&ACCESS_KEY, "with FILES_S3_ENDPOINT")?;
    let secret_key = vars.secret(&SECRET_KEY).ok_or_else(|| ConfigError {
        variable: SECRET_KEY.name,
        problem: "required with FILES_S3_ENDPOINT".to_owned(),
    })?;
    Ok(StoreSettings::S3(Box::new(S3Config {
        public_endpoint: vars.url(&PUBLIC_ENDPOINT)?,
        region,
        bucket,
        path_style: vars.get(&PATH_STYLE)?,
        timeout: vars.duration(&TIMEOUT)?,
        ..S3Config::new(endpoint, access_key, secret_key)
    })))
}

pub(super) fn tokens(vars: &Vars) -> Result<TokenSettings, ConfigError> {
    use tables::tokens::*;
    let keys = match (jwks_url(vars)?, vars.raw(&JWKS_FILE)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                variable: JWKS_FILE.name,
                problem: "set either FILES_JWKS_URL or FILES_JWKS_FILE, not both".to_owned(),
            });
        }
        (Some((url, allow_http)), None) => KeySource::Url(RemoteJwks {
            allow_http,
            refresh_interval: vars.duration(&JWKS_REFRESH)?,
            min_refetch_interval: vars.duration(&JWKS_MIN_REFETCH)?,
            ..RemoteJwks::new(url.as_str())
        }),
        (None, Some(path)) => KeySource::File(PathBuf::from(path)),
        (None, None) => KeySource::DevKey,
    };
    let (issuer, audience) = if matches!(keys, KeySource::DevKey) {
        (
            vars.raw(&ISSUER).unwrap_or(DEV_ISSUER).to_owned(),
            vars.raw(&AUDIENCE).unwrap_or(DEV_AUDIENCE).to_owned(),
        )
    } else {
        (
            vars.required(&ISSUER, "with FILES_JWKS_URL or FILES_JWKS_FILE")?,
            vars.required(&AUDIENCE, "with FILES_JWKS_URL or FILES_JWKS_FILE")?,
        )
    };
    let claims = ClaimNames {
        tenant_id: vars.get(&CLAIM_TENANT_ID)?,
        device_id: vars.get(&CLAIM_DEVICE_ID)?,
        scope: vars.get(&CLAIM_SCOPE)?,
    };
    let signature_library: SignatureLibrary = vars.get(&VERIFIER)?;
    if !signature_library.is_built() {
        return Err(ConfigError {
            variable: VERIFIER.name,
            problem: format!("this build has no {signature_library}: build files-server with --features jsonwebtoken"),
        });
    }
    let jwt = JwtConfig {
        leeway: vars.duration(&LEEWAY)?,
        token_cache_capacity: vars.number(&CACHE_CAPACITY)?,
        max_token_lifetime: vars.duration(&MAX_LIFETIME)?,
        signature_library,
        claims,
        ..JwtConfig::new(issuer, audience)
    };
    Ok(TokenSettings { keys, jwt })
}

/// `FILES_JWKS_URL` and `FILES_JWKS_ALLOW_HTTP`: an `https://` URL, or `http://` when allowed.
/// A wrong value is quoted with its user info and query hidden.
pub(super) fn jwks_url(vars: &Vars) -> Result<Option<(Url, bool)>, ConfigError> {
    use tables::tokens::{JWKS_ALLOW_HTTP, JWKS_URL};
    let Some(raw) = vars.raw(&JWKS_URL).map(str::trim) else {
        return Ok(None);
    };
    let problem = |problem: String| ConfigError {
        variable: JWKS_URL.name,
        problem,
    };
    let shown = RemoteJwks::new(raw).redacted_url();
    let url = Url::parse(raw).map_err(|e| problem(format!("{e} (got {shown:?})")))?;
    let allow_http: bool = vars.get(&JWKS_ALLOW_HTTP)?;
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

pub(super) fn limits(vars: &Vars) -> Result<ServiceConfig, ConfigError> {
    use tables::limits::*;
    let limits = ServiceConfig {
        upload_expiry: vars.duration(&UPLOAD_URL_EXPIRY)?,
        download_expiry: vars.duration(&DOWNLOAD_URL_EXPIRY)?,
        max_upload_size: vars.number(&MAX_UPLOAD_SIZE)?,
        max_upload_expiry: vars.duration(&UPLOAD_URL_MAX_EXPIRY)?,
        max_download_expiry: vars.duration(&DOWNLOAD_URL_MAX_EXPIRY)?,
        multipart_expiry: vars.duration(&MULTIPART_EXPIRY)?,
        settings_ttl: vars.duration(&TENANT_SETTINGS_TTL)?,
        ..ServiceConfig::default()
    };
    for (var, default, max) in [
        (&UPLOAD_URL_EXPIRY, limits.upload_expiry, limits.max_upload_expiry),
        (&DOWNLOAD_URL_EXPIRY, limits.download_expiry, limits.max_download_expiry),
    ] {
        if default > max {
            return Err(ConfigError {
                variable: var.name,
                problem: format!("must not exceed its maximum of {} seconds", max.as_secs()),
            });
        }
    }
    Ok(limits)
}

pub(super) fn database(vars: &Vars) -> Result<Option<PostgresConfig>, ConfigError> {
    use tables::database::*;
    let Some(url) = vars.secret(&URL) else {
        return Ok(None);
    };
    Ok(Some(PostgresConfig {
        pool_size: vars.number(&POOL_SIZE)?,
        connect_timeout: vars.duration(&CONNECT_TIMEOUT)?,
        query_timeout: vars.duration(&TIMEOUT)?,
        ..PostgresConfig::new(url)
    }))
}

pub(super) fn redis(vars: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
    use tables::redis::*;
    let Some(url) = vars.secret(&URL) else {
        return Ok(None);
    };
    Ok(Some(RedisConfig {
        key_prefix: vars.get(&PREFIX)?,
        ttl: vars.duration(&TTL)?,
        pool_size: vars.number(&POOL_SIZE)?,
        timeout: vars.duration(&TIMEOUT)?,
        near_cache_capacity: vars.number(&NEAR_CACHE_CAPACITY)?,
        near_cache_max_bytes: vars.number(&NEAR_CACHE_MAX_BYTES)?,
        ..RedisConfig::new(url)
    }))
}

pub(super) fn amqp(vars: &Vars) -> Result<Option<AmqpSettings>, ConfigError> {
    use tables::amqp::*;
    let Some(url) = vars.secret(&URL) else {
        if vars.raw(&INGEST_QUEUE).is_some() {
            return Err(ConfigError {
                variable: INGEST_QUEUE.name,
                problem: "needs FILES_AMQP_URL".to_owned(),
            });
        }
        return Ok(None);
    };
    let config = AmqpConfig {
        exchange: vars.get(&EXCHANGE)?,
        timeout: vars.duration(&TIMEOUT)?,
        ..AmqpConfig::new(url)
    };
    config.validate().map_err(|e| ConfigError {
        variable: URL.name,
        problem: e.to_string(),
    })?;
    Ok(Some(AmqpSettings {
        config,
        ingest_queue: vars.string(&INGEST_QUEUE),
    }))
}

pub(super) fn janitor(vars: &Vars) -> Result<JanitorSettings, ConfigError> {
    use tables::janitor::*;
    Ok(JanitorSettings {
        interval: vars.duration(&INTERVAL)?,
        grace: vars.duration(&UPLOAD_GRACE)?,
        outbox_retention: vars.duration(&OUTBOX_RETENTION)?,
        batch: vars.number(&BATCH)?,
        ..JanitorSettings::default()
    })
}
