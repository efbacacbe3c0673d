//! Logging and request telemetry in one place: a span per request with its route, method,
//! status and (once the token is verified) tenant and device ids — never a token or a secret —
//! the HTTP metrics, and `GET /metrics`. Everything else is counted by the service through the
//! core's metrics port.

use std::io::IsTerminal as _;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use files_adapters::prometheus::Prometheus;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::error::ApiError;

/// Installs the global subscriber: `FILES_LOG` (or `RUST_LOG`) filters, default `info`.
pub fn init() {
    let filter = std::env::var("FILES_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The request middleware: span, latency, metrics.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let metrics = req.app_data::<web::Data<Prometheus>>().cloned();
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        tenant_id = tracing::field::Empty,
        device_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.call(req).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe_http(&route, &method, status, elapsed);
    }
    span.in_scope(|| tracing::debug!(elapsed_ms = elapsed.as_millis(), "request done"));
    Ok(response)
}

/// Registers `GET /metrics`: every series in the Prometheus text format.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::routes::resource(
        "/metrics",
        [(actix_web::http::Method::GET, web::to(metrics))],
    ));
}

async fn metrics(metrics: web::Data<Prometheus>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
