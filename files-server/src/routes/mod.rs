//! The HTTP API: thin handlers that extract, call a use case and map the result. Every path is
//! written out here, in the order actix matches them (a literal segment such as `upload-url`
//! before the `{file_id}` it would otherwise match).

mod files;
mod health;
pub mod resource;
mod storage_events;
mod tenants;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use resource::resource;

pub use storage_events::EventsSecret;

/// Registers every route of the API but `/metrics` (see [`metrics`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    use Method as M;
    cfg.service(resource("/healthz", [(M::GET, web::to(health::healthz))]))
        .service(resource("/readyz", [(M::GET, web::to(health::readyz))]))
        .service(resource(
            "/v1/storage/events",
            [(M::POST, web::to(storage_events::storage_events))],
        ))
        // A device's own files.
        .service(resource(
            "/v1/tenants/{tenant_id}/devices/{device_id}/files/upload-url",
            [(M::POST, web::to(files::upload_url))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/devices/{device_id}/files/download-url",
            [(M::POST, web::to(files::download_url))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/devices/{device_id}/files",
            [(M::GET, web::to(files::list))],
        ))
        // The tenant's own files.
        .service(resource(
            "/v1/tenants/{tenant_id}/files/upload-url",
            [(M::POST, web::to(files::upload_url))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/files/download-url",
            [(M::POST, web::to(files::download_url))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/files",
            [(M::GET, web::to(files::list))],
        ))
        // Any file of the tenant, by id.
        .service(resource(
            "/v1/tenants/{tenant_id}/files/{file_id}",
            [
                (M::GET, web::to(files::get_file)),
                (M::DELETE, web::to(files::delete_file)),
            ],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/files/{file_id}/complete",
            [(M::POST, web::to(files::complete))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/files/{file_id}/parts",
            [
                (M::POST, web::to(files::part_tickets)),
                (M::GET, web::to(files::stored_parts)),
            ],
        ))
        // Tenants: settings and usage.
        .service(resource(
            "/v1/tenants/{tenant_id}/settings",
            [
                (M::PUT, web::to(tenants::put_settings)),
                (M::GET, web::to(tenants::get_settings)),
            ],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/usage",
            [(M::GET, web::to(tenants::tenant_usage))],
        ))
        .service(resource(
            "/v1/tenants/{tenant_id}/devices/{device_id}/usage",
            [(M::GET, web::to(tenants::device_usage))],
        ));
}

/// Registers `GET /metrics`: on the API's address, or alone on `FILES_METRICS_LISTEN`.
pub fn metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics", [(Method::GET, web::to(health::metrics))]));
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
