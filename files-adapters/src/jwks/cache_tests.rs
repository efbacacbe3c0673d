//! Tests of the verified-token cache: on its own (a test clock), and in the verifier (what is
//! remembered, until when, and the key set emptying it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use files_core::{CacheOutcome, DeviceId, InvalidToken, Metrics, Principal, TenantId, TokenError, TokenVerifier};
use jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair};
use jwt_simple::claims::{Claims, JWTClaims};
use jwt_simple::prelude::{Clock, Duration as JwtDuration};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::cache::VerifiedTokens;
use super::{JwksVerifier, JwtConfig, RemoteJwks};

const ISSUER: &str = "https://dsts.test";
const AUDIENCE: &str = "files";

#[derive(Default)]
struct Counted {
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl Counted {
    fn seen(&self) -> (usize, usize) {
        (self.hits.load(Ordering::SeqCst), self.misses.load(Ordering::SeqCst))
    }
}

impl Metrics for Counted {
    fn token_cache(&self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => self.hits.fetch_add(1, Ordering::SeqCst),
            _ => self.misses.fetch_add(1, Ordering::SeqCst),
        };
    }
}

fn principal() -> Principal {
    Principal::Device {
        tenant: TenantId::from_uuid(Uuid::from_u128(0x1111)),
        device: DeviceId::from_uuid(Uuid::from_u128(0x2222)),
    }
}

fn device_claims(valid_for: JwtDuration) -> JWTClaims<Map<String, Value>> {
    let mut custom = Map::new();
    custom.insert(
        "tenant_id".to_owned(),
        Value::String(Uuid::from_u128(0x1111).to_string()),
    );
    custom.insert(
        "device_id".to_owned(),
        Value::String(Uuid::from_u128(0x2222).to_string()),
    );
    Claims::with_custom_claims(custom, valid_for)
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
}

fn jwks(keys: &[&ES256KeyPair]) -> String {
    let keys: Vec<String> = keys.iter().map(|key| key.public_key().to_jwk()).collect();
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

fn counted_verifier(json: &str, capacity: u64) -> (JwksVerifier, Arc<Counted>) {
    let counted = Arc::new(Counted::default());
    let config = JwtConfig {
        token_cache_capacity: capacity,
        ..JwtConfig::new(ISSUER, AUDIENCE)
    };
    let verifier = JwksVerifier::from_jwks_json(config, json)
        .unwrap()
        .with_metrics(counted.clone());
    (verifier, counted)
}

/// The test clock of `an_entry_is_a_hit_only_before_its_exp`: the system's plus an offset.
static OFFSET_SECS: AtomicU64 = AtomicU64::new(0);

fn shifted_now() -> SystemTime {
    SystemTime::now() + Duration::from_secs(OFFSET_SECS.load(Ordering::SeqCst))
}

#[test]
fn an_entry_is_a_hit_only_before_its_exp() {
    let cache = VerifiedTokens::with_clock(100, shifted_now);
    let counted = Arc::new(Counted::default());
    cache.count_in(counted.clone());
    let expires_at = SystemTime::now() + Duration::from_secs(600);

    let miss = cache.get("token").unwrap_err().unwrap();
    cache.insert(miss, &principal(), expires_at);
    assert_eq!(cache.get("token").unwrap(), principal());
    // Another token (one byte more) is another entry.
    assert!(cache.get("token.").is_err());
    assert_eq!(counted.seen(), (1, 2));

    // One second before exp it is still served; at exp it is not.
    OFFSET_SECS.store(599, Ordering::SeqCst);
    assert_eq!(cache.get("token").unwrap(), principal());
    OFFSET_SECS.store(600, Ordering::SeqCst);
    let miss = cache.get("token").unwrap_err().unwrap();
    // Nor is a token recorded once its exp has passed.
    cache.insert(miss, &principal(), expires_at);
    assert!(cache.get("token").is_err());
}

#[test]
fn a_key_set_change_invalidates_entries_even_those_written_after_it() {
    let cache = VerifiedTokens::new(100);
    let expires_at = SystemTime::now() + Duration::from_secs(600);
    let miss = cache.get("a").unwrap_err().unwrap();
    cache.insert(miss, &principal(), expires_at);
    // A verification that started before the change and ends after it.
    let racing = cache.get("b").unwrap_err().unwrap();

    cache.key_set_changed();
    assert!(cache.get("a").is_err());
    cache.insert(racing, &principal(), expires_at);
    assert!(cache.get("b").is_err());
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let cache = VerifiedTokens::new(16);
    let expires_at = SystemTime::now() + Duration::from_secs(600);
    for n in 0..1000 {
        let miss = cache.get(&format!("token-{n}")).unwrap_err().unwrap();
        cache.insert(miss, &principal(), expires_at);
    }
    assert!(cache.entry_count() <= 16, "{} entries", cache.entry_count());
}

#[tokio::test]
async fn a_verified_token_is_remembered_and_a_refused_one_is_not() {
    let key = ES256KeyPair::generate().with_key_id("es-1");
    let (verifier, counted) = counted_verifier(&jwks(&[&key]), 100);
    let token = key.sign(device_claims(JwtDuration::from_mins(10))).unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap(), principal());
    assert_eq!(verifier.verify(&token).await.unwrap(), principal());
    assert_eq!(counted.seen(), (1, 1));

    // A token signed by another key with the same kid: refused, every time.
    let forger = ES256KeyPair::generate().with_key_id("es-1");
    let forged = forger.sign(device_claims(JwtDuration::from_mins(10))).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(TokenError::Invalid(InvalidToken::Signature))
        ));
    }
    assert_eq!(counted.seen(), (1, 3));
}

#[tokio::test]
async fn a_token_past_its_exp_is_never_served_from_the_cache() {
    let key = ES256KeyPair::generate().with_key_id("es-1");
    let (verifier, counted) = counted_verifier(&jwks(&[&key]), 100);
    // Accepted within the leeway (60 s), but its exp has passed: verified in full each time.
    let mut claims = device_claims(JwtDuration::from_mins(10));
    claims.expires_at = Some(Clock::now_since_epoch() - JwtDuration::from_secs(20));
    let token = key.sign(claims).unwrap();
    for _ in 0..2 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(counted.seen(), (0, 2));
}

#[tokio::test]
async fn capacity_zero_turns_the_cache_off() {
    let key = ES256KeyPair::generate().with_key_id("es-1");
    let (verifier, counted) = counted_verifier(&jwks(&[&key]), 0);
    let token = key.sign(device_claims(JwtDuration::from_mins(10))).unwrap();
    for _ in 0..2 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(counted.seen(), (0, 0));
}

/// A JWKS server whose document can be replaced: its URL and its document.
async fn serve_jwks(document: String) -> (String, Arc<Mutex<String>>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let document = Arc::new(Mutex::new(document));
    let served = Arc::new(AtomicUsize::new(0));
    let (shared, counter) = (document.clone(), served.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = shared.lock().unwrap().clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, document, served)
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_cache_is_emptied_when_the_key_set_changes_and_only_then() {
    let old = ES256KeyPair::generate().with_key_id("es-1");
    let new = ES256KeyPair::generate().with_key_id("es-2");
    let (url, document, served) = serve_jwks(jwks(&[&old])).await;
    let counted = Arc::new(Counted::default());
    let source = RemoteJwks {
        allow_http: true,
        refresh_interval: Duration::from_millis(50),
        min_refetch_interval: Duration::from_millis(50),
        ..RemoteJwks::new(url)
    };
    let verifier = JwksVerifier::from_url(JwtConfig::new(ISSUER, AUDIENCE), source)
        .await
        .unwrap()
        .with_metrics(counted.clone());
    verifier.spawn_background();
    let token = old.sign(device_claims(JwtDuration::from_mins(10))).unwrap();
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(counted.seen(), (1, 1));

    // Refetched, the same keys: the entry stays.
    let fetched = served.load(Ordering::SeqCst);
    until("two refreshes", || served.load(Ordering::SeqCst) >= fetched + 2).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(counted.seen(), (2, 1));

    // The DSTS drops the old key: the next fetch empties the cache, and the old key's token,
    // verified in full, is refused.
    *document.lock().unwrap() = jwks(&[&new]);
    let fetched = served.load(Ordering::SeqCst);
    until("a refresh with the new keys", || {
        served.load(Ordering::SeqCst) >= fetched + 2
    })
    .await;
    assert!(matches!(
        verifier.verify(&token).await,
        Err(TokenError::Invalid(InvalidToken::UnknownKey))
    ));
    assert_eq!(counted.seen(), (2, 2));
}
