//! The fake DSTS itself: its key pairs, the JWKS it serves over HTTP with its switches, and the
//! tokens it mints.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use files_adapters::jwks::{JwtConfig, RemoteJwks};
use files_core::{DeviceId, TenantId};
use jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, RS256KeyPair, RSAKeyPairLike,
};
use jwt_simple::claims::{Claims, JWTClaims};
use jwt_simple::prelude::Duration;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The issuer of [`FakeDsts::start`].
pub const DEFAULT_ISSUER: &str = "https://dsts.test";
/// The audience of [`FakeDsts::start`].
pub const DEFAULT_AUDIENCE: &str = "files";
/// The path of the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A fixed 2048-bit RSA key: generating one in a debug build takes too long for tests. Every
/// fake DSTS uses it, under a `kid` of its own.
pub(super) const RSA_PEM: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC08JyL3VkqAo4o
fP0ftEy5zWP3bYY3qPgS3s03ieUgrAPKnBi0Z5hMLgY29rbSF2zfmOtEna6IU6iL
5iWw9dRU0sZ6kfjI1x7mAVGpgern22EnmNgBWmb87IVPyZvpP7wET6girMLglqy+
sQHERH/E4FHpmuBpT/LnkQfSLrZP203WsNFbfwWRuIibSTtJYNi5vTOyHuOw8WkN
ynRtXtjoZ3UrK3xWAtO6uGhzhr9zzG49Dnvv6Y5VD5K7sc95dME5OQslA3d/QVPL
LDJ9tGdq5i0dw33T6X1U0xO34TkQfiZQ1pKGalSRklgt73nXH8yLEhpSNC/KrJQH
SFPS0B1bAgMBAAECggEAHTzcLwWfiNhM3GIGDP93fnaf9rVuAMR/AZ2bD6Rqr/Lb
0fuTSmOLCpRNUMhhFmXOo/rz2WyZbVIHZEPWR1gR7Xr5s4iu6NVKGuSPq5JgwQKE
Gn/qN53CEpCtogzz8qbn3NJ6WtAL1XrDgzTbEjn3Y3rUAamTJbFTkPOwjdgagaCq
nLzH8X6PXRdUWA2wq4rp0BXuO+ovDRiJoDEJHEAfzqPsb2Al8xYb9xOzVv0Emdp2
kVtGSQRIxyCRplmJefPZM7bhZbMzMgvuIMyRF+CGmy/l25gfzgv1yAhLPP5ne/ZT
JYQg4/yTf/CQbDDWvSnD6HDzBralxmHPP+5wTCSFgQKBgQDoBBXFksAHBsh/OgnG
JK+lhjtV7WjvuYrckyUtxz+8d8lnYo0+XZeSEHevr1/JziNo/+4N6/xHlv0T6y2y
rHKlCW1RaFrgsy+H+6aWP82tSsLjg3uwz0cv+wYbUxkIy3lI3pLfqTrtxTxB7wfk
OGi28ryN4D8wUMXZNjskGJqhIQKBgQDHpOIydJv4UHgA4ri+dOknVPhPVyUtX08t
8S183RxzWaiqD0m/OMSgJ94hkSMNp53j7oR4KUkkPJCp3rOYDQlh9nQkLyGIaGXq
o4JG5dJDrl0uu9WFms6XtZxZr6HvIvyq4PMLlDF+L5eWyJFbv3uK7e/WnkywQhHp
uE4ckVXi+wKBgEhyfhnjaPLIu3J+vO6SJgaZk42RRGMWnLWjfMh+nvhKrykJLPF8
aAfD/JtvN4ncRFJVGBBgz7XK/9toZCyWjHXcK7Zvz3C6gu0DN1FTOvYRkilYtRbQ
onno+E8v83E7l/OZDGOqhCwammY8LUqmEoyN3zKuAw0jK6RXur/aru4BAoGBAMBx
Us06FGKPBq4r3dNRFLIiON0Z7q9G0SdC9QsIhHU4dtm+tOLL0NVkuL14juaJrSva
bfz6JxP0AaqNDmdCIco5bAi5GcTIhX1hMaIvxLgS6qWy0Abii8Q3fsgBAcJm4lHB
VubRacfuDlx9Z4ieEnOAGhGyM9AvT98QFtN40OZjAoGBANANUcH9IJo+BmTnIG8t
tKV/jOQmz++gbq1HQPNgmE0jqD6Ed4U3q75LiYLDE0vA+9R97wzLfGkf7EKFq8RO
0IAo53QJK9hHAmg7LInXIcjkE0GIyDxMAwLAd3TwgdkVwdMtirxE578mfprCQpeT
6V3UW/zu43fE5dqh+axlgwk4
-----END PRIVATE KEY-----
";

/// The signing algorithms of the fake's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 (the key that [`FakeDsts::rotate`] replaces).
    Es256,
    /// RSA PKCS#1 v1.5, 2048 bits.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every algorithm.
    pub const ALL: [Self; 3] = [Self::Es256, Self::Rs256, Self::EdDsa];
}

/// Who a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `tenant_id`; omitted when `None`.
    pub tenant: Option<TenantId>,
    /// `device_id`; omitted when `None`.
    pub device: Option<DeviceId>,
    /// `scope`; omitted when `None`.
    pub scope: Option<String>,
}

impl TokenClaims {
    /// A device principal.
    #[must_use]
    pub fn device(tenant: TenantId, device: DeviceId) -> Self {
        Self {
            tenant: Some(tenant),
            device: Some(device),
            scope: None,
        }
    }

    /// A tenant service principal (`scope: files:admin`).
    #[must_use]
    pub fn service(tenant: TenantId) -> Self {
        Self {
            tenant: Some(tenant),
            device: None,
            scope: Some("files:admin".to_owned()),
        }
    }
}

/// The key pairs; the last ES256 key is the current one.
pub(super) struct Keys {
    es256: Vec<(String, ES256KeyPair)>,
    pub(super) rs256: (String, RS256KeyPair),
    eddsa: (String, Ed25519KeyPair),
}

pub(super) struct Shared {
    keys: Mutex<Keys>,
    failing: AtomicBool,
    requests: AtomicUsize,
    rotations: AtomicUsize,
}

impl Shared {
    pub(super) fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn jwks_json(&self) -> String {
        let keys = self.keys();
        let mut jwks: Vec<String> = keys.es256.iter().map(|(_, key)| key.public_key().to_jwk()).collect();
        jwks.push(keys.rs256.1.public_key().to_jwk());
        jwks.push(keys.eddsa.1.public_key().to_jwk());
        format!("{{\"keys\":[{}]}}", jwks.join(","))
    }
}

async fn serve_jwks(shared: web::Data<Shared>) -> HttpResponse {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if shared.failing.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().body("failing on purpose");
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(shared.jwks_json())
}

/// A DSTS for tests: serves its JWKS on `127.0.0.1`, mints tokens. Stopped when dropped.
pub struct FakeDsts {
    pub(super) shared: Arc<Shared>,
    issuer: String,
    audience: String,
    address: String,
    /// Distinguishes the `kid`s of fakes running in the same process.
    id: String,
    handle: ServerHandle,
}

impl fmt::Debug for FakeDsts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeDsts")
            .field("address", &self.address)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeDsts {
    fn drop(&mut self) {
        // The stop command is sent at once; waiting for it is not needed.
        drop(self.handle.stop(false));
    }
}

/// Unwraps a signature that cannot fail with the fake's own well-formed keys.
pub(super) fn signed(token: Result<String, jwt_simple::Error>) -> String {
    match token {
        Ok(token) => token,
        Err(error) => panic!("the fake DSTS cannot sign: {error}"),
    }
}

impl FakeDsts {
    /// Starts a fake with [`DEFAULT_ISSUER`] and [`DEFAULT_AUDIENCE`].
    ///
    /// # Panics
    /// When it cannot listen on `127.0.0.1` or its keys cannot be made: the test environment is
    /// broken.
    pub async fn start() -> Self {
        Self::start_with(DEFAULT_ISSUER, DEFAULT_AUDIENCE).await
    }

    /// Starts a fake whose tokens carry `issuer` and `audience`.
    ///
    /// # Panics
    /// As [`FakeDsts::start`].
    pub async fn start_with(issuer: &str, audience: &str) -> Self {
        match Self::try_start(issuer, audience).await {
            Ok(dsts) => dsts,
            Err(error) => panic!("cannot start the fake DSTS: {error:#}"),
        }
    }

    /// Starts a fake whose tokens carry `issuer` and `audience`.
    ///
    /// # Errors
    /// When it cannot listen on `127.0.0.1` or its keys cannot be made.
    pub async fn try_start(issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string()[..8].to_owned();
        let rsa = RS256KeyPair::from_pem(RSA_PEM)
            .context("the fixed RSA key")?
            .with_key_id(&format!("rs256-{id}"));
        let es_kid = format!("es256-{id}-1");
        let ed_kid = format!("eddsa-{id}");
        let keys = Keys {
            es256: vec![(es_kid.clone(), ES256KeyPair::generate().with_key_id(&es_kid))],
            rs256: (format!("rs256-{id}"), rsa),
            eddsa: (ed_kid.clone(), Ed25519KeyPair::generate().with_key_id(&ed_kid)),
        };
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            rotations: AtomicUsize::new(1),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(JWKS_PATH, web::get().to(serve_jwks))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .context("bind 127.0.0.1:0")?;
        let port = server
            .addrs()
            .first()
            .map(std::net::SocketAddr::port)
            .context("no bound address")?;
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            shared,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            address: format!("http://127.0.0.1:{port}"),
            id,
            handle,
        })
    }

    /// The URL of the JWKS.
    #[must_use]
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.address)
    }

    /// The JWKS as served now.
    #[must_use]
    pub fn jwks_json(&self) -> String {
        self.shared.jwks_json()
    }

    /// The `iss` of its tokens.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of its tokens.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// A verifier configuration for its tokens (default claim names and leeway).
    #[must_use]
    pub fn jwt_config(&self) -> JwtConfig {
        JwtConfig::new(&self.issuer, &self.audience)
    }

    /// A URL source for its JWKS, with the default intervals; plain http is allowed (the fake
    /// serves on `127.0.0.1` without TLS).
    #[must_use]
    pub fn remote(&self) -> RemoteJwks {
        RemoteJwks {
            allow_http: true,
            ..RemoteJwks::new(self.jwks_url())
        }
    }

    /// Makes the JWKS endpoint answer 500 (`true`) or the key set again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// The JWKS endpoint answers 500 from now on.
    pub fn fail(&self) {
        self.set_failing(true);
    }

    /// The JWKS endpoint answers the key set again.
    pub fn recover(&self) {
        self.set_failing(false);
    }

    /// How many JWKS requests were received (failed ones included).
    #[must_use]
    pub fn jwks_requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Adds a new ES256 key to the JWKS and signs [`Alg::Es256`] tokens with it from now on; the
    /// older ES256 keys stay published. Returns the new `kid`.
    pub fn rotate(&self) -> String {
        let n = self.shared.rotations.fetch_add(1, Ordering::SeqCst) + 1;
        let kid = format!("es256-{}-{n}", self.id);
        self.shared
            .keys()
            .es256
            .push((kid.clone(), ES256KeyPair::generate().with_key_id(&kid)));
        kid
    }

    /// The `kid` tokens of `alg` are signed under now.
    #[must_use]
    pub fn kid(&self, alg: Alg) -> String {
        let keys = self.shared.keys();
        match alg {
            Alg::Es256 => keys.es256.last().map(|(kid, _)| kid.clone()).unwrap_or_default(),
            Alg::Rs256 => keys.rs256.0.clone(),
            Alg::EdDsa => keys.eddsa.0.clone(),
        }
    }

    /// Default claims for `claims`: `iss`, `aud`, `sub` (the device or the tenant), `iat` and
    /// `nbf` now, `exp` in 10 minutes, and the custom claims. Change them and [`FakeDsts::sign`].
    #[must_use]
    pub fn claims(&self, claims: &TokenClaims) -> JWTClaims<Map<String, Value>> {
        let mut custom = Map::new();
        if let Some(tenant) = claims.tenant {
            custom.insert("tenant_id".to_owned(), Value::String(tenant.to_string()));
        }
        if let Some(device) = claims.device {
            custom.insert("device_id".to_owned(), Value::String(device.to_string()));
        }
        if let Some(scope) = &claims.scope {
            custom.insert("scope".to_owned(), Value::String(scope.clone()));
        }
        let mut jwt = Claims::with_custom_claims(custom, Duration::from_mins(10))
            .with_issuer(&self.issuer)
            .with_audience(&self.audience);
        if let Some(subject) = claims
            .device
            .map(|d| d.to_string())
            .or(claims.tenant.map(|t| t.to_string()))
        {
            jwt = jwt.with_subject(subject);
        }
        jwt
    }

    /// Signs any claims with the current key of `alg`.
    #[must_use]
    pub fn sign(&self, alg: Alg, claims: JWTClaims<Map<String, Value>>) -> String {
        let keys = self.shared.keys();
        signed(match alg {
            Alg::Es256 => match keys.es256.last() {
                Some((_, key)) => key.sign(claims),
                None => Err(jwt_simple::JWTError::InvalidKeyPair.into()),
            },
            Alg::Rs256 => keys.rs256.1.sign(claims),
            Alg::EdDsa => keys.eddsa.1.sign(claims),
        })
    }

    /// A good token for `claims`, signed with the current key of `alg`.
    #[must_use]
    pub fn token(&self, alg: Alg, claims: &TokenClaims) -> String {
        self.sign(alg, self.claims(claims))
    }

    /// A good device token.
    #[must_use]
    pub fn device_token(&self, alg: Alg, tenant: TenantId, device: DeviceId) -> String {
        self.token(alg, &TokenClaims::device(tenant, device))
    }

    /// A good tenant service token.
    #[must_use]
    pub fn service_token(&self, alg: Alg, tenant: TenantId) -> String {
        self.token(alg, &TokenClaims::service(tenant))
    }
}
