//! Wiring: one function per port, each choosing its adapter from the settings (or taking the
//! caller's override) and saying in the start-up profile which one serves.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use files_adapters::amqp::AmqpPublisher;
use files_adapters::embedded_s3::{EmbeddedS3, EmbeddedS3Config, StoredObject};
use files_adapters::jwks::{DevKey, JwksVerifier, RemoteJwks};
use files_adapters::log_notifier::LogNotifier;
use files_adapters::memory::{MemoryCache, MemoryMetadataStore};
use files_adapters::postgres::PostgresStore;
use files_adapters::prometheus::Prometheus;
use files_adapters::rate::{FallbackRateLimiter, LocalRateLimiter};
use files_adapters::redis::RedisCache;
use files_adapters::redis::rate::RedisRateLimiter;
use files_adapters::s3::{S3Config, S3Objects, S3Signer};
use files_core::{
    Cache, Metrics, Notifier, ObjectStore, PortError, RateLimiter, ServerStore, TokenVerifier, UrlSigner,
};
use secrecy::SecretString;
use tokio::sync::mpsc;

use crate::config::{AmqpSettings, KeySource, Settings, StoreSettings};
use crate::readiness::{OptionalDependencies, Probe};
use crate::tasks::Tasks;

/// Adapters a caller (a test, an embedding program) supplies instead of the configured ones.
#[derive(Default)]
pub struct Overrides {
    /// The metadata store with its outbox, tenant settings and usage (default: in memory).
    pub metadata: Option<Arc<dyn ServerStore>>,
    /// The cache (default: in memory).
    pub cache: Option<Arc<dyn Cache>>,
    /// The notifier (default: log only).
    pub notifier: Option<Arc<dyn Notifier>>,
    /// The token verifier (default: from the settings).
    pub tokens: Option<Arc<dyn TokenVerifier>>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides").finish_non_exhaustive()
    }
}

/// The dev key's file inside `FILES_DEV_DIR`.
pub const DEV_KEY_FILE: &str = "dev-signing-key.pem";

/// Which adapter serves each concern, one line each, for the start-up log.
#[derive(Debug, Default)]
pub struct Profile(pub Vec<String>);

impl Profile {
    pub(crate) fn say(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }
}

/// The object store: its signer and inspector, and the embedded store when it runs in process.
pub struct Objects {
    /// Signs URLs.
    pub signer: Arc<dyn UrlSigner>,
    /// Inspects and deletes objects.
    pub objects: Arc<dyn ObjectStore>,
    /// The embedded store, its stored-object reports and its directory (embedded profile only).
    pub embedded: Option<EmbeddedStore>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

/// The embedded default's S3 store, running.
#[derive(Debug)]
pub struct EmbeddedStore {
    /// The server.
    pub store: EmbeddedS3,
    /// Every object it stored, to be ingested like a bucket notification.
    pub stored: mpsc::UnboundedReceiver<StoredObject>,
    /// Its directory, deleted when dropped.
    pub root: tempfile::TempDir,
}

fn random_secret() -> SecretString {
    SecretString::from(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// The metrics registry.
///
/// # Errors
/// When a metric cannot be registered.
pub fn metrics(settings: &Settings) -> anyhow::Result<Arc<Prometheus>> {
    Ok(Arc::new(Prometheus::new(settings.metrics_max_devices)?))
}

/// The object store: S3 at `FILES_S3_ENDPOINT`, or the embedded s3s store.
///
/// # Errors
/// When the embedded store cannot start or the S3 configuration is unusable.
pub async fn object_store(
    settings: &StoreSettings,
    metrics: Arc<dyn Metrics>,
    profile: &mut Profile,
) -> anyhow::Result<Objects> {
    let (config, embedded) = match settings {
        StoreSettings::S3(config) => {
            profile.say(format!(
                "object store: S3 at {} bucket {}",
                files_adapters::s3::redacted_endpoint(config.endpoint.as_str()),
                config.bucket
            ));
            ((**config).clone(), None)
        }
        StoreSettings::Embedded { listen, bucket, region } => {
            let root = tempfile::Builder::new()
                .prefix("files-embedded-s3-")
                .tempdir()
                .context("cannot create the embedded store's directory")?;
            let (access_key, secret_key) = (format!("dev{}", uuid::Uuid::new_v4().simple()), random_secret());
            let (stored_tx, stored) = mpsc::unbounded_channel();
            let store = EmbeddedS3::start(
                EmbeddedS3Config {
                    root: root.path().to_owned(),
                    listen: *listen,
                    access_key: access_key.clone(),
                    secret_key: secret_key.clone(),
                    bucket: bucket.clone(),
                },
                stored_tx,
            )
            .await
            .context("FILES_EMBEDDED_S3_LISTEN: cannot start the embedded S3 store")?;
            profile.say(format!(
                "object store: embedded S3 (s3s-fs) at {} in {} (deleted on exit)",
                store.endpoint(),
                root.path().display()
            ));
            let endpoint = store.endpoint().parse().context("embedded store endpoint")?;
            let config = S3Config {
                region: region.clone(),
                bucket: bucket.clone(),
                ..S3Config::new(endpoint, access_key, secret_key)
            };
            (config, Some(EmbeddedStore { store, stored, root }))
        }
    };
    Ok(Objects {
        signer: Arc::new(S3Signer::new(&config).context("FILES_S3_ENDPOINT")?),
        objects: Arc::new(
            S3Objects::new(&config)
                .context("FILES_S3_ENDPOINT")?
                .with_metrics(metrics),
        ),
        embedded,
    })
}

/// The token verifier: the DSTS keys from a URL or a file, or the development key. The
/// periodic refresh of keys from a URL goes to `tasks`.
///
/// # Errors
/// When the keys cannot be loaded.
pub async fn token_verifier(
    settings: &Settings,
    metrics: Arc<dyn Metrics>,
    profile: &mut Profile,
    tasks: &mut Tasks,
) -> anyhow::Result<Arc<dyn TokenVerifier>> {
    let jwt = settings.tokens.jwt.clone();
    let verifier = match &settings.tokens.keys {
        KeySource::DevKey => {
            let path = settings.dev_dir.join(DEV_KEY_FILE);
            let key = DevKey::load_or_create(&path).with_context(|| format!("FILES_DEV_DIR: {}", path.display()))?;
            profile.say(format!(
                "tokens: development key {} (mint one with `files-server dev-token`)",
                path.display()
            ));
            key.verifier(jwt)?
        }
        KeySource::File(path) => {
            profile.say(format!("tokens: keys from {}", path.display()));
            JwksVerifier::from_key_file(jwt, path).context("FILES_JWKS_FILE")?
        }
        KeySource::Url(source) => {
            profile.say(format!("tokens: keys from {}", source.redacted_url()));
            let source = RemoteJwks {
                metrics: metrics.clone(),
                ..source.clone()
            };
            JwksVerifier::from_url(jwt, source).await.context("FILES_JWKS_URL")?
        }
    };
    if let Some(refresh) = verifier.background() {
        tasks.spawn_until_stopped("jwks refresh", refresh);
    }
    Ok(Arc::new(verifier.with_metrics(metrics)))
}

/// The metadata store and its outbox: Postgres (migrated first), or in memory.
///
/// # Errors
/// When the database cannot be set up or migrated.
pub async fn metadata_store(
    settings: &Settings,
    metrics: Arc<dyn Metrics>,
    profile: &mut Profile,
) -> anyhow::Result<Arc<dyn ServerStore>> {
    let Some(config) = &settings.database else {
        profile.say("metadata: in memory (lost on exit)");
        return Ok(Arc::new(MemoryMetadataStore::new()));
    };
    let store = PostgresStore::new(config.clone())
        .context("FILES_DATABASE_URL")?
        .with_metrics(metrics);
    let applied = store
        .migrate()
        .await
        .context("FILES_DATABASE_URL: applying migrations")?;
    profile.say(format!(
        "metadata: PostgreSQL ({applied} migrations applied at start-up)"
    ));
    Ok(Arc::new(store))
}

/// The cache and the rate limiter: Redis (the limiter shared by every instance, with this
/// instance's own count while Redis fails), or both in memory. Redis is reported by
/// readiness; its near cache counts in `metrics`, and keeps its key tracking in `tasks`.
///
/// # Errors
/// When the Redis configuration is unusable.
pub fn cache(
    settings: &Settings,
    metrics: Arc<dyn Metrics>,
    profile: &mut Profile,
    optional: &mut OptionalDependencies,
    tasks: &mut Tasks,
) -> anyhow::Result<(Arc<dyn Cache>, Arc<dyn RateLimiter>)> {
    let Some(config) = &settings.redis else {
        profile.say("cache and rate limits: in memory");
        return Ok((Arc::new(MemoryCache::new()), Arc::new(LocalRateLimiter::default())));
    };
    profile.say(format!(
        "cache and rate limits: Redis, keys under {}:",
        config.key_prefix
    ));
    let cache = Arc::new(
        RedisCache::new(config.clone())
            .context("FILES_REDIS_URL")?
            .with_metrics(metrics),
    );
    // The task only starts the tracking connection's own thread and waits for it: a busy
    // runtime here delays neither its invalidations nor its ping. Stopping it stops the thread.
    if let Some(tracking) = cache.background() {
        tasks.spawn_until_stopped("near cache tracking", tracking);
    }
    optional.0.push(("cache", cache.clone()));
    let shared = RedisRateLimiter::new(RedisCache::clone(&cache));
    let limiter = FallbackRateLimiter::new(Arc::new(shared), LocalRateLimiter::default());
    Ok((cache, Arc::new(limiter)))
}

/// The notifier: RabbitMQ, or the log. The broker is reported by readiness.
#[must_use]
pub fn notifier(
    amqp: Option<&AmqpSettings>,
    profile: &mut Profile,
    optional: &mut OptionalDependencies,
) -> Arc<dyn Notifier> {
    let Some(amqp) = amqp else {
        profile.say("events: logged only (no broker)");
        return Arc::new(LogNotifier);
    };
    profile.say(format!(
        "events: RabbitMQ exchange {} at {}",
        amqp.config.exchange,
        amqp.config.redacted_url()
    ));
    let publisher = Arc::new(AmqpPublisher::new(amqp.config.clone()));
    optional.0.push(("broker", publisher.clone()));
    publisher
}

#[async_trait]
impl Probe for RedisCache {
    async fn probe(&self) -> Result<(), PortError> {
        self.ping().await
    }
}

#[async_trait]
impl Probe for AmqpPublisher {
    async fn probe(&self) -> Result<(), PortError> {
        self.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use files_core::{NoMetrics, ObjectKey, ports::error_chain};
    use files_testkit::services::ClosedPort;

    use super::{Profile, object_store};
    use crate::config::Settings;

    #[tokio::test]
    async fn credentials_in_the_s3_endpoint_are_never_shown() {
        let closed = ClosedPort::bind().unwrap_or_else(|e| panic!("a closed port: {e}"));
        let endpoint = format!(
            "http://user:s3cret-in-userinfo@127.0.0.1:{}/?token=s3cret-in-query",
            closed.port()
        );
        let settings = Settings::from_vars(
            [
                ("FILES_S3_ENDPOINT", endpoint.as_str()),
                ("FILES_S3_ACCESS_KEY", "GK1"),
                ("FILES_S3_SECRET_KEY", "s3cret-key"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap_or_else(|e| panic!("settings: {e}"));
        assert!(!format!("{settings:?}").contains("s3cret"), "{settings:?}");

        let mut profile = Profile::default();
        let objects = object_store(&settings.store, Arc::new(NoMetrics), &mut profile)
            .await
            .unwrap_or_else(|e| panic!("object store: {e:#}"));
        let shown = profile.0.join("\n");
        assert!(
            shown.contains(&format!(
                "object store: S3 at http://***@127.0.0.1:{}/?*** bucket files",
                closed.port()
            )),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");

        // A call that gets no answer: its error (logged with a 503) names neither the endpoint's
        // credentials nor the pre-signed URL's signature.
        let key: ObjectKey = format!("{}/_tenant/{}", uuid::Uuid::new_v4(), uuid::Uuid::now_v7())
            .parse()
            .unwrap_or_else(|e| panic!("key: {e:?}"));
        let error = objects
            .objects
            .inspect(&key)
            .await
            .err()
            .unwrap_or_else(|| panic!("a closed port answered"));
        let chain = error_chain(&error);
        assert!(
            !chain.contains("s3cret") && !chain.contains("X-Amz-Signature") && !chain.contains("GK1"),
            "{chain}"
        );

        // Nor does a value that is not a URL.
        let refused = Settings::from_vars(
            [
                ("FILES_S3_ENDPOINT", "http://user:s3cret@[::1"),
                ("FILES_S3_ACCESS_KEY", "GK1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            refused.starts_with("FILES_S3_ENDPOINT") && !refused.contains("s3cret"),
            "{refused}"
        );
    }
}
