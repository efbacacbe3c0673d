//! Start-up: the adapters wired (`crate::wiring`), the service and its relay built, the
//! background tasks started (each by name, in one [`Tasks`]), the server bound; and the
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context as _;
use files_adapters::amqp::AmqpIngest;
use files_adapters::embedded_s3::{EmbeddedS3, StoredObject};
use files_adapters::rate::LocalRateLimiter;
use files_core::{FilesService, Housekeeping, Metrics, ObjectCreated, Ports, RateLimiter, SettingsStore, UsageStore};
use tokio::sync::mpsc;

use crate::config::{Settings, ShutdownSettings};
use crate::extract::{BodyBudget, BodyTimeout};
use crate::http_metrics::HttpMetrics;
use crate::ingest::QueueIngest;
use crate::readiness::{OptionalDependencies, Readiness};
use crate::routes::{self, EventsSecret};
use crate::tasks::Tasks;
use crate::telemetry;
use crate::wiring::{self, Overrides, Profile};

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own address (`FILES_METRICS_LISTEN`), and its port.
    metrics_server: Option<(u16, Server)>,
    readiness: Arc<Readiness>,
    profile: Vec<String>,
    embedded: Option<Embedded>,
    /// Every background task: the adapters' (key tracking, key refresh), the relay, the
    /// janitor, the ingests, the readiness measurement.
    tasks: Tasks,
    shutdown: ShutdownSettings,
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
    _root: tempfile::TempDir,
}

/// How often the download URLs counted here are added to the usage store (the usage routes
/// are at most this, and the flush, behind for downloads) and the store's usage deltas folded.
const USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
        let mut tasks = Tasks::new();

        let objects = wiring::object_store(&settings.store, metrics.clone(), &mut profile).await?;
        let tokens = match overrides.tokens {
            Some(tokens) => tokens,
            None => wiring::token_verifier(&settings, metrics.clone(), &mut profile, &mut tasks).await?,
        };
        let store = match overrides.metadata {
            Some(store) => store,
            None => wiring::metadata_store(&settings, metrics.clone(), &mut profile).await?,
        };
        let housekeeping: Arc<dyn Housekeeping> = store.clone();
        let settings_store: Arc<dyn SettingsStore> = store.clone();
        let usage: Arc<dyn UsageStore> = store.clone();
        let (cache, rate_limiter) = match overrides.cache {
            Some(cache) => (cache, Arc::new(LocalRateLimiter::default()) as Arc<dyn RateLimiter>),
            None => wiring::cache(&settings, metrics.clone(), &mut profile, &mut optional, &mut tasks)?,
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
        .tenancy(settings_store, usage)
        .rate_limiter(rate_limiter)
        .build();
        // The relay finishes its pass under way when told to stop, so it leaves no claim.
        tasks.spawn("outbox relay", |stop| relay.run_until(stop.cancelled_owned()));
        // Started after the relay, so stopped before it: a file it completes records its event
        // for the relay to publish.
        let janitor = service.janitor(housekeeping, settings.janitor);
        if let Some(flusher) = service.usage_flusher(USAGE_FLUSH_INTERVAL) {
            tasks.spawn("usage flusher", |stop| flusher.run_until(stop.cancelled_owned()));
        }
        tasks.spawn("janitor", |stop| janitor.run_until(stop.cancelled_owned()));
        if let Some(amqp) = &settings.amqp
            && let Some(queue) = amqp.ingest_queue.clone()
        {
            profile.say(format!("bucket notifications: consumed from queue {queue}"));
            let handler = Arc::new(QueueIngest {
                service: service.clone(),
            });
            let config = amqp.config.clone();
            tasks.spawn("amqp ingest", |stop| {
                AmqpIngest::run_until(config, queue, handler, stop.cancelled_owned())
            });
        }
        let embedded = objects.embedded.map(|embedded| {
            tasks.spawn_until_stopped("embedded store ingest", ingest_stored(service.clone(), embedded.stored));
            Embedded {
                store: embedded.store,
                _root: embedded.root,
            }
        });

        let readiness = Readiness::measure(service.clone(), optional).await;
        tasks.spawn_until_stopped("readiness", readiness.clone().run());

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
        let prometheus: web::Data<dyn HttpMetrics> = web::Data::from(prometheus as Arc<dyn HttpMetrics>);
        let secret = web::Data::new(EventsSecret(settings.events_secret));
        let readiness_handle = readiness.clone();
        let readiness = web::Data::from(readiness);
        let body_timeout = web::Data::new(BodyTimeout(settings.body_timeout));
        // One budget for every worker: the bound is the process's.
        let body_budget = web::Data::new(BodyBudget::new(BodyBudget::DEFAULT_BYTES));
        let api_prometheus = prometheus.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(telemetry::observe))
                .app_data(service.clone())
                .app_data(api_prometheus.clone())
                .app_data(secret.clone())
                .app_data(readiness.clone())
                .app_data(body_timeout.clone())
                .app_data(body_budget.clone())
                .configure(routes::configure)
                .configure(|cfg| {
                    if metrics_on_api {
                        routes::metrics(cfg);
                    }
                })
                .default_service(web::to(routes::not_found))
        });
        if let Some(workers) = settings.workers {
            server = server.workers(workers.get());
        }
        let server = server
            .listen(listener)?
            // Signals are handled by `run_until` (readiness first, then the listener).
            .disable_signals()
            .shutdown_timeout(settings.shutdown.grace.as_secs())
            .run();
        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => {
                let metrics_port = listener.local_addr()?.port();
                profile.say(format!("metrics: /metrics on port {metrics_port} only"));
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(prometheus.clone())
                        .configure(routes::metrics)
                        .default_service(web::to(routes::not_found))
                })
                .workers(1)
                .listen(listener)?
                .disable_signals()
                .shutdown_timeout(1)
                .run();
                Some((metrics_port, server))
            }
        };
        Ok(Self {
            port,
            server,
            metrics_server,
            readiness: readiness_handle,
            profile: profile.0,
            embedded,
            tasks,
            shutdown: settings.shutdown,
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

    /// Serves until stopped with [`ServerHandle::stop`], then stops the rest as
    /// [`Application::run_until`] does.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes (the binary passes [`termination`]: SIGTERM or
    /// SIGINT) or the server is stopped with its handle. On `shutdown`: `/readyz` answers 503
    /// at once, the listener keeps accepting for `FILES_SHUTDOWN_DELAY_SECS` (so load balancers
    /// see it before new connections are refused), then closes; requests in flight get up to
    /// `FILES_SHUTDOWN_GRACE_SECS` to finish. Then the background tasks stop, the last started
    /// first ([`Tasks::shutdown`]), within what is left of the grace period (at least a
    /// second): the ingests, the janitor, the relay (which finishes its pass under way: every
    /// event it claimed is sent or released), the adapters' work; and the embedded store stops.
    /// Meanwhile a task that ends by itself is logged.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self {
            server,
            metrics_server,
            readiness,
            embedded,
            mut tasks,
            shutdown: settings,
            ..
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        let metrics_server = metrics_server.map(|(_, metrics)| (metrics.handle(), tokio::spawn(metrics)));
        let stopping = tokio::select! {
            _ = &mut server => Instant::now(),
            () = tasks.watch() => Instant::now(),
            () = shutdown => {
                readiness.drain();
                tracing::info!(
                    delay_secs = settings.delay.as_secs(),
                    grace_secs = settings.grace.as_secs(),
                    "shutting down: /readyz answers 503; the listener closes after the delay, then requests in flight may finish within the grace period"
                );
                tokio::time::sleep(settings.delay).await;
                let stopping = Instant::now();
                handle.stop(true).await;
                stopping
            }
        };
        let result = server.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some((handle, task)) = metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        let left = settings
            .grace
            .saturating_sub(stopping.elapsed())
            .max(Duration::from_secs(1));
        tasks.shutdown(left).await;
        if let Some(embedded) = embedded {
            embedded.store.shutdown().await;
        }
        tracing::info!("stopped");
        result
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("SIGINT received");
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
            Ok(outcome) => tracing::debug!(key = ?created.key, ?outcome, "stored object ingested"),
            Err(error) => tracing::warn!(key = %created.key, %error, "stored object not ingested"),
        }
    }
}
