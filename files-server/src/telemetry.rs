//! Logging and request telemetry in one place: the log format (`FILES_LOG_FORMAT`), and the
//! request middleware: a span per request with its id (`crate::request_id`), route, method,
//! status and (once the token is verified) tenant and device ids — never a token or a secret —
//! one log line per request, and the HTTP metrics, counted through the [`HttpMetrics`] that
//! start-up registers as app data. Everything else is counted by the service through the core's
//! metrics port; `GET /metrics` is a route (`routes/health.rs`).

use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::config::{LogFormat, LogSettings};
use crate::http_metrics::HttpMetrics;
use crate::request_id;
use crate::routes::resource::RoutePattern;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber: `FILES_LOG` (or `RUST_LOG`) filters, default `info`; lines
/// go to stderr, human-readable or one JSON object each (`FILES_LOG_FORMAT`). With JSON, a
/// panic is logged as a JSON line too. Logged values may come from callers (an object key in a
/// bucket notification, a store's error text): JSON escapes them, and the human format writes
/// them through [`EscapingFields`], so no value can start a line of its own or send a terminal
/// escape sequence.
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
        LogFormat::Human => builder
            .fmt_fields(EscapingFields)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
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

/// The human log format's fields (`message key=value ...`, as tracing-subscriber's default
/// writes them) with every character that could forge a line or drive a terminal escaped:
/// control characters (newlines, `ESC`, ...), the Unicode line and paragraph separators and the
/// bidi controls. A `%` field is written with its `Display`, raw: this is where it is escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log.*` fields carry a `log` record's metadata, which the line already shows.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let mut out = Escaping(&mut self.writer);
        self.result = match field.name() {
            "message" => write!(out, "{separator}{value:?}"),
            name => write!(out, "{separator}{}={value:?}", name.strip_prefix("r#").unwrap_or(name)),
        };
    }
}

/// A writer that escapes what [`EscapingFields`] must not write raw.
struct Escaping<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| must_escape(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Control characters, line and paragraph separators, bidi embeddings, overrides and isolates.
fn must_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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
    let metrics = req.app_data::<web::Data<dyn HttpMetrics>>().cloned();
    let id = request_id::of_request(&req);
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
    let mut response = request_id::scope(id.clone(), next.call(req).instrument(span.clone())).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::REQUEST_ID_HEADER, value);
    }
    // Set by the resource that served the request (`routes::resource::resource`); none for a path no
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

#[cfg(test)]
mod tests {
    use files_testkit::logs::CapturedLog;

    use super::EscapingFields;

    #[test]
    fn the_human_format_escapes_what_could_forge_a_line_or_drive_a_terminal() {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        // The human format as `init` installs it, into a buffer.
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapingFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let key = "t/d/f\n2030-01-01T00:00:00Z  INFO forged: \u{1b}[31mred\u{1b}[0m\r\u{2028}\u{202e}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", route = %key, status = tracing::field::Empty);
            span.record("status", tracing::field::display(key));
            span.in_scope(|| {
                tracing::info!(key = %key, debug = ?key, plain = key, "skipped {key}");
            });
        });
        let text = captured.text();
        assert_eq!(
            text.matches('\n').count(),
            1,
            "one line, ended by its own newline: {text:?}"
        );
        assert!(text.ends_with('\n'), "{text:?}");
        for raw in ['\u{1b}', '\r', '\u{2028}', '\u{202e}'] {
            assert!(!text.contains(raw), "U+{:04X} written raw: {text:?}", u32::from(raw));
        }
        // Escaped, still readable, in the message, every kind of field and the span's fields.
        assert_eq!(text.matches("f\\n2030").count(), 6, "{text}");
        assert!(text.contains("\\u{1b}[31mred"), "{text}");
        assert!(text.contains("key=t/d/f\\n2030"), "{text}");
        assert!(text.contains("route=t/d/f\\n2030"), "{text}");
    }
}
