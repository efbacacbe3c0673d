//! A fake DSTS (device security token service): ES256, RS256 and EdDSA key pairs, their JWKS
//! served over HTTP with switches (fail, recover, rotate, count requests), and token minting,
//! good and malicious.

mod attack;
mod server;

pub use attack::Attack;
pub use server::{Alg, DEFAULT_AUDIENCE, DEFAULT_ISSUER, FakeDsts, JWKS_PATH, TokenClaims};
