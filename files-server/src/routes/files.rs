//! `/v1/{scope}/files/...` and `/v1/tenants/{tenant_id}/files/{file_id}...`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use files_core::{
    ContentType, DeviceId, DownloadRequest, DownloadTarget, FileId, FileName, FileRecord, FilesService, Owner,
    PartTicket, PartsRequest, PartsStatus, PartsSummary, PresignedRequest, Scope, Sha256, TenantId, Ticket,
    UploadRequest,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody};

pub(super) fn segment<T: std::str::FromStr<Err = files_core::InvalidId>>(
    req: &HttpRequest,
    name: &str,
) -> Result<T, ApiError> {
    let value = req
        .match_info()
        .get(name)
        .ok_or_else(|| ApiError::internal(format!("route without {name}")))?;
    Ok(value.parse()?)
}

/// The `{scope}` of the request's path.
fn scope(req: &HttpRequest) -> Result<Scope, ApiError> {
    let tenant: TenantId = segment(req, "tenant_id")?;
    let owner = match req.match_info().get("device_id") {
        Some(_) => Owner::Device(segment::<DeviceId>(req, "device_id")?),
        None => Owner::Tenant,
    };
    Ok(Scope { tenant, owner })
}

pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[derive(Debug, Deserialize)]
pub(super) struct UploadUrlBody {
    file_name: String,
    sha256: String,
    size: u64,
    content_type: Option<String>,
    /// Seconds.
    expires_in: Option<u64>,
    /// The part plan of a multipart upload.
    parts: Option<PartsBody>,
}

/// `"parts": {"size": PART_SIZE, "sha256": ["...", ...]}`.
#[derive(Debug, Deserialize)]
struct PartsBody {
    size: u64,
    sha256: Vec<String>,
}

/// What a caller sends to the store, and until when.
#[derive(Debug, Serialize)]
struct PresignedView {
    method: &'static str,
    url: String,
    headers: BTreeMap<String, String>,
    expires_at: String,
    /// Seconds.
    expires_in: u64,
}

impl PresignedView {
    fn new(request: PresignedRequest, expires_at: OffsetDateTime, expires_in: Duration) -> Self {
        Self {
            method: request.method,
            url: request.url,
            headers: request.headers,
            expires_at: rfc3339(expires_at),
            expires_in: expires_in.as_secs(),
        }
    }
}

#[derive(Debug, Serialize)]
struct UploadUrlResponse {
    file_id: FileId,
    /// `single`.
    upload: &'static str,
    #[serde(flatten)]
    request: PresignedView,
}

/// One part's ticket.
#[derive(Debug, Serialize)]
struct PartTicketView {
    part_number: u16,
    #[serde(flatten)]
    request: PresignedView,
}

impl From<PartTicket> for PartTicketView {
    fn from(ticket: PartTicket) -> Self {
        Self {
            part_number: ticket.part_number,
            request: PresignedView::new(ticket.request, ticket.expires_at, ticket.expires_in),
        }
    }
}

#[derive(Debug, Serialize)]
struct MultipartResponse {
    file_id: FileId,
    /// `multipart`.
    upload: &'static str,
    part_size: u64,
    part_count: u16,
    /// When the multipart upload expires (each part URL has its own `expires_at`).
    expires_at: String,
    /// Seconds.
    expires_in: u64,
    parts: Vec<PartTicketView>,
}

pub(super) async fn upload_url(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
    JsonBody(body): JsonBody<UploadUrlBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope(&req)?;
    let request = UploadRequest {
        name: FileName::parse(body.file_name)?,
        sha256: Sha256::parse(&body.sha256)?,
        size: body.size,
        content_type: body.content_type.map(ContentType::parse).transpose()?,
        expires_in: body.expires_in.map(Duration::from_secs),
    };
    if let Some(parts) = body.parts {
        let parts = PartsRequest {
            part_size: parts.size,
            sha256: parts
                .sha256
                .iter()
                .enumerate()
                .map(|(i, digest)| {
                    Sha256::parse(digest)
                        .map_err(|e| ApiError::bad_field("invalid_sha256", format!("parts.sha256[{i}]"), e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        let ticket = service
            .request_multipart_upload(&principal, scope, request, parts)
            .await?;
        let plan = ticket.record.multipart.as_ref().map(|m| &m.plan);
        return Ok(HttpResponse::Created().json(MultipartResponse {
            file_id: ticket.record.id,
            upload: "multipart",
            part_size: plan.map_or(0, files_core::PartPlan::part_size),
            part_count: plan.map_or(0, files_core::PartPlan::part_count),
            expires_at: rfc3339(ticket.expires_at),
            expires_in: ticket.expires_in.as_secs(),
            parts: ticket.parts.into_iter().map(PartTicketView::from).collect(),
        }));
    }
    let Ticket {
        record,
        request,
        expires_at,
        expires_in,
    } = service.request_upload(&principal, scope, request).await?;
    Ok(HttpResponse::Created().json(UploadUrlResponse {
        file_id: record.id,
        upload: "single",
        request: PresignedView::new(request, expires_at, expires_in),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct PartTicketsBody {
    part_numbers: Vec<u64>,
    /// Seconds.
    expires_in: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PartTicketsResponse {
    parts: Vec<PartTicketView>,
}

pub(super) async fn part_tickets(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
    JsonBody(body): JsonBody<PartTicketsBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = file_path(&req)?;
    let tickets = service
        .part_tickets(
            &principal,
            tenant,
            id,
            &body.part_numbers,
            body.expires_in.map(Duration::from_secs),
        )
        .await?;
    Ok(HttpResponse::Ok().json(PartTicketsResponse {
        parts: tickets.into_iter().map(PartTicketView::from).collect(),
    }))
}

#[derive(Debug, Serialize)]
struct PartStatusView {
    part_number: u16,
    size: u64,
    sha256: Sha256,
    stored: bool,
}

#[derive(Debug, Serialize)]
struct StoredPartsResponse {
    part_size: u64,
    part_count: u16,
    parts: Vec<PartStatusView>,
    next: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct PartsQuery {
    limit: Option<String>,
    after: Option<String>,
}

pub(super) async fn stored_parts(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = file_path(&req)?;
    let query = web::Query::<PartsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?
        .into_inner();
    let limit = page_limit(query.limit.as_deref(), PartsStatus::MAX_PAGE, PartsStatus::MAX_PAGE)?;
    let most = files_core::multipart::MAX_PARTS;
    let after = match query.after {
        None => 0,
        Some(after) => after.parse::<u16>().ok().filter(|n| *n <= most).ok_or_else(|| {
            ApiError::bad_field(
                "invalid_after",
                "after",
                format!("after must be a part number from 0 to {most} (the next of the previous page)"),
            )
        })?,
    };
    let status = service.stored_parts(&principal, tenant, id, after, limit).await?;
    Ok(HttpResponse::Ok().json(StoredPartsResponse {
        part_size: status.part_size,
        part_count: status.part_count,
        next: status.next,
        parts: status
            .parts
            .into_iter()
            .map(|p| PartStatusView {
                part_number: p.part_number,
                size: p.size,
                sha256: p.sha256,
                stored: p.stored,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct DownloadUrlBody {
    file_name: Option<String>,
    file_id: Option<String>,
    /// Seconds.
    expires_in: Option<u64>,
    disposition: Option<Disposition>,
}

/// How the store should ask a browser to treat the download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Disposition {
    /// As the store serves it by default.
    Inline,
    /// Saved under the file's name (`response-content-disposition` is signed).
    Attachment,
}

#[derive(Debug, Serialize)]
struct DownloadUrlResponse {
    file_id: FileId,
    file_name: FileName,
    #[serde(flatten)]
    request: PresignedView,
    sha256: Sha256,
    size: Option<u64>,
}

pub(super) async fn download_url(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
    JsonBody(body): JsonBody<DownloadUrlBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope(&req)?;
    let target = match (body.file_name, body.file_id) {
        (Some(name), None) => DownloadTarget::Name(FileName::parse(name)?),
        (None, Some(id)) => DownloadTarget::Id(
            id.parse()
                .map_err(|e: files_core::InvalidId| ApiError::bad_field("invalid_file_id", "file_id", e.to_string()))?,
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give either file_name or file_id, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_field(
                "missing_field",
                "file_name",
                "missing field file_name (or file_id)",
            ));
        }
    };
    let download = DownloadRequest {
        target,
        expires_in: body.expires_in.map(Duration::from_secs),
        attachment: body.disposition == Some(Disposition::Attachment),
    };
    let Ticket {
        record,
        request,
        expires_at,
        expires_in,
    } = service.request_download(&principal, scope, download).await?;
    Ok(HttpResponse::Ok().json(DownloadUrlResponse {
        file_id: record.id,
        file_name: record.name,
        request: PresignedView::new(request, expires_at, expires_in),
        sha256: record.sha256,
        size: record.size,
    }))
}

/// A file's metadata as the API shows it.
#[derive(Debug, Serialize)]
struct FileView {
    file_id: FileId,
    tenant_id: TenantId,
    device_id: Option<DeviceId>,
    file_name: FileName,
    sha256: Sha256,
    size: Option<u64>,
    content_type: Option<ContentType>,
    state: &'static str,
    created_at: String,
    completed_at: Option<String>,
    /// `object` (one PUT) or `parts` (a multipart upload).
    integrity: &'static str,
    /// A multipart upload's parts, `null` for a single PUT.
    parts: Option<PartsSummary>,
}

impl From<FileRecord> for FileView {
    fn from(record: FileRecord) -> Self {
        let parts = PartsSummary::of(&record);
        Self {
            integrity: record.integrity().as_str(),
            parts,
            file_id: record.id,
            tenant_id: record.tenant,
            device_id: record.owner.device(),
            file_name: record.name,
            sha256: record.sha256,
            size: record.size,
            content_type: record.content_type,
            state: record.state.as_str(),
            created_at: rfc3339(record.created_at),
            completed_at: record.completed_at.map(rfc3339),
        }
    }
}

/// The `?limit=` of a page: `default` when absent, else a whole number from 1 to `max`, or a
/// 400 `invalid_limit` naming `limit`.
fn page_limit<T>(asked: Option<&str>, default: T, max: T) -> Result<T, ApiError>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    let Some(asked) = asked else { return Ok(default) };
    asked
        .parse::<T>()
        .ok()
        .filter(|n| (T::from(1)..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_field(
                "invalid_limit",
                "limit",
                format!("limit must be a whole number from 1 to {max}"),
            )
        })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListResponse {
    files: Vec<FileView>,
    next_cursor: Option<FileId>,
}

/// The page size when `limit` is not given.
const DEFAULT_PAGE_SIZE: usize = 50;

pub(super) async fn list(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope(&req)?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?
        .into_inner();
    let limit = page_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE_SIZE,
        service.config().max_page_size,
    )?;
    let before = query
        .cursor
        .map(|c| c.parse::<FileId>())
        .transpose()
        .map_err(|_| ApiError::bad_field("invalid_cursor", "cursor", "cursor must be a next_cursor value"))?;
    let page = service.list(&principal, scope, before, limit).await?;
    Ok(HttpResponse::Ok().json(ListResponse {
        files: page.files.into_iter().map(FileView::from).collect(),
        next_cursor: page.next,
    }))
}

fn file_path(req: &HttpRequest) -> Result<(TenantId, FileId), ApiError> {
    Ok((segment(req, "tenant_id")?, segment(req, "file_id")?))
}

pub(super) async fn get_file(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = file_path(&req)?;
    let record = service.get(&principal, tenant, id).await?;
    Ok(HttpResponse::Ok().json(FileView::from(record)))
}

pub(super) async fn delete_file(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = file_path(&req)?;
    service.delete(&principal, tenant, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn complete(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = file_path(&req)?;
    let record = service.complete(&principal, tenant, id).await?;
    Ok(HttpResponse::Ok().json(FileView::from(record)))
}
