//! The JWKS verifier's URL source against the fake DSTS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use files_adapters::jwks::{JwksError, JwksVerifier, RefreshOutcome, RemoteJwks};
use files_core::{DeviceId, InvalidToken, Principal, TenantId, TokenError, TokenVerifier};
use files_testkit::dsts::{Alg, Attack, FakeDsts};
use files_testkit::eventually;
use uuid::Uuid;

fn ids() -> (TenantId, DeviceId) {
    (TenantId::from_uuid(Uuid::new_v4()), DeviceId::from_uuid(Uuid::new_v4()))
}

/// Refresh outcomes as the verifier reports them.
#[derive(Clone, Default)]
struct Outcomes(Arc<Mutex<Vec<RefreshOutcome>>>);

impl Outcomes {
    fn observe(&self, mut source: RemoteJwks) -> RemoteJwks {
        let seen = Arc::clone(&self.0);
        source.on_refresh = Some(Arc::new(move |outcome| seen.lock().unwrap().push(outcome)));
        source
    }

    fn get(&self) -> Vec<RefreshOutcome> {
        self.0.lock().unwrap().clone()
    }
}

async fn url_verifier(dsts: &FakeDsts, configure: impl FnOnce(&mut RemoteJwks)) -> JwksVerifier {
    let mut source = dsts.remote();
    source.timeout = Duration::from_secs(5);
    configure(&mut source);
    let verifier = JwksVerifier::from_url(dsts.jwt_config(), source).await.unwrap();
    verifier.spawn_background();
    verifier
}

async fn refusal(verifier: &JwksVerifier, token: &str) -> InvalidToken {
    match verifier.verify(token).await {
        Err(TokenError::Invalid(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// How long a background refresh gets to show its effect.
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn good_tokens_of_every_algorithm_are_accepted() {
    let dsts = FakeDsts::start().await;
    let verifier = url_verifier(&dsts, |_| {}).await;
    let (tenant, device) = ids();
    for alg in Alg::ALL {
        assert_eq!(
            verifier.verify(&dsts.device_token(alg, tenant, device)).await.unwrap(),
            Principal::Device { tenant, device },
            "{alg:?}"
        );
        assert_eq!(
            verifier.verify(&dsts.service_token(alg, tenant)).await.unwrap(),
            Principal::TenantService { tenant },
            "{alg:?}"
        );
    }
    assert_eq!(dsts.jwks_requests(), 1);
}

#[tokio::test]
async fn every_attack_token_is_refused_for_its_reason() {
    let dsts = FakeDsts::start().await;
    let (tenant, device) = ids();
    let from_url = url_verifier(&dsts, |_| {}).await;
    let from_json = JwksVerifier::from_jwks_json(dsts.jwt_config(), &dsts.jwks_json()).unwrap();
    for verifier in [from_url, from_json] {
        for attack in Attack::ALL {
            let token = dsts.attack(attack, tenant, device);
            assert_eq!(refusal(&verifier, &token).await, attack.expected(), "{}", attack.name());
        }
    }
    let names: Vec<&str> = dsts
        .attack_tokens(tenant, device)
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(names.len(), Attack::ALL.len());
    assert!(names.contains(&"alg_none") && names.contains(&"hs256_with_rsa_public_key"));
}

#[tokio::test]
async fn another_dsts_tokens_are_refused() {
    let dsts = FakeDsts::start().await;
    let other = FakeDsts::start().await;
    let verifier = url_verifier(&dsts, |_| {}).await;
    let (tenant, device) = ids();
    for alg in Alg::ALL {
        let token = other.device_token(alg, tenant, device);
        assert_eq!(refusal(&verifier, &token).await, InvalidToken::UnknownKey, "{alg:?}");
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_interval() {
    let dsts = FakeDsts::start().await;
    let outcomes = Outcomes::default();
    let verifier = url_verifier(&dsts, |source| {
        *source = outcomes.observe(source.clone());
        source.min_refetch_interval = Duration::from_secs(3600);
    })
    .await;
    assert_eq!(dsts.jwks_requests(), 1);
    let (tenant, device) = ids();

    // A key rotated in after the first fetch: one refetch, then accepted.
    dsts.rotate();
    let token = dsts.device_token(Alg::Es256, tenant, device);
    assert_eq!(
        verifier.verify(&token).await.unwrap(),
        Principal::Device { tenant, device }
    );
    assert_eq!(dsts.jwks_requests(), 2);
    verifier.verify(&token).await.unwrap();
    assert_eq!(dsts.jwks_requests(), 2);

    // Within the interval, unknown kids (a second rotation, made-up kids) fetch nothing.
    dsts.rotate();
    let token = dsts.device_token(Alg::Es256, tenant, device);
    assert_eq!(refusal(&verifier, &token).await, InvalidToken::UnknownKey);
    for _ in 0..5 {
        let token = dsts.attack(Attack::UnknownKey, tenant, device);
        assert_eq!(refusal(&verifier, &token).await, InvalidToken::UnknownKey);
    }
    assert_eq!(dsts.jwks_requests(), 2);
    assert_eq!(
        outcomes.get(),
        [RefreshOutcome::Updated { keys: 3 }, RefreshOutcome::Updated { keys: 4 }]
    );
}

#[tokio::test]
async fn the_refetch_is_allowed_again_after_the_interval() {
    let dsts = FakeDsts::start().await;
    let interval = Duration::from_millis(200);
    let verifier = url_verifier(&dsts, |source| source.min_refetch_interval = interval).await;
    let (tenant, device) = ids();

    dsts.rotate();
    verifier
        .verify(&dsts.device_token(Alg::Es256, tenant, device))
        .await
        .unwrap();
    assert_eq!(dsts.jwks_requests(), 2);
    dsts.rotate();
    let token = dsts.device_token(Alg::Es256, tenant, device);
    assert_eq!(refusal(&verifier, &token).await, InvalidToken::UnknownKey);
    assert_eq!(dsts.jwks_requests(), 2);

    // Once the interval has passed the token is accepted, after exactly one more fetch:
    // polled, refusals meanwhile fetch nothing.
    assert!(
        eventually(WAIT, async || verifier.verify(&token).await.is_ok()).await,
        "the token was still refused well after the interval"
    );
    assert_eq!(dsts.jwks_requests(), 3);
}

#[tokio::test]
async fn the_last_good_keys_survive_a_failing_endpoint() {
    let dsts = FakeDsts::start().await;
    let outcomes = Outcomes::default();
    let verifier = url_verifier(&dsts, |source| {
        *source = outcomes.observe(source.clone());
        source.refresh_interval = Duration::from_millis(20);
    })
    .await;
    let (tenant, device) = ids();
    dsts.fail();

    // A token-caused refetch fails, and so do periodic refreshes.
    let unknown = dsts.attack(Attack::UnknownKey, tenant, device);
    assert_eq!(refusal(&verifier, &unknown).await, InvalidToken::UnknownKey);
    assert!(
        eventually(WAIT, async || {
            outcomes.get().iter().filter(|o| **o == RefreshOutcome::Failed).count() >= 2
        })
        .await,
        "timed out waiting for two failed refreshes"
    );
    assert_eq!(verifier.key_count().await, 3);
    for alg in Alg::ALL {
        assert_eq!(
            verifier.verify(&dsts.device_token(alg, tenant, device)).await.unwrap(),
            Principal::Device { tenant, device }
        );
        verifier.verify(&dsts.service_token(alg, tenant)).await.unwrap();
    }

    // Back up: the periodic refresh brings a rotated key.
    let kid = dsts.rotate();
    dsts.recover();
    assert!(
        eventually(WAIT, async || verifier.key_count().await == 4).await,
        "timed out waiting for the rotated key"
    );
    let token = dsts.device_token(Alg::Es256, tenant, device);
    assert_eq!(dsts.kid(Alg::Es256), kid);
    verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn a_verifier_starts_while_the_dsts_is_down_and_recovers() {
    let dsts = FakeDsts::start().await;
    dsts.fail();
    let outcomes = Outcomes::default();
    let verifier = url_verifier(&dsts, |source| {
        *source = outcomes.observe(source.clone());
        source.min_refetch_interval = Duration::from_millis(50);
    })
    .await;
    assert_eq!(outcomes.get(), [RefreshOutcome::Failed]);
    assert_eq!(verifier.key_count().await, 0);
    let (tenant, device) = ids();
    let token = dsts.device_token(Alg::EdDsa, tenant, device);
    assert!(matches!(verifier.verify(&token).await, Err(TokenError::Unavailable(_))));
    // Malformed tokens are still told apart.
    assert_eq!(refusal(&verifier, "garbage").await, InvalidToken::Malformed);

    // The background task retries every min_refetch_interval while it has no keys.
    dsts.recover();
    assert!(
        eventually(WAIT, async || verifier.key_count().await == 3).await,
        "timed out waiting for the first key set"
    );
    assert_eq!(
        verifier.verify(&token).await.unwrap(),
        Principal::Device { tenant, device }
    );
}

#[tokio::test]
async fn a_token_fetches_the_first_key_set_when_the_dsts_comes_back() {
    let dsts = FakeDsts::start().await;
    dsts.fail();
    let verifier = url_verifier(&dsts, |_| {}).await;
    dsts.recover();
    let (tenant, _) = ids();
    // No background retry within the default minute: the token itself fetches.
    verifier.verify(&dsts.service_token(Alg::Rs256, tenant)).await.unwrap();
    assert_eq!(dsts.jwks_requests(), 2);
}

#[tokio::test]
async fn the_refresher_stops_with_the_verifier() {
    let dsts = FakeDsts::start().await;
    // The observer is held by the verifier's shared state, which the refresher reaches only
    // through a weak reference it upgrades for each fetch: once the test holds the only
    // reference, that state is gone and no fetch can start again.
    let observer: files_adapters::jwks::RefreshObserver = Arc::new(|_| {});
    let verifier = url_verifier(&dsts, |source| {
        source.refresh_interval = Duration::from_millis(10);
        source.on_refresh = Some(Arc::clone(&observer));
    })
    .await;
    assert!(
        eventually(WAIT, async || dsts.jwks_requests() >= 3).await,
        "timed out waiting for periodic refreshes"
    );
    let clone = verifier.clone();
    drop(verifier);
    let before = dsts.jwks_requests();
    assert!(
        eventually(WAIT, async || dsts.jwks_requests() >= before + 2).await,
        "timed out waiting for refreshes while a clone lives"
    );
    drop(clone);
    assert!(
        eventually(WAIT, async || Arc::strong_count(&observer) == 1).await,
        "the verifier's state outlived its last clone: the refresher still holds it"
    );
}

/// A server on `127.0.0.1` that answers every request with a 302 to `location`; its URL.
async fn redirector(location: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer =
                format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_redirect_to_another_dsts_is_not_followed() {
    let dsts = FakeDsts::start().await;
    let url = redirector(dsts.jwks_url()).await;
    let outcomes = Outcomes::default();
    let verifier = url_verifier(&dsts, |source| {
        source.url = url;
        *source = outcomes.observe(source.clone());
    })
    .await;
    assert_eq!(outcomes.get(), [RefreshOutcome::Failed]);
    assert_eq!(verifier.key_count().await, 0);
    let (tenant, device) = ids();
    let token = dsts.device_token(Alg::Es256, tenant, device);
    assert!(matches!(verifier.verify(&token).await, Err(TokenError::Unavailable(_))));
    assert_eq!(outcomes.get(), [RefreshOutcome::Failed, RefreshOutcome::Failed]);
    // The key set behind the redirect was never fetched.
    assert_eq!(dsts.jwks_requests(), 0);
}

#[tokio::test]
async fn plain_http_needs_allow_http() {
    let dsts = FakeDsts::start().await;
    let refused = JwksVerifier::from_url(dsts.jwt_config(), RemoteJwks::new(dsts.jwks_url())).await;
    assert!(matches!(refused, Err(JwksError::PlainHttp { .. })), "{refused:?}");
    assert_eq!(dsts.jwks_requests(), 0);
    let verifier = url_verifier(&dsts, |source| source.allow_http = true).await;
    let (tenant, device) = ids();
    verifier
        .verify(&dsts.device_token(Alg::EdDsa, tenant, device))
        .await
        .unwrap();
    assert_eq!(dsts.jwks_requests(), 1);
}
