//! What callers ask the service for and what it hands back: upload and download requests,
//! tickets and pages, and the bounds on a requested URL lifetime.

use std::time::Duration;

use time::OffsetDateTime;

use super::errors::ExpiryOutOfRange;
use crate::file::FileRecord;
use crate::ids::FileId;
use crate::ports::PresignedRequest;
use crate::values::{ContentType, FileName, Sha256};

/// An upload request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// The caller's name for the file.
    pub name: FileName,
    /// The SHA-256 the bytes will have.
    pub sha256: Sha256,
    /// The exact size: signed as `content-length`, so the store refuses any other length.
    pub size: u64,
    /// The media type, when the caller declares it.
    pub content_type: Option<ContentType>,
    /// How long the URL should live, at most [`ServiceConfig::max_upload_expiry`]; the
    /// configured default when `None`.
    pub expires_in: Option<Duration>,
}

/// A pre-signed request plus the record it is for and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The file version.
    pub record: FileRecord,
    /// What the caller sends to the store.
    pub request: PresignedRequest,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
    /// How long it lives from now.
    pub expires_in: Duration,
}

/// Which version to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTarget {
    /// The latest available version of a name.
    Name(FileName),
    /// One version.
    Id(FileId),
}

/// A download request: which version, and how to sign its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRequest {
    /// Which version.
    pub target: DownloadTarget,
    /// How long the URL should live, at most [`ServiceConfig::max_download_expiry`]; the
    /// configured default when `None`.
    pub expires_in: Option<Duration>,
    /// Sign `response-content-disposition: attachment` with the file's name, so a browser
    /// saves it under that name.
    pub attachment: bool,
}

impl From<DownloadTarget> for DownloadRequest {
    fn from(target: DownloadTarget) -> Self {
        Self {
            target,
            expires_in: None,
            attachment: false,
        }
    }
}

/// `asked` when it is in 1 s..=`max`, else the error; `default` when nothing was asked.
pub(super) fn lifetime(
    asked: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Result<Duration, ExpiryOutOfRange> {
    match asked {
        None => Ok(default),
        Some(asked) if asked.is_zero() || asked > max => Err(ExpiryOutOfRange { asked, max }),
        Some(asked) => Ok(asked),
    }
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Newest first.
    pub files: Vec<FileRecord>,
    /// Pass as `before` to get the next page; `None` on the last one.
    pub next: Option<FileId>,
}
