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
        let scope = || prop::sample::select(&["files:admin", "admin", "openid", "files:admin2", ""][..]);
        prop_oneof![
            1 => Just(None),
            2 => prop::collection::vec(scope(), 0..5).prop_map(|s| Some(Value::String(s.join(" ")))),
            2 => prop::collection::vec(scope(), 0..5)
                .prop_map(|s| Some(Value::Array(s.into_iter().map(Value::from).collect()))),
            1 => json().prop_map(Some),
        ]
    }

    /// The principal `config` must read from `claims`, as the token contract says: the
    /// tenant's UUID is required; a device's UUID makes a device; otherwise the admin scope
    /// makes a tenant service.
    fn check(config: &JwtConfig, claims: &Claims) -> Result<(), TestCaseError> {
        let names = &config.claims;
        let tenant = uuid_claim(claims, &names.tenant_id).map(TenantId::from_uuid);
        let device = claim(claims, &names.device_id);
        let scope = claim(claims, &names.scope);
        let admin = match &scope {
            Some(Value::String(s)) => s.split_whitespace().any(|s| s == config.admin_scope),
            Some(Value::Array(a)) => a.iter().any(|s| s.as_str() == Some(config.admin_scope.as_str())),
            _ => false,
        };
        let result = principal(config, claims);
        match (&result, tenant) {
            (Ok(Principal::Device { tenant: t, device: d }), Some(tenant)) => {
                prop_assert_eq!(*t, tenant);
                prop_assert_eq!(Some(*d), uuid_claim(claims, &names.device_id).map(DeviceId::from_uuid));
            }
            (Ok(Principal::TenantService { tenant: t }), Some(tenant)) => {
                prop_assert_eq!(*t, tenant);
                prop_assert!(device.is_none() && admin, "{:?} {:?}", device, scope);
            }
            (Err(_), Some(_)) => {
                let device_id = uuid_claim(claims, &names.device_id);
                prop_assert!(device_id.is_none(), "a device {device_id:?} refused: {result:?}");
                prop_assert!(device.is_some() || !admin, "a tenant service refused: {:?}", result);
            }
            (_, None) => prop_assert_eq!(result, Err(InvalidToken::Claim("tenant_id"))),
        }
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
