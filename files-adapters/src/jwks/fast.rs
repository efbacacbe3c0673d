//! Signatures checked by jsonwebtoken on aws-lc-rs ([`SignatureLibrary::JsonWebToken`]).
//!
//! Only the signature is jsonwebtoken's. The header and the claims are held to what jwt-simple
//! holds them to (`Token::verify_with_algorithms` and `JWTClaims::validate` of jwt-simple 0.15,
//! for the options this service sets), in the same order, with the same refusals, so that the
//! library is a matter of speed and never of what is accepted (`fast_tests.rs` checks both on
//! the same tokens).
//!
//! [`SignatureLibrary::JsonWebToken`]: super::SignatureLibrary::JsonWebToken

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use files_core::InvalidToken;
use jsonwebtoken::{Algorithm, DecodingKey};
use jwt_simple::algorithms::ECDSAP256PublicKeyLike as _;
use jwt_simple::common::VerificationOptions;
use jwt_simple::prelude::Clock;

use super::claims::Claims;
use super::header::Header;
use super::public_key::PublicKey;

/// A public key as jsonwebtoken takes it, and the one algorithm it verifies.
#[derive(Clone)]
pub(super) struct FastKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl fmt::Debug for FastKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl FastKey {
    /// The same key, from jwt-simple's parsed (and checked) one.
    pub(super) fn new(key: &PublicKey) -> Self {
        match key {
            PublicKey::Rs256(key) => {
                let components = key.to_components();
                Self {
                    key: DecodingKey::from_rsa_raw_components(&components.n, &components.e),
                    algorithm: Algorithm::RS256,
                }
            }
            PublicKey::Es256(key) => Self {
                // The uncompressed SEC1 point, as `DecodingKey::from_ec_components` makes it.
                key: DecodingKey::from_ec_der(&key.public_key().to_bytes_uncompressed()),
                algorithm: Algorithm::ES256,
            },
            PublicKey::EdDsa(key) => Self {
                // The raw 32 bytes, as `DecodingKey::from_ed_components` makes them.
                key: DecodingKey::from_ed_der(&key.to_bytes()),
                algorithm: Algorithm::EdDSA,
            },
        }
    }

    /// The token's claims when its signature is this key's and its header and claims pass
    /// `options`. The caller has decoded the header and checked its `alg`.
    pub(super) fn verify(
        &self,
        token: &str,
        header: &Header,
        options: &VerificationOptions,
    ) -> Result<Claims, InvalidToken> {
        if options.max_token_length.is_some_and(|max| token.len() > max) {
            return Err(InvalidToken::Malformed);
        }
        // Three parts, no more.
        let (message, signature) = token.rsplit_once('.').ok_or(InvalidToken::Malformed)?;
        let (_, payload) = message.split_once('.').ok_or(InvalidToken::Malformed)?;
        if payload.contains('.') {
            return Err(InvalidToken::Malformed);
        }
        header_rules(header)?;
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &self.key, self.algorithm) {
            Ok(true) => {}
            Ok(false) => return Err(InvalidToken::Signature),
            // The signature is not base64url.
            Err(_) => return Err(InvalidToken::Malformed),
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidToken::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| InvalidToken::Malformed)?;
        validate(&claims, options)?;
        Ok(claims)
    }
}

/// jwt-simple's header rules: no critical extension, a `typ`, when there is one, of a JWT, and
/// a `salt`, when there is one, of base64url (jwt-simple decodes it, and none of these
/// algorithms reads it).
fn header_rules(header: &Header) -> Result<(), InvalidToken> {
    if header.crit.as_ref().is_some_and(|critical| !critical.is_empty()) {
        return Err(InvalidToken::Malformed);
    }
    if let Some(typ) = &header.typ {
        let typ = typ.to_uppercase();
        if typ != "JWT" && !typ.ends_with("+JWT") {
            return Err(InvalidToken::Malformed);
        }
    }
    if let Some(salt) = &header.salt
        && URL_SAFE_NO_PAD.decode(salt).is_err()
    {
        return Err(InvalidToken::Malformed);
    }
    Ok(())
}

/// jwt-simple's claims rules, for the options this service sets (the time tolerance, the
/// issuer and the audience), in its order: `iat` and `nbf` not in the future, `exp` not past,
/// then `iss`, then `aud`.
fn validate(claims: &Claims, options: &VerificationOptions) -> Result<(), InvalidToken> {
    let now = options.artificial_time.unwrap_or_else(Clock::now_since_epoch);
    let tolerance = options.time_tolerance.unwrap_or_default();
    if !options.accept_future {
        if claims.issued_at.is_some_and(|issued_at| issued_at > now + tolerance) {
            return Err(InvalidToken::NotYetValid);
        }
        if claims
            .invalid_before
            .is_some_and(|invalid_before| now + tolerance < invalid_before)
        {
            return Err(InvalidToken::NotYetValid);
        }
    }
    if let Some(expires_at) = claims.expires_at
        && !(now >= tolerance && now - tolerance <= expires_at)
    {
        return Err(InvalidToken::Expired);
    }
    if let Some(issuers) = &options.allowed_issuers
        && !claims.issuer.as_ref().is_some_and(|issuer| issuers.contains(issuer))
    {
        return Err(InvalidToken::Issuer);
    }
    if let Some(audiences) = &options.allowed_audiences
        && !claims
            .audiences
            .as_ref()
            .is_some_and(|theirs| theirs.contains(audiences))
    {
        return Err(InvalidToken::Audience);
    }
    Ok(())
}
