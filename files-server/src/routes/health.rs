//! Liveness and readiness (`/metrics` is served by `crate::telemetry`).

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use files_core::{FilesService, PortError};
use serde_json::json;

use super::resource;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", [(Method::GET, web::to(healthz))]))
        .service(resource("/readyz", [(Method::GET, web::to(readyz))]));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

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

fn state(name: &str, result: &Result<(), PortError>) -> serde_json::Value {
    if let Err(error) = result {
        tracing::warn!(dependency = name, error = %files_core::ports::error_chain(error), "readiness check failed");
    }
    json!(if result.is_ok() { "ok" } else { "unavailable" })
}

/// 200 when the database and the object store answer, else 503; every dependency is named with
/// its state. The cache and the broker are reported too; without them the service still serves
/// (`"status": "degraded"`, 200).
async fn readyz(service: web::Data<FilesService>, optional: web::Data<OptionalDependencies>) -> HttpResponse {
    let mut dependencies = serde_json::Map::new();
    let mut ready = true;
    for (dependency, result) in service.readiness().await {
        ready &= result.is_ok();
        dependencies.insert(dependency.name().to_owned(), state(dependency.name(), &result));
    }
    let mut degraded = false;
    for (name, probe) in &optional.0 {
        let result = probe.probe().await;
        degraded |= result.is_err();
        dependencies.insert((*name).to_owned(), state(name, &result));
    }
    let status = match (ready, degraded) {
        (false, _) => "not_ready",
        (true, true) => "degraded",
        (true, false) => "ready",
    };
    let body = json!({"status": status, "dependencies": dependencies});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
