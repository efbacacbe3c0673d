//! Logging and request telemetry in one place: the log format (`FILES_LOG_FORMAT`), the
//! request id (`x-request-id`), a span per request with its id, route, method, status and (once
//! the token is verified) tenant and device ids — never a token or a secret — one log line per
//! request, the HTTP metrics, and `GET /metrics`. Everything else is counted by the service
//! through the core's metrics port.

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use files_adapters::prometheus::Prometheus;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};
use crate::error::ApiError;
use crate::routes::RoutePattern;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest `x-request-id` taken from a caller; a longer one (or one with other than
/// visible ASCII characters) is replaced by a fresh id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, for error bodies.
#[must_use]
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber: `FILES_LOG` (or `RUST_LOG`) filters, default `info`; lines
/// go to stderr, human-readable or one JSON object each (`FILES_LOG_FORMAT`). With JSON, a
/// panic is logged as a JSON line too.
pub fn init(log: &LogSettings) {
    let filter = log
        .filter
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let installed = match log.format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(log.format);
        if log.format == LogFormat::Json {
            std::panic::set_hook(Box::new(|info| {
                let location = info.location().map(ToString::to_string).unwrap_or_default();
                tracing::error!(panic = %info.payload_as_str().unwrap_or("(not a string)"), %location, "panicked");
            }));
        }
    }
}

/// Reports an error that stops the process: a log line once logging is set up; before that (a
/// configuration error), a JSON line when `FILES_LOG_FORMAT=json` is in the environment, so
/// JSON logs stay JSON, else a plain line on stderr.
#[allow(clippy::print_stderr)]
pub fn fatal(error: &anyhow::Error) {
    let error = format!("{error:#}");
    if FORMAT.get().is_some() {
        tracing::error!(%error, "files-server stopped");
    } else if std::env::var("FILES_LOG_FORMAT").is_ok_and(|f| f.trim() == "json") {
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = serde_json::json!({
            "timestamp": timestamp,
            "level": "ERROR",
            "message": "files-server stopped",
            "error": error,
            "target": module_path!(),
        });
        eprintln!("{line}");
    } else {
        eprintln!("files-server: {error}");
    }
}

/// The caller's id when it is sane (1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters),
/// else a fresh one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// Routes that probes and scrapers call all the time: their request lines are `debug`.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// The request middleware: request id, span, one log line, latency, metrics.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().as_str().to_owned();
    let metrics = req.app_data::<web::Data<Prometheus>>().cloned();
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        device_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    // Handlers' and extractors' errors become responses inside this scope (actix turns them
    // into `Ok` responses where they happen), so their bodies carry the id.
    let mut response = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    // Set by the resource that served the request (`routes::resource`); none for a path no
    // resource matched.
    let route = response
        .request()
        .app_data::<RoutePattern>()
        .map_or_else(|| Arc::<str>::from("unmatched"), |pattern| pattern.0.clone());
    span.record("route", &*route);
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe_http(&route, &method, status, elapsed);
    }
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if is_probe(&route) {
            tracing::debug!(elapsed_ms, "request done");
        } else {
            tracing::info!(elapsed_ms, "request done");
        }
    });
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
