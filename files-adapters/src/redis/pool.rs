//! How the cache reaches Redis: the pooled connections, which report themselves broken so the
//! pool replaces them, the errors of a call, and the RESP3 client of the near cache.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bb8::{ErrorSink, ManageConnection};
use bb8_redis::RedisConnectionManager;
use bb8_redis::redis::Cmd;
use bb8_redis::redis::{self as driver, ErrorKind, FromRedisValue, aio::MultiplexedConnection};
use files_core::PortError;
use secrecy::{ExposeSecret as _, SecretString};

use super::config::RedisError;

/// A client of the same Redis speaking RESP3, the protocol that carries tracking pushes.
pub(super) fn resp3_client(url: &SecretString) -> Result<driver::Client, RedisError> {
    use driver::IntoConnectionInfo as _;
    let info = url.expose_secret().into_connection_info().map_err(RedisError::Url)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(driver::ProtocolVersion::RESP3);
    driver::Client::open(info.set_redis_settings(settings)).map_err(RedisError::Url)
}

/// Why one call failed; the cause of the [`PortError`].
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error("no Redis connection within {timeout:?}{}", last_error.as_ref().map(|e| format!(" (last attempt: {e})")).unwrap_or_default())]
    NoConnection {
        timeout: Duration,
        last_error: Option<driver::RedisError>,
    },
    #[error("cannot connect to Redis")]
    Connect(#[source] driver::RedisError),
    #[error("Redis keys under the prefix not all deleted within {budget:?}")]
    ClearUnfinished { budget: Duration },
    #[error("Redis {operation} failed")]
    Command {
        operation: &'static str,
        #[source]
        error: driver::RedisError,
    },
}

/// An answer of a shape we did not ask for is [`PortError::Failed`]; anything else (refused,
/// reset, timed out, loading, out of memory, read-only replica...) is [`PortError::Unavailable`].
pub(super) fn command_error(operation: &'static str, error: driver::RedisError) -> PortError {
    let unexpected = matches!(error.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType);
    let error = CallError::Command { operation, error };
    if unexpected {
        PortError::failed(error)
    } else {
        PortError::unavailable(error)
    }
}

/// Whether a connection that returned `error` must be replaced.
fn is_fatal(error: &driver::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_timeout() || error.is_unrecoverable_error()
}

/// A pooled connection that knows whether it can be reused.
pub(super) struct Connection {
    inner: MultiplexedConnection,
    pub(super) healthy: bool,
}

impl Connection {
    /// Sends one command. The connection counts as broken while the command is in flight, so a
    /// call cut short by the timeout leaves it to be dropped, never reused half-answered.
    pub(super) async fn call<T: FromRedisValue>(&mut self, command: &Cmd) -> driver::RedisResult<T> {
        self.healthy = false;
        let result = command.query_async(&mut self.inner).await;
        self.healthy = result.as_ref().err().is_none_or(|error| !is_fatal(error));
        result
    }
}

/// bb8-redis's manager, with connections that report themselves broken after an I/O error or
/// an interrupted call, so the pool replaces them instead of handing out dead ones.
#[derive(Debug, Clone)]
pub(super) struct Manager(pub(super) RedisConnectionManager);

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = driver::RedisError;

    async fn connect(&self) -> Result<Connection, driver::RedisError> {
        Ok(Connection {
            inner: self.0.connect().await?,
            healthy: true,
        })
    }

    async fn is_valid(&self, connection: &mut Connection) -> Result<(), driver::RedisError> {
        self.0.is_valid(&mut connection.inner).await
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        !connection.healthy
    }
}

/// Keeps the pool's last connection error, so a checkout that times out says why.
#[derive(Debug, Clone, Default)]
pub(super) struct LastConnectError(Arc<Mutex<Option<(Instant, driver::RedisError)>>>);

impl LastConnectError {
    /// The last error, if it happened within `window`.
    pub(super) fn recent(&self, window: Duration) -> Option<driver::RedisError> {
        let last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, _)| at.elapsed() <= window)
            .map(|(_, error)| error.clone())
    }
}

impl ErrorSink<driver::RedisError> for LastConnectError {
    fn sink(&self, error: driver::RedisError) {
        tracing::debug!(%error, "Redis connection attempt failed");
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), error));
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<driver::RedisError>> {
        Box::new(self.clone())
    }
}
