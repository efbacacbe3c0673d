//! Unit tests of the JWKS verifier and the development key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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

use super::*;

const ISSUER: &str = "https://dsts.test";
const AUDIENCE: &str = "files";

/// A 2048-bit RSA test key (generating one in a debug build is slow).
const RSA_PEM: &str = "
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

struct Keys {
    es: ES256KeyPair,
    rs: RS256KeyPair,
    ed: Ed25519KeyPair,
}

#[derive(Clone, Copy)]
enum Alg {
    Es,
    Rs,
    Ed,
}

impl Keys {
    fn new() -> Self {
        Self {
            es: ES256KeyPair::generate().with_key_id("es-1"),
            rs: RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rs-1"),
            ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        }
    }

    fn jwks(&self) -> String {
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

fn device_claims() -> Map<String, Value> {
    custom(json!({"tenant_id": tenant().to_string(), "device_id": device().to_string()}))
}

fn service_claims() -> Map<String, Value> {
    custom(json!({"tenant_id": tenant().to_string(), "scope": "openid files:admin"}))
}

fn claims(custom: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    Claims::with_custom_claims(custom, JwtDuration::from_mins(10))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
}

fn b64(value: &Value) -> String {
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

#[tokio::test]
async fn refuses_malformed_tokens() {
    let keys = Keys::new();
    let verifier = keys.verifier();
    let good = keys.sign(Alg::Es, claims(device_claims()));
    let parts: Vec<&str> = good.split('.').collect();
    let malformed = [
        String::new(),
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}.{}.%%%", parts[0], parts[1]),
        format!("{}.{}.{}", b64(&json!("ES256")), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(&json!("not claims")), parts[2]),
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
    ];
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

#[tokio::test]
async fn an_unreachable_url_source_starts_and_answers_unavailable() {
    // A port that was free a moment ago: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let mut source = RemoteJwks::new(format!("http://127.0.0.1:{port}/jwks.json"));
    source.timeout = Duration::from_secs(2);
    source.on_refresh = Some(Arc::new(move |outcome| seen.lock().unwrap().push(outcome)));
    let verifier = JwksVerifier::from_url(config(), source).await.unwrap();
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
        assert!(matches!(
            JwksVerifier::from_url(config(), RemoteJwks::new(url)).await,
            Err(JwksError::Url { .. })
        ));
    }
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
            },
            ISSUER,
            AUDIENCE,
            Duration::MAX,
        )
        .unwrap();
    assert_eq!(
        verifier.verify(&service_token).await.unwrap(),
        Principal::TenantService { tenant: tenant() }
    );
    let nobody = key
        .mint(
            &DevClaims {
                tenant: tenant(),
                device: None,
                admin: false,
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
