//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use files_adapters::prometheus::Metrics;
use files_core::FilesService;
use serde_json::json;

use super::resource;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/metrics").route(web::get().to(metrics)));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when every dependency answers, else 503; each dependency named with its state.
async fn readyz(service: web::Data<FilesService>) -> HttpResponse {
    let checks = service.readiness().await;
    let ready = checks.iter().all(|(_, result)| result.is_ok());
    let dependencies: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(dependency, result)| {
            if let Err(error) = &result {
                tracing::warn!(dependency = dependency.name(), %error, "readiness check failed");
            }
            let state = if result.is_ok() { "ok" } else { "unavailable" };
            (dependency.name().to_owned(), json!(state))
        })
        .collect();
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "dependencies": dependencies});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
