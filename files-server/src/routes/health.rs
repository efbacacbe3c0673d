//! Liveness, readiness and `GET /metrics`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::http_metrics::HttpMetrics;
use crate::readiness::Readiness;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when the database and the object store answered at the last measurement, else 503;
/// every dependency is named with its state (see `crate::readiness`: measured in the
/// background, not per request).
pub(super) async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let report = readiness.report();
    if report.ready {
        HttpResponse::Ok().json(report.body)
    } else {
        HttpResponse::ServiceUnavailable().json(report.body)
    }
}

/// Every series in the Prometheus text format.
pub(super) async fn metrics(metrics: web::Data<dyn HttpMetrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
