//! A tenant's settings document: what the platform sets with `PUT /v1/tenants/{tenant_id}/settings`.
//!
//! Every field is optional; an absent (or null) field leaves the server's default in force. The
//! document is read from JSON by [`TenantSettings::from_json`], which names the field at fault
//! for every refusal: an unknown field, a value that is not a positive integer, or one above the
//! server's own ceiling ([`Ceilings`]).

use serde::Serialize;
use serde_json::{Map, Value};

/// The server's own maxima, above which a tenant's setting is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// `FILES_MAX_UPLOAD_SIZE`: the ceiling of `max_file_size`.
    pub max_file_size: u64,
    /// `FILES_UPLOAD_URL_MAX_EXPIRY_SECS`: the ceiling of `upload_url_max_expiry_secs`.
    pub upload_url_max_expiry_secs: u64,
    /// `FILES_DOWNLOAD_URL_MAX_EXPIRY_SECS`: the ceiling of `download_url_max_expiry_secs`.
    pub download_url_max_expiry_secs: u64,
}

/// The largest count or size any setting may hold: what a signed 64-bit database column keeps.
pub const MAX_SETTING: u64 = i64::MAX as u64;

impl Ceilings {
    /// No ceiling but [`MAX_SETTING`]: for reading back a document that was admitted when it
    /// was set (the policy caps each value by the ceilings in force).
    pub const NONE: Self = Self {
        max_file_size: MAX_SETTING,
        upload_url_max_expiry_secs: MAX_SETTING,
        download_url_max_expiry_secs: MAX_SETTING,
    };
}

/// A tenant's quotas; each `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuotaSettings {
    /// Bytes of the tenant's available and pending files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The tenant's available and pending files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Bytes one device may declare in upload requests per UTC day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_bytes_per_day: Option<u64>,
    /// Pending uploads one device may have at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_pending_uploads: Option<u64>,
}

/// A tenant's request rate limits; each `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RateLimitSettings {
    /// Requests one device principal may make per minute (bursts up to this figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_requests_per_minute: Option<u64>,
    /// Requests all of the tenant's principals together may make per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_requests_per_second: Option<u64>,
}

/// A tenant's settings document, as the platform set it (absent fields stay absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    /// The largest upload, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    /// The media types an upload may declare (`type/subtype` or `type/*`); when set, an upload
    /// must declare one that matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_content_types: Option<Vec<String>>,
    /// The longest `expires_in` of an upload URL (and of a part URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url_max_expiry_secs: Option<u64>,
    /// The longest `expires_in` of a download URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url_max_expiry_secs: Option<u64>,
    /// How long an available device-root file is kept after its completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_secs: Option<u64>,
    /// The quotas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSettings>,
    /// The rate limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSettings>,
}

/// A settings document refused, naming the field (dotted for nested ones: `quota.bytes`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct InvalidSettings {
    /// The field at fault; empty when the document itself is not an object.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl InvalidSettings {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The fields of a document, in the order they are read; nested objects name their own.
const TOP_FIELDS: [&str; 7] = [
    "max_file_size",
    "allowed_content_types",
    "upload_url_max_expiry_secs",
    "download_url_max_expiry_secs",
    "retention_secs",
    "quota",
    "rate_limit",
];
const QUOTA_FIELDS: [&str; 4] = ["bytes", "files", "device_bytes_per_day", "device_pending_uploads"];
const RATE_LIMIT_FIELDS: [&str; 2] = ["device_requests_per_minute", "tenant_requests_per_second"];

impl TenantSettings {
    /// Reads and validates a settings document.
    ///
    /// # Errors
    /// [`InvalidSettings`] naming the first field at fault: unknown, not of its type, 0 or
    /// below, or above its ceiling.
    pub fn from_json(document: &Value, ceilings: &Ceilings) -> Result<Self, InvalidSettings> {
        let top = object(document, "")?;
        let quota = optional(top, "quota")
            .map(|value| {
                let fields = object(value, "quota")?;
                Ok::<_, InvalidSettings>(QuotaSettings {
                    bytes: positive(fields, "quota", "bytes", MAX_SETTING)?,
                    files: positive(fields, "quota", "files", MAX_SETTING)?,
                    device_bytes_per_day: positive(fields, "quota", "device_bytes_per_day", MAX_SETTING)?,
                    device_pending_uploads: positive(fields, "quota", "device_pending_uploads", MAX_SETTING)?,
                })
            })
            .transpose()?;
        let rate_limit = optional(top, "rate_limit")
            .map(|value| {
                let fields = object(value, "rate_limit")?;
                Ok::<_, InvalidSettings>(RateLimitSettings {
                    device_requests_per_minute: positive(
                        fields,
                        "rate_limit",
                        "device_requests_per_minute",
                        MAX_SETTING,
                    )?,
                    tenant_requests_per_second: positive(
                        fields,
                        "rate_limit",
                        "tenant_requests_per_second",
                        MAX_SETTING,
                    )?,
                })
            })
            .transpose()?;
        Ok(Self {
            max_file_size: positive(top, "", "max_file_size", ceilings.max_file_size)?,
            allowed_content_types: content_types(top)?,
            upload_url_max_expiry_secs: positive(
                top,
                "",
                "upload_url_max_expiry_secs",
                ceilings.upload_url_max_expiry_secs,
            )?,
            download_url_max_expiry_secs: positive(
                top,
                "",
                "download_url_max_expiry_secs",
                ceilings.download_url_max_expiry_secs,
            )?,
            retention_secs: positive(top, "", "retention_secs", MAX_SETTING)?,
            quota,
            rate_limit,
        })
    }

    /// The quotas, or none.
    #[must_use]
    pub fn quota(&self) -> QuotaSettings {
        self.quota.clone().unwrap_or_default()
    }
}

/// `value` as an object whose fields are all known, else the error naming the first unknown one.
fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, InvalidSettings> {
    let Value::Object(fields) = value else {
        let field = if path.is_empty() { "" } else { path };
        return Err(InvalidSettings::new(field, "must be a JSON object"));
    };
    let known: &[&str] = match path {
        "" => &TOP_FIELDS,
        "quota" => &QUOTA_FIELDS,
        _ => &RATE_LIMIT_FIELDS,
    };
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(InvalidSettings::new(
            dotted(path, unknown),
            format!("unknown field; the known ones are {}", known.join(", ")),
        ));
    }
    Ok(fields)
}

/// The field's value, `None` when absent or null.
fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn dotted(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// An optional integer in 1..=`ceiling`.
fn positive(fields: &Map<String, Value>, path: &str, name: &str, ceiling: u64) -> Result<Option<u64>, InvalidSettings> {
    let Some(value) = optional(fields, name) else {
        return Ok(None);
    };
    let field = || dotted(path, name);
    let Value::Number(number) = value else {
        return Err(InvalidSettings::new(field(), "must be a positive integer"));
    };
    let n = match (number.as_u64(), number.as_i64(), number.as_f64()) {
        (Some(n), _, _) => n,
        (None, Some(_), _) => return Err(InvalidSettings::new(field(), "must be 1 or more")),
        (None, None, Some(f)) if f <= 0.0 => return Err(InvalidSettings::new(field(), "must be 1 or more")),
        (None, None, Some(f)) if f <= ceiling as f64 => {
            return Err(InvalidSettings::new(field(), "must be an integer"));
        }
        _ => {
            return Err(InvalidSettings::new(
                field(),
                format!("must be at most {ceiling}, the server's ceiling"),
            ));
        }
    };
    if n == 0 {
        return Err(InvalidSettings::new(field(), "must be 1 or more"));
    }
    if n > ceiling {
        return Err(InvalidSettings::new(
            field(),
            format!("{n} is above the server's ceiling of {ceiling}"),
        ));
    }
    Ok(Some(n))
}

/// The optional list of media-type patterns, each `type/subtype` or `type/*`.
fn content_types(fields: &Map<String, Value>) -> Result<Option<Vec<String>>, InvalidSettings> {
    let name = "allowed_content_types";
    let Some(value) = optional(fields, name) else {
        return Ok(None);
    };
    let Value::Array(entries) = value else {
        return Err(InvalidSettings::new(name, "must be a list of media types"));
    };
    if entries.len() > 100 {
        return Err(InvalidSettings::new(name, "at most 100 entries"));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| match entry.as_str() {
            Some(text) if is_pattern(text) => Ok(text.to_owned()),
            _ => Err(InvalidSettings::new(
                format!("{name}[{index}]"),
                "must be a media type `type/subtype` or `type/*`, without parameters",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Whether `text` is a media-type pattern of a settings document: `type/subtype` or `type/*`,
/// each part an RFC 6838 token, no parameters.
#[must_use]
pub fn is_pattern(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    text.split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && (sub == "*" || token(sub)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CEILINGS: Ceilings = Ceilings {
        max_file_size: 1 << 30,
        upload_url_max_expiry_secs: 86_400,
        download_url_max_expiry_secs: 86_400,
    };

    fn refused(document: Value) -> String {
        match TenantSettings::from_json(&document, &CEILINGS) {
            Ok(settings) => panic!("{document} was accepted as {settings:?}"),
            Err(error) => error.field,
        }
    }

    #[test]
    fn the_brief_s_document_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let document = json!({"max_file_size": 104_857_600,
            "allowed_content_types": ["application/gzip", "text/*"],
            "upload_url_max_expiry_secs": 3600, "download_url_max_expiry_secs": 3600,
            "retention_secs": 2_592_000,
            "quota": {"bytes": 10_737_418_240_u64, "files": 100_000,
                      "device_bytes_per_day": 1_073_741_824, "device_pending_uploads": 10},
            "rate_limit": {"device_requests_per_minute": 120, "tenant_requests_per_second": 500}});
        let settings = TenantSettings::from_json(&document, &CEILINGS)?;
        assert_eq!(serde_json::to_value(&settings)?, document);
        assert_eq!(settings.quota().files, Some(100_000));
        Ok(())
    }

    #[test]
    fn absent_and_null_fields_are_defaults() -> Result<(), InvalidSettings> {
        let settings = TenantSettings::from_json(&json!({"max_file_size": null, "quota": {"bytes": null}}), &CEILINGS)?;
        assert_eq!(settings.max_file_size, None);
        assert_eq!(settings.quota, Some(QuotaSettings::default()));
        assert_eq!(
            TenantSettings::from_json(&json!({}), &CEILINGS)?,
            TenantSettings::default()
        );
        Ok(())
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(refused(json!({"max_file_sise": 1})), "max_file_sise");
        assert_eq!(refused(json!({"quota": {"byte": 1}})), "quota.byte");
        assert_eq!(refused(json!({"rate_limit": {"x": 1}})), "rate_limit.x");
        assert_eq!(refused(json!({"max_file_size": 0})), "max_file_size");
        assert_eq!(refused(json!({"max_file_size": -5})), "max_file_size");
        assert_eq!(refused(json!({"max_file_size": 1.5})), "max_file_size");
        assert_eq!(refused(json!({"max_file_size": "10"})), "max_file_size");
        assert_eq!(refused(json!({"max_file_size": (1_u64 << 30) + 1})), "max_file_size");
        assert_eq!(
            refused(json!({"upload_url_max_expiry_secs": 86_401})),
            "upload_url_max_expiry_secs"
        );
        assert_eq!(
            refused(json!({"download_url_max_expiry_secs": 0})),
            "download_url_max_expiry_secs"
        );
        assert_eq!(refused(json!({"retention_secs": -1})), "retention_secs");
        assert_eq!(refused(json!({"quota": {"bytes": 0}})), "quota.bytes");
        assert_eq!(refused(json!({"quota": {"files": -1}})), "quota.files");
        assert_eq!(
            refused(json!({"quota": {"device_bytes_per_day": 0}})),
            "quota.device_bytes_per_day"
        );
        assert_eq!(
            refused(json!({"quota": {"device_pending_uploads": 0}})),
            "quota.device_pending_uploads"
        );
        assert_eq!(refused(json!({"quota": 5})), "quota");
        assert_eq!(
            refused(json!({"rate_limit": {"device_requests_per_minute": 0}})),
            "rate_limit.device_requests_per_minute"
        );
        assert_eq!(
            refused(json!({"rate_limit": {"tenant_requests_per_second": 1e30}})),
            "rate_limit.tenant_requests_per_second"
        );
        assert_eq!(
            refused(json!({"allowed_content_types": "text/*"})),
            "allowed_content_types"
        );
        assert_eq!(
            refused(json!({"allowed_content_types": ["text/*", "nope"]})),
            "allowed_content_types[1]"
        );
        assert_eq!(refused(json!([1])), "");
    }

    #[test]
    fn patterns() {
        for good in ["text/*", "application/gzip", "application/vnd.a+json"] {
            assert!(is_pattern(good), "{good}");
        }
        for bad in ["text", "text/", "/x", "text/plain; charset=utf-8", "a/b/c", ""] {
            assert!(!is_pattern(bad), "{bad}");
        }
    }
}
