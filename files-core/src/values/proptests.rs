//! Property tests of the values.

use base64::Engine as _;
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use super::file_name::is_invisible;
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
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
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
