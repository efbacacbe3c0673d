//! The token port: checking bearer tokens, and why one is refused.

use async_trait::async_trait;

use super::error::BoxError;
use crate::principal::Principal;

/// Why a token was refused. Never carries the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not a JWS compact token, or its header or claims are not JSON of the expected shape.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not one we accept, or does not match the key's type.
    #[error("algorithm not accepted for this key")]
    Algorithm,
    /// No key with the token's `kid` (or no `kid` and no single key to try).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    Audience,
    /// A required claim is missing or of the wrong type.
    #[error("missing or invalid claim {0}")]
    Claim(&'static str),
    /// Neither a device (`device_id`) nor a tenant service (`files:admin` scope).
    #[error("token names neither a device nor a tenant service")]
    NotAPrincipal,
}

impl InvalidToken {
    /// A stable label for metrics and logs.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Claim(_) => "claim",
            Self::NotAPrincipal => "not_a_principal",
        }
    }
}

/// A token verification that did not produce a principal.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not acceptable (401).
    #[error(transparent)]
    Invalid(#[from] InvalidToken),
    /// No keys could be had to check it with (503).
    #[error("signing keys unavailable")]
    Unavailable(#[source] BoxError),
}

/// Checks bearer tokens against the DSTS keys.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The principal a token stands for.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for any token that is not acceptable (bad signature, wrong
    /// algorithm for the key, wrong `iss`/`aud`, expired, not yet valid, missing claims);
    /// [`TokenError::Unavailable`] when no key set has ever been obtained.
    async fn verify(&self, token: &str) -> Result<Principal, TokenError>;
}
