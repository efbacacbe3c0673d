//! The one place where errors become HTTP responses: stable `snake_case` codes, the brief's
//! body `{"error": {"code", "message", "request_id"}}` (plus `field` when one field is at
//! fault).

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use files_core::{
    CompleteError, DependencyError, DownloadError, InvalidId, InvalidPlan, InvalidToken, InvalidValue, LookupError,
    Mismatch, PartsError, QuotaExceeded, QuotaRefusal, RateLimited, TenancyError, TokenError, UploadError,
};
use serde::Serialize;

/// An error on its way to the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<Box<str>>,
    /// Logged (with its whole chain) for 5xx answers, never shown.
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    challenge: Option<&'static str>,
    /// The parts a `parts_missing` answer names.
    missing_parts: Option<Box<[u16]>>,
    /// For a refusal by a limit (a quota or a rate limit): what the answer says of it. Boxed:
    /// most errors have none, and an `ApiError` stays small.
    limit: Option<Box<Limit>>,
}

/// What a refusal by a limit adds to its answer.
#[derive(Debug)]
struct Limit {
    /// The quota it names (`error.quota`), when a quota refused.
    quota: Option<&'static str>,
    /// The seconds of the `Retry-After` header, when there is a time to retry at.
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_parts: Option<&'a [u16]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'a str>,
    /// The request's `x-request-id` (see `crate::request_id`), absent outside a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl ApiError {
    /// An error with a status, a stable code and a message for the caller.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
            challenge: None,
            missing_parts: None,
            limit: None,
        }
    }

    /// A 400 about one field.
    pub fn bad_field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into().into_boxed_str()),
            ..Self::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// A 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 for a route or resource that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 500 whose cause is logged and not shown.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }

    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    fn unauthorized(code: &'static str, message: impl Into<String>, challenge: &'static str) -> Self {
        Self {
            challenge: Some(challenge),
            ..Self::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    /// 401 for a request without a bearer token (RFC 6750: no error code in the challenge).
    pub fn missing_token() -> Self {
        Self::unauthorized("missing_token", "a bearer token is required", r#"Bearer realm="files""#)
    }

    fn invalid_token(reason: InvalidToken) -> Self {
        Self::unauthorized(
            "invalid_token",
            format!("the access token is not valid: {reason}"),
            r#"Bearer realm="files", error="invalid_token""#,
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            let cause = self.cause.as_deref().map(|c| files_core::ports::error_chain(c));
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, cause = cause.as_deref().unwrap_or(""), "request failed");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(challenge) = self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)));
        }
        if let Some(seconds) = self.limit.as_ref().and_then(|limit| limit.retry_after) {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                missing_parts: self.missing_parts.as_deref(),
                quota: self.limit.as_ref().and_then(|limit| limit.quota),
                request_id: crate::request_id::current_request_id(),
            },
        })
    }
}

/// [`files_core::PortError::Unavailable`]: 503 naming the dependency (retry later);
/// [`files_core::PortError::Failed`]: 500 `internal` (retrying will not help). Either way the
/// cause chain is logged, never shown.
impl From<DependencyError> for ApiError {
    fn from(error: DependencyError) -> Self {
        if !error.is_unavailable() {
            return Self::internal(error);
        }
        let message = format!("{} unavailable, try again later", error.dependency.name());
        Self {
            cause: Some(Box::new(error)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", message)
        }
    }
}

impl From<files_core::Forbidden> for ApiError {
    fn from(error: files_core::Forbidden) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(reason) => Self::invalid_token(reason),
            TokenError::Unavailable(cause) => Self {
                cause: Some(cause),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency_unavailable",
                    "token key set unavailable, try again later",
                )
            },
        }
    }
}

impl From<InvalidId> for ApiError {
    fn from(error: InvalidId) -> Self {
        Self::bad_field("invalid_path", error.what, error.to_string())
    }
}

impl From<InvalidValue> for ApiError {
    fn from(error: InvalidValue) -> Self {
        let (code, field) = match error {
            InvalidValue::FileName(_) => ("invalid_file_name", "file_name"),
            InvalidValue::Sha256 => ("invalid_sha256", "sha256"),
            InvalidValue::ContentType => ("invalid_content_type", "content_type"),
        };
        Self::bad_field(code, field, error.to_string())
    }
}

impl From<files_core::ExpiryOutOfRange> for ApiError {
    fn from(error: files_core::ExpiryOutOfRange) -> Self {
        Self::bad_field("invalid_expires_in", "expires_in", error.to_string())
    }
}

impl From<files_core::SignError> for ApiError {
    fn from(error: files_core::SignError) -> Self {
        Self::internal(error)
    }
}

fn file_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "file_not_found", "no such file")
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::Forbidden(e) => e.into(),
            UploadError::TooLarge { .. } => Self {
                field: Some("size".into()),
                ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", error.to_string())
            },
            UploadError::NeedsMultipart { .. } => Self::bad_field("multipart_required", "size", error.to_string()),
            UploadError::Plan(plan) => {
                let (code, field) = match plan {
                    InvalidPlan::Empty => ("invalid_size", "size"),
                    InvalidPlan::PartTooSmall { .. } => ("part_too_small", "parts.size"),
                    InvalidPlan::PartTooLarge { .. } => ("part_too_large", "parts.size"),
                    InvalidPlan::TooManyParts { .. } => ("too_many_parts", "parts.size"),
                    InvalidPlan::DigestCount { .. } => ("part_count_mismatch", "parts.sha256"),
                    InvalidPlan::OnePartDigest { .. } => ("part_sha256_mismatch", "parts.sha256"),
                };
                Self::bad_field(code, field, plan.to_string())
            }
            UploadError::Sign(e) => e.into(),
            UploadError::Expiry(e) => e.into(),
            UploadError::ContentTypeNotAllowed { .. } => Self {
                field: Some("content_type".into()),
                ..Self::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content_type_not_allowed",
                    error.to_string(),
                )
            },
            UploadError::Quota(exceeded) => exceeded.into(),
            UploadError::Dependency(e) => e.into(),
        }
    }
}

/// The tenant's `bytes` and `files`: 413 `quota_exceeded` (only a delete frees room); a device's
/// day: 429 `daily_quota_exceeded`; a device's pending uploads: 429 `too_many_pending_uploads`;
/// `error.quota` names the quota, and `Retry-After` says when a device may ask again.
impl From<QuotaExceeded> for ApiError {
    fn from(exceeded: QuotaExceeded) -> Self {
        let quota = exceeded.refusal.quota();
        let (status, code) = match exceeded.refusal {
            QuotaRefusal::Bytes | QuotaRefusal::Files => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
            QuotaRefusal::DeviceBytesPerDay => (StatusCode::TOO_MANY_REQUESTS, "daily_quota_exceeded"),
            QuotaRefusal::DevicePendingUploads => (StatusCode::TOO_MANY_REQUESTS, "too_many_pending_uploads"),
        };
        Self {
            limit: Some(Box::new(Limit {
                quota: Some(quota),
                retry_after: exceeded.retry_after.map(|after| after.as_secs().max(1)),
            })),
            ..Self::new(
                status,
                code,
                format!("the upload does not fit the tenant's {quota} quota"),
            )
        }
    }
}

/// Over a device's or a tenant's request rate: 429 `rate_limited` with `Retry-After`.
impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        Self {
            limit: Some(Box::new(Limit {
                quota: None,
                retry_after: Some(limited.retry_after_secs),
            })),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this device or tenant; retry after Retry-After seconds",
            )
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            TenancyError::Invalid(invalid) => {
                Self::bad_field("invalid_settings", invalid.field.clone(), invalid.to_string())
            }
            TenancyError::NotKept => Self::internal(error),
            TenancyError::Dependency(e) => e.into(),
        }
    }
}

fn upload_expired() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "upload_expired",
        "the multipart upload has expired or was aborted: request a new upload",
    )
}

impl From<PartsError> for ApiError {
    fn from(error: PartsError) -> Self {
        match error {
            PartsError::Forbidden(e) => e.into(),
            PartsError::NotFound => file_not_found(),
            PartsError::NotMultipart => Self::new(StatusCode::CONFLICT, "not_multipart", error.to_string()),
            PartsError::Completed => Self::new(StatusCode::CONFLICT, "upload_already_completed", error.to_string()),
            PartsError::Expired => upload_expired(),
            PartsError::PartNumbers(message) => Self::bad_field("invalid_part_numbers", "part_numbers", message),
            PartsError::Sign(e) => e.into(),
            PartsError::Expiry(e) => e.into(),
            PartsError::Dependency(e) => e.into(),
        }
    }
}

impl From<DownloadError> for ApiError {
    fn from(error: DownloadError) -> Self {
        match error {
            DownloadError::Forbidden(e) => e.into(),
            DownloadError::NotFound => file_not_found(),
            DownloadError::Expired => Self::new(
                StatusCode::GONE,
                "upload_expired",
                "the upload of this file was never completed and has expired",
            ),
            DownloadError::NotCompleted => Self::new(
                StatusCode::CONFLICT,
                "upload_not_completed",
                "the upload of this file has not been completed yet",
            ),
            DownloadError::Sign(e) => e.into(),
            DownloadError::Expiry(e) => e.into(),
            DownloadError::Dependency(e) => e.into(),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::Forbidden(e) => e.into(),
            LookupError::NotFound => file_not_found(),
            LookupError::Dependency(e) => e.into(),
        }
    }
}

impl From<CompleteError> for ApiError {
    fn from(error: CompleteError) -> Self {
        match error {
            CompleteError::Forbidden(e) => e.into(),
            CompleteError::NotFound => file_not_found(),
            CompleteError::NotUploaded => Self::new(
                StatusCode::CONFLICT,
                "upload_missing",
                "the store has no object for this file yet: PUT it to the upload URL first",
            ),
            CompleteError::Mismatch(Mismatch::OverLimit { .. }) => Self {
                field: Some("size".into()),
                ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", error.to_string())
            },
            CompleteError::Mismatch(m) => Self::new(
                StatusCode::CONFLICT,
                match m {
                    Mismatch::Size { .. } | Mismatch::OverLimit { .. } => "size_mismatch",
                    Mismatch::Sha256 | Mismatch::Parts => "checksum_mismatch",
                },
                error.to_string(),
            ),
            CompleteError::PartsMissing(ref parts) => Self {
                missing_parts: Some(parts.as_slice().into()),
                ..Self::new(StatusCode::CONFLICT, "parts_missing", error.to_string())
            },
            CompleteError::UploadExpired => upload_expired(),
            CompleteError::Dependency(e) => e.into(),
        }
    }
}
