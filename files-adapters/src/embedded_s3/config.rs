//! Configuration of the embedded S3 server: [`EmbeddedS3Config`], with a `Debug`
//! implementation that keeps the secret key out of logs.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

/// Configuration of an [`EmbeddedS3`](super::EmbeddedS3) server.
#[derive(Clone)]
pub struct EmbeddedS3Config {
    /// Directory holding the buckets (one sub-directory each) and the store's
    /// bookkeeping files; created if missing.
    pub root: PathBuf,
    /// Address to listen on, e.g. `127.0.0.1:0` for an ephemeral port on loopback.
    pub listen: SocketAddr,
    /// The only access key accepted (SigV4).
    pub access_key: String,
    /// The secret key of [`EmbeddedS3Config::access_key`] (a secret: never logged).
    pub secret_key: SecretString,
    /// Bucket created (as a directory under `root`) at start if missing.
    pub bucket: String,
}

impl fmt::Debug for EmbeddedS3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedS3Config")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("bucket", &self.bucket)
            .finish()
    }
}
