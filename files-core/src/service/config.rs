//! The service's limits and lifetimes.

use std::time::Duration;

/// S3's longest pre-signed URL lifetime.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Limits and lifetimes of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// How long an upload URL is valid (default 15 minutes, at most 7 days).
    pub upload_expiry: Duration,
    /// How long a download URL is valid (default 5 minutes, at most 7 days).
    pub download_expiry: Duration,
    /// The largest declared upload size accepted, in bytes.
    pub max_upload_size: u64,
    /// The largest page a listing returns.
    pub max_page_size: usize,
    /// The longest upload URL lifetime a request may ask for with `expires_in` (default 24 h,
    /// at most 7 days).
    pub max_upload_expiry: Duration,
    /// The longest download URL lifetime a request may ask for (default 24 h, at most 7 days).
    pub max_download_expiry: Duration,
    /// How long a multipart upload may take from its start to its completion (default 24 h);
    /// each part URL lives as long as an upload URL.
    pub multipart_expiry: Duration,
    /// How long an instance applies its copy of a tenant's settings before reading them again
    /// (default 2 s): a change applies everywhere within this.
    pub settings_ttl: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            upload_expiry: Duration::from_secs(15 * 60),
            download_expiry: Duration::from_secs(5 * 60),
            max_upload_size: 5 * 1024 * 1024 * 1024,
            max_page_size: 1000,
            max_upload_expiry: Duration::from_secs(24 * 3600),
            max_download_expiry: Duration::from_secs(24 * 3600),
            multipart_expiry: Duration::from_secs(24 * 3600),
            settings_ttl: Duration::from_secs(2),
        }
    }
}
