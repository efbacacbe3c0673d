//! The HTTP API: thin handlers that extract, call a use case and map the result.

mod files;
mod health;
mod storage_events;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::ApiError;

pub use storage_events::EventsSecret;

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    storage_events::configure(cfg);
    files::configure(cfg);
}

/// A resource whose unsupported methods get a JSON 405.
pub(crate) fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}

/// The answer for paths that match no route.
///
/// # Errors
/// Always: a JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
