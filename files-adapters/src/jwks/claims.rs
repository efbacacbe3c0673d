//! Claims validation: the closest refusal for a jwt-simple error, and the [`Principal`] a verified
//! token stands for.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// A claim by its configured name, `None` when the token does not have it; a claim that is
/// there with `null` is `Some(Value::Null)`: present, and not valid. `sub` is a registered
/// claim that jwt-simple keeps apart (reading a `null` one as absent: [`null_subject`]).
fn claim<'c>(claims: &'c Claims, name: &str) -> Option<Cow<'c, Value>> {
    if name == "sub" {
        return claims.subject.clone().map(|subject| Cow::Owned(Value::String(subject)));
    }
    claims.custom.get(name).map(Cow::Borrowed)
}

/// The principal a verified token stands for. Every claim it is read from must be valid where
/// it is present: a `null` or wrongly typed `device_id` is refused, never read as no device
/// (which, with the admin scope, would make the token a tenant service's), and so is such a
/// `tenant_id` or `scope`.
pub(super) fn principal(config: &JwtConfig, claims: &Claims) -> Result<Principal, InvalidToken> {
    let names = &config.claims;
    let device = match claim(claims, &names.device_id).as_deref() {
        Some(Value::String(s)) => Some(s.parse::<DeviceId>().map_err(|_| InvalidToken::Claim("device_id"))?),
        Some(_) => return Err(InvalidToken::Claim("device_id")),
        None => None,
    };
    let has = |wanted: &str| -> Result<bool, InvalidToken> {
        match claim(claims, &names.scope).as_deref() {
            Some(Value::String(scopes)) => Ok(scopes.split_whitespace().any(|s| s == wanted)),
            Some(Value::Array(scopes)) => {
                let mut found = false;
                for scope in scopes {
                    found |= scope.as_str().ok_or(InvalidToken::Claim("scope"))? == wanted;
                }
                Ok(found)
            }
            Some(_) => Err(InvalidToken::Claim("scope")),
            None => Ok(false),
        }
    };
    // The platform belongs to no tenant: its `tenant_id`, if any, is not read.
    if device.is_none() && has(&config.platform_scope)? {
        return Ok(Principal::Platform);
    }
    let tenant = match claim(claims, &names.tenant_id).as_deref() {
        Some(Value::String(s)) => s.parse::<TenantId>().map_err(|_| InvalidToken::Claim("tenant_id"))?,
        _ => return Err(InvalidToken::Claim("tenant_id")),
    };
    let admin = has(&config.admin_scope)?;
    match device {
        Some(device) => Ok(Principal::Device { tenant, device }),
        None if admin => Ok(Principal::TenantService { tenant }),
        None => Err(InvalidToken::NotAPrincipal),
    }
}

/// Refuses a token whose `sub` is `null` when `sub` is one of the claims the principal is read
/// from: jwt-simple reads `"sub": null` as no `sub`, which must not pass for an absent device.
/// Only then is the payload decoded a second time. A `sub` of another type than a string is
/// refused as malformed when the claims are decoded.
pub(super) fn null_subject(config: &JwtConfig, claims: &Claims, token: &str) -> Result<(), InvalidToken> {
    let names = &config.claims;
    let role = [
        (&names.tenant_id, "tenant_id"),
        (&names.device_id, "device_id"),
        (&names.scope, "scope"),
    ]
    .into_iter()
    .find_map(|(name, role)| (name == "sub").then_some(role));
    let Some(role) = role else {
        return Ok(());
    };
    if claims.subject.is_some() {
        return Ok(());
    }
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok())
        .ok_or(InvalidToken::Malformed)?;
    if payload.contains_key("sub") {
        return Err(InvalidToken::Claim(role));
    }
    Ok(())
}

#[cfg(test)]
mod proptests {
    use files_core::{DeviceId, InvalidToken, Principal, TenantId};
    use jwt_simple::claims::Claims as NewClaims;
    use jwt_simple::prelude::Duration;
    use proptest::prelude::*;
    use serde_json::{Map, Value};
    use uuid::Uuid;

    use super::{Claims, claim, principal};
    use crate::jwks::{ClaimNames, JwtConfig};

    /// Claim names: the ones read under either configuration, registered ones, and any.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(&["tenant_id", "device_id", "scope", "tid", "scp", "sub", "iss", "aud", "exp", "nbf"][..])
                .prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    /// Any JSON, weighted towards what the claims are made of: UUIDs and scopes.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            any::<u128>().prop_map(|n| Value::String(Uuid::from_u128(n).to_string())),
            prop::sample::select(
                &[
                    "files:admin",
                    "openid files:admin",
                    "admin",
                    "files:admin2",
                    " files:admin "
                ][..]
            )
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(name(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Claims as a token's payload would decode to them, or, when the registered claims do not
    /// decode, its custom claims alone: either way `principal` sees arbitrary claims.
    fn claims() -> impl Strategy<Value = Claims> {
        prop::collection::btree_map(name(), json(), 0..8).prop_map(|map| {
            let map: Map<String, Value> = map.into_iter().collect();
            serde_json::from_value::<Claims>(Value::Object(map.clone())).unwrap_or_else(|_| {
                let mut custom = map;
                let subject = custom.remove("sub").and_then(|s| s.as_str().map(str::to_owned));
                let claims = NewClaims::with_custom_claims(custom, Duration::from_mins(10));
                match subject {
                    Some(subject) => claims.with_subject(subject),
                    None => claims,
                }
            })
        })
    }

    fn config(renamed: bool) -> JwtConfig {
        let mut config = JwtConfig::new("https://dsts.test", "files");
        if renamed {
            config.claims = ClaimNames {
                tenant_id: "tid".to_owned(),
                device_id: "sub".to_owned(),
                scope: "scp".to_owned(),
            };
            config.admin_scope = "admin".to_owned();
        }
        config
    }

    fn uuid_claim(claims: &Claims, name: &str) -> Option<Uuid> {
        claim(claims, name).and_then(|v| v.as_str().and_then(|s| Uuid::try_parse(s).ok()))
    }

    /// A claim that is absent, a UUID, or any JSON, in these proportions.
    fn id_claim(absent: u32, uuid: u32, other: u32) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            absent => Just(None),
            uuid => any::<u128>().prop_map(|n| Some(Value::String(Uuid::from_u128(n).to_string()))),
            other => json().prop_map(Some),
        ]
    }

    /// A scope claim that is absent, a string or an array of scopes, or any JSON.
    fn scope_claim() -> impl Strategy<Value = Option<Value>> {
        let scope =
            || prop::sample::select(&["files:admin", "admin", "openid", "files:admin2", "files:platform", ""][..]);
        prop_oneof![
            1 => Just(None),
            2 => prop::collection::vec(scope(), 0..5).prop_map(|s| Some(Value::String(s.join(" ")))),
            2 => prop::collection::vec(scope(), 0..5)
                .prop_map(|s| Some(Value::Array(s.into_iter().map(Value::from).collect()))),
            1 => json().prop_map(Some),
        ]
    }

    /// The principal `config` must read from `claims`, as the token contract says: without a
    /// device, the platform scope makes the platform whatever the tenant; else the tenant's UUID
    /// is required; a device's UUID makes a device; otherwise the admin scope makes a tenant
    /// service; a claim that is present (`null` included) must be valid.
    fn check(config: &JwtConfig, claims: &Claims) -> Result<(), TestCaseError> {
        let names = &config.claims;
        let tenant = uuid_claim(claims, &names.tenant_id).map(TenantId::from_uuid);
        let device = claim(claims, &names.device_id);
        let device_id = uuid_claim(claims, &names.device_id).map(DeviceId::from_uuid);
        let scope = claim(claims, &names.scope);
        let has = |wanted: &str| match scope.as_deref() {
            None => (true, false),
            Some(Value::String(s)) => (true, s.split_whitespace().any(|s| s == wanted)),
            Some(Value::Array(a)) => (
                a.iter().all(Value::is_string),
                a.iter().any(|s| s.as_str() == Some(wanted)),
            ),
            Some(_) => (false, false),
        };
        let (scope_valid, admin) = has(&config.admin_scope);
        let platform = has(&config.platform_scope).1;
        let expected = match (tenant, &device, device_id) {
            (_, Some(_), None) => Err(InvalidToken::Claim("device_id")),
            (_, None, _) if !scope_valid => Err(InvalidToken::Claim("scope")),
            (_, None, _) if platform => Ok(Principal::Platform),
            (None, _, _) => Err(InvalidToken::Claim("tenant_id")),
            _ if !scope_valid => Err(InvalidToken::Claim("scope")),
            (Some(tenant), _, Some(device)) => Ok(Principal::Device { tenant, device }),
            (Some(tenant), None, None) if admin => Ok(Principal::TenantService { tenant }),
            (Some(_), None, None) => Err(InvalidToken::NotAPrincipal),
        };
        prop_assert_eq!(principal(config, claims), expected, "{:?} {:?}", device, scope);
        Ok(())
    }

    proptest! {
        #[test]
        fn any_payload_never_panics_and_gives_only_what_it_names(claims in claims(), renamed in any::<bool>()) {
            check(&config(renamed), &claims)?;
        }

        #[test]
        fn claims_give_the_principal_they_name_or_a_refusal(
            renamed in any::<bool>(),
            tenant in id_claim(1, 4, 1),
            device in id_claim(3, 2, 1),
            scope in scope_claim(),
            extra in prop::collection::btree_map(name(), json(), 0..4),
        ) {
            let config = config(renamed);
            let names = &config.claims;
            let mut custom: Map<String, Value> = extra.into_iter().collect();
            // `sub` is a registered claim: a string, kept apart from the custom ones.
            let mut subject = custom.remove("sub").and_then(|s| s.as_str().map(str::to_owned));
            for (name, value) in [(&names.tenant_id, tenant), (&names.device_id, device), (&names.scope, scope)] {
                match value {
                    Some(value) if name == "sub" => subject = value.as_str().map(str::to_owned),
                    Some(value) => {
                        custom.insert(name.clone(), value);
                    }
                    None if name == "sub" => subject = None,
                    None => {
                        custom.remove(name);
                    }
                }
            }
            let claims = NewClaims::with_custom_claims(custom, Duration::from_mins(10));
            let claims = match subject {
                Some(subject) => claims.with_subject(subject),
                None => claims,
            };
            check(&config, &claims)?;
        }
    }
}
