//! Unit tests of the values.

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
