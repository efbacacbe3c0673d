//! Validated values that come from callers: file names, checksums, content types.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

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
fn is_invisible(c: char) -> bool {
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
    fn file_name_refuses_bidi_overrides() {
        // "invoice\u{202E}fdp.exe" shows as "invoiceexe.pdf".
        assert!(FileName::parse("invoice\u{202E}fdp.exe").is_err());
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert!(
                matches!(FileName::parse(format!("a{c}b")), Err(InvalidValue::FileName(_))),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn file_name_refuses_each_zero_width_character() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            for name in [format!("a{c}b"), format!("{c}ab"), format!("ab{c}"), c.to_string()] {
                assert!(
                    matches!(FileName::parse(name), Err(InvalidValue::FileName(_))),
                    "U+{:04X}",
                    u32::from(c)
                );
            }
        }
    }

    #[test]
    fn file_name_refuses_invisible_characters() {
        // Each shows as nothing: `report\u{3164}.pdf` reads as a second `report.pdf`.
        let invisible = [
            ('\u{034F}', "combining grapheme joiner"),
            ('\u{3164}', "Hangul filler"),
            ('\u{115F}', "Hangul choseong filler"),
            ('\u{1160}', "Hangul jungseong filler"),
            ('\u{2800}', "Braille pattern blank"),
            ('\u{FE00}', "variation selector 1"),
            ('\u{FE0F}', "variation selector 16"),
            ('\u{E0100}', "variation selector 17"),
            ('\u{E01EF}', "variation selector 256"),
            ('\u{17B4}', "Khmer vowel inherent aq"),
            ('\u{17B5}', "Khmer vowel inherent aa"),
            ('\u{FFA0}', "halfwidth Hangul filler"),
            ('\u{180B}', "Mongolian free variation selector one"),
            ('\u{180F}', "Mongolian free variation selector four"),
            ('\u{2065}', "unassigned, default-ignorable"),
            ('\u{FFF0}', "unassigned, default-ignorable"),
            ('\u{E0080}', "unassigned, default-ignorable"),
            ('\u{1D173}', "musical symbol begin beam"),
            ('\u{00AD}', "soft hyphen"),
        ];
        for (c, what) in invisible {
            for name in [
                format!("report{c}.pdf"),
                format!("{c}report.pdf"),
                format!("report.pdf{c}"),
            ] {
                let refused = FileName::parse(name.as_str());
                assert!(
                    matches!(&refused, Err(InvalidValue::FileName(_))),
                    "U+{:04X} ({what}): {refused:?}",
                    u32::from(c)
                );
                let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(message.starts_with("file_name "), "{message}");
            }
        }
        // Their visible neighbours are names like any other.
        for c in [
            '\u{3163}', '\u{3165}', '\u{2801}', '\u{FE10}', '\u{17B6}', '\u{FFA1}', '\u{1161}',
        ] {
            assert!(
                FileName::parse(format!("report{c}.pdf")).is_ok(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn file_name_refuses_line_and_paragraph_separators() {
        assert!(matches!(FileName::parse("a\u{2028}b"), Err(InvalidValue::FileName(_))));
        assert!(matches!(FileName::parse("a\u{2029}b"), Err(InvalidValue::FileName(_))));
    }

    #[test]
    fn file_name_is_nfc_normalized() {
        let nfd = FileName::parse("cafe\u{301}").ok();
        let nfc = FileName::parse("caf\u{e9}").ok();
        assert!(nfc.is_some());
        assert_eq!(nfd, nfc);
        assert_eq!(nfd.as_ref().map(FileName::as_str), Some("caf\u{e9}"));
        // Hangul jamo compose too; a name already in NFC is kept as it is.
        assert_eq!(
            FileName::parse("\u{1100}\u{1161}.txt")
                .ok()
                .as_ref()
                .map(FileName::as_str),
            Some("\u{AC00}.txt")
        );
        assert_eq!(
            FileName::parse("ü/ß/漢字.txt").ok().as_ref().map(FileName::as_str),
            Some("ü/ß/漢字.txt")
        );
    }

    #[test]
    fn file_name_limit_applies_to_the_normalized_form() {
        // 127 × "e\u{301}" is 381 bytes as sent, 254 bytes once composed: accepted.
        let decomposed = "e\u{301}".repeat(127);
        assert_eq!(decomposed.len(), 381);
        assert_eq!(FileName::parse(decomposed).ok().map(|n| n.as_str().len()), Some(254));
        // U+0958 is excluded from composition: NFC turns its 3 bytes into 6, so 85 of them
        // (255 bytes as sent) are 510 bytes normalized: refused.
        let expanding = "\u{958}".repeat(85);
        assert_eq!(expanding.len(), 255);
        assert!(matches!(FileName::parse(expanding), Err(InvalidValue::FileName(_))));
    }

    #[test]
    fn stored_names_read_back_as_stored() {
        // Written before names were normalized and format characters refused: still readable,
        // byte for byte, directly and through serde (cache entries, outbox events).
        for stored in ["cafe\u{301}.txt", "invoice\u{202E}fdp.exe", "a\u{200B}b", "a\u{2028}b"] {
            let name = FileName::from_stored(stored).map_err(|e| e.to_string());
            assert_eq!(name.as_ref().map(FileName::as_str), Ok(stored));
            let json = serde_json::to_string(stored).unwrap_or_default();
            let read = serde_json::from_str::<FileName>(&json).map_err(|e| e.to_string());
            assert_eq!(read, name, "{stored:?}");
        }
        // What no stored name ever was is still refused.
        for never in [String::new(), "x".repeat(256), "a\nb".to_owned(), "a\u{0}b".to_owned()] {
            assert!(FileName::from_stored(never.clone()).is_err(), "{never:?}");
            let json = serde_json::to_string(&never).unwrap_or_default();
            assert!(serde_json::from_str::<FileName>(&json).is_err(), "{never:?}");
        }
    }

    #[test]
    fn content_type_shapes() {
        assert!(ContentType::parse("application/json").is_ok());
        assert!(ContentType::parse("text/plain; charset=utf-8").is_ok());
        assert!(ContentType::parse("text").is_err());
        assert!(ContentType::parse("text/plain\r\nx: y").is_err());
    }
}

#[cfg(test)]
mod proptests {
    use base64::Engine as _;
    use proptest::prelude::*;
    use unicode_normalization::UnicodeNormalization as _;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

    use super::*;

    /// Characters where the rules are decided: the refused categories, combining marks and
    /// what composes with them, Hangul jamo, composition exclusions (which NFC expands), and
    /// multi-byte letters near the byte limit.
    const EDGES: &[char] = &[
        '\0',
        '\t',
        '\n',
        '\r',
        '\u{7f}',
        '\u{85}',
        '\u{9f}', // Cc
        '\u{ad}',
        '\u{600}',
        '\u{61c}',
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{200e}',
        '\u{200f}', // Cf
        '\u{202a}',
        '\u{202e}',
        '\u{2060}',
        '\u{2066}',
        '\u{2069}',
        '\u{feff}',
        '\u{e0001}', // Cf
        '\u{2028}',
        '\u{2029}', // Zl, Zp
        '\u{34f}',
        '\u{115f}',
        '\u{1160}',
        '\u{17b4}',
        '\u{180b}',
        '\u{2065}',
        '\u{2800}',
        '\u{3164}',
        '\u{fe00}',
        '\u{fe0f}',
        '\u{ffa0}',
        '\u{e0100}',
        '\u{e01ef}', // invisible, not Cf
        'e',
        'A',
        'o',
        '\u{301}',
        '\u{308}',
        '\u{327}',
        '\u{e9}',
        '\u{c5}',
        '\u{212b}',
        '\u{2126}', // compose
        '\u{1100}',
        '\u{1161}',
        '\u{11a8}',
        '\u{ac00}', // Hangul
        '\u{958}',
        '\u{93c}',
        '\u{915}',
        '\u{2adc}',
        '\u{1d15e}', // composition exclusions
        ' ',
        '/',
        '.',
        '\u{a0}',
        '\u{3000}',
        '\u{fffd}',
        '\u{e000}',
        '\u{10ffff}',
        '\u{1f600}',
        '\u{6f22}',
    ];

    /// Any text, weighted towards [`EDGES`], from empty to past the byte limit.
    fn text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            3 => any::<char>(),
            3 => prop::sample::select(EDGES),
            2 => prop::char::range('a', 'z'),
        ];
        prop::collection::vec(c, 0..200).prop_map(String::from_iter)
    }

    fn refused(c: char) -> bool {
        matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        ) || is_invisible(c)
    }

    proptest! {
        #[test]
        fn file_name_accepts_exactly_the_rules_and_round_trips(raw in text()) {
            let nfc: String = raw.nfc().collect();
            let fits = (1..=FileName::MAX_BYTES).contains(&nfc.len()) && !nfc.chars().any(refused);
            match FileName::parse(raw.as_str()) {
                Ok(name) => {
                    prop_assert!(fits, "accepted {raw:?}");
                    prop_assert_eq!(name.as_str(), nfc.as_str());
                    prop_assert!(unicode_normalization::is_nfc(name.as_str()));
                    prop_assert!((1..=FileName::MAX_BYTES).contains(&name.as_str().len()));
                    prop_assert!(!name.as_str().chars().any(refused));
                    prop_assert_eq!(FileName::parse(name.as_str()), Ok(name.clone()));
                    prop_assert_eq!(FileName::from_stored(name.as_str()), Ok(name.clone()));
                    let json = serde_json::to_string(&name).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(serde_json::from_str::<FileName>(&json).ok(), Some(name));
                }
                Err(error) => {
                    prop_assert!(!fits, "refused {raw:?}: {error}");
                    prop_assert!(matches!(error, InvalidValue::FileName(_)));
                }
            }
        }

        #[test]
        fn file_name_is_the_same_however_the_text_is_composed(raw in text()) {
            let nfd: String = raw.nfd().collect();
            let nfc: String = raw.nfc().collect();
            let parsed = FileName::parse(raw.as_str());
            prop_assert_eq!(FileName::parse(nfd), parsed.clone());
            prop_assert_eq!(FileName::parse(nfc), parsed);
        }

        #[test]
        fn stored_names_are_kept_as_they_are(raw in text()) {
            if let Ok(name) = FileName::from_stored(raw.as_str()) {
                prop_assert_eq!(name.as_str(), raw.as_str());
            }
        }

        #[test]
        fn sha256_never_panics_and_what_it_accepts_round_trips(
            raw in prop_oneof![
                any::<String>(),
                "[0-9a-fA-F]{62,66}",
                "[A-Za-z0-9+/_-]{42,44}={0,3}",
                " *[0-9a-f]{64} *",
            ]
        ) {
            if let Ok(digest) = Sha256::parse(&raw) {
                prop_assert_eq!(Sha256::parse(&digest.to_hex()), Ok(digest));
                prop_assert_eq!(Sha256::parse(&digest.to_hex().to_uppercase()), Ok(digest));
                prop_assert_eq!(Sha256::parse(&digest.to_base64()), Ok(digest));
                prop_assert_eq!(Sha256::parse(&digest.to_string()), Ok(digest));
            }
        }

        #[test]
        fn every_digest_round_trips_through_hex_and_base64(bytes in any::<[u8; 32]>()) {
            use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
            let digest = Sha256::from_bytes(bytes);
            let hex = digest.to_hex();
            prop_assert_eq!(hex.len(), 64);
            prop_assert_eq!(hex.to_lowercase(), hex.clone());
            for form in [
                hex,
                digest.to_base64(),
                STANDARD_NO_PAD.encode(bytes),
                URL_SAFE.encode(bytes),
                URL_SAFE_NO_PAD.encode(bytes),
            ] {
                prop_assert_eq!(Sha256::parse(&form), Ok(digest), "{}", form);
            }
            let json = serde_json::to_string(&digest).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<Sha256>(&json).ok(), Some(digest));
        }

        #[test]
        fn content_type_never_panics_and_what_it_accepts_round_trips(
            raw in prop_oneof![
                any::<String>(),
                text(),
                "[ -~]{0,40}",
                "[a-z]{1,12}/[a-z0-9.+-]{1,20}(; ?[a-z]{1,8}=[a-z0-9-]{1,12}){0,2}",
            ]
        ) {
            if let Ok(content_type) = ContentType::parse(raw.as_str()) {
                prop_assert_eq!(content_type.as_str(), raw.as_str());
                prop_assert!(content_type.as_str().len() <= 255);
                prop_assert!(content_type.as_str().bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
                prop_assert_eq!(ContentType::parse(content_type.as_str()), Ok(content_type.clone()));
                let json = serde_json::to_string(&content_type).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(serde_json::from_str::<ContentType>(&json).ok(), Some(content_type));
            }
        }

        #[test]
        fn media_types_are_accepted(
            raw in "[a-z]{1,12}/[a-z0-9.+-]{1,20}(; ?[a-z]{1,8}=[a-z0-9-]{1,12}){0,2}"
        ) {
            prop_assert!(ContentType::parse(raw).is_ok());
        }
    }
}
