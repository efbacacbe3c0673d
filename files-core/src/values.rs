//! Validated values that come from callers: file names, checksums, content types.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

/// A value a caller sent that the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// The file name is empty, longer than 255 bytes, or holds a control character.
    #[error("file_name {0}")]
    FileName(&'static str),
    /// The checksum is neither 64 hex characters nor base64 of 32 bytes.
    #[error("sha256 must be 64 hex characters or the base64 of 32 bytes")]
    Sha256,
    /// The content type is not a plausible `type/subtype` header value.
    #[error("content_type must be a media type such as application/octet-stream, at most 255 bytes")]
    ContentType,
}

/// The caller's name for a file: 1 to 255 bytes of UTF-8, no control characters.
///
/// It lives only in the metadata; object keys never contain it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    /// The longest name accepted, in bytes.
    pub const MAX_BYTES: usize = 255;

    /// Validates a file name.
    ///
    /// # Errors
    /// [`InvalidValue::FileName`] when it is empty, over 255 bytes or holds a control character.
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidValue> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidValue::FileName("must not be empty"));
        }
        if name.len() > Self::MAX_BYTES {
            return Err(InvalidValue::FileName("must be at most 255 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue::FileName("must not contain control characters"));
        }
        Ok(Self(name))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FileName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<FileName> for String {
    fn from(value: FileName) -> Self {
        value.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest. Accepted as hex (any case) or base64 (standard or URL-safe, padded or
/// not); shown as lowercase hex; sent to S3 as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// Parses hex or base64.
    ///
    /// # Errors
    /// [`InvalidValue::Sha256`] when the text is neither.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            hex::decode_to_slice(text, &mut out).map_err(|_| InvalidValue::Sha256)?;
            return Ok(Self(out));
        }
        let unpadded = text.trim_end_matches('=');
        if unpadded.len() != 43 {
            return Err(InvalidValue::Sha256);
        }
        let padded = format!("{unpadded}=");
        STANDARD
            .decode(&padded)
            .or_else(|_| URL_SAFE.decode(&padded))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Self)
            .ok_or(InvalidValue::Sha256)
    }

    /// Wraps raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as the API returns it.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard padded base64, as S3's `x-amz-checksum-sha256` carries it.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl TryFrom<String> for Sha256 {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Sha256> for String {
    fn from(value: Sha256) -> Self {
        value.to_hex()
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// A media type the caller declares for the upload; signed into the URL when given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentType(String);

impl ContentType {
    /// Validates a media type: `type/subtype`, optional parameters, visible ASCII, at most 255 bytes.
    ///
    /// # Errors
    /// [`InvalidValue::ContentType`] otherwise.
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidValue> {
        let text = text.into();
        let essence = text.split(';').next().unwrap_or_default().trim();
        let valid_token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        let ok = text.len() <= 255
            && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            && essence
                .split_once('/')
                .is_some_and(|(t, s)| valid_token(t) && valid_token(s));
        if ok {
            Ok(Self(text))
        } else {
            Err(InvalidValue::ContentType)
        }
    }

    /// The header value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentType {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ContentType> for String {
    fn from(value: ContentType) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn sha256_accepts_hex_and_base64_and_prints_lowercase_hex() {
        let from_hex = Sha256::parse(&HEX.to_uppercase()).ok();
        let from_b64 = Sha256::parse(B64).ok();
        let from_b64_unpadded = Sha256::parse(B64.trim_end_matches('=')).ok();
        let from_url_safe = Sha256::parse(&B64.replace('+', "-").replace('/', "_")).ok();
        assert!(from_hex.is_some());
        assert_eq!(from_hex, from_b64);
        assert_eq!(from_b64, from_b64_unpadded);
        assert_eq!(from_b64, from_url_safe);
        assert_eq!(from_hex.map(|s| s.to_hex()).as_deref(), Some(HEX));
        assert_eq!(from_hex.map(|s| s.to_base64()).as_deref(), Some(B64));
    }

    #[test]
    fn sha256_rejects_short_long_and_non_hex() {
        for bad in ["", "abc", &HEX[..63], &format!("{HEX}0"), &HEX.replace('e', "g"), "!!"] {
            assert_eq!(Sha256::parse(bad), Err(InvalidValue::Sha256), "{bad:?}");
        }
    }

    #[test]
    fn file_name_bounds() {
        assert!(FileName::parse("a").is_ok());
        assert!(FileName::parse("ü".repeat(127)).is_ok()); // 254 bytes
        assert!(FileName::parse("x".repeat(255)).is_ok());
        assert!(FileName::parse("x".repeat(256)).is_err());
        assert!(FileName::parse("").is_err());
        assert!(FileName::parse("a\nb").is_err());
        assert!(FileName::parse("a\u{7f}b").is_err());
        assert!(FileName::parse("../../etc/passwd").is_ok(), "names are metadata only");
    }

    #[test]
    fn content_type_shapes() {
        assert!(ContentType::parse("application/json").is_ok());
        assert!(ContentType::parse("text/plain; charset=utf-8").is_ok());
        assert!(ContentType::parse("text").is_err());
        assert!(ContentType::parse("text/plain\r\nx: y").is_err());
    }
}
