//! The local development key pair of the embedded default: an ES256 key pair kept in a PEM file,
//! whose public half the dev verifier trusts and whose private half mints tokens.
//!
//! Whoever can write the key file can mint tokens the server accepts, so the file lives in a
//! per-user directory ([`DevKey::default_dir`]), created `0700`, the key `0600`; a key file owned
//! by another user, writable by others or readable by its group or others, or a directory
//! writable by others or owned by another user (root aside), is refused.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use files_core::{BoxError, DeviceId, TenantId};
use jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair};
use jwt_simple::claims::Claims;
use serde_json::{Map, Value};

use super::config::JwtConfig;
use super::error::JwksError;
use super::verifier::JwksVerifier;

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
    /// Adds the `files:platform` scope: without a device, the platform principal (the tenant
    /// is then not read).
    pub platform: bool,
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
    /// The key file or its directory could be changed by someone else than the user the process
    /// runs as.
    #[error("refusing {path}: {problem}")]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it (its owner or its mode).
        problem: String,
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

    /// The default directory of the key, private to the user: `$XDG_RUNTIME_DIR/files-server-dev`
    /// when `XDG_RUNTIME_DIR` is set (to an absolute path), else `$HOME/.cache/files-server-dev`,
    /// else `files-server-dev-<uid>` in the system temporary directory.
    #[must_use]
    pub fn default_dir() -> PathBuf {
        default_dir_from(
            std::env::var_os("XDG_RUNTIME_DIR"),
            std::env::var_os("HOME"),
            current_uid(),
        )
    }

    /// Reads the key pair from `path`, or creates it there (PEM, mode 0600 on Unix) when the
    /// file does not exist. Creation is atomic: the key is written to a temporary file in the
    /// same directory and hard-linked to `path`, so processes racing to create it all end up
    /// with the key of the one that linked first.
    ///
    /// The directory is created (mode 0700) when missing. On Unix, a directory owned by another
    /// user (root aside) or writable by its group or others is refused, and so is a key file
    /// owned by another user or readable or writable by its group or others.
    ///
    /// # Errors
    /// [`DevKeyError::Io`] when the file or its directory cannot be read or written;
    /// [`DevKeyError::Insecure`] when the file or its directory could be changed by another
    /// user; [`DevKeyError::InvalidKey`] when the file holds something else than a P-256 private
    /// key; [`DevKeyError::InvalidPath`] when `path` names no file.
    pub fn load_or_create(path: &Path) -> Result<Self, DevKeyError> {
        let file_name = path.file_name().ok_or_else(|| DevKeyError::InvalidPath {
            path: path.to_path_buf(),
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        create_private_dir(dir).map_err(|source| io_error("create the directory of", path, source))?;
        check_dir(dir)?;
        match read_key_file(path) {
            Ok(pem) => return Self::from_pem(&pem, path),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into_dev_key_error(path)),
        }
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
        let pem = read_key_file(path).map_err(|error| error.into_dev_key_error(path))?;
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
    /// `iat`/`nbf` now, `exp` after `ttl` (at most about ten years) and a random `jti`.
    ///
    /// # Errors
    /// [`DevKeyError::Key`] when signing fails.
    pub fn mint(&self, claims: &DevClaims, issuer: &str, audience: &str, ttl: Duration) -> Result<String, DevKeyError> {
        let mut custom = Map::new();
        custom.insert("tenant_id".to_owned(), Value::String(claims.tenant.to_string()));
        if let Some(device) = claims.device {
            custom.insert("device_id".to_owned(), Value::String(device.to_string()));
        }
        let scopes: Vec<&str> = [(claims.admin, "files:admin"), (claims.platform, "files:platform")]
            .into_iter()
            .filter_map(|(wanted, scope)| wanted.then_some(scope))
            .collect();
        if !scopes.is_empty() {
            custom.insert("scope".to_owned(), Value::String(scopes.join(" ")));
        }
        let subject = claims
            .device
            .map_or_else(|| claims.tenant.to_string(), |device| device.to_string());
        let ttl_ms = u64::try_from(ttl.min(MAX_TTL).as_millis()).unwrap_or(u64::MAX);
        let jwt = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_millis(ttl_ms))
            .with_issuer(issuer)
            .with_audience(audience)
            .with_subject(subject)
            // Each token its own, even two minted in the same second for the same claims.
            .with_jwt_id(uuid::Uuid::new_v4().to_string());
        self.key_pair.sign(jwt).map_err(|e| DevKeyError::Key(e.into()))
    }
}

/// [`DevKey::default_dir`] from the values of `XDG_RUNTIME_DIR` and `HOME` and the user id.
pub(super) fn default_dir_from(runtime_dir: Option<OsString>, home: Option<OsString>, uid: Option<u32>) -> PathBuf {
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|dir| dir.is_absolute());
    if let Some(dir) = absolute(runtime_dir) {
        return dir.join("files-server-dev");
    }
    if let Some(home) = absolute(home) {
        return home.join(".cache").join("files-server-dev");
    }
    std::env::temp_dir().join(uid.map_or_else(
        || "files-server-dev".to_owned(),
        |uid| format!("files-server-dev-{uid}"),
    ))
}

/// The effective user id of the process: the owner of the files it creates.
#[cfg(unix)]
fn current_uid() -> Option<u32> {
    Some(rustix::process::geteuid().as_raw())
}

#[cfg(not(unix))]
fn current_uid() -> Option<u32> {
    None
}

/// Creates `dir` and its missing parents, readable by the user only.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Refuses a file or directory owned by another user (`root` too, for a file) or writable by
/// its group or others.
#[cfg(unix)]
fn check_private(path: &Path, metadata: &fs::Metadata, root_may_own: bool) -> Result<(), DevKeyError> {
    use std::os::unix::fs::MetadataExt;
    let insecure = |problem: String| DevKeyError::Insecure {
        path: path.to_path_buf(),
        problem,
    };
    if let Some(uid) = current_uid()
        && metadata.uid() != uid
        && !(root_may_own && metadata.uid() == 0)
    {
        return Err(insecure(format!(
            "it is owned by uid {}, not by the user this process runs as (uid {uid})",
            metadata.uid()
        )));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "it is writable by its group or others (mode {mode:04o}); remove their write permission"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
#[allow(clippy::unnecessary_wraps)]
fn check_private(_path: &Path, _metadata: &fs::Metadata, _root_may_own: bool) -> Result<(), DevKeyError> {
    Ok(())
}

/// Refuses a key file that its group or others can read (or run): whoever reads the private key
/// can mint tokens the server accepts.
#[cfg(unix)]
fn check_unreadable_by_others(path: &Path, metadata: &fs::Metadata) -> Result<(), DevKeyError> {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DevKeyError::Insecure {
            path: path.to_path_buf(),
            problem: format!(
                "it is readable by its group or others (mode {mode:04o}), who could mint tokens with it; \
                 make it private (chmod 600)"
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
#[allow(clippy::unnecessary_wraps)]
fn check_unreadable_by_others(_path: &Path, _metadata: &fs::Metadata) -> Result<(), DevKeyError> {
    Ok(())
}

/// Refuses a directory where someone else could replace the key.
fn check_dir(dir: &Path) -> Result<(), DevKeyError> {
    let metadata = fs::metadata(dir).map_err(|source| io_error("inspect the directory", dir, source))?;
    check_private(dir, &metadata, true)
}

/// Why the key file could not be read.
enum ReadError {
    Io(io::Error),
    Insecure(DevKeyError),
}

impl ReadError {
    fn into_dev_key_error(self, path: &Path) -> DevKeyError {
        match self {
            Self::Io(source) => io_error("read", path, source),
            Self::Insecure(error) => error,
        }
    }
}

/// Reads the key file after checking, on the open file, that it is a regular file only its
/// owner, the user the process runs as, can change.
fn read_key_file(path: &Path) -> Result<String, ReadError> {
    let mut file = fs::File::open(path).map_err(ReadError::Io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if !metadata.is_file() {
        return Err(ReadError::Insecure(DevKeyError::Insecure {
            path: path.to_path_buf(),
            problem: "it is not a regular file".to_owned(),
        }));
    }
    check_private(path, &metadata, false).map_err(ReadError::Insecure)?;
    check_unreadable_by_others(path, &metadata).map_err(ReadError::Insecure)?;
    let mut pem = String::new();
    file.read_to_string(&mut pem).map_err(ReadError::Io)?;
    Ok(pem)
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
