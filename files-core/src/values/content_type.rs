//! The media type a caller declares for an upload.

use serde::{Deserialize, Serialize};

use super::invalid::InvalidValue;

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
