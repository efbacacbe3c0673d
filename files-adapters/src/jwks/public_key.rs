//! The public key type both signature libraries start from (`keys.rs` parses it, `fast.rs`
//! converts it for jsonwebtoken).

use jwt_simple::algorithms::{ES256PublicKey, Ed25519PublicKey, RS256PublicKey};

/// A public key as jwt-simple holds it (parsed and checked on the way in, whichever library
/// verifies).
#[derive(Debug, Clone)]
pub(super) enum PublicKey {
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}
