//! Wiring: configuration in, adapters chosen, the service built, the server bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context as _;
use files_adapters::amqp::{AmqpConfig, AmqpIngest, AmqpPublisher};
use files_adapters::embedded_s3::{EmbeddedS3, EmbeddedS3Config, StoredObject};
use files_adapters::jwks::{ClaimNames, DevKey, JwksVerifier, JwtConfig, RefreshOutcome, RemoteJwks};
use files_adapters::log_notifier::LogNotifier;
use files_adapters::memory::{MemoryCache, MemoryMetadataStore};
use files_adapters::postgres::{PostgresConfig, PostgresStore};
use files_adapters::prometheus::Metrics;
use files_adapters::redis::{RedisCache, RedisConfig};
use files_adapters::s3::{S3Config, S3Objects, S3Signer};
use files_core::{
    Cache, FilesService, Notifier, ObjectCreated, Outbox, Ports, ServiceConfig, SystemClock, TokenVerifier,
    TransactionalStore, WriteThrough,
};
use secrecy::ExposeSecret as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{AmqpSettings, DatabaseSettings, KeySource, Settings, StoreSettings, TokenSettings};
use crate::ingest::QueueIngest;
use crate::relay::{self, RelaySettings};
use crate::routes::{self, EventsSecret, OptionalDependencies};
use crate::telemetry;

/// Adapters a caller (a test, an embedding program) supplies instead of the configured ones.
#[derive(Default)]
pub struct Overrides {
    /// The metadata store with its outbox (default: in memory).
    pub metadata: Option<Arc<dyn TransactionalStore>>,
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

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    profile: Vec<String>,
    embedded: Option<Embedded>,
    relay: JoinHandle<()>,
    queue_ingest: Option<AmqpIngest>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Embedded {
    store: EmbeddedS3,
    ingest: JoinHandle<()>,
    _root: tempfile::TempDir,
}

fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Application {
    /// Builds everything from `settings`, with `overrides` taking the place of configured adapters.
    ///
    /// # Errors
    /// When an adapter cannot be set up or the listener cannot be bound.
    pub async fn build(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new(settings.metrics_max_devices)?);
        let mut profile = Vec::new();

        let (s3_config, embedded_parts) = match &settings.store {
            StoreSettings::Embedded { listen, bucket, region } => {
                let root = tempfile::Builder::new()
                    .prefix("files-embedded-s3-")
                    .tempdir()
                    .context("cannot create the embedded store's directory")?;
                let (access_key, secret_key) = (format!("dev{}", uuid::Uuid::new_v4().simple()), random_secret());
                let (stored, stored_rx) = mpsc::unbounded_channel();
                let store = EmbeddedS3::start(
                    EmbeddedS3Config {
                        root: root.path().to_owned(),
                        listen: *listen,
                        access_key: access_key.clone(),
                        secret_key: secret_key.clone(),
                        bucket: bucket.clone(),
                    },
                    stored,
                )
                .await
                .context("FILES_EMBEDDED_S3_LISTEN: cannot start the embedded S3 store")?;
                profile.push(format!(
                    "object store: embedded S3 (s3s-fs) at {} in {} (deleted on exit)",
                    store.endpoint(),
                    root.path().display()
                ));
                let config = S3Config {
                    endpoint: store.endpoint().parse().context("embedded store endpoint")?,
                    public_endpoint: None,
                    region: region.clone(),
                    bucket: bucket.clone(),
                    access_key,
                    secret_key,
                    path_style: true,
                    timeout: Duration::from_secs(5),
                };
                (config, Some((store, stored_rx, root)))
            }
            StoreSettings::S3(s3) => {
                profile.push(format!("object store: S3 at {} bucket {}", s3.endpoint, s3.bucket));
                let config = S3Config {
                    endpoint: s3.endpoint.clone(),
                    public_endpoint: s3.public_endpoint.clone(),
                    region: s3.region.clone(),
                    bucket: s3.bucket.clone(),
                    access_key: s3.access_key.clone(),
                    secret_key: s3.secret_key.expose_secret().to_owned(),
                    path_style: s3.path_style,
                    timeout: s3.timeout,
                };
                (config, None)
            }
        };
        let signer = Arc::new(S3Signer::new(&s3_config).context("FILES_S3_ENDPOINT")?);
        let objects = Arc::new(
            S3Objects::new(&s3_config)
                .context("FILES_S3_ENDPOINT")?
                .with_observer(metrics.clone()),
        );

        let tokens = match overrides.tokens {
            Some(tokens) => tokens,
            None => token_verifier(&settings, &metrics, &mut profile).await?,
        };

        let store: Arc<dyn TransactionalStore> = match (overrides.metadata, &settings.database) {
            (Some(store), _) => store,
            (None, Some(database)) => {
                let store = postgres_store(database)?.with_observer(metrics.clone());
                let applied = store
                    .migrate()
                    .await
                    .context("FILES_DATABASE_URL: applying migrations")?;
                profile.push(format!(
                    "metadata: PostgreSQL ({applied} migrations applied at start-up)"
                ));
                Arc::new(store)
            }
            (None, None) => {
                profile.push("metadata: in memory (lost on exit)".to_owned());
                Arc::new(MemoryMetadataStore::new())
            }
        };
        let mut optional = OptionalDependencies::default();
        let cache: Arc<dyn Cache> = match (overrides.cache, &settings.redis) {
            (Some(cache), _) => cache,
            (None, Some(redis)) => {
                profile.push(format!("cache: Redis, keys under {}:", redis.key_prefix));
                let cache = Arc::new(
                    RedisCache::new(RedisConfig {
                        url: redis.url.expose_secret().to_owned(),
                        key_prefix: redis.key_prefix.clone(),
                        ttl: redis.ttl,
                        pool_size: redis.pool_size,
                        timeout: redis.timeout,
                    })
                    .context("FILES_REDIS_URL")?,
                );
                optional.0.push(("cache", cache.clone()));
                cache
            }
            (None, None) => {
                profile.push("cache: in memory".to_owned());
                Arc::new(MemoryCache::new())
            }
        };
        let notifier: Arc<dyn Notifier> = match (overrides.notifier, &settings.amqp) {
            (Some(notifier), _) => notifier,
            (None, Some(amqp)) => {
                let config = amqp_config(amqp);
                config.validate().context("FILES_AMQP_URL")?;
                profile.push(format!(
                    "events: RabbitMQ exchange {} at {}",
                    amqp.exchange,
                    config.redacted_url()
                ));
                let publisher = Arc::new(AmqpPublisher::new(config));
                optional.0.push(("broker", publisher.clone()));
                publisher
            }
            (None, None) => {
                profile.push("events: logged only (no broker)".to_owned());
                Arc::new(LogNotifier)
            }
        };
        let outbox: Arc<dyn Outbox> = store.clone();
        let relay = tokio::spawn(relay::run(outbox, notifier, metrics.clone(), RelaySettings::default()));
        let metadata = Arc::new(WriteThrough::new(store, cache, metrics.clone()));
        let service = FilesService::new(
            Ports {
                tokens,
                metadata,
                signer,
                objects,
                clock: Arc::new(SystemClock),
            },
            ServiceConfig {
                upload_expiry: settings.limits.upload_expiry,
                download_expiry: settings.limits.download_expiry,
                max_upload_size: settings.limits.max_upload_size,
                ..ServiceConfig::default()
            },
        );

        let queue_ingest = settings.amqp.as_ref().and_then(|amqp| {
            let queue = amqp.ingest_queue.clone()?;
            profile.push(format!("bucket notifications: consumed from queue {queue}"));
            let handler = Arc::new(QueueIngest {
                service: service.clone(),
                metrics: metrics.clone(),
            });
            Some(AmqpIngest::start(amqp_config(amqp), queue, handler))
        });
        let embedded = embedded_parts.map(|(store, stored_rx, root)| Embedded {
            store,
            ingest: tokio::spawn(ingest_stored(service.clone(), metrics.clone(), stored_rx)),
            _root: root,
        });

        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("FILES_LISTEN: cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let service = web::Data::new(service);
        let metrics = web::Data::from(metrics);
        let secret = web::Data::new(EventsSecret(settings.events_secret));
        let optional = web::Data::new(optional);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(telemetry::observe))
                .app_data(service.clone())
                .app_data(metrics.clone())
                .app_data(secret.clone())
                .app_data(optional.clone())
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            port,
            server,
            profile,
            embedded,
            relay,
            queue_ingest,
        })
    }

    /// The port the API listens on.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The embedded store's address, in the embedded profile.
    #[must_use]
    pub fn embedded_store(&self) -> Option<SocketAddr> {
        self.embedded.as_ref().map(|e| e.store.local_addr())
    }

    /// One line per concern: which adapter serves it.
    #[must_use]
    pub fn profile(&self) -> &[String] {
        &self.profile
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT, SIGTERM or [`ServerHandle::stop`]), then stops the embedded store.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.relay.abort();
        if let Some(ingest) = self.queue_ingest {
            ingest.shutdown().await;
        }
        if let Some(embedded) = self.embedded {
            embedded.ingest.abort();
            embedded.store.shutdown().await;
        }
        result
    }
}

fn amqp_config(amqp: &AmqpSettings) -> AmqpConfig {
    AmqpConfig {
        exchange: amqp.exchange.clone(),
        timeout: amqp.timeout,
        ..AmqpConfig::new(amqp.url.expose_secret())
    }
}

/// The Postgres metadata store of the settings (not yet migrated).
///
/// # Errors
/// When the URL cannot make a pool.
pub fn postgres_store(database: &DatabaseSettings) -> anyhow::Result<PostgresStore> {
    PostgresStore::new(PostgresConfig {
        url: database.url.expose_secret().to_owned(),
        pool_size: database.pool_size,
        connect_timeout: database.connect_timeout,
        query_timeout: database.query_timeout,
    })
    .context("FILES_DATABASE_URL")
}

async fn token_verifier(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    profile: &mut Vec<String>,
) -> anyhow::Result<Arc<dyn TokenVerifier>> {
    let tokens: &TokenSettings = &settings.tokens;
    let config = JwtConfig {
        leeway: tokens.leeway,
        claims: ClaimNames {
            tenant_id: tokens.claim_tenant_id.clone(),
            device_id: tokens.claim_device_id.clone(),
            scope: tokens.claim_scope.clone(),
        },
        ..JwtConfig::new(tokens.issuer.clone(), tokens.audience.clone())
    };
    Ok(match &tokens.keys {
        KeySource::DevKey => {
            let path = settings.dev_dir.join(DEV_KEY_FILE);
            let key = DevKey::load_or_create(&path).with_context(|| format!("FILES_DEV_DIR: {}", path.display()))?;
            profile.push(format!(
                "tokens: development key {} (mint one with `files-server dev-token`)",
                path.display()
            ));
            Arc::new(key.verifier(config)?)
        }
        KeySource::File(path) => {
            profile.push(format!("tokens: keys from {}", path.display()));
            Arc::new(JwksVerifier::from_key_file(config, path).context("FILES_JWKS_FILE")?)
        }
        KeySource::Url(url) => {
            profile.push(format!("tokens: keys from {url}"));
            let source = RemoteJwks {
                refresh_interval: tokens.refresh_interval,
                min_refetch_interval: tokens.min_refetch_interval,
                on_refresh: Some({
                    let metrics = metrics.clone();
                    Arc::new(move |outcome: RefreshOutcome| metrics.key_set_refresh(outcome.label()))
                }),
                ..RemoteJwks::new(url.as_str())
            };
            Arc::new(JwksVerifier::from_url(config, source).await.context("FILES_JWKS_URL")?)
        }
    })
}

/// The embedded store's successful PUTs, fed to the same ingest path as bucket notifications.
async fn ingest_stored(
    service: FilesService,
    metrics: Arc<Metrics>,
    mut stored: mpsc::UnboundedReceiver<StoredObject>,
) {
    while let Some(object) = stored.recv().await {
        let created = ObjectCreated {
            bucket: object.bucket,
            key: object.key,
            size: Some(object.size),
        };
        match service.ingest(&created).await {
            Ok(outcome) => {
                tracing::debug!(key = %created.key, ?outcome, "stored object ingested");
                metrics.storage_event(outcome.label());
            }
            Err(error) => tracing::warn!(key = %created.key, %error, "stored object not ingested"),
        }
    }
}
