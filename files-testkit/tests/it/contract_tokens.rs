//! The token verifier contract against the fake, against the JWKS verifier on a fake DSTS (every
//! algorithm it signs with), and against the development key's verifier.

use std::time::Duration;

use files_adapters::jwks::{DevClaims, DevKey, JwksVerifier, JwtConfig};
use files_core::{DeviceId, Principal, TenantId, TokenError, TokenVerifier};
use files_testkit::contract::tokens::{self, TokenSet};
use files_testkit::dsts::{Alg, Attack, FakeDsts};
use files_testkit::fakes::FakeTokenVerifier;
use uuid::Uuid;

fn ids() -> (TenantId, DeviceId) {
    (TenantId::from_uuid(Uuid::new_v4()), DeviceId::from_uuid(Uuid::new_v4()))
}

#[tokio::test]
async fn the_fake_verifier_keeps_the_contract() {
    let (verifier, tokens) = fake_with_tokens();
    tokens::run(&verifier, &tokens).await;
}

/// A fake verifier that knows a device token and a service token, and the set to check it with.
fn fake_with_tokens() -> (FakeTokenVerifier, TokenSet) {
    let (tenant, device) = ids();
    let verifier = FakeTokenVerifier::default();
    verifier.insert("device-token", Principal::Device { tenant, device });
    verifier.insert("service-token", Principal::TenantService { tenant });
    let tokens = TokenSet {
        tenant,
        device,
        device_token: "device-token".to_owned(),
        service_token: "service-token".to_owned(),
        refused_token: "refused-token".to_owned(),
    };
    (verifier, tokens)
}

/// A verifier that says "unavailable" where it should say "invalid".
struct Confused(FakeTokenVerifier);

#[async_trait::async_trait]
impl TokenVerifier for Confused {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.0
            .verify(token)
            .await
            .map_err(|error| TokenError::Unavailable(error.into()))
    }
}

#[tokio::test]
#[should_panic(expected = "must be Invalid, not Unavailable")]
async fn the_contract_catches_a_verifier_that_calls_bad_tokens_unavailable() {
    let (verifier, tokens) = fake_with_tokens();
    tokens::run(&Confused(verifier), &tokens).await;
}

#[tokio::test]
async fn the_jwks_verifier_keeps_the_contract_for_every_algorithm() {
    let dsts = FakeDsts::start().await;
    let from_url = JwksVerifier::from_url(dsts.jwt_config(), dsts.remote()).await.unwrap();
    from_url.spawn_background();
    let from_json = JwksVerifier::from_jwks_json(dsts.jwt_config(), &dsts.jwks_json()).unwrap();
    // Refused for different reasons with each algorithm.
    let refusals = [
        (Alg::Es256, Attack::ForeignSignature),
        (Alg::Rs256, Attack::Hs256WithRsaPublicKey),
        (Alg::EdDsa, Attack::AlgNone),
    ];
    for verifier in [&from_url, &from_json] {
        for (alg, attack) in refusals {
            let (tenant, device) = ids();
            let tokens = TokenSet {
                tenant,
                device,
                device_token: dsts.device_token(alg, tenant, device),
                service_token: dsts.service_token(alg, tenant),
                refused_token: dsts.attack(attack, tenant, device),
            };
            tokens::run(verifier, &tokens).await;
        }
    }
    // Good tokens of another DSTS are refused too.
    let other = FakeDsts::start().await;
    let (tenant, device) = ids();
    let tokens = TokenSet {
        tenant,
        device,
        device_token: dsts.device_token(Alg::Es256, tenant, device),
        service_token: dsts.service_token(Alg::EdDsa, tenant),
        refused_token: other.device_token(Alg::Es256, tenant, device),
    };
    tokens::run(&from_url, &tokens).await;
}

#[tokio::test]
async fn the_development_key_verifier_keeps_the_contract() {
    let (issuer, audience) = ("https://files.dev", "files");
    let key = DevKey::generate();
    let verifier = key.verifier(JwtConfig::new(issuer, audience)).unwrap();
    let ttl = Duration::from_secs(600);
    let (tenant, device) = ids();
    let device_claims = DevClaims {
        tenant,
        device: Some(device),
        admin: false,
        platform: false,
    };
    let service_claims = DevClaims {
        tenant,
        device: None,
        admin: true,
        platform: false,
    };
    let device_token = key.mint(&device_claims, issuer, audience, ttl).unwrap();
    let service_token = key.mint(&service_claims, issuer, audience, ttl).unwrap();
    let refused = [
        // Another development key's token.
        DevKey::generate().mint(&device_claims, issuer, audience, ttl).unwrap(),
        // This key's token for another audience.
        key.mint(&device_claims, issuer, "not-files", ttl).unwrap(),
        // Neither a device nor a tenant service.
        key.mint(
            &DevClaims {
                admin: false,
                platform: false,
                ..service_claims
            },
            issuer,
            audience,
            ttl,
        )
        .unwrap(),
    ];
    for refused_token in refused {
        let tokens = TokenSet {
            tenant,
            device,
            device_token: device_token.clone(),
            service_token: service_token.clone(),
            refused_token,
        };
        tokens::run(&verifier, &tokens).await;
    }
}
