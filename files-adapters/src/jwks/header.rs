//! A token's header, as the verifier reads it before a library checks the token: its `alg` and
//! `kid` choose the key, and its `typ`, `crit` and `salt` are held to jwt-simple's rules when
//! jsonwebtoken checks the signature (jwt-simple reads the header again itself).
//!
//! It is decoded as jwt-simple 0.15 decodes it (`Token::decode_metadata`, which the tests below
//! hold it to): the token's first part, at most [`MAX_HEADER_LENGTH`] characters of base64url
//! without padding, a JSON object whose members named as jwt-simple's header members have their
//! types (a string, or an array of strings for `crit` and `x5c`), other members ignored. It is
//! the largest part of what the verifier adds to its library's work (docs/performance.md), and
//! costs half of jwt-simple's decode: only what is read is kept (the other members are checked,
//! not copied), and its base64 is not constant-time (a header is no secret).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use files_core::InvalidToken;
use jwt_simple::token::MAX_HEADER_LENGTH;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The members of a token's header that the verifier reads, among the others jwt-simple knows,
/// whose types only are checked. In jwt-simple's order: serde also reads a struct from an array,
/// by position.
#[derive(Debug, Deserialize)]
pub(super) struct Header {
    pub(super) alg: String,
    #[serde(default, rename = "cty")]
    _cty: Option<Text>,
    #[serde(default)]
    pub(super) kid: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        not(feature = "jsonwebtoken"),
        allow(dead_code, reason = "read on jsonwebtoken's path")
    )]
    pub(super) typ: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        not(feature = "jsonwebtoken"),
        allow(dead_code, reason = "read on jsonwebtoken's path")
    )]
    pub(super) crit: Option<Vec<Text>>,
    #[serde(default, rename = "x5c")]
    _x5c: Option<Vec<Text>>,
    #[serde(default, rename = "jku")]
    _jku: Option<Text>,
    #[serde(default, rename = "jwk")]
    _jwk: Option<Text>,
    #[serde(default, rename = "x5u")]
    _x5u: Option<Text>,
    #[serde(default, rename = "x5t")]
    _x5t: Option<Text>,
    #[serde(default, rename = "x5t#S256")]
    _x5t_s256: Option<Text>,
    #[serde(default)]
    #[cfg_attr(
        not(feature = "jsonwebtoken"),
        allow(dead_code, reason = "read on jsonwebtoken's path")
    )]
    pub(super) salt: Option<String>,
}

impl Header {
    /// The header of `token`.
    ///
    /// # Errors
    /// [`InvalidToken::Malformed`] for a header that is too long, is not base64url without
    /// padding, or is not a JSON object with members of the types above.
    pub(super) fn decode(token: &str) -> Result<Self, InvalidToken> {
        let encoded = token.split_once('.').map_or(token, |(header, _)| header);
        if encoded.len() > MAX_HEADER_LENGTH {
            return Err(InvalidToken::Malformed);
        }
        let json = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| InvalidToken::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| InvalidToken::Malformed)
    }
}

/// A JSON string, checked and not kept.
#[derive(Debug)]
pub(super) struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IsText;

        impl Visitor<'_> for IsText {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Text, E> {
                Ok(Text)
            }
        }

        deserializer.deserialize_str(IsText)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use jwt_simple::token::{MAX_HEADER_LENGTH, Token};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::Header;

    /// Both decoders give `token` the same answer: both refuse it, or both read the same `alg`,
    /// `kid`, `typ`, `crit` (whether empty) and `salt` (decoded, as jwt-simple reads it).
    fn agree(token: &str) -> Result<(), TestCaseError> {
        let theirs = Token::decode_metadata(token);
        let ours = Header::decode(token);
        match (&theirs, &ours) {
            (Err(_), Err(_)) => {}
            (Ok(theirs), Ok(ours)) => {
                prop_assert_eq!(theirs.algorithm(), ours.alg.as_str());
                prop_assert_eq!(theirs.key_id(), ours.kid.as_deref());
                prop_assert_eq!(theirs.signature_type(), ours.typ.as_deref());
                prop_assert_eq!(
                    theirs.critical().map(<[String]>::is_empty),
                    ours.crit.as_ref().map(Vec::is_empty)
                );
                let salt = ours.salt.as_ref().and_then(|salt| URL_SAFE_NO_PAD.decode(salt).ok());
                prop_assert_eq!(theirs.salt(), salt);
            }
            _ => prop_assert!(false, "jwt-simple read it: {}, ours: {:?}", theirs.is_ok(), ours),
        }
        Ok(())
    }

    /// The members jwt-simple reads, and others.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(
                &["alg", "kid", "typ", "cty", "crit", "x5c", "jku", "jwk", "x5u", "x5t", "x5t#S256", "salt"][..]
            )
            .prop_map(str::to_owned),
            1 => prop::sample::select(&["ALG", "", "x5t#s256"][..]).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    /// A member's name as JSON text: quoted, or written with an escape.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => name().prop_map(|name| json!(name).to_string()),
            1 => prop::sample::select(&[r#""k\u0069d""#, r#""\u0061lg""#][..]).prop_map(str::to_owned),
        ]
    }

    /// Text that is base64url or nearly: what salts and damaged headers are made of.
    fn nearly_base64() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(&['A', 'Q', 'g', 'w', 'z', '0', '9', '-', '_'][..]),
                1 => prop::sample::select(&['=', '+', '/', '.', ' ', '\n', 'é'][..]),
            ],
            0..12,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// Any JSON, weighted towards what headers hold.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => any::<i64>().prop_map(Value::from),
            4 => prop::sample::select(&["ES256", "RS256", "EdDSA", "JWT", "at+jwt", "jwe", "x", ""][..])
                .prop_map(Value::from),
            2 => nearly_base64().prop_map(Value::from),
            1 => any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(name(), inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A header's JSON text: an object whose members may repeat, an array, other JSON, or any
    /// text.
    fn header_json() -> impl Strategy<Value = String> {
        let member = (key(), value()).prop_map(|(key, value)| format!("{key}:{value}"));
        prop_oneof![
            8 => prop::collection::vec(member, 0..6).prop_map(|members| format!("{{{}}}", members.join(","))),
            // serde reads a struct from an array too, by position.
            2 => prop::collection::vec(value(), 0..14).prop_map(|values| Value::Array(values).to_string()),
            1 => value().prop_map(|value| value.to_string()),
            1 => any::<String>(),
        ]
    }

    /// A header's text as a token's first part: base64url, or damaged.
    fn first_part() -> impl Strategy<Value = String> {
        (header_json(), 0..6_u8, nearly_base64()).prop_map(|(json, damage, more)| {
            let encoded = URL_SAFE_NO_PAD.encode(&json);
            match damage {
                // Padded, and in the other alphabet.
                0 => STANDARD.encode(&json),
                // Characters added, or the last one dropped.
                1 => encoded + &more,
                2 => encoded[..encoded.len().saturating_sub(1)].to_owned(),
                _ => encoded,
            }
        })
    }

    proptest! {
        #[test]
        fn decodes_what_jwt_simple_decodes_and_refuses_what_it_refuses(
            first in first_part(),
            rest in prop::sample::select(&[".e30.c2ln", "", "."][..]),
        ) {
            agree(&format!("{first}{rest}"))?;
        }
    }

    #[test]
    fn a_good_header_is_read_an_array_by_position_and_a_long_one_refused() {
        let header = json!({"alg": "ES256", "kid": "es-1", "typ": "at+jwt", "crit": [], "salt": "c2FsdA"});
        let token = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header.to_string()));
        let ours = Header::decode(&token).unwrap();
        assert_eq!(
            (ours.alg.as_str(), ours.kid.as_deref(), ours.typ.as_deref()),
            ("ES256", Some("es-1"), Some("at+jwt"))
        );
        agree(&token).unwrap();
        // An array, read by position: the second member is `cty`, not `kid`.
        let token = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(r#"["ES256","ES256"]"#));
        assert_eq!(Header::decode(&token).unwrap().kid, None);
        agree(&token).unwrap();
        // The longest header jwt-simple reads (6144 bytes, 8192 characters), and one byte more.
        for (bytes, read) in [
            (MAX_HEADER_LENGTH / 4 * 3, true),
            (MAX_HEADER_LENGTH / 4 * 3 + 1, false),
        ] {
            let json = format!("{{\"alg\":\"ES256\"{}}}", " ".repeat(bytes - 15));
            assert_eq!(json.len(), bytes);
            let token = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(&json));
            assert_eq!(Header::decode(&token).is_ok(), read, "{bytes} bytes");
            agree(&token).unwrap();
        }
    }
}
