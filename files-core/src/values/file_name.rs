//! The caller's name for a file and the rules that refuse look-alike names.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use super::invalid::InvalidValue;

/// The caller's name for a file: 1 to 255 bytes of UTF-8 in Unicode Normalization Form C, no
/// control characters (`Cc`), no format characters (`Cf`: bidi overrides and isolates,
/// zero-width characters, the byte order mark...), no line or paragraph separators (`Zl`, `Zp`),
/// and nothing else that shows as nothing (Unicode's default-ignorable code points, such as the
/// Hangul fillers and the variation selectors, and U+2800 BRAILLE PATTERN BLANK), so that no
/// two names that read alike differ by an invisible character.
///
/// [`FileName::parse`] normalizes what a caller sends to NFC, so one text is one name however
/// it was composed. Names read back from storage go through [`FileName::from_stored`] (so does
/// deserializing with serde): they are kept as stored, so records written before a rule was
/// added still read.
///
/// It lives only in the metadata; object keys never contain it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct FileName(String);

impl FileName {
    /// The longest name accepted, in bytes.
    pub const MAX_BYTES: usize = 255;

    /// Validates a file name from a caller, normalized to NFC first.
    ///
    /// # Errors
    /// [`InvalidValue::FileName`] when it is empty, over 255 bytes in NFC, or holds a control
    /// character, a format character (`Cf`), a line or paragraph separator, or an invisible
    /// character (default-ignorable, or a blank symbol).
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidValue> {
        let name = name.into();
        let name = if unicode_normalization::is_nfc(&name) {
            name
        } else {
            name.nfc().collect()
        };
        Self::check_length(&name)?;
        for c in name.chars() {
            match c.general_category() {
                GeneralCategory::Control => return Err(CONTROL),
                GeneralCategory::Format => {
                    return Err(InvalidValue::FileName(
                        "must not contain format characters (bidi controls, zero-width characters)",
                    ));
                }
                GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                    return Err(InvalidValue::FileName("must not contain line or paragraph separators"));
                }
                _ if is_invisible(c) => {
                    return Err(InvalidValue::FileName(
                        "must not contain invisible characters (fillers, blanks, variation selectors, \
                         default-ignorable code points)",
                    ));
                }
                _ => {}
            }
        }
        Ok(Self(name))
    }

    /// A name as this service stored it (a database row, a cache entry, an event), kept as it
    /// is: neither normalized nor held to the rules added since it was stored (NFC, no format
    /// characters or separators), so older records still read. Only what every stored name has
    /// always been is checked: 1 to 255 bytes, no control characters.
    ///
    /// Never use it for what a caller sends: that is [`FileName::parse`].
    ///
    /// # Errors
    /// [`InvalidValue::FileName`] when it is empty, over 255 bytes or holds a control character:
    /// not a name this service ever stored.
    pub fn from_stored(name: impl Into<String>) -> Result<Self, InvalidValue> {
        let name = name.into();
        Self::check_length(&name)?;
        if name.chars().any(char::is_control) {
            return Err(CONTROL);
        }
        Ok(Self(name))
    }

    fn check_length(name: &str) -> Result<(), InvalidValue> {
        if name.is_empty() {
            return Err(InvalidValue::FileName("must not be empty"));
        }
        if name.len() > Self::MAX_BYTES {
            return Err(InvalidValue::FileName("must be at most 255 bytes"));
        }
        Ok(())
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const CONTROL: InvalidValue = InvalidValue::FileName("must not contain control characters");

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt, unchanged from
/// Unicode 14 to 16): characters a renderer shows as nothing, so that `report\u{3164}.pdf` would
/// read as a second `report.pdf`. Those that are format characters (`Cf`) are refused as such;
/// this table adds the others: the combining grapheme joiner, the Hangul fillers, the Khmer
/// inherent vowels, the Mongolian and other variation selectors, and unassigned code points
/// reserved as ignorable. `unicode-properties` does not expose the property, hence the table.
const DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Characters that render as blank space but are ordinary symbols, not default-ignorable:
/// U+2800 BRAILLE PATTERN BLANK.
const BLANK_SYMBOLS: &[char] = &['\u{2800}'];

/// Whether `c` shows as nothing: a default-ignorable code point or a blank symbol.
pub(super) fn is_invisible(c: char) -> bool {
    BLANK_SYMBOLS.contains(&c)
        || DEFAULT_IGNORABLE
            .iter()
            .any(|&(first, last)| (first..=last).contains(&c))
}

/// A caller's name: [`FileName::parse`].
impl TryFrom<String> for FileName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

/// Deserializing reads a stored name: [`FileName::from_stored`].
impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_stored(name).map_err(serde::de::Error::custom)
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
