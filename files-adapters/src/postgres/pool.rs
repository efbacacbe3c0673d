//! The pool: connections that know whether they can be reused, how one is opened, and the
//! last connection failure, kept for the calls that time out waiting for a connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use secrecy::{ExposeSecret as _, SecretString};

/// Opens one connection, bounded by `timeout`.
pub(super) async fn establish(url: &str, timeout: Duration) -> Result<AsyncPgConnection, ConnectError> {
    match tokio::time::timeout(timeout, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(ConnectError::Connect(error)),
        Err(_elapsed) => Err(ConnectError::Timeout(timeout)),
    }
}

/// A pooled connection and whether a query on it was left unfinished.
pub(super) struct PgConn {
    pub(super) conn: AsyncPgConnection,
    pub(super) in_flight: bool,
}

impl PgConn {
    fn reusable(&mut self) -> bool {
        // `is_broken` is diesel-async's own pool check: the server closed the connection or a
        // transaction was left broken. No round trip.
        !self.in_flight && !self.conn.is_broken()
    }
}

pub(super) struct Manager {
    pub(super) url: SecretString,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
}

impl bb8::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<PgConn, ConnectError> {
        let started = Instant::now();
        let mut conn = establish(self.url.expose_secret(), self.connect_timeout).await?;
        let setup = format!("SET statement_timeout = {}", self.statement_timeout.as_millis());
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, conn.batch_execute(&setup)).await {
            Ok(Ok(())) => Ok(PgConn { conn, in_flight: false }),
            Ok(Err(error)) => Err(ConnectError::Setup(error)),
            Err(_elapsed) => Err(ConnectError::Timeout(self.connect_timeout)),
        }
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<(), ConnectError> {
        if conn.reusable() {
            Ok(())
        } else {
            Err(ConnectError::NotReusable)
        }
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        !conn.reusable()
    }
}

/// Why the pool could not open or reuse a connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("connecting did not complete within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect")]
    Connect(#[source] diesel::ConnectionError),
    #[error("cannot set up the connection")]
    Setup(#[source] DieselError),
    #[error("connection closed or left unfinished")]
    NotReusable,
}

/// The pool's connection failures happen in its background tasks; this keeps the last one so
/// a call that times out waiting for a connection can say why.
#[derive(Debug, Clone, Default)]
pub(super) struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    pub(super) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl bb8::ErrorSink<ConnectError> for LastError {
    fn sink(&self, error: ConnectError) {
        if matches!(error, ConnectError::NotReusable) {
            return; // routine: the pool drops it and opens another
        }
        let text = files_core::ports::error_chain(&error);
        tracing::debug!(error = %text, "postgres connection failed");
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectError>> {
        Box::new(self.clone())
    }
}
