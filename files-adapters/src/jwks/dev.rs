//! The local development key pair of the embedded default: an ES256 key pair kept in a PEM file,
//! whose public half the dev verifier trusts and whose private half mints tokens.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use files_core::{BoxError, DeviceId, TenantId};
use jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair};
use jwt_simple::claims::Claims;
use serde_json::{Map, Value};

use super::{JwksError, JwksVerifier, JwtConfig};

/// The longest validity [`DevKey::mint`] writes (about ten years).
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Who a development token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevClaims {
    /// The tenant (`tenant_id`).
    pub tenant: TenantId,
    /// The device (`device_id`), for a device principal.
    pub device: Option<DeviceId>,
    /// Adds the `files:admin` scope: without a device, a tenant service principal.
    pub admin: bool,
}

/// The development key could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevKeyError {
    /// The key file could not be read or written.
    #[error("cannot {action} the development key file {path}")]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold an ES256 (P-256) private key in PEM.
    #[error("the development key file {path} does not hold a P-256 private key in PEM")]
    InvalidKey {
        /// The file.
        path: PathBuf,
    },
    /// The path names no file (it ends with `..` or is empty).
    #[error("{path} is not a file path")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
    },
    /// The key could not be encoded, or a token could not be signed.
    #[error("cannot use the development key")]
    Key(#[source] BoxError),
}

/// The development ES256 key pair. Its `kid` is the JWK thumbprint of its public key, so every
/// process that loads the same file agrees on it.
pub struct DevKey {
    key_pair: ES256KeyPair,
    kid: String,
}

impl fmt::Debug for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl DevKey {
    /// A new key pair, kept only in memory.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_key_pair(ES256KeyPair::generate())
    }

    fn from_key_pair(key_pair: ES256KeyPair) -> Self {
        let kid = key_pair.public_key().jwk_thumbprint();
        Self {
            key_pair: key_pair.with_key_id(&kid),
            kid,
        }
    }

    /// Reads the key pair from `path`, or creates it there (PEM, mode 0600 on Unix) when the
    /// file does not exist. Creation is atomic: the key is written to a temporary file in the
    /// same directory and hard-linked to `path`, so processes racing to create it all end up
    /// with the key of the one that linked first.
    ///
    /// # Errors
    /// [`DevKeyError::Io`] when the file or its directory cannot be read or written;
    /// [`DevKeyError::InvalidKey`] when the file holds something else than a P-256 private key;
    /// [`DevKeyError::InvalidPath`] when `path` names no file.
    pub fn load_or_create(path: &Path) -> Result<Self, DevKeyError> {
        match fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(&pem, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("read", path, source)),
        }
        let file_name = path.file_name().ok_or_else(|| DevKeyError::InvalidPath {
            path: path.to_path_buf(),
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(|source| io_error("create the directory of", path, source))?;
        let pem = ES256KeyPair::generate()
            .to_pem()
            .map_err(|e| DevKeyError::Key(e.into()))?;
        let temp = dir.join(format!(".{}.{}.tmp", file_name.to_string_lossy(), unique_suffix()));
        write_private(&temp, pem.as_bytes()).map_err(|source| io_error("write", &temp, source))?;
        let linked = fs::hard_link(&temp, path);
        if let Err(error) = fs::remove_file(&temp) {
            tracing::debug!(path = %temp.display(), %error, "cannot remove the temporary key file");
        }
        match linked {
            Ok(()) => tracing::info!(path = %path.display(), "created a development key pair"),
            // Another process created it first: use its key.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(io_error("create", path, source)),
        }
        let pem = fs::read_to_string(path).map_err(|source| io_error("read", path, source))?;
        Self::from_pem(&pem, path)
    }

    fn from_pem(pem: &str, path: &Path) -> Result<Self, DevKeyError> {
        ES256KeyPair::from_pem(pem)
            .map(Self::from_key_pair)
            .map_err(|_| DevKeyError::InvalidKey {
                path: path.to_path_buf(),
            })
    }

    /// The key's `kid`.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A JWKS holding the public key: `{"keys":[{"kty":"EC","crv":"P-256",...}]}`.
    #[must_use]
    pub fn jwks_json(&self) -> String {
        format!("{{\"keys\":[{}]}}", self.key_pair.public_key().to_jwk())
    }

    /// A verifier that trusts only this key.
    ///
    /// # Errors
    /// [`JwksError`] if the key's own JWKS cannot be read back, which would be a bug.
    pub fn verifier(&self, config: JwtConfig) -> Result<JwksVerifier, JwksError> {
        JwksVerifier::from_jwks_json(config, &self.jwks_json())
    }

    /// A token for `claims`, with the default claim names (`tenant_id`, `device_id`, `scope`
    /// holding `files:admin` when `admin`), `iss`, `aud`, `sub` (the device or the tenant),
    /// `iat`/`nbf` now and `exp` after `ttl` (at most about ten years).
    ///
    /// # Errors
    /// [`DevKeyError::Key`] when signing fails.
    pub fn mint(&self, claims: &DevClaims, issuer: &str, audience: &str, ttl: Duration) -> Result<String, DevKeyError> {
        let mut custom = Map::new();
        custom.insert("tenant_id".to_owned(), Value::String(claims.tenant.to_string()));
        if let Some(device) = claims.device {
            custom.insert("device_id".to_owned(), Value::String(device.to_string()));
        }
        if claims.admin {
            custom.insert("scope".to_owned(), Value::String("files:admin".to_owned()));
        }
        let subject = claims
            .device
            .map_or_else(|| claims.tenant.to_string(), |device| device.to_string());
        let ttl_ms = u64::try_from(ttl.min(MAX_TTL).as_millis()).unwrap_or(u64::MAX);
        let jwt = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_millis(ttl_ms))
            .with_issuer(issuer)
            .with_audience(audience)
            .with_subject(subject);
        self.key_pair.sign(jwt).map_err(|e| DevKeyError::Key(e.into()))
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> DevKeyError {
    DevKeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A suffix no other process or thread uses at the same time.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}.{nanos}.{n}", std::process::id())
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
