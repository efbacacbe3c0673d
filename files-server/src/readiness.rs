//! Readiness, measured in the background: a task asks every dependency a cheap question once
//! per interval and keeps the answer; `/readyz` only reads it. A flood of probes therefore
//! costs the dependencies nothing more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use files_core::{FilesService, PortError};
use serde_json::{Value, json};

/// How often the dependencies are asked.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A dependency the service can do without for a while (the cache, the broker): its state is
/// reported, but it being down does not make the service unready.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Whether it answers.
    ///
    /// # Errors
    /// The port's error when it does not.
    async fn probe(&self) -> Result<(), PortError>;
}

/// The optional dependencies, by name.
#[derive(Default)]
pub struct OptionalDependencies(pub Vec<(&'static str, Arc<dyn Probe>)>);

impl std::fmt::Debug for OptionalDependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

/// The last measurement: ready or not, and the body `/readyz` answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The database and the object store answered.
    pub ready: bool,
    /// `{"status": "ready" | "degraded" | "not_ready", "dependencies": {name: "ok" | "unavailable"}}`.
    pub body: Value,
}

/// The readiness of one instance, kept fresh by [`Readiness::run`].
#[derive(Debug)]
pub struct Readiness {
    service: FilesService,
    optional: OptionalDependencies,
    report: RwLock<Report>,
    /// Set once shutting down: `/readyz` answers 503 from then on.
    draining: AtomicBool,
}

fn state(name: &str, result: &Result<(), PortError>) -> Value {
    if let Err(error) = result {
        tracing::warn!(dependency = name, error = %files_core::ports::error_chain(error), "readiness check failed");
    }
    json!(if result.is_ok() { "ok" } else { "unavailable" })
}

impl Readiness {
    /// Measures once (so the first `/readyz` already tells the truth) and returns the state.
    pub async fn measure(service: FilesService, optional: OptionalDependencies) -> Arc<Self> {
        let readiness = Arc::new(Self {
            service,
            optional,
            report: RwLock::new(Report {
                ready: false,
                body: json!({"status": "not_ready", "dependencies": {}}),
            }),
            draining: AtomicBool::new(false),
        });
        readiness.refresh().await;
        readiness
    }

    /// Re-measures every [`INTERVAL`], for as long as it runs (its owner stops it by dropping
    /// it).
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(INTERVAL).await;
            self.refresh().await;
        }
    }

    /// The last measurement; not ready, with the status `shutting_down`, once [`Self::drain`]
    /// was called.
    #[must_use]
    pub fn report(&self) -> Report {
        let mut report = self.report.read().unwrap_or_else(PoisonError::into_inner).clone();
        if self.draining.load(Ordering::Relaxed) {
            report.ready = false;
            report.body["status"] = json!("shutting_down");
        }
        report
    }

    /// The instance is shutting down: from now on it is not ready, whatever its dependencies
    /// say, so load balancers stop sending it requests.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Asks every dependency: 200 when the database and the object store answer, else 503;
    /// the cache and the broker are reported too, and without them the service still serves
    /// (`"status": "degraded"`).
    async fn refresh(&self) {
        let mut dependencies = serde_json::Map::new();
        let mut ready = true;
        for (dependency, result) in self.service.readiness().await {
            ready &= result.is_ok();
            dependencies.insert(dependency.name().to_owned(), state(dependency.name(), &result));
        }
        let mut degraded = false;
        for (name, probe) in &self.optional.0 {
            let result = probe.probe().await;
            degraded |= result.is_err();
            dependencies.insert((*name).to_owned(), state(name, &result));
        }
        let status = match (ready, degraded) {
            (false, _) => "not_ready",
            (true, true) => "degraded",
            (true, false) => "ready",
        };
        let report = Report {
            ready,
            body: json!({"status": status, "dependencies": dependencies}),
        };
        *self.report.write().unwrap_or_else(PoisonError::into_inner) = report;
    }
}
