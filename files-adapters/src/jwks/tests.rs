//! Unit tests of the JWKS verifier and the development key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use files_core::{DeviceId, InvalidToken, Principal, TenantId, TokenError, TokenVerifier};
use jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, HS256Key, MACLike, RS256KeyPair,
    RSAKeyPairLike,
};
use jwt_simple::claims::{Claims, JWTClaims};
use jwt_simple::prelude::{Clock, Duration as JwtDuration};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::keys::KeySet;
use super::*;

pub(super) const ISSUER: &str = "https://dsts.test";
pub(super) const AUDIENCE: &str = "files";

/// A 2048-bit RSA test key (generating one in a debug build is slow).
pub(super) const RSA_PEM: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDVzOj6cMPR0rL7
6VbcGv0lAlIimwsabfFoCpAivL2+nQvpwBZ5tito16NudjkSxyYToZO0ZCQaFI57
3qV0wbKVGPIto1e0TqWgvfrcyLOgTuyAD7tbfC5uxhc+mVzvtcgSormDsI3hFAoO
gz1OVDOWG3KnjY5N3rEfugRVjG+MQgy2KLJ2On9fHXoeUxRqyffPL5wDBbcIAKP2
SU8JQG5wVJ8czKhVXUdrHEaRZML5EaxBUmRZOGG4E2xuQrilXR3vOTLQKAyzsuTz
fdFw0b0uN7ClDTfDDWk/YDEZgaxpgOZzdSXaJzxQAIgJl0pE27MJNVmEAAaCoa0E
+I3bt9KDAgMBAAECggEAVKcutELD9idkAQSSBNKW2vmBRfx3t/5CMHzGN0reIkQS
fHo3K/fqVjfTmSAsVvgNZoZ6clmYRc9P31H31zP+nrRi55keV+EwCWZPlu3M2bOG
Rupzt7SCug+rEnks6Cjk0CQoKjFU7ALAPKDQPFxwlIXHrvoIl2KOZU6E+s6BOFoQ
wBJ+sJ5I+7rmqtGBtbK0IS4MuRg7EUqsyw4NloIOu+nQs/7xmvRGzBYReglv4VVu
l2i1pTg8wj/ewcSreBBnLHC4+x3ijyFpGDifZId5eKe53F+ePO7B0/MoinRZCN3i
7Nku43uVVuzK1qnecIwuscFPBa3qpeivU8CvvSLtCQKBgQD+QOnKYSNTbG6suSkm
9WT7aw4X02b7P3SvsOj5eQjKXRi1lYH4ydQ5BctWFHuJOi3EYLiilLGVxKIw4/46
TPmVJf5hXZRp1m3N0vPIzIVUXrkfAZIsqylK8iY4deqHGouCqL5NTPD6fqQKmUeU
7oJbAJXElQvCvbxP2ab4cYnwTwKBgQDXRNzlJrXm1wfsYq+SA1/vvB6d6fDA9Sa0
I1T7iPrEs12RNt8iy36e+J6OPwaL8oNr/21mq5j6oTUF+VbNM+/g75Z+f/6/yjM9
zbOKr/h+UOh9X7WylZ38ojK8KE1i6pj4yIhr4uivtuuhhbFbKZfKRt/qu9x+2HIz
mf1i9t1ZjQKBgQDcZpMDv57q00VBbyUQQ4stMwk9eCF+TOyu3FGo6NXI7ljcF+Va
MENKxw4T6Z+JPqir4hhLv1AN/y2F6i3Yhh+Yvh28c22TLbFzyZlQiJJPp+kbyrXX
COy7rhuZuAX85fLn6bVFtxvyWVOEaIkXvoW7s08g4P8X6nfSVF+cYHftmwKBgA9H
yBZMBSV5pgpVhvjqXGj8BYBYFsrbm/+1clbYhlRoFwAz0Or7XuWR6E9YkfJlKIcF
/pIHJDjGMKlX5Z1zTle9KgWYuFCM3c5JR7FUhGMTAy3DGXavwCMqsEdC5RtcY7dl
JKnj1XiDl35Dqy85aJjnJwXWh/RJEPIwwBfCRjwRAoGBAID8JAinXg5o+eLqNpvx
L1xUaK0Ecm8Jk7lEE3MdOInuFGze1+Kpb16o6RVXP29PNQ8jr4xCYDvBBdAT2G2P
kL36fvGawkOihnuSJAXpqE5p1GXA9hU4Gbm8s2uynmQedvoS6Y91/uLP9TEnKUI1
bVlqrTnHyrzh8vs59CUr5z2H
-----END PRIVATE KEY-----
";

pub(super) struct Keys {
    pub(super) es: ES256KeyPair,
    pub(super) rs: RS256KeyPair,
    pub(super) ed: Ed25519KeyPair,
}

#[derive(Clone, Copy)]
enum Alg {
    Es,
    Rs,
    Ed,
}

impl Keys {
    pub(super) fn new() -> Self {
        Self {
            es: ES256KeyPair::generate().with_key_id("es-1"),
            rs: RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rs-1"),
            ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        }
    }

    pub(super) fn jwks(&self) -> String {
        format!(
            r#"{{"keys":[{},{},{}]}}"#,
            self.es.public_key().to_jwk(),
            self.rs.public_key().to_jwk(),
            self.ed.public_key().to_jwk()
        )
    }

    fn verifier(&self) -> JwksVerifier {
        JwksVerifier::from_jwks_json(config(), &self.jwks()).unwrap()
    }

    fn sign(&self, alg: Alg, claims: JWTClaims<Map<String, Value>>) -> String {
        match alg {
            Alg::Es => self.es.sign(claims).unwrap(),
            Alg::Rs => self.rs.sign(claims).unwrap(),
            Alg::Ed => self.ed.sign(claims).unwrap(),
        }
    }
}

fn config() -> JwtConfig {
    JwtConfig::new(ISSUER, AUDIENCE)
}

fn tenant() -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(0x1111))
}

fn device() -> DeviceId {
    DeviceId::from_uuid(Uuid::from_u128(0x2222))
}

fn custom(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

pub(super) fn device_claims() -> Map<String, Value> {
    custom(json!({"tenant_id": tenant().to_string(), "device_id": device().to_string()}))
}

fn service_claims() -> Map<String, Value> {
    custom(json!({"tenant_id": tenant().to_string(), "scope": "openid files:admin"}))
}

pub(super) fn claims(custom: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    Claims::with_custom_claims(custom, JwtDuration::from_mins(10))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
}

pub(super) fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn refused(verifier: &JwksVerifier, token: &str) -> InvalidToken {
    match verifier.verify(token).await {
        Err(TokenError::Invalid(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_device_and_service_tokens_of_every_algorithm() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    for alg in [Alg::Es, Alg::Rs, Alg::Ed] {
        let token = keys.sign(alg, claims(device_claims()));
        assert_eq!(
            verifier.verify(&token).await.unwrap(),
            Principal::Device {
                tenant: tenant(),
                device: device()
            }
        );
        let token = keys.sign(alg, claims(service_claims()));
        assert_eq!(
            verifier.verify(&token).await.unwrap(),
            Principal::TenantService { tenant: tenant() }
        );
    }
}

#[tokio::test]
async fn device_id_wins_over_the_admin_scope_and_scope_may_be_an_array() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let mut both = device_claims();
    both.insert("scope".into(), json!("files:admin"));
    let token = keys.sign(Alg::Es, claims(both));
    assert!(matches!(
        verifier.verify(&token).await.unwrap(),
        Principal::Device { .. }
    ));

    let array = custom(json!({"tenant_id": tenant().to_string(), "scope": ["a", "files:admin"]}));
    let token = keys.sign(Alg::Es, claims(array));
    assert_eq!(
        verifier.verify(&token).await.unwrap(),
        Principal::TenantService { tenant: tenant() }
    );
}

#[tokio::test]
async fn claim_names_and_admin_scope_are_configurable() {
    let keys = Keys::new();
    let mut config = config();
    config.claims = ClaimNames {
        tenant_id: "tid".into(),
        device_id: "sub".into(),
        scope: "scp".into(),
    };
    config.admin_scope = "admin".into();
    let verifier = JwksVerifier::from_jwks_json(config, &keys.jwks()).unwrap();

    let token = keys.sign(
        Alg::Es,
        claims(custom(json!({"tid": tenant().to_string()}))).with_subject(device()),
    );
    assert_eq!(
        verifier.verify(&token).await.unwrap(),
        Principal::Device {
            tenant: tenant(),
            device: device()
        }
    );
    let token = keys.sign(
        Alg::Es,
        claims(custom(json!({"tid": tenant().to_string(), "scp": "admin"}))),
    );
    assert_eq!(
        verifier.verify(&token).await.unwrap(),
        Principal::TenantService { tenant: tenant() }
    );
    // The default names mean nothing now.
    let token = keys.sign(Alg::Es, claims(service_claims()));
    assert_eq!(refused(&verifier, &token).await, InvalidToken::Claim("tenant_id"));
    // `"sub": null` is not an absent device, even though jwt-simple reads it as no `sub`.
    let token = keys.sign(
        Alg::Es,
        claims(custom(
            json!({"tid": tenant().to_string(), "scp": "admin", "sub": null}),
        )),
    );
    assert_eq!(refused(&verifier, &token).await, InvalidToken::Claim("device_id"));
}

#[tokio::test]
async fn a_present_claim_must_be_valid() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let with = |changes: Value| {
        let mut custom = device_claims();
        custom.extend(self::custom(changes));
        keys.sign(Alg::Es, claims(custom))
    };
    for (changes, reason) in [
        (json!({"device_id": null, "scope": "files:admin"}), "device_id"),
        (json!({"device_id": 7, "scope": "files:admin"}), "device_id"),
        (json!({"device_id": [], "scope": "files:admin"}), "device_id"),
        (json!({"tenant_id": null}), "tenant_id"),
        (json!({"scope": null}), "scope"),
        (json!({"scope": {"files:admin": true}}), "scope"),
        (json!({"scope": ["files:admin", null]}), "scope"),
    ] {
        let token = with(changes.clone());
        assert_eq!(
            refused(&verifier, &token).await,
            InvalidToken::Claim(reason),
            "{changes}"
        );
    }
}

#[tokio::test]
async fn a_token_may_not_live_longer_than_the_maximum_lifetime() {
    let keys = Keys::new();
    let verifier = JwksVerifier::from_jwks_json(
        JwtConfig {
            max_token_lifetime: Duration::from_secs(3600),
            ..config()
        },
        &keys.jwks(),
    )
    .unwrap();
    let now = Clock::now_since_epoch();
    let token = |issued_at: Option<JwtDuration>, expires_at: JwtDuration| {
        let mut claims = claims(device_claims());
        claims.issued_at = issued_at;
        claims.expires_at = Some(expires_at);
        keys.sign(Alg::Es, claims)
    };
    // Within the hour from now (the leeway of 60 s on top), and from `iat`.
    for (issued_at, expires_at) in [
        (Some(now), now + JwtDuration::from_mins(59)),
        (None, now + JwtDuration::from_secs(3630)),
        (Some(now - JwtDuration::from_mins(30)), now + JwtDuration::from_mins(30)),
    ] {
        verifier.verify(&token(issued_at, expires_at)).await.unwrap();
    }
    for (issued_at, expires_at) in [
        (Some(now), now + JwtDuration::from_mins(62)),
        (None, now + JwtDuration::from_mins(62)),
        (Some(now - JwtDuration::from_mins(31)), now + JwtDuration::from_mins(30)),
        (Some(now), now + JwtDuration::from_days(3650)),
    ] {
        assert_eq!(
            refused(&verifier, &token(issued_at, expires_at)).await,
            InvalidToken::Claim("exp"),
            "iat {issued_at:?}, exp {expires_at:?}"
        );
    }
}

#[tokio::test]
async fn refuses_expired_and_not_yet_valid_tokens_with_leeway() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let now = Clock::now_since_epoch();

    let mut expired = claims(device_claims());
    expired.issued_at = Some(now - JwtDuration::from_hours(2));
    expired.invalid_before = expired.issued_at;
    expired.expires_at = Some(now - JwtDuration::from_hours(1));
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Es, expired)).await,
        InvalidToken::Expired
    );

    // Within the 60 s leeway.
    let mut just_expired = claims(device_claims());
    just_expired.expires_at = Some(now - JwtDuration::from_secs(20));
    verifier.verify(&keys.sign(Alg::Es, just_expired)).await.unwrap();

    let mut early = claims(device_claims());
    early.invalid_before = Some(now + JwtDuration::from_hours(1));
    early.expires_at = Some(now + JwtDuration::from_hours(2));
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Rs, early)).await,
        InvalidToken::NotYetValid
    );

    let mut issued_in_future = claims(device_claims());
    issued_in_future.issued_at = Some(now + JwtDuration::from_hours(1));
    issued_in_future.invalid_before = None;
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Ed, issued_in_future)).await,
        InvalidToken::NotYetValid
    );

    let mut no_exp = claims(device_claims());
    no_exp.expires_at = None;
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Es, no_exp)).await,
        InvalidToken::Claim("exp")
    );
}

#[tokio::test]
async fn refuses_wrong_or_missing_issuer_and_audience() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let wrong_iss = claims(device_claims()).with_issuer("https://evil.test");
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Es, wrong_iss)).await,
        InvalidToken::Issuer
    );
    let mut no_iss = claims(device_claims());
    no_iss.issuer = None;
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Es, no_iss)).await,
        InvalidToken::Issuer
    );

    let wrong_aud = claims(device_claims()).with_audience("other");
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Rs, wrong_aud)).await,
        InvalidToken::Audience
    );
    let mut no_aud = claims(device_claims());
    no_aud.audiences = None;
    assert_eq!(
        refused(&verifier, &keys.sign(Alg::Ed, no_aud)).await,
        InvalidToken::Audience
    );
    // A list of audiences that contains ours is fine.
    let several = claims(device_claims()).with_audiences(["other", AUDIENCE].into_iter().collect());
    verifier.verify(&keys.sign(Alg::Es, several)).await.unwrap();
}

#[tokio::test]
async fn refuses_tokens_that_name_no_principal() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let cases = [
        (
            json!({"device_id": device().to_string()}),
            InvalidToken::Claim("tenant_id"),
        ),
        (
            json!({"tenant_id": "not-a-uuid", "device_id": device().to_string()}),
            InvalidToken::Claim("tenant_id"),
        ),
        (
            json!({"tenant_id": 42, "device_id": device().to_string()}),
            InvalidToken::Claim("tenant_id"),
        ),
        (
            json!({"tenant_id": tenant().to_string(), "device_id": "nope"}),
            InvalidToken::Claim("device_id"),
        ),
        (
            json!({"tenant_id": tenant().to_string(), "device_id": 7}),
            InvalidToken::Claim("device_id"),
        ),
        (json!({"tenant_id": tenant().to_string()}), InvalidToken::NotAPrincipal),
        (
            json!({"tenant_id": tenant().to_string(), "scope": "files:read files:administrator"}),
            InvalidToken::NotAPrincipal,
        ),
        (
            json!({"tenant_id": tenant().to_string(), "scope": 1}),
            InvalidToken::Claim("scope"),
        ),
    ];
    for (custom_claims, expected) in cases {
        let token = keys.sign(Alg::Es, claims(custom(custom_claims.clone())));
        assert_eq!(refused(&verifier, &token).await, expected, "{custom_claims}");
    }
}

#[tokio::test]
async fn the_algorithm_comes_from_the_key() {
    let keys = Keys::new();
    let verifier = keys.verifier();

    // RS256-signed, header kid of the ES256 key.
    let rs_as_es = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("es-1");
    let token = rs_as_es.sign(claims(device_claims())).unwrap();
    assert_eq!(refused(&verifier, &token).await, InvalidToken::Algorithm);

    // HS256 keyed with the RSA public key, as PEM and as DER.
    let public_pem = keys.rs.public_key().to_pem().unwrap();
    let der = keys.rs.public_key().to_der().unwrap();
    for secret in [public_pem.as_bytes(), der.as_slice()] {
        for kid in [Some("rs-1"), None] {
            let mut key = HS256Key::from_bytes(secret);
            if let Some(kid) = kid {
                key = key.with_key_id(kid);
            }
            let token = key.authenticate(claims(device_claims())).unwrap();
            assert_eq!(refused(&verifier, &token).await, InvalidToken::Algorithm);
        }
    }

    // alg none, with and without a signature, with and without kid.
    let payload = b64(&serde_json::to_value(claims(device_claims())).unwrap());
    for header in [
        json!({"alg": "none", "kid": "es-1"}),
        json!({"alg": "none"}),
        json!({"alg": "None"}),
    ] {
        for signature in ["", "AAAA"] {
            let token = format!("{}.{payload}.{signature}", b64(&header));
            assert_eq!(refused(&verifier, &token).await, InvalidToken::Algorithm, "{header}");
        }
    }

    // An ES256 token relabelled RS256 for its own key.
    let token = keys.sign(Alg::Es, claims(device_claims()));
    let (_, rest) = token.split_once('.').unwrap();
    let token = format!("{}.{rest}", b64(&json!({"alg": "RS256", "kid": "es-1"})));
    assert_eq!(refused(&verifier, &token).await, InvalidToken::Algorithm);
}

#[tokio::test]
async fn refuses_unknown_keys_foreign_signatures_and_tampering() {
    let keys = Keys::new();
    let verifier = keys.verifier();

    let stranger = ES256KeyPair::generate().with_key_id("stranger");
    let token = stranger.sign(claims(device_claims())).unwrap();
    assert_eq!(refused(&verifier, &token).await, InvalidToken::UnknownKey);

    // Several keys: a token without kid cannot pick one.
    let anonymous = ES256KeyPair::from_pem(&keys.es.to_pem().unwrap()).unwrap();
    let token = anonymous.sign(claims(device_claims())).unwrap();
    assert_eq!(refused(&verifier, &token).await, InvalidToken::UnknownKey);

    for (alg, kid) in [(Alg::Es, "es-1"), (Alg::Ed, "ed-1")] {
        let token = match alg {
            Alg::Es => ES256KeyPair::generate().with_key_id(kid).sign(claims(device_claims())),
            _ => Ed25519KeyPair::generate()
                .with_key_id(kid)
                .sign(claims(device_claims())),
        }
        .unwrap();
        assert_eq!(refused(&verifier, &token).await, InvalidToken::Signature);
    }

    for alg in [Alg::Es, Alg::Rs, Alg::Ed] {
        let token = keys.sign(alg, claims(device_claims()));
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["tenant_id"] = json!(Uuid::from_u128(0x9999).to_string());
        let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(refused(&verifier, &tampered).await, InvalidToken::Signature);
        // Another signature of the same length.
        let mut signature = parts[2].to_owned();
        let flipped = if signature.as_bytes()[10] == b'A' { "B" } else { "A" };
        signature.replace_range(10..11, flipped);
        let resigned = format!("{}.{}.{signature}", parts[0], parts[1]);
        assert_eq!(refused(&verifier, &resigned).await, InvalidToken::Signature);
    }
}

/// Tokens made from `good` that are not three decodable parts, or whose header or claims are
/// not JSON objects.
pub(super) fn malformed_from(good: &str) -> Vec<String> {
    let parts: Vec<&str> = good.split('.').collect();
    vec![
        String::new(),
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}.{}.%%%", parts[0], parts[1]),
        format!("{}.{}.{}", b64(&json!("ES256")), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(&json!("not claims")), parts[2]),
    ]
}

#[tokio::test]
async fn refuses_malformed_tokens() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let good = keys.sign(Alg::Es, claims(device_claims()));
    let parts: Vec<&str> = good.split('.').collect();
    let mut malformed = malformed_from(&good);
    malformed.extend([
        // A JWE-ish typ and a critical extension.
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "ES256", "kid": "es-1", "typ": "at+jwe"})),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "ES256", "kid": "es-1", "crit": ["x"]})),
            parts[1],
            parts[2]
        ),
    ]);
    for token in malformed {
        let reason = refused(&verifier, &token).await;
        // A payload swapped for something else also breaks the signature, which is checked first.
        assert!(
            matches!(reason, InvalidToken::Malformed | InvalidToken::Signature),
            "{token}: {reason:?}"
        );
    }
    for token in ["", "garbage", "a.b.c", "...", &format!("{good}.extra")] {
        assert_eq!(refused(&verifier, token).await, InvalidToken::Malformed, "{token}");
    }
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let keys = Keys::new();
    let es: Value = serde_json::from_str(&keys.es.public_key().to_jwk()).unwrap();
    let rs: Value = serde_json::from_str(&keys.rs.public_key().to_jwk()).unwrap();

    let mut enc = es.clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut wrong_alg = rs.clone();
    wrong_alg["alg"] = json!("ES256");
    wrong_alg["kid"] = json!("wrong-alg");
    let mut rs384 = rs.clone();
    rs384["alg"] = json!("RS384");
    rs384["kid"] = json!("rs384");
    let mut private = es.clone();
    private["d"] = json!("AAAA");
    private["kid"] = json!("private");
    let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AAAA", "y": "AAAA"});
    let oct = json!({"kty": "oct", "kid": "oct", "k": "c2VjcmV0"});
    let mut with_x5c = rs.clone();
    with_x5c["x5c"] = json!(["MIIB"]);
    with_x5c["kid"] = json!("x5c");
    let mut duplicate = rs.clone();
    duplicate["kid"] = json!("es-1");

    let jwks = json!({"keys": [es, enc, wrong_alg, rs384, private, p384, oct, with_x5c, duplicate, 42]});
    let set = KeySet::from_jwks_json(&jwks.to_string(), "test").unwrap();
    let mut kids: Vec<&str> = set.by_kid.keys().map(String::as_str).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["es-1", "x5c"]);
    assert_eq!(set.by_kid["es-1"].algorithm(), KeyAlgorithm::Es256);
    assert!(set.without_kid.is_empty());

    let none = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
    assert!(matches!(
        JwksVerifier::from_jwks_json(config(), &none),
        Err(JwksError::NoUsableKey { .. })
    ));
    for bad in ["", "[]", "{}", r#"{"keys": 1}"#, "not json"] {
        assert!(
            matches!(
                JwksVerifier::from_jwks_json(config(), bad),
                Err(JwksError::InvalidJwks { .. })
            ),
            "{bad}"
        );
    }
    // A single JWK is a key set of one.
    let single = keys.ed.public_key().to_jwk();
    let set = KeySet::from_jwks_json(&single, "test").unwrap();
    assert_eq!(set.by_kid["ed-1"].algorithm(), KeyAlgorithm::EdDsa);
}

/// A path under a directory of its own in the system temporary directory.
fn temp_path(name: &str) -> std::path::PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir()
        .join(format!("files-adapters-jwks-{}-{nanos}-{n}", std::process::id()))
        .join(name)
}

#[tokio::test]
async fn key_files_hold_pem_keys_or_a_jwks() {
    // With each signature library built in: a key file's keys reach jsonwebtoken too.
    for signature_library in SignatureLibrary::ALL.into_iter().filter(|library| library.is_built()) {
        let config = || JwtConfig {
            signature_library,
            ..config()
        };
        let keys = Keys::new();
        let es_pem = temp_path("es.pem");
        std::fs::create_dir_all(es_pem.parent().unwrap()).unwrap();
        std::fs::write(&es_pem, keys.es.public_key().to_pem().unwrap()).unwrap();
        let rs_pem = es_pem.with_file_name("rs.pem");
        std::fs::write(&rs_pem, keys.rs.public_key().to_pem().unwrap()).unwrap();
        let ed_pem = es_pem.with_file_name("ed.pem");
        std::fs::write(&ed_pem, keys.ed.public_key().to_pem()).unwrap();
        let jwks = es_pem.with_file_name("jwks.json");
        std::fs::write(&jwks, keys.jwks()).unwrap();

        // One PEM without kid verifies tokens without kid, and tokens whose kid it cannot know fail.
        let verifier = JwksVerifier::from_key_file(config(), &rs_pem).unwrap();
        let anonymous = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        verifier
            .verify(&anonymous.sign(claims(device_claims())).unwrap())
            .await
            .unwrap();
        assert_eq!(
            refused(&verifier, &keys.sign(Alg::Rs, claims(device_claims()))).await,
            InvalidToken::UnknownKey
        );

        // PEM keys given a kid, plus a JWKS file.
        let verifier = JwksVerifier::from_key_files(
            config(),
            &[
                KeyFile::new(&es_pem).with_kid("es-1"),
                KeyFile::new(&ed_pem).with_kid("ed-1"),
            ],
        )
        .unwrap();
        verifier
            .verify(&keys.sign(Alg::Es, claims(device_claims())))
            .await
            .unwrap();
        verifier
            .verify(&keys.sign(Alg::Ed, claims(device_claims())))
            .await
            .unwrap();
        assert_eq!(verifier.key_count().await, 2);
        let verifier = JwksVerifier::from_key_file(config(), &jwks).unwrap();
        for alg in [Alg::Es, Alg::Rs, Alg::Ed] {
            verifier
                .verify(&keys.sign(alg, claims(service_claims())))
                .await
                .unwrap();
        }

        // Not a key, a private key, a missing file.
        let junk = es_pem.with_file_name("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(matches!(
            JwksVerifier::from_key_file(config(), &junk),
            Err(JwksError::InvalidPem { .. })
        ));
        let private = es_pem.with_file_name("private.pem");
        std::fs::write(&private, keys.es.to_pem().unwrap()).unwrap();
        assert!(matches!(
            JwksVerifier::from_key_file(config(), &private),
            Err(JwksError::InvalidPem { .. })
        ));
        assert!(matches!(
            JwksVerifier::from_key_file(config(), &es_pem.with_file_name("absent")),
            Err(JwksError::Read { .. })
        ));
        std::fs::remove_dir_all(es_pem.parent().unwrap()).unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_url_source_starts_and_answers_unavailable() {
    // A port bound without listening: connections are refused.
    let (_closed, port) = closed_port();
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let mut source = RemoteJwks::new(format!("http://127.0.0.1:{port}/jwks.json"));
    source.allow_http = true;
    source.timeout = Duration::from_secs(2);
    source.on_refresh = Some(Arc::new(move |outcome| seen.lock().unwrap().push(outcome)));
    let verifier = JwksVerifier::from_url(config(), source).await.unwrap();
    verifier.spawn_background();
    assert_eq!(*outcomes.lock().unwrap(), [RefreshOutcome::Failed]);
    assert_eq!(verifier.key_count().await, 0);

    let keys = Keys::new();
    let token = keys.sign(Alg::Es, claims(device_claims()));
    assert!(matches!(verifier.verify(&token).await, Err(TokenError::Unavailable(_))));
    // The refetch that token caused failed too; the next one waits for the interval.
    assert_eq!(outcomes.lock().unwrap().len(), 2);
    assert!(matches!(verifier.verify(&token).await, Err(TokenError::Unavailable(_))));
    assert_eq!(outcomes.lock().unwrap().len(), 2);
    // What is wrong with the token itself is still said.
    assert_eq!(refused(&verifier, "garbage").await, InvalidToken::Malformed);
}

#[tokio::test]
async fn url_source_refuses_bad_urls() {
    for url in ["not a url", "ftp://dsts.test/jwks.json", "file:///etc/passwd"] {
        let source = RemoteJwks {
            allow_http: true,
            ..RemoteJwks::new(url)
        };
        assert!(matches!(
            JwksVerifier::from_url(config(), source).await,
            Err(JwksError::Url { .. })
        ));
    }
}

/// A port where connections are refused for as long as the socket lives: bound, not
/// listening (a port bound and freed could be taken by anyone meanwhile).
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// An HTTP/1.1 answer that closes the connection.
fn http_answer(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// A server on `127.0.0.1` that gives every request `answer`: its `http://host:port` and how
/// many requests it received.
async fn serve(answer: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, requests)
}

/// A URL source over plain http, allowed, that reports its outcomes into `outcomes`.
fn observed_http_source(url: String, outcomes: &Arc<std::sync::Mutex<Vec<RefreshOutcome>>>) -> RemoteJwks {
    let seen = Arc::clone(outcomes);
    RemoteJwks {
        allow_http: true,
        timeout: Duration::from_secs(2),
        on_refresh: Some(Arc::new(move |outcome| seen.lock().unwrap().push(outcome))),
        ..RemoteJwks::new(url)
    }
}

#[tokio::test]
async fn a_redirect_to_another_key_set_is_not_followed() {
    let keys = Keys::new();
    let json = [("content-type", "application/json")];
    let (elsewhere, elsewhere_requests) = serve(http_answer("200 OK", &json, &keys.jwks())).await;
    let token = keys.sign(Alg::Es, claims(device_claims()));
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let location = format!("{elsewhere}/jwks.json");
        let (redirector, requests) = serve(http_answer(status, &[("location", &location)], "")).await;
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let source = observed_http_source(format!("{redirector}/jwks.json"), &outcomes);
        let verifier = JwksVerifier::from_url(config(), source).await.unwrap();
        verifier.spawn_background();
        assert_eq!(*outcomes.lock().unwrap(), [RefreshOutcome::Failed], "{status}");
        assert_eq!(verifier.key_count().await, 0, "{status}");
        // The token signed with a key of the other set is not accepted; its refetch fails too.
        assert!(
            matches!(verifier.verify(&token).await, Err(TokenError::Unavailable(_))),
            "{status}"
        );
        assert_eq!(
            *outcomes.lock().unwrap(),
            [RefreshOutcome::Failed, RefreshOutcome::Failed],
            "{status}"
        );
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2, "{status}");
    }
    assert_eq!(elsewhere_requests.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The key set itself is fine: fetched directly, it verifies the token.
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let direct = JwksVerifier::from_url(
        config(),
        observed_http_source(format!("{elsewhere}/jwks.json"), &outcomes),
    )
    .await
    .unwrap();
    direct.spawn_background();
    assert_eq!(*outcomes.lock().unwrap(), [RefreshOutcome::Updated { keys: 3 }]);
    direct.verify(&token).await.unwrap();
}

#[tokio::test]
async fn plain_http_is_refused_unless_allowed() {
    let keys = Keys::new();
    let (address, requests) = serve(http_answer("200 OK", &[], &keys.jwks())).await;
    let url = format!("{address}/jwks.json");
    for url in [url.clone(), url.to_uppercase().replace("/JWKS.JSON", "/jwks.json")] {
        let refused = JwksVerifier::from_url(config(), RemoteJwks::new(url.clone())).await;
        let Err(error @ JwksError::PlainHttp { .. }) = refused else {
            panic!("{url}: expected PlainHttp, got {refused:?}");
        };
        assert!(error.to_string().contains("http://"), "{error}");
    }
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 0);

    let allowed = RemoteJwks {
        allow_http: true,
        ..RemoteJwks::new(url)
    };
    let verifier = JwksVerifier::from_url(config(), allowed).await.unwrap();
    verifier.spawn_background();
    assert_eq!(verifier.key_count().await, 3);
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

    // https needs no allowance (nothing answers there: the verifier starts without keys).
    let (_closed, port) = closed_port();
    let https = RemoteJwks {
        timeout: Duration::from_secs(2),
        ..RemoteJwks::new(format!("https://127.0.0.1:{port}/jwks.json"))
    };
    let verifier = JwksVerifier::from_url(config(), https).await.unwrap();
    verifier.spawn_background();
    assert_eq!(verifier.key_count().await, 0);
}

/// What a `tracing` subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The secret parts of the URLs below.
const URL_SECRETS: [&str; 4] = ["url-user", "url-password", "query-token", "fragment-secret"];

fn assert_no_url_secret(text: &str, what: &str) {
    for secret in URL_SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

#[tokio::test]
async fn url_credentials_and_query_are_never_logged_nor_shown() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let keys = Keys::new();
    let token = keys.sign(Alg::Es, claims(device_claims()));
    let (not_a_jwks, _) = serve(http_answer("200 OK", &[], "not json")).await;
    let oct_only = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
    let (no_usable_key, _) = serve(http_answer("200 OK", &[], oct_only)).await;
    let (failing, _) = serve(http_answer("500 Internal Server Error", &[], "")).await;
    let (redirecting, _) = serve(http_answer("302 Found", &[("location", "/elsewhere")], "")).await;
    let (good, _) = serve(http_answer("200 OK", &[], &keys.jwks())).await;
    let secret_url = |address: &str| {
        let address = address.trim_start_matches("http://");
        format!("http://url-user:url-password@{address}/jwks.json?access_token=query-token#fragment-secret")
    };
    let (_closed, port) = closed_port();
    let failing_sources = [
        format!("http://127.0.0.1:{port}"),
        not_a_jwks,
        no_usable_key,
        failing,
        redirecting,
    ];
    for address in &failing_sources {
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let source = observed_http_source(secret_url(address), &outcomes);
        let shown = source.redacted_url();
        assert!(shown.starts_with("http://***@127.0.0.1:"), "{shown}");
        assert!(shown.ends_with("/jwks.json?***#***"), "{shown}");
        assert_no_url_secret(&format!("{source:?}"), "Debug of RemoteJwks");
        let verifier = JwksVerifier::from_url(config(), source).await.unwrap();
        verifier.spawn_background();
        assert_eq!(*outcomes.lock().unwrap(), [RefreshOutcome::Failed], "{address}");
        assert_no_url_secret(&format!("{verifier:?}"), "Debug of JwksVerifier");
        let Err(TokenError::Unavailable(cause)) = verifier.verify(&token).await else {
            panic!("{address}: expected Unavailable");
        };
        let message = files_core::ports::error_chain(&*cause);
        assert!(message.contains(&shown), "{message}");
        assert_no_url_secret(&message, "the Unavailable error");
    }
    let good_source = observed_http_source(secret_url(&good), &Arc::default());
    let verifier = JwksVerifier::from_url(config(), good_source).await.unwrap();
    verifier.spawn_background();
    verifier.verify(&token).await.unwrap();

    // Set-up errors quote the URL redacted too.
    for url in [
        "https://url-user:url-password@dsts.test:port/jwks?access_token=query-token#fragment-secret",
        "ftp://url-user:url-password@dsts.test/jwks?access_token=query-token#fragment-secret",
        "http://url-user:url-password@dsts.test/jwks?access_token=query-token#fragment-secret",
    ] {
        let error = JwksVerifier::from_url(config(), RemoteJwks::new(url))
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("://***@dsts.test"), "{message}");
        assert_no_url_secret(&message, "a set-up error");
    }

    let logs = captured.text();
    assert_eq!(
        logs.matches("JWKS fetch failed").count(),
        2 * failing_sources.len(),
        "{logs}"
    );
    assert!(logs.contains("JWKS fetched"), "{logs}");
    assert!(logs.contains("url=http://***@127.0.0.1:"), "{logs}");
    assert_no_url_secret(&logs, "the log");
}

#[test]
fn dev_key_is_created_once_and_shared() {
    let path = temp_path("dev/key.pem");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || DevKey::load_or_create(&path).unwrap().kid().to_owned())
        })
        .collect();
    let kids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(kids.iter().all(|kid| kid == &kids[0]), "{kids:?}");
    assert_eq!(DevKey::load_or_create(&path).unwrap().kid(), kids[0]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1);

    std::fs::write(&path, "not a key").unwrap();
    assert!(matches!(
        DevKey::load_or_create(&path),
        Err(DevKeyError::InvalidKey { .. })
    ));
    std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn dev_key_directories_are_created_0700_and_the_key_0600() {
    let path = temp_path("runtime/files-server-dev/key.pem");
    DevKey::load_or_create(&path).unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&path), 0o600);
    std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
}

#[cfg(unix)]
#[test]
fn a_dev_key_others_could_change_or_read_is_refused() {
    let path = temp_path("dev/key.pem");
    let dir = path.parent().unwrap().to_owned();
    let kid = DevKey::load_or_create(&path).unwrap().kid().to_owned();
    let refused = |expected_path: &std::path::Path, problem: &str| match DevKey::load_or_create(&path) {
        Err(error @ DevKeyError::Insecure { .. }) => {
            let DevKeyError::Insecure { path: at, .. } = &error else {
                unreachable!()
            };
            assert_eq!(at, expected_path);
            let message = error.to_string();
            assert!(message.contains(&expected_path.display().to_string()), "{message}");
            assert!(message.contains(problem), "{message}");
        }
        other => panic!("expected a refusal of {}, got {other:?}", expected_path.display()),
    };

    for writable in [0o666, 0o620, 0o602] {
        set_mode(&path, writable);
        refused(&path, "writable by its group or others");
    }
    // Whoever reads the private key can mint tokens: readable by its group or others is refused.
    for readable in [0o644, 0o640, 0o604, 0o610, 0o601] {
        set_mode(&path, readable);
        refused(&path, "readable by its group or others");
    }
    // The owner's own permissions are the owner's business.
    set_mode(&path, 0o400);
    assert_eq!(DevKey::load_or_create(&path).unwrap().kid(), kid);
    set_mode(&path, 0o600);

    for writable in [0o777, 0o770, 0o1777] {
        set_mode(&dir, writable);
        refused(&dir, "writable by its group or others");
    }
    set_mode(&dir, 0o700);
    assert_eq!(DevKey::load_or_create(&path).unwrap().kid(), kid);

    // Owned by another user (only root can give a file away).
    let nobody = 65534;
    match std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)) {
        Ok(()) => {
            refused(&path, "owned by uid 65534");
            std::os::unix::fs::chown(&path, Some(rustix::process::geteuid().as_raw()), None).unwrap();
            std::os::unix::fs::chown(&dir, Some(nobody), Some(nobody)).unwrap();
            refused(&dir, "owned by uid 65534");
        }
        Err(error) => eprintln!("not checking ownership (needs root): {error}"),
    }
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn the_default_dev_dir_is_per_user() {
    use super::dev::default_dir_from;
    let some = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(
        default_dir_from(some("/run/user/1000"), some("/home/u"), Some(1000)),
        std::path::PathBuf::from("/run/user/1000/files-server-dev")
    );
    for runtime in [None, some(""), some("relative/dir")] {
        assert_eq!(
            default_dir_from(runtime, some("/home/u"), Some(1000)),
            std::path::PathBuf::from("/home/u/.cache/files-server-dev")
        );
    }
    assert_eq!(
        default_dir_from(None, some(""), Some(1000)),
        std::env::temp_dir().join("files-server-dev-1000")
    );
    assert_eq!(
        default_dir_from(None, None, None),
        std::env::temp_dir().join("files-server-dev")
    );
    assert_ne!(DevKey::default_dir(), std::env::temp_dir().join("files-server-dev"));
}

#[tokio::test]
async fn dev_key_mints_tokens_its_verifier_accepts() {
    let key = DevKey::generate();
    let verifier = key.verifier(config()).unwrap();
    let device_token = key
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: Some(device()),
                admin: false,
                platform: false,
            },
            ISSUER,
            AUDIENCE,
            Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(
        verifier.verify(&device_token).await.unwrap(),
        Principal::Device {
            tenant: tenant(),
            device: device()
        }
    );
    let service_token = key
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: None,
                admin: true,
                platform: false,
            },
            ISSUER,
            AUDIENCE,
            Duration::MAX,
        )
        .unwrap();
    // Minted for ten years at most: longer than the default lifetime allows, accepted where the
    // lifetime allows ten years.
    assert_eq!(refused(&verifier, &service_token).await, InvalidToken::Claim("exp"));
    let ten_years = key
        .verifier(JwtConfig {
            max_token_lifetime: Duration::from_secs(10 * 365 * 24 * 3600),
            ..config()
        })
        .unwrap();
    assert_eq!(
        ten_years.verify(&service_token).await.unwrap(),
        Principal::TenantService { tenant: tenant() }
    );
    let nobody = key
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: None,
                admin: false,
                platform: false,
            },
            ISSUER,
            AUDIENCE,
            Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(refused(&verifier, &nobody).await, InvalidToken::NotAPrincipal);
    let elsewhere = key
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: Some(device()),
                admin: false,
                platform: false,
            },
            "https://other.test",
            AUDIENCE,
            Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(refused(&verifier, &elsewhere).await, InvalidToken::Issuer);
    // Another dev key's tokens are not accepted.
    let other = DevKey::generate();
    let token = other
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: Some(device()),
                admin: false,
                platform: false,
            },
            ISSUER,
            AUDIENCE,
            Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(refused(&verifier, &token).await, InvalidToken::UnknownKey);
    let jwks: Value = serde_json::from_str(&key.jwks_json()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], json!(key.kid()));
    assert_eq!(jwks["keys"][0]["alg"], json!("ES256"));
}
