//! The configuration of a verifier: what a token must say, where the principal is read from, and
//! the key sources (local key files, a JWKS URL and its refresh observer).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use files_core::{Metrics, NoMetrics};
use jwt_simple::common::VerificationOptions;

use crate::redact::redact_url_strict;

/// The names of the custom claims that make up a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The tenant's UUID (required). Default `tenant_id`.
    pub tenant_id: String,
    /// The device's UUID; present for device principals. Default `device_id`.
    pub device_id: String,
    /// Space-separated scopes (a JSON array of strings is also read). Default `scope`.
    pub scope: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant_id: "tenant_id".to_owned(),
            device_id: "device_id".to_owned(),
            scope: "scope".to_owned(),
        }
    }
}

/// What a token must say to be accepted, and where the principal is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The audience that `aud` must contain.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60 s.
    pub leeway: Duration,
    /// The custom claim names.
    pub claims: ClaimNames,
    /// The scope that makes a token without a device a tenant service. Default `files:admin`.
    pub admin_scope: String,
    /// The scope that makes a token without a device the platform's. Default `files:platform`.
    pub platform_scope: String,
    /// How many verified tokens are remembered (each until its `exp`, the key set emptying
    /// them when it changes), so that a device's next requests skip the signature check.
    /// 0 turns the cache off. Default [`DEFAULT_TOKEN_CACHE_CAPACITY`].
    pub token_cache_capacity: u64,
    /// The longest a token may live: one whose `exp` is further than this (plus the leeway)
    /// from now, or further than this from its `iat`, is refused (`exp`), whichever library
    /// checks it. Default [`DEFAULT_MAX_TOKEN_LIFETIME`].
    pub max_token_lifetime: Duration,
    /// The library that checks signatures. Default [`SignatureLibrary::JwtSimple`].
    pub signature_library: SignatureLibrary,
}

/// The default [`JwtConfig::max_token_lifetime`]: a day, above what a DSTS gives a device
/// (an hour or so), far below the years a leaked or careless token could claim.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The library that checks a token's signature. Everything else is the same with either: the
/// key sources, the header and claims rules (jwt-simple's, held to by both), the principal and
/// the verified-token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureLibrary {
    /// jwt-simple, pure Rust. The default.
    #[default]
    JwtSimple,
    /// jsonwebtoken on aws-lc-rs: 1.3x (EdDSA) to 7.7x (RS256) cheaper for a token's first
    /// check (docs/performance.md). Needs the `jsonwebtoken` feature, which builds aws-lc's C.
    JsonWebToken,
}

impl SignatureLibrary {
    /// Both libraries, the default first.
    pub const ALL: [Self; 2] = [Self::JwtSimple, Self::JsonWebToken];

    /// Its name, as `FILES_TOKEN_VERIFIER` takes it: `jwt-simple` or `jsonwebtoken`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::JwtSimple => "jwt-simple",
            Self::JsonWebToken => "jsonwebtoken",
        }
    }

    /// Whether this build has it (`JsonWebToken` only with the `jsonwebtoken` feature).
    #[must_use]
    pub const fn is_built(self) -> bool {
        match self {
            Self::JwtSimple => true,
            Self::JsonWebToken => cfg!(feature = "jsonwebtoken"),
        }
    }
}

impl fmt::Display for SignatureLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SignatureLibrary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|library| library.name() == s.trim())
            .ok_or_else(|| format!("expected jwt-simple or jsonwebtoken, got {s:?}"))
    }
}

/// The default [`JwtConfig::token_cache_capacity`]: one token for each of 100,000 devices,
/// about 40 MB when full.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 100_000;

impl JwtConfig {
    /// A configuration with the default leeway, claim names, admin scope, token cache and
    /// maximum token lifetime.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(60),
            claims: ClaimNames::default(),
            admin_scope: "files:admin".to_owned(),
            platform_scope: "files:platform".to_owned(),
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            signature_library: SignatureLibrary::JwtSimple,
        }
    }

    pub(super) fn verification_options(&self) -> VerificationOptions {
        let leeway_ms = u64::try_from(self.leeway.as_millis()).unwrap_or(u64::MAX);
        VerificationOptions {
            allowed_issuers: Some(std::iter::once(self.issuer.clone()).collect()),
            allowed_audiences: Some(std::iter::once(self.audience.clone()).collect()),
            time_tolerance: Some(jwt_simple::prelude::Duration::from_millis(leeway_ms)),
            ..VerificationOptions::default()
        }
    }
}

/// A local key file: a JWKS (or a single JWK) or a PEM public key (`-----BEGIN PUBLIC KEY-----`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The `kid` of a PEM key. Without one, the key verifies tokens that carry no `kid`. Ignored
    /// for a JWKS, whose keys carry their own `kid`.
    pub kid: Option<String>,
}

impl KeyFile {
    /// A key file without a `kid` for its PEM key.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            kid: None,
        }
    }

    /// Names the PEM key of the file.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

/// The result of one fetch of a JWKS URL, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A key set was fetched and replaced the cached one.
    Updated {
        /// How many usable keys it holds.
        keys: usize,
    },
    /// The fetch failed; the last good keys (if any) stay in use.
    Failed,
}

impl RefreshOutcome {
    /// A stable label for metrics: `updated` or `failed`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Updated { .. } => "updated",
            Self::Failed => "failed",
        }
    }
}

/// Called after every fetch of a JWKS URL (initial, periodic or caused by a token), while no other
/// fetch can start: keep it quick (count a metric).
pub type RefreshObserver = Arc<dyn Fn(RefreshOutcome) + Send + Sync>;

/// Where and how often to fetch a JWKS.
///
/// The URL is fetched without following redirects (a 3xx answer is a failed fetch), and only
/// over `https://` unless [`RemoteJwks::allow_http`]. It is never shown whole: logs, errors and
/// `Debug` show [`RemoteJwks::redacted_url`].
#[derive(Clone)]
pub struct RemoteJwks {
    /// The JWKS URL, e.g. `https://dsts.example/.well-known/jwks.json`.
    pub url: String,
    /// Accept a plain `http://` URL, whose keys anyone on the path could replace (tests, a DSTS
    /// on the same host). Default `false`: only `https://`.
    pub allow_http: bool,
    /// Timeout of each fetch (connect, request and body). Default 10 s.
    pub timeout: Duration,
    /// Period of the periodic refresh ([`super::JwksVerifier::background`]). Default 5 min.
    pub refresh_interval: Duration,
    /// Least time between two fetches caused by tokens (an unknown `kid`, or no key set yet); also
    /// the retry period of the periodic refresh while no key set was ever obtained. Default 60 s.
    pub min_refetch_interval: Duration,
    /// Where every fetch is counted ([`files_core::Metrics::key_set_refresh`]); nowhere by
    /// default.
    pub metrics: Arc<dyn Metrics>,
    /// Told of every fetch outcome, with its detail (a hook for tools and tests).
    pub on_refresh: Option<RefreshObserver>,
}

impl RemoteJwks {
    /// A URL source with the default timeout and intervals, counted nowhere.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            allow_http: false,
            timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(60),
            metrics: Arc::new(NoMetrics),
            on_refresh: None,
        }
    }

    /// The URL as it may be logged: its user info shown as `***@`, its query as `?***` and its
    /// fragment as `#***`.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url_strict(&self.url)
    }
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.redacted_url())
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("on_refresh", &self.on_refresh.as_ref().map(|_| "Fn"))
            .finish()
    }
}
