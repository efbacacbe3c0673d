//! The contract of the [`TokenVerifier`] port: what every verifier, the fake or the JWKS one,
//! must do with the tokens it is given.
//!
//! The tokens come from the caller (a [`TokenSet`]), since only it knows how to make tokens its
//! verifier accepts. It panics, naming the broken rule, on the first violation.

use files_core::ports::error_chain;
use files_core::{DeviceId, Principal, TenantId, TokenError, TokenVerifier};

/// Tokens for one run of the contract, made by whoever issues tokens for the verifier.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The tenant both good tokens name.
    pub tenant: TenantId,
    /// The device the device token names.
    pub device: DeviceId,
    /// A good token of the device `device` of `tenant`.
    pub device_token: String,
    /// A good token of a service acting for the whole of `tenant`.
    pub service_token: String,
    /// A well-formed token the verifier must refuse (for example signed by an unknown key).
    pub refused_token: String,
}

/// Runs every rule of the contract against `verifier` with `tokens`.
///
/// # Panics
/// When the verifier breaks a rule.
pub async fn run(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    a_device_token_is_that_device(verifier, tokens).await;
    a_service_token_is_that_tenant_service(verifier, tokens).await;
    the_refused_token_is_invalid(verifier, tokens).await;
    garbage_is_invalid(verifier, tokens).await;
    verifying_is_repeatable(verifier, tokens).await;
}

async fn accepted(verifier: &dyn TokenVerifier, token: &str, what: &str) -> Principal {
    match verifier.verify(token).await {
        Ok(principal) => principal,
        Err(error) => panic!("tokens contract: the {what} was refused: {}", error_chain(&error)),
    }
}

async fn assert_invalid(verifier: &dyn TokenVerifier, token: &str, what: &str) {
    match verifier.verify(token).await {
        Err(TokenError::Invalid(_)) => {}
        Err(error @ TokenError::Unavailable(_)) => panic!(
            "tokens contract: {what} must be Invalid, not Unavailable: {}",
            error_chain(&error)
        ),
        Ok(principal) => panic!("tokens contract: {what} was accepted as {principal:?}"),
    }
}

fn device_principal(tokens: &TokenSet) -> Principal {
    Principal::Device {
        tenant: tokens.tenant,
        device: tokens.device,
    }
}

fn service_principal(tokens: &TokenSet) -> Principal {
    Principal::TenantService { tenant: tokens.tenant }
}

async fn a_device_token_is_that_device(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    assert_eq!(
        accepted(verifier, &tokens.device_token, "device token").await,
        device_principal(tokens),
        "a device token must stand for its device of its tenant"
    );
}

async fn a_service_token_is_that_tenant_service(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    assert_eq!(
        accepted(verifier, &tokens.service_token, "service token").await,
        service_principal(tokens),
        "a service token must stand for its tenant's service"
    );
}

async fn the_refused_token_is_invalid(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    assert_invalid(verifier, &tokens.refused_token, "the refused token").await;
}

/// Pieces of the good tokens put together wrongly, and things that are no tokens at all.
fn garbage(tokens: &TokenSet) -> Vec<(&'static str, String)> {
    let parts = |token: &str| -> Vec<String> { token.split('.').map(str::to_owned).collect() };
    let device = parts(&tokens.device_token);
    let service = parts(&tokens.service_token);
    let part = |parts: &[String], i: usize| parts.get(i).cloned().unwrap_or_default();
    vec![
        ("an empty token", String::new()),
        ("a word", "garbage".to_owned()),
        ("three dots", "...".to_owned()),
        ("three empty-ish parts", "a.b.c".to_owned()),
        ("non-ASCII text", "é.ü.ß".to_owned()),
        ("a very long token", "x".repeat(64 * 1024)),
        (
            "the device token without its signature",
            format!("{}.{}.", part(&device, 0), part(&device, 1)),
        ),
        (
            "the device token in two parts",
            format!("{}.{}", part(&device, 0), part(&device, 1)),
        ),
        (
            "the device token with a fourth part",
            format!("{}.{}", tokens.device_token, part(&device, 2)),
        ),
        (
            "the device token's header and signature around the service token's claims",
            format!("{}.{}.{}", part(&device, 0), part(&service, 1), part(&device, 2)),
        ),
        ("the device token twice", format!("{0}{0}", tokens.device_token)),
        ("the device token reversed", tokens.device_token.chars().rev().collect()),
    ]
}

async fn garbage_is_invalid(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    for (what, token) in garbage(tokens) {
        assert_invalid(verifier, &token, what).await;
    }
}

async fn verifying_is_repeatable(verifier: &dyn TokenVerifier, tokens: &TokenSet) {
    for round in 0..3 {
        assert_eq!(
            accepted(verifier, &tokens.device_token, "device token, again").await,
            device_principal(tokens),
            "round {round}: the device token must verify the same every time"
        );
        assert_invalid(verifier, &tokens.refused_token, "the refused token, again").await;
        assert_eq!(
            accepted(verifier, &tokens.service_token, "service token, again").await,
            service_principal(tokens),
            "round {round}: the service token must verify the same every time"
        );
    }
    // And concurrently.
    let checks = (0..8).map(|i| async move {
        let token = if i % 2 == 0 {
            &tokens.device_token
        } else {
            &tokens.service_token
        };
        (i, verifier.verify(token).await)
    });
    for (i, result) in futures::future::join_all(checks).await {
        let expected = if i % 2 == 0 {
            device_principal(tokens)
        } else {
            service_principal(tokens)
        };
        match result {
            Ok(principal) => assert_eq!(principal, expected, "concurrent verification {i}"),
            Err(error) => panic!(
                "tokens contract: concurrent verification {i} failed: {}",
                error_chain(&error)
            ),
        }
    }
}
