//! `POST /v1/storage/events`: the store's bucket notifications, behind a shared secret.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use files_core::FilesService;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::extract::read_body;
use crate::notifications;

/// The webhook's shared secret; `None` turns the webhook off.
#[derive(Debug, Clone)]
pub struct EventsSecret(pub Option<SecretString>);

/// Notifications may batch many records; they are small JSON.
const MAX_NOTIFICATION_BODY: usize = 1024 * 1024;

/// Accepts `Authorization: Bearer <secret>` or the bare secret (MinIO sends its `auth_token`
/// as the whole header value).
fn authorized(req: &HttpRequest, secret: &SecretString) -> bool {
    let Some(value) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let value = value.trim();
    let presented = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    bool::from(presented.as_bytes().ct_eq(secret.expose_secret().as_bytes()))
}

pub(super) async fn storage_events(
    req: HttpRequest,
    payload: web::Payload,
    secret: web::Data<EventsSecret>,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = &secret.0 else {
        return Err(ApiError::not_found(
            "the storage events webhook is not configured (FILES_EVENTS_SECRET)",
        ));
    };
    if !authorized(&req, secret) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_secret",
            "wrong or missing webhook secret",
        ));
    }
    // Only now, with the secret checked, is the body read (bounded in size and time).
    let body = read_body(&req, payload, MAX_NOTIFICATION_BODY).await?;
    let records =
        notifications::parse(&body).map_err(|e| ApiError::bad_request("invalid_notification", e.to_string()))?;
    let ingested = service.ingest_records(records).await?;
    Ok(HttpResponse::Ok().json(json!({"completed": ingested.completed, "skipped": ingested.skipped})))
}
