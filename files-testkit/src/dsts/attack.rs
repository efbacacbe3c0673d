//! The tokens a verifier must refuse: [`Attack`], each with the refusal it expects, and
//! [`FakeDsts::attack`], which mints them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use files_core::{DeviceId, InvalidToken, TenantId};
use jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair, HS256Key, MACLike, RS256KeyPair, RSAKeyPairLike};
use jwt_simple::prelude::{Clock, Duration};
use serde_json::{Value, json};
use uuid::Uuid;

use super::server::{Alg, FakeDsts, RSA_PEM, TokenClaims, signed};

/// A token that must be refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attack {
    /// Not a JWT at all.
    Garbage,
    /// `alg: none` with an empty signature, under the ES256 key's `kid`.
    AlgNone,
    /// HS256 keyed with the RSA public key's PEM bytes, under the RSA key's `kid`.
    Hs256WithRsaPublicKey,
    /// Signed RS256 but under the ES256 key's `kid`.
    AlgMismatch,
    /// `exp` an hour ago.
    Expired,
    /// `nbf` in an hour.
    NotYetValid,
    /// Another `iss`.
    WrongIssuer,
    /// Another `aud`.
    WrongAudience,
    /// Signed by a key that is not in the JWKS, under a `kid` that is not either.
    UnknownKey,
    /// The ES256 key's `kid`, another key's signature.
    ForeignSignature,
    /// A good token whose payload names another tenant afterwards.
    TamperedPayload,
    /// No `tenant_id`.
    NoTenantId,
    /// A `device_id` that is not a UUID.
    DeviceIdNotUuid,
    /// Neither `device_id` nor the `files:admin` scope.
    NotAPrincipal,
    /// No `exp`.
    NoExp,
    /// `"device_id": null` with the `files:admin` scope: no device is not a null device.
    NullDeviceId,
    /// `"device_id": 42` with the `files:admin` scope.
    NumberDeviceId,
    /// `"tenant_id": null`.
    NullTenantId,
    /// A device token with `"scope": null`.
    NullScope,
    /// `exp` of `1e20` (read as the year 2106).
    ExpInAFarFuture,
    /// `exp` two days after `iat` (now): longer than the default maximum lifetime of a day.
    TooLongALifetime,
}

impl Attack {
    /// Every attack.
    pub const ALL: [Self; 21] = [
        Self::Garbage,
        Self::AlgNone,
        Self::Hs256WithRsaPublicKey,
        Self::AlgMismatch,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::UnknownKey,
        Self::ForeignSignature,
        Self::TamperedPayload,
        Self::NoTenantId,
        Self::DeviceIdNotUuid,
        Self::NotAPrincipal,
        Self::NoExp,
        Self::NullDeviceId,
        Self::NumberDeviceId,
        Self::NullTenantId,
        Self::NullScope,
        Self::ExpInAFarFuture,
        Self::TooLongALifetime,
    ];

    /// A `snake_case` name for test messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Garbage => "garbage",
            Self::AlgNone => "alg_none",
            Self::Hs256WithRsaPublicKey => "hs256_with_rsa_public_key",
            Self::AlgMismatch => "alg_mismatch",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::UnknownKey => "unknown_key",
            Self::ForeignSignature => "foreign_signature",
            Self::TamperedPayload => "tampered_payload",
            Self::NoTenantId => "no_tenant_id",
            Self::DeviceIdNotUuid => "device_id_not_uuid",
            Self::NotAPrincipal => "not_a_principal",
            Self::NoExp => "no_exp",
            Self::NullDeviceId => "null_device_id",
            Self::NumberDeviceId => "number_device_id",
            Self::NullTenantId => "null_tenant_id",
            Self::NullScope => "null_scope",
            Self::ExpInAFarFuture => "exp_in_a_far_future",
            Self::TooLongALifetime => "too_long_a_lifetime",
        }
    }

    /// Why a verifier configured for the fake (see [`FakeDsts::jwt_config`]) refuses it.
    #[must_use]
    pub const fn expected(self) -> InvalidToken {
        match self {
            Self::Garbage => InvalidToken::Malformed,
            Self::AlgNone | Self::Hs256WithRsaPublicKey | Self::AlgMismatch => InvalidToken::Algorithm,
            Self::Expired => InvalidToken::Expired,
            Self::NotYetValid => InvalidToken::NotYetValid,
            Self::WrongIssuer => InvalidToken::Issuer,
            Self::WrongAudience => InvalidToken::Audience,
            Self::UnknownKey => InvalidToken::UnknownKey,
            Self::ForeignSignature | Self::TamperedPayload => InvalidToken::Signature,
            Self::NoTenantId | Self::NullTenantId => InvalidToken::Claim("tenant_id"),
            Self::DeviceIdNotUuid | Self::NullDeviceId | Self::NumberDeviceId => InvalidToken::Claim("device_id"),
            Self::NullScope => InvalidToken::Claim("scope"),
            Self::NotAPrincipal => InvalidToken::NotAPrincipal,
            Self::NoExp | Self::ExpInAFarFuture | Self::TooLongALifetime => InvalidToken::Claim("exp"),
        }
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

impl FakeDsts {
    /// A token for `attack`, about `tenant` and `device` where it names someone.
    #[must_use]
    pub fn attack(&self, attack: Attack, tenant: TenantId, device: DeviceId) -> String {
        let good = || self.claims(&TokenClaims::device(tenant, device));
        let now = Clock::now_since_epoch();
        match attack {
            Attack::Garbage => "this-is-not-a-jwt".to_owned(),
            Attack::AlgNone => {
                let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid(Alg::Es256)});
                let payload = serde_json::to_value(good()).unwrap_or_default();
                format!("{}.{}.", b64_json(&header), b64_json(&payload))
            }
            Attack::Hs256WithRsaPublicKey => {
                let keys = self.shared.keys();
                let public_pem = signed(keys.rs256.1.public_key().to_pem());
                let key = HS256Key::from_bytes(public_pem.as_bytes()).with_key_id(&keys.rs256.0);
                signed(key.authenticate(good()))
            }
            Attack::AlgMismatch => {
                let rsa = RS256KeyPair::from_pem(RSA_PEM).map(|key| key.with_key_id(&self.kid(Alg::Es256)));
                signed(rsa.and_then(|key| key.sign(good())))
            }
            Attack::Expired => {
                let mut claims = good();
                claims.issued_at = Some(now - Duration::from_hours(2));
                claims.invalid_before = claims.issued_at;
                claims.expires_at = Some(now - Duration::from_hours(1));
                self.sign(Alg::Es256, claims)
            }
            Attack::NotYetValid => {
                let mut claims = good();
                claims.invalid_before = Some(now + Duration::from_hours(1));
                claims.expires_at = Some(now + Duration::from_hours(2));
                self.sign(Alg::Es256, claims)
            }
            Attack::WrongIssuer => self.sign(Alg::Es256, good().with_issuer("https://evil.test")),
            Attack::WrongAudience => self.sign(Alg::Es256, good().with_audience("not-files")),
            Attack::UnknownKey => {
                let kid = format!("unknown-{}", Uuid::new_v4().simple());
                signed(ES256KeyPair::generate().with_key_id(&kid).sign(good()))
            }
            Attack::ForeignSignature => {
                signed(ES256KeyPair::generate().with_key_id(&self.kid(Alg::Es256)).sign(good()))
            }
            Attack::TamperedPayload => {
                let token = self.sign(Alg::Es256, good());
                let mut parts = token.splitn(3, '.');
                let (header, _, signature) = (parts.next(), parts.next(), parts.next());
                let mut payload = serde_json::to_value(good()).unwrap_or_default();
                payload["tenant_id"] = Value::String(Uuid::new_v4().to_string());
                format!(
                    "{}.{}.{}",
                    header.unwrap_or_default(),
                    b64_json(&payload),
                    signature.unwrap_or_default()
                )
            }
            Attack::NoTenantId => {
                let mut claims = good();
                claims.custom.remove("tenant_id");
                self.sign(Alg::Es256, claims)
            }
            Attack::DeviceIdNotUuid => {
                let mut claims = good();
                claims.custom.insert("device_id".to_owned(), json!("device-1"));
                self.sign(Alg::Es256, claims)
            }
            Attack::NotAPrincipal => {
                let claims = TokenClaims {
                    tenant: Some(tenant),
                    device: None,
                    scope: Some("files:read openid".to_owned()),
                };
                self.token(Alg::Es256, &claims)
            }
            Attack::NoExp => {
                let mut claims = good();
                claims.expires_at = None;
                self.sign(Alg::Es256, claims)
            }
            Attack::NullDeviceId | Attack::NumberDeviceId => {
                let mut claims = good();
                let device_id = if attack == Attack::NullDeviceId {
                    Value::Null
                } else {
                    json!(42)
                };
                claims.custom.insert("device_id".to_owned(), device_id);
                claims.custom.insert("scope".to_owned(), json!("files:admin"));
                self.sign(Alg::Es256, claims)
            }
            Attack::NullTenantId => {
                let mut claims = good();
                claims.custom.insert("tenant_id".to_owned(), Value::Null);
                self.sign(Alg::Es256, claims)
            }
            Attack::NullScope => {
                let mut claims = good();
                claims.custom.insert("scope".to_owned(), Value::Null);
                self.sign(Alg::Es256, claims)
            }
            Attack::ExpInAFarFuture => {
                // Written as the number 1e20 (jwt-simple's claims cannot hold it).
                let mut claims = good();
                claims.expires_at = None;
                claims.custom.insert("exp".to_owned(), json!(1e20));
                self.sign(Alg::Es256, claims)
            }
            Attack::TooLongALifetime => {
                let mut claims = good();
                claims.issued_at = Some(now);
                claims.expires_at = Some(now + Duration::from_days(2));
                self.sign(Alg::Es256, claims)
            }
        }
    }

    /// Every attack as `(name, token)`, for HTTP tests that expect a 401 for each.
    #[must_use]
    pub fn attack_tokens(&self, tenant: TenantId, device: DeviceId) -> Vec<(&'static str, String)> {
        Attack::ALL
            .iter()
            .map(|&attack| (attack.name(), self.attack(attack, tenant, device)))
            .collect()
    }
}
