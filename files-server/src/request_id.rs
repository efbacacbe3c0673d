//! The request id (`x-request-id`): taken from the caller when it is sane, else made; kept in a
//! task-local while the request is served, so error bodies can name it without being handed it.
//! A leaf: it imports no other module of the crate.

use std::future::Future;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderName;

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

/// Runs `serve` with `id` as the task's request id.
pub async fn scope<F: Future>(id: String, serve: F) -> F::Output {
    REQUEST_ID.scope(id, serve).await
}

/// The caller's id when it is sane (1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters),
/// else a fresh one.
#[must_use]
pub fn of_request(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}
