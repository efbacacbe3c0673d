//! Bearer-token verification with the DSTS public keys: the [`TokenVerifier`] port over
//! jwt-simple, or with its signatures checked by jsonwebtoken on aws-lc-rs
//! ([`SignatureLibrary::JsonWebToken`], the `jsonwebtoken` feature; the rules stay jwt-simple's).
//!
//! Keys come from a JWKS document (a file, a string, or a URL that is fetched, cached, refetched
//! on an unknown `kid` and refreshed periodically) or from PEM public key files. Accepted key
//! types are RSA (`RS256`), EC P-256 (`ES256`) and OKP Ed25519 (`EdDSA`).
//!
//! The algorithm is always the key's: the token's `kid` selects the key, and a header `alg` that
//! is not the key's algorithm is refused, so `alg: none`, `HS256` keyed with an RSA public key and
//! the like never reach a signature check. Tokens are never logged.

mod cache;
#[cfg(test)]
mod cache_tests;
mod claims;
mod config;
pub mod dev;
mod error;
#[cfg(feature = "jsonwebtoken")]
mod fast;
#[cfg(all(test, feature = "jsonwebtoken"))]
mod fast_tests;
mod header;
mod keys;
mod public_key;
mod remote;
mod shared;
#[cfg(test)]
mod tests;
mod verifier;

pub use config::{
    ClaimNames, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_TOKEN_CACHE_CAPACITY, JwtConfig, KeyFile, RefreshObserver,
    RefreshOutcome, RemoteJwks, SignatureLibrary,
};
pub use dev::{DevClaims, DevKey, DevKeyError};
pub use error::JwksError;
pub use keys::KeyAlgorithm;
pub use verifier::JwksVerifier;
