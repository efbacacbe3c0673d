//! The policy in force for one tenant: its settings over the server's defaults.

use std::time::Duration;

use crate::ports::Limits;
use crate::principal::Owner;
use crate::values::ContentType;

use super::settings::{QuotaSettings, TenantSettings};

/// The server's defaults and maxima, which a tenant's settings narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `FILES_MAX_UPLOAD_SIZE`.
    pub max_file_size: u64,
    /// The upload URL lifetime when none is asked.
    pub upload_expiry: Duration,
    /// The longest upload URL lifetime.
    pub max_upload_expiry: Duration,
    /// The download URL lifetime when none is asked.
    pub download_expiry: Duration,
    /// The longest download URL lifetime.
    pub max_download_expiry: Duration,
}

/// What one tenant's uploads and downloads are held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The largest upload.
    pub max_file_size: u64,
    /// The media-type patterns an upload must match, when the tenant set them.
    pub allowed_content_types: Option<Vec<String>>,
    /// The upload URL lifetime when none is asked: the server's, capped by the tenant's maximum.
    pub upload_expiry: Duration,
    /// The longest upload URL lifetime.
    pub max_upload_expiry: Duration,
    /// The download URL lifetime when none is asked, capped likewise.
    pub download_expiry: Duration,
    /// The longest download URL lifetime.
    pub max_download_expiry: Duration,
    /// The tenant's quotas.
    pub quota: QuotaSettings,
}

impl Policy {
    /// The policy of a tenant with `settings` (or none) over `defaults`.
    #[must_use]
    pub fn new(defaults: &Defaults, settings: Option<&TenantSettings>) -> Self {
        let Some(settings) = settings else {
            return Self::new(defaults, Some(&TenantSettings::default()));
        };
        let cap = |secs: Option<u64>, max: Duration| secs.map_or(max, |secs| Duration::from_secs(secs).min(max));
        let max_upload_expiry = cap(settings.upload_url_max_expiry_secs, defaults.max_upload_expiry);
        let max_download_expiry = cap(settings.download_url_max_expiry_secs, defaults.max_download_expiry);
        Self {
            max_file_size: settings
                .max_file_size
                .map_or(defaults.max_file_size, |max| max.min(defaults.max_file_size)),
            allowed_content_types: settings.allowed_content_types.clone(),
            upload_expiry: defaults.upload_expiry.min(max_upload_expiry),
            max_upload_expiry,
            download_expiry: defaults.download_expiry.min(max_download_expiry),
            max_download_expiry,
            quota: settings.quota(),
        }
    }

    /// Whether an upload declaring `content_type` is admitted: always when the tenant set no
    /// list; else the type must be declared and match an entry, exactly or as `type/*`, case
    /// aside and parameters (`; charset=...`) ignored.
    #[must_use]
    pub fn admits_content_type(&self, content_type: Option<&ContentType>) -> bool {
        let Some(patterns) = &self.allowed_content_types else {
            return true;
        };
        let Some(content_type) = content_type else {
            return false;
        };
        let essence = content_type.as_str().split(';').next().unwrap_or_default().trim();
        let Some((kind, _)) = essence.split_once('/') else {
            return false;
        };
        patterns.iter().any(|pattern| match pattern.strip_suffix("/*") {
            Some(pattern_kind) => pattern_kind.eq_ignore_ascii_case(kind),
            None => pattern.eq_ignore_ascii_case(essence),
        })
    }

    /// The quotas an upload to `owner` is admitted under: the tenant's `bytes` and `files`
    /// always, the device quotas only for a device root.
    #[must_use]
    pub const fn limits(&self, owner: Owner) -> Limits {
        let device = matches!(owner, Owner::Device(_));
        Limits {
            tenant_bytes: self.quota.bytes,
            tenant_files: self.quota.files,
            device_pending_uploads: if device {
                self.quota.device_pending_uploads
            } else {
                None
            },
            device_bytes_per_day: if device { self.quota.device_bytes_per_day } else { None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        max_file_size: 1000,
        upload_expiry: Duration::from_secs(900),
        max_upload_expiry: Duration::from_secs(86_400),
        download_expiry: Duration::from_secs(300),
        max_download_expiry: Duration::from_secs(86_400),
    };

    fn with_types(types: &[&str]) -> Policy {
        let settings = TenantSettings {
            allowed_content_types: Some(types.iter().map(|t| (*t).to_owned()).collect()),
            ..TenantSettings::default()
        };
        Policy::new(&DEFAULTS, Some(&settings))
    }

    fn ct(text: &str) -> ContentType {
        ContentType::parse(text).unwrap_or_else(|_| panic!("{text} is a content type"))
    }

    #[test]
    fn content_types_match_exactly_or_by_type_case_and_parameters_aside() {
        let policy = with_types(&["application/gzip", "text/*"]);
        assert!(policy.admits_content_type(Some(&ct("Text/Plain; charset=utf-8"))));
        assert!(policy.admits_content_type(Some(&ct("APPLICATION/GZIP"))));
        assert!(!policy.admits_content_type(Some(&ct("application/octet-stream"))));
        assert!(!policy.admits_content_type(Some(&ct("textual/plain"))));
        assert!(!policy.admits_content_type(None));
        let open = Policy::new(&DEFAULTS, None);
        assert!(open.admits_content_type(None));
    }

    #[test]
    fn the_tenant_s_maxima_cap_the_defaults() {
        let settings = TenantSettings {
            max_file_size: Some(500),
            upload_url_max_expiry_secs: Some(60),
            ..TenantSettings::default()
        };
        let policy = Policy::new(&DEFAULTS, Some(&settings));
        assert_eq!(policy.max_file_size, 500);
        assert_eq!(policy.upload_expiry, Duration::from_secs(60));
        assert_eq!(policy.max_upload_expiry, Duration::from_secs(60));
        assert_eq!(policy.download_expiry, DEFAULTS.download_expiry);
        assert_eq!(Policy::new(&DEFAULTS, None).max_file_size, 1000);
    }
}
