//! Claims validation: the closest refusal for a jwt-simple error, and the [`Principal`] a verified
//! token stands for.

use files_core::{DeviceId, InvalidToken, Principal, TenantId};
use jwt_simple::JWTError;
use jwt_simple::claims::JWTClaims;
use serde_json::{Map, Value};

use super::JwtConfig;

/// The claims of a token: the registered ones, and the custom ones by name.
pub(super) type Claims = JWTClaims<Map<String, Value>>;

/// The closest [`InvalidToken`] for a jwt-simple error.
pub(super) fn refusal(error: jwt_simple::Error) -> InvalidToken {
    let Some(error) = error.downcast_ref::<JWTError>() else {
        // Base64 or JSON that does not decode, claims of the wrong types.
        return InvalidToken::Malformed;
    };
    match error {
        JWTError::InvalidSignature => InvalidToken::Signature,
        JWTError::TokenHasExpired => InvalidToken::Expired,
        JWTError::TokenNotValidYet | JWTError::ClockDrift => InvalidToken::NotYetValid,
        JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing => InvalidToken::Issuer,
        JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing => InvalidToken::Audience,
        JWTError::AlgorithmMismatch => InvalidToken::Algorithm,
        JWTError::KeyIdentifierMismatch | JWTError::MissingJWTKeyIdentifier => InvalidToken::UnknownKey,
        _ => InvalidToken::Malformed,
    }
}

/// A claim by its configured name; `sub` is a registered claim that jwt-simple keeps apart.
fn claim(claims: &Claims, name: &str) -> Option<Value> {
    if name == "sub" {
        return claims.subject.clone().map(Value::String);
    }
    claims.custom.get(name).filter(|value| !value.is_null()).cloned()
}

/// The principal a verified token stands for.
pub(super) fn principal(config: &JwtConfig, claims: &Claims) -> Result<Principal, InvalidToken> {
    let names = &config.claims;
    let tenant = match claim(claims, &names.tenant_id) {
        Some(Value::String(s)) => s.parse::<TenantId>().map_err(|_| InvalidToken::Claim("tenant_id"))?,
        _ => return Err(InvalidToken::Claim("tenant_id")),
    };
    match claim(claims, &names.device_id) {
        Some(Value::String(s)) => {
            let device = s.parse::<DeviceId>().map_err(|_| InvalidToken::Claim("device_id"))?;
            return Ok(Principal::Device { tenant, device });
        }
        Some(_) => return Err(InvalidToken::Claim("device_id")),
        None => {}
    }
    let admin = match claim(claims, &names.scope) {
        Some(Value::String(scopes)) => scopes.split_whitespace().any(|s| s == config.admin_scope),
        Some(Value::Array(scopes)) => scopes.iter().any(|s| s.as_str() == Some(config.admin_scope.as_str())),
        Some(_) => return Err(InvalidToken::Claim("scope")),
        None => false,
    };
    if admin {
        Ok(Principal::TenantService { tenant })
    } else {
        Err(InvalidToken::NotAPrincipal)
    }
}
