//! The metadata store in PostgreSQL, with diesel-async over a bb8 pool (no libpq).
//!
//! - **Bounded calls.** Every call waits at most `connect_timeout` for a pooled connection and
//!   `query_timeout` for its query (`PostgresStore::run`, the one place that does it). A
//!   connection whose query did not complete (timed out, or the caller gave up) is thrown
//!   away rather than reused, so a silent server cannot poison the pool. Connections the
//!   server closed (a restart, `pg_terminate_backend`) are noticed without a round trip and
//!   replaced: when PostgreSQL is back, calls succeed again without a restart.
//! - **Errors** are translated in one function, `translate`: no connection, a pool timeout,
//!   a lost connection or a query timeout are [`PortError::Unavailable`]; anything the
//!   database refuses (a duplicate id, a constraint) or a row we cannot read is
//!   [`PortError::Failed`].
//! - **Schema** in `migrations/`, embedded in the binary and applied by
//!   [`PostgresStore::migrate`] or [`run_migrations`].
//! - **Outbox.** [`MetadataStore::mark_available`] moves the file and records its event in the
//!   `outbox` table in one transaction; the [`Outbox`] implementation hands the events to the
//!   relays with leases kept on the database's clock (so several instances agree), claiming
//!   with `FOR UPDATE SKIP LOCKED` so concurrent relays never get the same event.
//!
//! - **New records in batches.** Inserts (and admissions under quotas) that arrive while
//!   others are being written go to the database together, as one multi-row `INSERT`
//!   (`batch`).
//!
//! The store and its one call helper are here; the rest has a file each: `config`, `pool`
//! (connections), `migrations`, `errors` (the translation), `rows` (the tables and their
//! rows), `metadata` (the [`MetadataStore`] implementation), `batch` (its inserts) and
//! `outbox` (the [`Outbox`] implementation).
//!
//! [`MetadataStore`]: files_core::MetadataStore
//! [`MetadataStore::mark_available`]: files_core::MetadataStore::mark_available
//! [`Outbox`]: files_core::Outbox

mod batch;
mod config;
mod errors;
mod housekeeping;
mod metadata;
mod migrations;
mod outbox;
mod pool;
mod rows;
mod tenancy;
#[cfg(test)]
mod tests;

pub use config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_QUERY_TIMEOUT, PostgresConfig};
pub use errors::PostgresError;
pub use migrations::{MIGRATIONS, run_migrations};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::result::QueryResult;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use files_core::{Dependency, Metrics, PortError};
use secrecy::ExposeSecret as _;

use errors::{Failure, translate};

use crate::call::Calls;
use pool::{LastError, Manager};

/// The metadata store in PostgreSQL. A clone shares the pool and the batches.
#[derive(Clone)]
pub struct PostgresStore {
    pool: bb8::Pool<Manager>,
    config: PostgresConfig,
    last_connect_error: LastError,
    calls: Calls,
    /// New records (`metadata.rs`) and admissions under quotas (`tenancy.rs`), each written
    /// in batches.
    inserts: Arc<batch::Batches<rows::FileRow, ()>>,
    admissions: Arc<batch::Batches<rows::Admit, files_core::Admission>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl PostgresStore {
    /// A store whose pool connects lazily: the database need not be up, calls fail with
    /// [`PortError::Unavailable`] until it is, and succeed from then on.
    ///
    /// # Errors
    /// [`PostgresError::Config`] when the configuration cannot work (an empty URL, no
    /// connections, a zero timeout) or when called outside a Tokio runtime (the pool runs
    /// background tasks).
    pub fn new(config: PostgresConfig) -> Result<Self, PostgresError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PostgresError::Config(
                "the store must be created within a Tokio runtime",
            ));
        }
        let last_connect_error = LastError::default();
        let manager = Manager {
            url: config.url.clone(),
            connect_timeout: config.connect_timeout,
            statement_timeout: config.query_timeout.saturating_add(Duration::from_secs(1)),
        };
        let pool = bb8::Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(config.connect_timeout)
            // Cheap (no round trip): refuses connections the server closed and those left
            // with a query in flight.
            .test_on_check_out(true)
            .error_sink(Box::new(last_connect_error.clone()))
            .build_unchecked(manager);
        // Each phase of a call bounds itself (see `attempt`); this outer bound only adds the
        // metric and a backstop.
        let calls = Calls::new(
            Dependency::Database,
            config.connect_timeout + config.query_timeout + Duration::from_secs(1),
        );
        Ok(Self {
            pool,
            config,
            last_connect_error,
            calls,
            inserts: Arc::default(),
            admissions: Arc::default(),
        })
    }

    /// Counts every call (operation, outcome, latency) in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.calls = self.calls.with_metrics(metrics);
        self
    }

    /// Applies the migrations that are not applied yet; returns how many it applied (0 when
    /// the schema is current). Replicas starting together take turns (an advisory lock).
    ///
    /// # Errors
    /// [`PostgresError::Connect`] when the database cannot be reached within the connect
    /// timeout; [`PostgresError::Migrate`] when a migration fails.
    pub async fn migrate(&self) -> Result<usize, PostgresError> {
        migrations::migrate(self.config.url.expose_secret(), self.config.connect_timeout).await
    }

    /// Whether the database answers (`SELECT 1`), for readiness.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when it cannot be reached or does not answer in time.
    pub async fn ping(&self) -> Result<(), PortError> {
        self.run("ping", |conn| Box::pin(diesel::sql_query("SELECT 1").execute(conn)))
            .await
            .map(drop)
    }

    /// How many batches of records may be in flight at once, and how long a call waits for its
    /// batch: its writer's batch before it, then its own, each bounded as one call is.
    fn batching(&self) -> (usize, Duration) {
        let one_call = self.config.connect_timeout + self.config.query_timeout;
        (
            usize::try_from(self.config.pool_size).unwrap_or(usize::MAX),
            one_call * 2 + Duration::from_secs(1),
        )
    }

    /// The configuration the store was built with.
    #[must_use]
    pub const fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Runs one query on a pooled connection, bounded by the connect and query timeouts, and
    /// translates its failure. Every call of the store goes through here, and through the
    /// adapters' shared call wrapper (which counts it).
    async fn run<T, Q>(&self, op: &'static str, query: Q) -> Result<T, PortError>
    where
        T: Send,
        Q: for<'c> FnOnce(&'c mut AsyncPgConnection) -> QueryFuture<'c, T> + Send,
    {
        self.calls.run(op, self.attempt(op, query)).await
    }

    async fn attempt<T, Q>(&self, op: &'static str, query: Q) -> Result<T, PortError>
    where
        T: Send,
        Q: for<'c> FnOnce(&'c mut AsyncPgConnection) -> QueryFuture<'c, T> + Send,
    {
        let started = Instant::now();
        let result = match self.pool.get().await {
            Err(error) => Err(Failure::Checkout {
                error,
                waited: self.config.connect_timeout,
                last_connect_error: self.last_connect_error.get(),
            }),
            Ok(mut conn) => {
                // Cleared only when the query completes: a connection whose query was
                // abandoned (our timeout, or the caller dropping this future) is in an unknown
                // state and goes back to the pool marked, which discards it.
                conn.in_flight = true;
                match tokio::time::timeout(self.config.query_timeout, query(&mut conn.conn)).await {
                    Ok(Ok(value)) => {
                        conn.in_flight = false;
                        Ok(value)
                    }
                    Ok(Err(error)) => {
                        conn.in_flight = false;
                        let connection_lost = conn.conn.is_broken();
                        Err(Failure::Query { error, connection_lost })
                    }
                    Err(_elapsed) => Err(Failure::Timeout(self.config.query_timeout)),
                }
            }
        };
        let elapsed = started.elapsed();
        match &result {
            Ok(_) => tracing::debug!(op, ?elapsed, "postgres call"),
            Err(failure) => tracing::debug!(op, ?elapsed, error = %failure, "postgres call failed"),
        }
        result.map_err(|failure| translate(op, failure))
    }
}

type QueryFuture<'c, T> = Pin<Box<dyn Future<Output = QueryResult<T>> + Send + 'c>>;
