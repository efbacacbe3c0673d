//! The error every value of this module refuses a caller's text with.

/// A value a caller sent that the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// The file name is empty, longer than 255 bytes once normalized, or holds a control
    /// character, a format character, a line or paragraph separator or an invisible character.
    #[error("file_name {0}")]
    FileName(&'static str),
    /// The checksum is neither 64 hex characters nor base64 of 32 bytes.
    #[error("sha256 must be 64 hex characters or the base64 of 32 bytes")]
    Sha256,
    /// The content type is not a plausible `type/subtype` header value.
    #[error("content_type must be a media type such as application/octet-stream, at most 255 bytes")]
    ContentType,
}
