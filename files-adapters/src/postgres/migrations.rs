//! The schema: the migrations embedded from `migrations/`, applied by one replica at a time.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};
use files_core::BoxError;

use super::config::DEFAULT_CONNECT_TIMEOUT;
use super::errors::PostgresError;
use super::pool::establish;

/// The schema, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock that serialises migrations between replicas starting together.
const MIGRATION_LOCK: i64 = 0x0066_696c_6573; // "files"

/// Applies the pending embedded migrations at `url`; returns how many it applied. For a
/// `migrate` command that has no store.
///
/// # Errors
/// As [`PostgresStore::migrate`](super::PostgresStore::migrate).
pub async fn run_migrations(url: &str) -> Result<usize, PostgresError> {
    migrate(url, DEFAULT_CONNECT_TIMEOUT).await
}

pub(super) async fn migrate(url: &str, connect_timeout: Duration) -> Result<usize, PostgresError> {
    let conn = establish(url, connect_timeout)
        .await
        .map_err(|e| PostgresError::Connect(e.into()))?;
    // diesel's migration harness is synchronous: run it on a blocking thread, over a wrapper
    // that drives the async connection with this runtime's handle (works on current-thread
    // and multi-thread runtimes alike).
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(conn);
    let applied = tokio::task::spawn_blocking(move || -> Result<usize, BoxError> {
        use diesel::connection::SimpleConnection;
        SimpleConnection::batch_execute(&mut conn, &format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
        let applied = conn.run_pending_migrations(MIGRATIONS).map(|versions| versions.len());
        // Closing the connection would release the lock too; unlock to be tidy.
        let unlocked =
            SimpleConnection::batch_execute(&mut conn, &format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        let applied = applied?;
        unlocked?;
        Ok(applied)
    })
    .await
    .map_err(|e| PostgresError::Migrate(e.into()))?
    .map_err(PostgresError::Migrate)?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(applied)
}
