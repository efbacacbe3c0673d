//! jsonwebtoken gives every token the answer jwt-simple gives it: good tokens of each algorithm,
//! each rule of the header and the claims, confusions of algorithm and key, tampering, malformed
//! tokens, and damage at every position of good tokens. `tests.rs` holds what the answers are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use files_core::{Principal, TokenError, TokenVerifier as _};
use jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, HS256Key, MACLike, RS256KeyPair,
    RSAKeyPairLike,
};
use jwt_simple::claims::JWTClaims;
use jwt_simple::prelude::{Clock, Duration};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::tests::{self, AUDIENCE, ISSUER, Keys, RSA_PEM, b64, claims, malformed_from};
use super::{JwksVerifier, JwtConfig, SignatureLibrary};

/// The keys of `tests.rs`, one verifier per library, the verified-token cache off.
fn verifiers(keys: &Keys) -> [JwksVerifier; 2] {
    SignatureLibrary::ALL.map(|signature_library| {
        let config = JwtConfig {
            token_cache_capacity: 0,
            signature_library,
            ..JwtConfig::new(ISSUER, AUDIENCE)
        };
        JwksVerifier::from_jwks_json(config, &keys.jwks()).unwrap()
    })
}

/// `claims` signed with each key.
fn signed(keys: &Keys, claims: &DeviceClaims) -> [String; 3] {
    [
        keys.es.sign(claims.clone()).unwrap(),
        keys.rs.sign(claims.clone()).unwrap(),
        keys.ed.sign(claims.clone()).unwrap(),
    ]
}

type DeviceClaims = JWTClaims<Map<String, Value>>;

fn device_claims() -> DeviceClaims {
    claims(tests::device_claims())
}

/// Both libraries' answers to `token`, which must be the same; the answer.
async fn same(verifiers: &[JwksVerifier; 2], token: &str) -> Result<Principal, String> {
    let simple = verifiers[0].verify(token).await;
    let fast = verifiers[1].verify(token).await;
    let shown = |answer: &Result<Principal, TokenError>| format!("{answer:?}");
    assert_eq!(shown(&simple), shown(&fast), "jwt-simple vs jsonwebtoken on {token}");
    simple.map_err(|e| e.to_string())
}

/// Every claims case, signed with each key.
fn claims_cases() -> Vec<DeviceClaims> {
    let now = Clock::now_since_epoch();
    let with = |change: &dyn Fn(&mut DeviceClaims)| {
        let mut claims = device_claims();
        change(&mut claims);
        claims
    };
    vec![
        device_claims(),
        with(&|c| c.expires_at = Some(now - Duration::from_hours(1))),
        with(&|c| c.expires_at = Some(now - Duration::from_secs(20))),
        with(&|c| c.expires_at = Some(now - Duration::from_secs(90))),
        with(&|c| c.expires_at = None),
        with(&|c| c.invalid_before = Some(now + Duration::from_hours(1))),
        with(&|c| c.invalid_before = Some(now + Duration::from_secs(30))),
        with(&|c| c.invalid_before = Some(now + Duration::from_secs(90))),
        with(&|c| c.issued_at = Some(now + Duration::from_hours(1))),
        with(&|c| c.issued_at = Some(now + Duration::from_secs(30))),
        with(&|c| c.issued_at = Some(now + Duration::from_secs(90))),
        with(&|c| c.issued_at = None),
        with(&|c| c.issuer = None),
        with(&|c| c.issuer = Some("https://evil.test".to_owned())),
        with(&|c| c.audiences = None),
        with(&|c| *c = c.clone().with_audience("other")),
        with(&|c| *c = c.clone().with_audiences(["other", AUDIENCE].into_iter().collect())),
        with(&|c| *c = c.clone().with_audiences(["other", "more"].into_iter().collect())),
        with(&|c| {
            c.custom.insert("tenant_id".to_owned(), json!("not-a-uuid"));
        }),
        with(&|c| {
            c.custom.remove("device_id");
            c.custom.insert("scope".to_owned(), json!("openid files:admin"));
        }),
        // A claim that is present must be valid: `null` is not absent.
        with(&|c| {
            c.custom.insert("device_id".to_owned(), Value::Null);
            c.custom.insert("scope".to_owned(), json!("files:admin"));
        }),
        with(&|c| {
            c.custom.insert("device_id".to_owned(), json!(42));
            c.custom.insert("scope".to_owned(), json!("files:admin"));
        }),
        with(&|c| {
            c.custom.insert("tenant_id".to_owned(), Value::Null);
        }),
        with(&|c| {
            c.custom.insert("scope".to_owned(), Value::Null);
        }),
        with(&|c| {
            c.custom.remove("device_id");
            c.custom.insert("scope".to_owned(), json!(["files:admin", 7]));
        }),
        // The lifetime: `exp` far off (1e20, as a number jwt-simple's claims cannot hold), two
        // days after `iat`, or a day and more from now; 23 hours is accepted.
        with(&|c| {
            c.expires_at = None;
            c.custom.insert("exp".to_owned(), json!(1e20));
        }),
        with(&|c| {
            c.issued_at = Some(now - Duration::from_days(1));
            c.expires_at = Some(now + Duration::from_hours(1));
        }),
        with(&|c| {
            c.issued_at = None;
            c.expires_at = Some(now + Duration::from_hours(25));
        }),
        with(&|c| c.expires_at = Some(now + Duration::from_hours(23))),
    ]
}

#[tokio::test]
async fn both_libraries_answer_every_claims_case_alike() {
    let keys = Keys::new();
    let verifiers = verifiers(&keys);
    let mut accepted = 0;
    for claims in claims_cases() {
        for token in signed(&keys, &claims) {
            accepted += usize::from(same(&verifiers, &token).await.is_ok());
        }
    }
    // The good token, the one within the leeway of each time claim, the list of audiences
    // with ours, the tenant service, the one of 23 hours, each signed three ways.
    assert_eq!(accepted, 8 * 3);
}

#[tokio::test]
async fn both_libraries_refuse_confusions_tampering_and_malformed_tokens_alike() {
    let keys = Keys::new();
    let verifiers = verifiers(&keys);
    let claims = device_claims();
    let payload = b64(&serde_json::to_value(&claims).unwrap());
    let [es, rs, ed] = signed(&keys, &claims);
    let parts: Vec<&str> = es.split('.').collect();
    let header = |header: Value| format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    // A header jwt-simple cannot write, signed by our ES256 key.
    let es_der = keys.es.to_der().unwrap();
    let signed_header = |header: Value| {
        let message = format!("{}.{payload}", b64(&header));
        let key = jsonwebtoken::EncodingKey::from_ec_der(&es_der);
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
        format!("{message}.{signature}")
    };

    let mut tokens = vec![
        // Keys and algorithms that do not go together.
        RS256KeyPair::from_pem(RSA_PEM)
            .unwrap()
            .with_key_id("es-1")
            .sign(claims.clone())
            .unwrap(),
        HS256Key::from_bytes(keys.rs.public_key().to_pem().unwrap().as_bytes())
            .with_key_id("rs-1")
            .authenticate(claims.clone())
            .unwrap(),
        format!("{}.{payload}.", b64(&json!({"alg": "none", "kid": "es-1"}))),
        header(json!({"alg": "RS256", "kid": "es-1"})),
        // Keys we do not know, or not ours under our kid.
        ES256KeyPair::generate()
            .with_key_id("stranger")
            .sign(claims.clone())
            .unwrap(),
        ES256KeyPair::generate()
            .with_key_id("es-1")
            .sign(claims.clone())
            .unwrap(),
        Ed25519KeyPair::generate()
            .with_key_id("ed-1")
            .sign(claims.clone())
            .unwrap(),
        // Header rules, under good signatures.
        signed_header(json!({"alg": "ES256", "kid": "es-1"})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "typ": "at+jwt"})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "typ": "at+jwe"})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "crit": ["x"]})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "crit": []})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "cty": "JWT"})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "salt": "c2FsdA"})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "salt": "c2FsdA=="})),
        signed_header(json!({"alg": "ES256", "kid": "es-1", "x5c": [7]})),
        // A header changed under the old signature.
        header(json!({"alg": "ES256", "kid": "es-1", "typ": "at+jwt"})),
        // Signatures padded, cut short or lengthened.
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]),
        format!("{}.{}.{}AAAA", parts[0], parts[1], parts[2]),
    ];
    // Not three parts, or parts that do not decode.
    tokens.extend(malformed_from(&es));
    // A changed claim under the old signature, for each key.
    for token in [&es, &rs, &ed] {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["tenant_id"] = json!(Uuid::from_u128(0x9999).to_string());
        tokens.push(format!("{}.{}.{}", parts[0], b64(&claims), parts[2]));
    }
    let mut accepted = Vec::new();
    for token in &tokens {
        if same(&verifiers, token).await.is_ok() {
            accepted.push(token.clone());
        }
    }
    // Only the signed headers without `typ`, with `typ` at+jwt, with an empty `crit`, with a
    // `cty` and with a base64url `salt` pass.
    assert_eq!(accepted.len(), 5, "{accepted:?}");
}

#[tokio::test]
async fn both_libraries_answer_damage_at_every_position_alike() {
    let keys = Keys::new();
    let verifiers = verifiers(&keys);
    for token in signed(&keys, &device_claims()) {
        assert!(same(&verifiers, &token).await.is_ok());
        // Every seventh position, and the last few (where base64 has bits that are not read).
        let positions = (0..token.len()).step_by(7).chain(token.len() - 3..token.len());
        for at in positions {
            for with in ['A', '_', '.'] {
                let mut damaged = token.clone();
                damaged.replace_range(at..=at, &with.to_string());
                if damaged != token {
                    // Whether refused or not (a last base64 character can change bits that
                    // are not read), both libraries must say the same.
                    let _answer = same(&verifiers, &damaged).await;
                }
            }
        }
    }
}
