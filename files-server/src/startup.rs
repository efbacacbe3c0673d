//! Start-up: the adapters wired (`crate::wiring`), the service and its relay built, the
//! background tasks started, the server bound.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context as _;
use files_adapters::amqp::AmqpIngest;
use files_adapters::embedded_s3::{EmbeddedS3, StoredObject};
use files_core::{FilesService, Metrics, ObjectCreated, Ports};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::extract::BodyTimeout;
use crate::ingest::QueueIngest;
use crate::readiness::{OptionalDependencies, Readiness};
use crate::routes::{self, EventsSecret};
use crate::telemetry;
use crate::wiring::{self, Overrides, Profile};

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own address (`FILES_METRICS_LISTEN`), and its port.
    metrics_server: Option<(u16, Server)>,
    readiness: JoinHandle<()>,
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

impl Application {
    /// Builds everything from `settings`, with `overrides` taking the place of configured adapters.
    ///
    /// # Errors
    /// When an adapter cannot be set up or the listener cannot be bound.
    pub async fn build(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        let prometheus = wiring::metrics(&settings)?;
        let metrics: Arc<dyn Metrics> = prometheus.clone();
        let mut profile = Profile::default();
        let mut optional = OptionalDependencies::default();

        let objects = wiring::object_store(&settings.store, metrics.clone(), &mut profile).await?;
        let tokens = match overrides.tokens {
            Some(tokens) => tokens,
            None => wiring::token_verifier(&settings, metrics.clone(), &mut profile).await?,
        };
        let store = match overrides.metadata {
            Some(store) => store,
            None => wiring::metadata_store(&settings, metrics.clone(), &mut profile).await?,
        };
        let cache = match overrides.cache {
            Some(cache) => cache,
            None => wiring::cache(&settings, &mut profile, &mut optional)?,
        };
        let notifier = match overrides.notifier {
            Some(notifier) => notifier,
            None => wiring::notifier(settings.amqp.as_ref(), &mut profile, &mut optional),
        };
        let (service, relay) = FilesService::builder(Ports {
            tokens,
            store,
            signer: objects.signer,
            objects: objects.objects,
            notifier,
        })
        .cache(cache)
        .metrics(metrics)
        .config(settings.limits.clone())
        .build();
        let relay = tokio::spawn(relay.run());

        let queue_ingest = settings.amqp.as_ref().and_then(|amqp| {
            let queue = amqp.ingest_queue.clone()?;
            profile.say(format!("bucket notifications: consumed from queue {queue}"));
            let handler = Arc::new(QueueIngest {
                service: service.clone(),
            });
            Some(AmqpIngest::start(amqp.config.clone(), queue, handler))
        });
        let embedded = objects.embedded.map(|embedded| Embedded {
            store: embedded.store,
            ingest: tokio::spawn(ingest_stored(service.clone(), embedded.stored)),
            _root: embedded.root,
        });

        let readiness = Readiness::measure(service.clone(), optional).await;
        let readiness_task = readiness.spawn();

        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("FILES_LISTEN: cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = settings
            .metrics_listen
            .map(|address| {
                std::net::TcpListener::bind(address)
                    .with_context(|| format!("FILES_METRICS_LISTEN: cannot listen on {address}"))
            })
            .transpose()?;
        let metrics_on_api = metrics_listener.is_none();
        let service = web::Data::new(service);
        let prometheus = web::Data::from(prometheus);
        let secret = web::Data::new(EventsSecret(settings.events_secret));
        let readiness = web::Data::from(readiness);
        let body_timeout = web::Data::new(BodyTimeout(settings.body_timeout));
        let api_prometheus = prometheus.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(telemetry::observe))
                .app_data(service.clone())
                .app_data(api_prometheus.clone())
                .app_data(secret.clone())
                .app_data(readiness.clone())
                .app_data(body_timeout.clone())
                .configure(routes::configure)
                .configure(|cfg| {
                    if metrics_on_api {
                        telemetry::configure(cfg);
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => {
                let metrics_port = listener.local_addr()?.port();
                profile.say(format!("metrics: /metrics on port {metrics_port} only"));
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(prometheus.clone())
                        .configure(telemetry::configure)
                        .default_service(web::to(routes::not_found))
                })
                .workers(1)
                .listen(listener)?
                .shutdown_timeout(1)
                .run();
                Some((metrics_port, server))
            }
        };
        Ok(Self {
            port,
            server,
            metrics_server,
            readiness: readiness_task,
            profile: profile.0,
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

    /// The port of `/metrics` when it has its own (`FILES_METRICS_LISTEN`).
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
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

    /// Serves until stopped (SIGINT, SIGTERM or [`ServerHandle::stop`]), then stops the relay,
    /// the ingest and the embedded store.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = match self.metrics_server {
            None => self.server.await,
            Some((_, metrics)) => {
                let metrics_handle = metrics.handle();
                let metrics = tokio::spawn(metrics);
                let result = self.server.await;
                metrics_handle.stop(true).await;
                let _ = metrics.await;
                result
            }
        };
        self.readiness.abort();
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

/// The embedded store's successful PUTs, fed to the same ingest path as bucket notifications.
async fn ingest_stored(service: FilesService, mut stored: mpsc::UnboundedReceiver<StoredObject>) {
    while let Some(object) = stored.recv().await {
        let created = ObjectCreated {
            bucket: object.bucket,
            key: object.key,
            size: Some(object.size),
        };
        match service.ingest(&created).await {
            Ok(outcome) => tracing::debug!(key = %created.key, ?outcome, "stored object ingested"),
            Err(error) => tracing::warn!(key = %created.key, %error, "stored object not ingested"),
        }
    }
}
