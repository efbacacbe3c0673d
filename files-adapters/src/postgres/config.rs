//! Where the database is and how long to wait for it: [`PostgresConfig`] and its defaults.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::errors::PostgresError;
use crate::redact::redact_url;

/// The default number of pooled connections.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// The default bound on getting a connection (from the pool, or a new one).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default bound on one query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the database is and how long to wait for it.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (or the `key=value` form). TLS is not
    /// supported: the database is expected on a private network. May hold a password: a
    /// secret, never logged ([`fmt::Debug`] hides it).
    pub url: SecretString,
    /// The most connections the pool opens.
    pub pool_size: u32,
    /// How long a call waits for a connection, and how long opening one may take.
    pub connect_timeout: Duration,
    /// How long one query may take. The server is also told (`statement_timeout`, one second
    /// more) so that it stops work nobody waits for any more.
    pub query_timeout: Duration,
}

impl PostgresConfig {
    /// A configuration with the default pool size and timeouts.
    #[must_use]
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }

    pub(super) fn validate(&self) -> Result<(), PostgresError> {
        let problem = if self.url.expose_secret().trim().is_empty() {
            "the database URL is empty"
        } else if self.pool_size == 0 {
            "the pool size must be at least 1"
        } else if self.connect_timeout.is_zero() {
            "the connect timeout must not be zero"
        } else if self.query_timeout.is_zero() {
            "the query timeout must not be zero"
        } else {
            return Ok(());
        };
        Err(PostgresError::Config(problem))
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}
