//! The token verifier fake, which knows a fixed set of tokens.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use files_core::{Principal, TokenError, TokenVerifier};

use super::{Switch, lock};

/// A token verifier that knows a fixed set of tokens.
#[derive(Debug, Default)]
pub struct FakeTokenVerifier {
    tokens: Mutex<HashMap<String, Principal>>,
    /// Answers [`TokenError::Unavailable`] while on.
    pub switch: Switch,
}

impl FakeTokenVerifier {
    /// Makes `token` stand for `principal`.
    pub fn insert(&self, token: impl Into<String>, principal: Principal) {
        lock(&self.tokens).insert(token.into(), principal);
    }
}

#[async_trait]
impl TokenVerifier for FakeTokenVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.switch.check().map_err(|e| TokenError::Unavailable(e.into()))?;
        lock(&self.tokens)
            .get(token)
            .cloned()
            .ok_or(TokenError::Invalid(files_core::InvalidToken::UnknownKey))
    }
}
