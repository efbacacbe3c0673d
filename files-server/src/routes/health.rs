//! Liveness and readiness (`/metrics` is served by `crate::telemetry`).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::resource;
use crate::readiness::Readiness;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", [(Method::GET, web::to(healthz))]))
        .service(resource("/readyz", [(Method::GET, web::to(readyz))]));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when the database and the object store answered at the last measurement, else 503;
/// every dependency is named with its state (see `crate::readiness`: measured in the
/// background, not per request).
async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let report = readiness.report();
    if report.ready {
        HttpResponse::Ok().json(report.body)
    } else {
        HttpResponse::ServiceUnavailable().json(report.body)
    }
}
