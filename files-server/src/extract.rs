//! Extractors: the bearer-token principal and JSON bodies whose errors name the field at fault.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use files_core::{FilesService, Principal};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The principal of a request, from its `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let service = req.app_data::<web::Data<FilesService>>().cloned();
        Box::pin(async move {
            let service = service.ok_or_else(|| ApiError::internal("FilesService is not registered"))?;
            let Some(token) = token else {
                return Err(ApiError::missing_token());
            };
            let principal = service.authenticate(&token).await?;
            let span = tracing::Span::current();
            if let Some(tenant) = principal.tenant() {
                span.record("tenant_id", tracing::field::display(tenant));
            }
            if let Some(device) = principal.device() {
                span.record("device_id", tracing::field::display(device));
            }
            // Every request of a principal counts against its tenant's rate limits, before it
            // does anything else (and after the log knows whose it is).
            service.admit_request(&principal).await?;
            Ok(Self(principal))
        })
    }
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes, deserialized with errors that name the
/// field: `invalid_json` (not JSON), `invalid_body` (not an object), `missing_field`,
/// `invalid_type` / `invalid_value` (with `field`), `body_too_large` (413).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = LimitedBody::<MAX_JSON_BODY>::from_request(req, payload);
        Box::pin(async move { parse_json(&body.await?.0).map(Self) })
    }
}

/// How long a request body may take to arrive: a slow body is a 408 `body_timeout`, so a
/// client that trickles bytes cannot hold a connection and its buffer for long. Registered as
/// app data (`FILES_BODY_TIMEOUT_SECS`); [`BodyTimeout::DEFAULT`] when absent.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    /// Ten seconds: every body this API takes is small JSON.
    pub const DEFAULT: Self = Self(Duration::from_secs(10));

    fn of(req: &HttpRequest) -> Duration {
        req.app_data::<web::Data<Self>>().map_or(Self::DEFAULT.0, |t| t.0)
    }
}

/// How many bytes of request bodies the server holds at once beyond each body's first
/// [`BodyBudget::FREE_BYTES`], all requests together. Each body is read whole before it is
/// parsed (at most [`MAX_JSON_BODY`]), so without a common bound any number of connections that
/// each send most of a large body and stop would hold that much memory each, which the allocator
/// then keeps. A body takes its share as its buffer grows (what arrives, not what it declares)
/// and gives it back once read. When the budget is spent, a body that needs more is refused at
/// once with 503 `server_busy`, and its connection drains without holding it: the usual bodies
/// (a few hundred bytes) never need the budget, so only large ones (plans of hundreds of parts
/// and more) may have to be sent again. Registered as app data; [`BodyBudget::DEFAULT_BYTES`] for the whole process
/// when absent.
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// 32 MiB: 32 bodies of the largest size at once.
    pub const DEFAULT_BYTES: usize = 32 * 1024 * 1024;

    /// What every body may hold without the budget: 16 KiB, the order of what the web server
    /// keeps for each connection anyway, and more than the usual bodies (a plan of up to about
    /// 240 parts).
    pub const FREE_BYTES: usize = 16 * 1024;

    /// A budget of `bytes`.
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    fn of(req: &HttpRequest) -> Self {
        static PROCESS: OnceLock<BodyBudget> = OnceLock::new();
        req.app_data::<web::Data<Self>>().map_or_else(
            || PROCESS.get_or_init(|| Self::new(Self::DEFAULT_BYTES)).clone(),
            |budget| budget.get_ref().clone(),
        )
    }

    /// `bytes` more of the budget, or 503 `server_busy` when they are not free now.
    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.0.clone().try_acquire_many_owned(bytes).ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_busy",
                    "too many large request bodies are arriving at once; retry shortly",
                )
            })
    }
}

/// A body of at most `LIMIT` bytes; a larger one is a JSON 413 `body_too_large`, refused as soon
/// as its `Content-Length` says so or its bytes pass the limit; one that takes longer than the
/// [`BodyTimeout`] is a 408 `body_timeout`.
#[derive(Debug)]
pub struct LimitedBody<const LIMIT: usize>(pub web::Bytes);

impl<const LIMIT: usize> FromRequest for LimitedBody<LIMIT> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload.take(), LIMIT);
        Box::pin(async move { body.await.map(Self) })
    }
}

/// Reads a body of at most `limit` bytes within the request's [`BodyTimeout`], holding no more
/// than its share of the [`BodyBudget`]. Handlers that must check something before reading (the
/// webhook's secret) take `web::Payload` and call this.
///
/// # Errors
/// 413 `body_too_large`, 408 `body_timeout`, 503 `server_busy` when the budget is spent, or
/// 400 `invalid_body` when the body cannot be read.
pub fn read_body<S, E>(
    req: &HttpRequest,
    mut payload: S,
    limit: usize,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static
where
    S: futures::Stream<Item = Result<web::Bytes, E>> + Unpin + 'static,
    E: std::fmt::Display,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let timeout = BodyTimeout::of(req);
    let budget = BodyBudget::of(req);
    async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let read = async {
            // The buffer grows to exactly what each step needs (doubling, up to the limit); what
            // it holds beyond the free bytes is first taken from the budget, and given back when
            // the body has been read (or the read fails).
            let mut body: Vec<u8> = Vec::new();
            let mut shares: Option<OwnedSemaphorePermit> = None;
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request("invalid_body", format!("cannot read body: {e}")))?;
                let needed = body.len() + chunk.len();
                if needed > limit {
                    return Err(too_large(limit));
                }
                if needed > body.capacity() {
                    let mut doubled = body.capacity().saturating_mul(2).min(limit);
                    if needed <= BodyBudget::FREE_BYTES {
                        // A body within its free bytes never needs the budget.
                        doubled = doubled.min(BodyBudget::FREE_BYTES);
                    }
                    let grown = needed.max(doubled);
                    let held = shares.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
                    let share = grown.saturating_sub(BodyBudget::FREE_BYTES).saturating_sub(held);
                    if share > 0 {
                        let share = budget.take(share)?;
                        match &mut shares {
                            Some(shares) => shares.merge(share),
                            None => shares = Some(share),
                        }
                    }
                    body.reserve_exact(grown - body.len());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(web::Bytes::from(body))
        };
        tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} s", timeout.as_secs()),
            ))
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body must be at most {limit} bytes"),
    )
}

/// serde_json's message without its " at line L column C" suffix.
fn without_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |at| &message[..at])
}

/// Deserializes JSON, naming the field at fault in the error.
///
/// # Errors
/// An [`ApiError`] 400 with a code for the kind of problem.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| json_error(None, &error))?;
    // serde would also read a struct from an array of its fields; the API takes objects only.
    if !value.is_object() {
        return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = if error.path().iter().next().is_none() {
            None
        } else {
            Some(error.path().to_string())
        };
        json_error(path.as_deref(), error.inner())
    })
}

/// `path` is the field at fault, `None` for the body as a whole.
fn json_error(path: Option<&str>, error: &serde_json::Error) -> ApiError {
    let message = error.to_string();
    let message = without_position(&message);
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {message}"))
        }
        Category::Data => {
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
            {
                return ApiError::bad_field("missing_field", field, format!("missing field {field}"));
            }
            let Some(path) = path else {
                return ApiError::bad_request("invalid_body", format!("the body must be a JSON object: {message}"));
            };
            let code = if message.starts_with("invalid type") {
                "invalid_type"
            } else {
                "invalid_value"
            };
            ApiError::bad_field(code, path, format!("{path}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Upload {
        file_name: String,
        size: Option<u64>,
    }

    fn code(body: &str) -> (&'static str, Option<String>) {
        match parse_json::<Upload>(body.as_bytes()) {
            Ok(_) => ("ok", None),
            Err(e) => {
                let text = format!("{e}");
                (e.code(), Some(text))
            }
        }
    }

    /// Reads a body sent in chunks of `chunk` bytes under `budget`.
    async fn read(budget: &BodyBudget, size: usize, chunk: usize) -> Result<usize, &'static str> {
        let req = actix_web::test::TestRequest::default()
            .app_data(web::Data::new(budget.clone()))
            .to_http_request();
        let chunks: Vec<Result<web::Bytes, std::convert::Infallible>> = (0..size)
            .step_by(chunk)
            .map(|at| Ok(web::Bytes::from(vec![b' '; chunk.min(size - at)])))
            .collect();
        read_body(&req, futures::stream::iter(chunks), MAX_JSON_BODY)
            .await
            .map(|body| body.len())
            .map_err(|e| e.code())
    }

    #[tokio::test]
    async fn bodies_beyond_their_free_bytes_share_one_budget() {
        const KIB: usize = 1024;
        let budget = BodyBudget::new(100 * KIB);
        assert_eq!(read(&budget, 900 * KIB, 8 * KIB).await, Err("server_busy"));
        assert_eq!(read(&budget, 60 * KIB, 8 * KIB).await, Ok(60 * KIB));
        // Given back once read.
        assert_eq!(budget.0.available_permits(), 100 * KIB);
        // Spent elsewhere: what fits in the free bytes is still read, the rest refused at once.
        let spent = budget.take(95 * KIB);
        assert!(spent.is_ok());
        for chunk in [KIB, 3 * KIB, 5 * KIB, 7 * KIB] {
            let free = read(&budget, BodyBudget::FREE_BYTES, chunk).await;
            assert_eq!(free, Ok(BodyBudget::FREE_BYTES), "chunks of {chunk}");
        }
        assert_eq!(read(&budget, 40 * KIB, KIB).await, Err("server_busy"));
        drop(spent);
        assert_eq!(read(&budget, 40 * KIB, KIB).await, Ok(40 * KIB));
        assert_eq!(budget.0.available_permits(), 100 * KIB);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(code(r#"{"file_name": "a"}"#).0, "ok");
        assert_eq!(code(r#"{"file_name": "a""#).0, "invalid_json");
        assert_eq!(code("").0, "invalid_json");
        assert_eq!(code(r#"{"file_name": "a"} x"#).0, "invalid_json");
        assert_eq!(code("[1]").0, "invalid_body");
        assert_eq!(code("{}").0, "missing_field");
        assert_eq!(code(r#"{"file_name": 5}"#).0, "invalid_type");
        assert_eq!(code(r#"{"file_name": "a", "size": -1}"#).0, "invalid_value");
        assert!(
            code(r#"{"file_name": "a", "size": "x"}"#)
                .1
                .is_some_and(|m| m.contains("size"))
        );
    }
}
