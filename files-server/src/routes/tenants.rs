//! `/v1/tenants/{tenant_id}/settings` and the usage routes.

use actix_web::{HttpRequest, HttpResponse, web};
use files_core::{DeviceId, FilesService, QuotaSettings, StoredSettings, TenantId, TenantSettings};
use serde::Serialize;
use serde_json::Value;

use super::files::{rfc3339, segment};
use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody};

/// The settings document with the tenant and when it was set (`null` when never set).
#[derive(Debug, Serialize)]
struct SettingsView {
    tenant_id: TenantId,
    #[serde(flatten)]
    settings: TenantSettings,
    updated_at: Option<String>,
}

impl SettingsView {
    fn new(tenant_id: TenantId, stored: Option<StoredSettings>) -> Self {
        match stored {
            Some(stored) => Self {
                tenant_id,
                settings: stored.settings,
                updated_at: Some(rfc3339(stored.updated_at)),
            },
            None => Self {
                tenant_id,
                settings: TenantSettings::default(),
                updated_at: None,
            },
        }
    }
}

pub(super) async fn put_settings(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
    JsonBody(document): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = segment(&req, "tenant_id")?;
    let stored = service.set_tenant_settings(&principal, tenant, &document).await?;
    Ok(HttpResponse::Ok().json(SettingsView::new(tenant, Some(stored))))
}

pub(super) async fn get_settings(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = segment(&req, "tenant_id")?;
    let stored = service.tenant_settings(&principal, tenant).await?;
    Ok(HttpResponse::Ok().json(SettingsView::new(tenant, stored)))
}

#[derive(Debug, Serialize)]
struct TenantUsageView {
    tenant_id: TenantId,
    files: u64,
    bytes: u64,
    pending_uploads: u64,
    pending_bytes: u64,
    quota: QuotaSettings,
}

pub(super) async fn tenant_usage(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = segment(&req, "tenant_id")?;
    let report = service.tenant_usage(&principal, tenant).await?;
    Ok(HttpResponse::Ok().json(TenantUsageView {
        tenant_id: tenant,
        files: report.usage.files,
        bytes: report.usage.bytes,
        pending_uploads: report.usage.pending_uploads,
        pending_bytes: report.usage.pending_bytes,
        quota: report.quota,
    }))
}

#[derive(Debug, Serialize)]
struct TodayView {
    date: String,
    upload_urls: u64,
    upload_bytes: u64,
    uploads_completed: u64,
    download_urls: u64,
}

#[derive(Debug, Serialize)]
struct DeviceUsageView {
    tenant_id: TenantId,
    device_id: DeviceId,
    files: u64,
    bytes: u64,
    pending_uploads: u64,
    today: TodayView,
}

pub(super) async fn device_usage(
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    service: web::Data<FilesService>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = segment(&req, "tenant_id")?;
    let device: DeviceId = segment(&req, "device_id")?;
    let usage = service.device_usage(&principal, tenant, device).await?;
    let today = usage.today;
    Ok(HttpResponse::Ok().json(DeviceUsageView {
        tenant_id: tenant,
        device_id: device,
        files: usage.files,
        bytes: usage.bytes,
        pending_uploads: usage.pending_uploads,
        today: TodayView {
            date: today.date.to_string(),
            upload_urls: today.upload_urls,
            upload_bytes: today.upload_bytes,
            uploads_completed: today.uploads_completed,
            download_urls: today.download_urls,
        },
    }))
}
