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

use crate::redact::redact_url;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use diesel::pg::data_types::PgInterval;
use diesel::result::{DatabaseErrorKind, Error as DieselError, QueryResult};
use diesel::sql_types::{BigInt, Interval, Text, Timestamptz};
use diesel::{
    ExpressionMethods as _, Insertable, OptionalExtension as _, QueryDsl as _, Queryable, QueryableByName, Selectable,
    SelectableHelper as _,
};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};
use files_core::{
    BoxError, ContentType, DeviceId, FileId, FileName, FileRecord, FileState, FileUploaded, MetadataStore, Outbox,
    OutboxEntry, OutboxStats, Owner, PortError, Scope, Sha256, TenantId,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The schema, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The default number of pooled connections.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// The default bound on getting a connection (from the pool, or a new one).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default bound on one query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Key of the advisory lock that serialises migrations between replicas starting together.
const MIGRATION_LOCK: i64 = 0x0066_696c_6573; // "files"

/// Where the database is and how long to wait for it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (or the `key=value` form). TLS is not
    /// supported: the database is expected on a private network.
    pub url: String,
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
    pub fn new(url: impl Into<String>) -> Self {
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
        redact_url(&self.url)
    }

    fn validate(&self) -> Result<(), PostgresError> {
        let problem = if self.url.trim().is_empty() {
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

/// Setting up the store or its schema failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The configuration cannot work.
    #[error("invalid database configuration: {0}")]
    Config(&'static str),
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] BoxError),
    /// The migrations could not be applied.
    #[error("database migration failed")]
    Migrate(#[source] BoxError),
}

/// The metadata store in PostgreSQL.
pub struct PostgresStore {
    pool: bb8::Pool<Manager>,
    config: PostgresConfig,
    last_connect_error: LastError,
    observer: Option<std::sync::Arc<dyn files_core::CallObserver>>,
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
        Ok(Self {
            pool,
            config,
            last_connect_error,
            observer: None,
        })
    }

    /// Reports every call (operation, outcome, latency) to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn files_core::CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Applies the migrations that are not applied yet; returns how many it applied (0 when
    /// the schema is current). Replicas starting together take turns (an advisory lock).
    ///
    /// # Errors
    /// [`PostgresError::Connect`] when the database cannot be reached within the connect
    /// timeout; [`PostgresError::Migrate`] when a migration fails.
    pub async fn migrate(&self) -> Result<usize, PostgresError> {
        migrate(&self.config.url, self.config.connect_timeout).await
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

    /// The configuration the store was built with.
    #[must_use]
    pub const fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Runs one query on a pooled connection, bounded by the connect and query timeouts, and
    /// translates its failure. Every call of the store goes through here.
    async fn run<T, Q>(&self, op: &'static str, query: Q) -> Result<T, PortError>
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
        if let Some(observer) = &self.observer {
            observer.observe("database", op, result.is_ok(), elapsed);
        }
        result.map_err(|failure| translate(op, failure))
    }
}

type QueryFuture<'c, T> = Pin<Box<dyn Future<Output = QueryResult<T>> + Send + 'c>>;

/// Opens one connection, bounded by `timeout`.
async fn establish(url: &str, timeout: Duration) -> Result<AsyncPgConnection, ConnectError> {
    match tokio::time::timeout(timeout, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(ConnectError::Connect(error)),
        Err(_elapsed) => Err(ConnectError::Timeout(timeout)),
    }
}

/// Applies the pending embedded migrations at `url`; returns how many it applied. For a
/// `migrate` command that has no store.
///
/// # Errors
/// As [`PostgresStore::migrate`].
pub async fn run_migrations(url: &str) -> Result<usize, PostgresError> {
    migrate(url, DEFAULT_CONNECT_TIMEOUT).await
}

async fn migrate(url: &str, connect_timeout: Duration) -> Result<usize, PostgresError> {
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

// ---------------------------------------------------------------------------------------------
// The pool: connections that know whether they can be reused.

/// A pooled connection and whether a query on it was left unfinished.
struct PgConn {
    conn: AsyncPgConnection,
    in_flight: bool,
}

impl PgConn {
    fn reusable(&mut self) -> bool {
        // `is_broken` is diesel-async's own pool check: the server closed the connection or a
        // transaction was left broken. No round trip.
        !self.in_flight && !self.conn.is_broken()
    }
}

struct Manager {
    url: String,
    connect_timeout: Duration,
    statement_timeout: Duration,
}

impl bb8::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<PgConn, ConnectError> {
        let started = Instant::now();
        let mut conn = establish(&self.url, self.connect_timeout).await?;
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
enum ConnectError {
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
struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    fn get(&self) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// Errors: one translation into the port's.

/// What went wrong in [`PostgresStore::run`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no database connection within {waited:?}{}", last_attempt(.last_connect_error))]
    Checkout {
        #[source]
        error: bb8::RunError<ConnectError>,
        waited: Duration,
        last_connect_error: Option<String>,
    },
    #[error("query failed")]
    Query {
        #[source]
        error: DieselError,
        connection_lost: bool,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    BadRow(#[from] BadRow),
    #[error(transparent)]
    BadEvent(#[from] BadEvent),
}

fn last_attempt(error: &Option<String>) -> String {
    error
        .as_ref()
        .map(|e| format!(" (last attempt: {e})"))
        .unwrap_or_default()
}

/// A failure of operation `op`, as the port reports it.
#[derive(Debug, thiserror::Error)]
#[error("postgres {op}")]
struct CallError {
    op: &'static str,
    #[source]
    failure: Failure,
}

/// The one place that decides what is worth retrying later (the database is away) and what is
/// not (the database refused it, or holds something we cannot read).
fn translate(op: &'static str, failure: Failure) -> PortError {
    let unavailable = match &failure {
        Failure::Checkout { .. } | Failure::Timeout(_) => true,
        Failure::Query {
            error:
                DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _),
            ..
        } => true,
        // An error that took the connection down with it (the server shutting down or
        // terminating the session: SQLSTATE 57P01 and kin) is the database being away.
        Failure::Query { connection_lost, .. } => *connection_lost,
        Failure::BadRow(_) | Failure::BadEvent(_) => false,
    };
    let error = CallError { op, failure };
    if unavailable {
        PortError::unavailable(error)
    } else {
        PortError::failed(error)
    }
}

// ---------------------------------------------------------------------------------------------
// The table and its rows.

mod schema {
    diesel::table! {
        files (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            device_id -> Nullable<Uuid>,
            name -> Text,
            sha256 -> Bytea,
            size -> Nullable<Int8>,
            content_type -> Nullable<Text>,
            state -> Text,
            created_at -> Timestamptz,
            completed_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        outbox (event_id) {
            event_id -> Uuid,
            seq -> Int8,
            payload -> Jsonb,
            recorded_at -> Timestamptz,
            leased_until -> Nullable<Timestamptz>,
            sent_at -> Nullable<Timestamptz>,
        }
    }
}

use schema::{files, outbox};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
struct FileRow {
    id: Uuid,
    tenant_id: Uuid,
    device_id: Option<Uuid>,
    name: String,
    sha256: Vec<u8>,
    size: Option<i64>,
    content_type: Option<String>,
    state: String,
    created_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
}

/// A row (or a record) that does not fit the other side.
#[derive(Debug, thiserror::Error)]
#[error("file {id}: {problem}")]
struct BadRow {
    id: Uuid,
    problem: String,
}

impl FileRow {
    fn from_record(record: &FileRecord) -> Result<Self, BadRow> {
        let id = *record.id.as_uuid();
        let size = record.size.map(i64::try_from).transpose().map_err(|_| BadRow {
            id,
            problem: format!("size {:?} is beyond what the database stores", record.size),
        })?;
        Ok(Self {
            id,
            tenant_id: *record.tenant.as_uuid(),
            device_id: record.owner.device().map(|d| *d.as_uuid()),
            name: record.name.as_str().to_owned(),
            sha256: record.sha256.as_bytes().to_vec(),
            size,
            content_type: record.content_type.as_ref().map(|c| c.as_str().to_owned()),
            state: record.state.as_str().to_owned(),
            created_at: record.created_at,
            completed_at: record.completed_at,
        })
    }
}

impl TryFrom<FileRow> for FileRecord {
    type Error = BadRow;

    fn try_from(row: FileRow) -> Result<Self, BadRow> {
        let id = row.id;
        let bad = |problem: String| BadRow { id, problem };
        let sha256 = <[u8; 32]>::try_from(row.sha256.as_slice())
            .map_err(|_| bad(format!("sha256 has {} bytes, not 32", row.sha256.len())))?;
        let size = row
            .size
            .map(u64::try_from)
            .transpose()
            .map_err(|_| bad(format!("negative size {:?}", row.size)))?;
        let state = match row.state.as_str() {
            "pending" => FileState::Pending,
            "available" => FileState::Available,
            "deleted" => FileState::Deleted,
            other => return Err(bad(format!("unknown state {other:?}"))),
        };
        Ok(Self {
            id: FileId::from_uuid(row.id),
            tenant: TenantId::from_uuid(row.tenant_id),
            owner: row
                .device_id
                .map_or(Owner::Tenant, |d| Owner::Device(DeviceId::from_uuid(d))),
            name: FileName::parse(row.name).map_err(|e| bad(e.to_string()))?,
            sha256: Sha256::from_bytes(sha256),
            size,
            content_type: row
                .content_type
                .map(ContentType::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            state,
            created_at: row.created_at,
            completed_at: row.completed_at,
        })
    }
}

fn to_record(op: &'static str, row: FileRow) -> Result<FileRecord, PortError> {
    FileRecord::try_from(row).map_err(|e| translate(op, e.into()))
}

fn to_records(op: &'static str, rows: Vec<FileRow>) -> Result<Vec<FileRecord>, PortError> {
    rows.into_iter().map(|row| to_record(op, row)).collect()
}

/// Runs `$body` with `$filter` bound to the owner condition: `device_id = $d` for a device
/// root, `device_id IS NULL` for the tenant root. Two expansions, so each query keeps a static
/// shape (and a cached prepared statement) and matches its partial index.
macro_rules! by_owner {
    ($owner:expr, |$filter:ident| $body:expr) => {
        match $owner {
            Owner::Device(device) => {
                let $filter = files::device_id.eq(*device.as_uuid());
                $body
            }
            Owner::Tenant => {
                let $filter = files::device_id.is_null();
                $body
            }
        }
    };
}

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        const OP: &str = "insert";
        let row = FileRow::from_record(record).map_err(|e| translate(OP, e.into()))?;
        self.run(OP, move |conn| {
            Box::pin(diesel::insert_into(files::table).values(row).execute(conn))
        })
        .await
        .map(drop)
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        const OP: &str = "get";
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        let row = self
            .run(OP, move |conn| {
                Box::pin(async move {
                    files::table
                        .filter(files::id.eq(id))
                        .filter(files::tenant_id.eq(tenant))
                        .select(FileRow::as_select())
                        .get_result(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        row.map(|row| to_record(OP, row)).transpose()
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        const OP: &str = "latest";
        let tenant = *scope.tenant.as_uuid();
        let name = name.as_str().to_owned();
        let state = state.as_str();
        let row = by_owner!(scope.owner, |owner| {
            self.run(OP, move |conn| {
                Box::pin(async move {
                    files::table
                        .filter(files::tenant_id.eq(tenant))
                        .filter(owner)
                        .filter(files::name.eq(name))
                        .filter(files::state.eq(state))
                        .order(files::id.desc())
                        .select(FileRow::as_select())
                        .first(conn)
                        .await
                        .optional()
                })
            })
            .await
        })?;
        row.map(|row| to_record(OP, row)).transpose()
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        const OP: &str = "list";
        let tenant = *scope.tenant.as_uuid();
        let state = state.as_str();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Without a cursor, every id is below the largest UUID: one query shape for both.
        let before = before.map_or(uuid::Uuid::max(), |before| *before.as_uuid());
        let rows = by_owner!(scope.owner, |owner| {
            self.run(OP, move |conn| {
                Box::pin(
                    files::table
                        .filter(files::tenant_id.eq(tenant))
                        .filter(owner)
                        .filter(files::state.eq(state))
                        .filter(files::id.lt(before))
                        .order(files::id.desc())
                        .limit(limit)
                        .select(FileRow::as_select())
                        .load(conn),
                )
            })
            .await
        })?;
        to_records(OP, rows)
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        const OP: &str = "mark_available";
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        let size = i64::try_from(size).map_err(|_| {
            translate(
                OP,
                BadRow {
                    id,
                    problem: format!("size {size} is beyond what the database stores"),
                }
                .into(),
            )
        })?;
        let event_id = event.event_id;
        let payload = serde_json::to_string(event).map_err(|e| {
            translate(
                OP,
                BadEvent {
                    event_id,
                    problem: format!("cannot be written as JSON: {e}"),
                }
                .into(),
            )
        })?;
        // One transaction: the conditional UPDATE, then the event only when it moved the row.
        // Of concurrent callers, the first to commit moves the row; the others wait on its row
        // lock, re-check `state = 'pending'` on the row it left, match nothing and record
        // nothing. Any failure (the INSERT refused, a row we cannot read, our timeout dropping
        // the connection) rolls both back.
        self.run(OP, move |conn| {
            Box::pin(conn.transaction::<_, DieselError, _>(async move |conn| {
                let row = diesel::update(files::table)
                    .filter(files::id.eq(id))
                    .filter(files::tenant_id.eq(tenant))
                    .filter(files::state.eq(FileState::Pending.as_str()))
                    .set((
                        files::state.eq(FileState::Available.as_str()),
                        files::size.eq(Some(size)),
                        files::completed_at.eq(Some(at)),
                    ))
                    .returning(FileRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                let Some(row) = row else {
                    return Ok(None);
                };
                // Read before committing: a row we cannot return is a failure, so it must not
                // have moved either.
                let record = FileRecord::try_from(row).map_err(|e| DieselError::DeserializationError(e.into()))?;
                diesel::sql_query(RECORD_EVENT)
                    .bind::<diesel::sql_types::Uuid, _>(event_id)
                    .bind::<Text, _>(payload)
                    .bind::<Timestamptz, _>(at)
                    .execute(conn)
                    .await?;
                Ok(Some(record))
            }))
        })
        .await
    }

    async fn mark_deleted(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        const OP: &str = "mark_deleted";
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        let row = self
            .run(OP, move |conn| {
                Box::pin(async move {
                    diesel::update(files::table)
                        .filter(files::id.eq(id))
                        .filter(files::tenant_id.eq(tenant))
                        .set(files::state.eq(FileState::Deleted.as_str()))
                        .returning(FileRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        row.map(|row| to_record(OP, row)).transpose()
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox.

/// Records one event: `$2` is its JSON as text (diesel is built without `serde_json`), cast to
/// `jsonb`; `$3`, its recording time, is the time the file became available (as in the
/// in-memory store).
const RECORD_EVENT: &str = "INSERT INTO outbox (event_id, payload, recorded_at) VALUES ($1, CAST($2 AS jsonb), $3)";

/// Leases up to `$2` free unsent events, oldest first, until `now() + $1`, in one statement.
/// `SKIP LOCKED` passes over the rows another claim is leasing right now, and a row leased by
/// a claim that committed after this statement's snapshot is re-checked on its new version (so
/// it is not claimed twice). `now()` is the database's clock: every instance agrees on leases.
/// The rows come back in no particular order.
const CLAIM_EVENTS: &str = "UPDATE outbox SET leased_until = now() + $1 \
     WHERE event_id IN (\
         SELECT event_id FROM outbox \
         WHERE sent_at IS NULL AND (leased_until IS NULL OR leased_until <= now()) \
         ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
     RETURNING event_id, seq, payload::text AS payload, recorded_at";

/// A claimed event as [`CLAIM_EVENTS`] returns it.
#[derive(Debug, QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Timestamptz)]
    recorded_at: OffsetDateTime,
}

/// An event that cannot be written, or an outbox row that is not an event we can read.
#[derive(Debug, thiserror::Error)]
#[error("outbox event {event_id}: {problem}")]
struct BadEvent {
    event_id: Uuid,
    problem: String,
}

impl TryFrom<ClaimedRow> for OutboxEntry {
    type Error = BadEvent;

    fn try_from(row: ClaimedRow) -> Result<Self, BadEvent> {
        let event_id = row.event_id;
        let event: FileUploaded = serde_json::from_str(&row.payload).map_err(|e| BadEvent {
            event_id,
            problem: format!("unreadable payload: {e}"),
        })?;
        // Events are marked sent by the row's id: a payload naming another would never be.
        if event.event_id != event_id {
            return Err(BadEvent {
                event_id,
                problem: format!("the payload is event {}", event.event_id),
            });
        }
        Ok(Self {
            event,
            recorded_at: row.recorded_at,
        })
    }
}

/// A lease as an interval; beyond what an interval holds (about 292,000 years), the largest
/// one (which the database then refuses to add to now: [`PortError::Failed`]).
fn lease_interval(lease: Duration) -> PgInterval {
    PgInterval::from_microseconds(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError> {
        const OP: &str = "claim";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = lease_interval(lease);
        let mut rows: Vec<ClaimedRow> = self
            .run(OP, move |conn| {
                Box::pin(
                    diesel::sql_query(CLAIM_EVENTS)
                        .bind::<Interval, _>(lease)
                        .bind::<BigInt, _>(limit)
                        .load(conn),
                )
            })
            .await?;
        rows.sort_unstable_by_key(|row| row.seq);
        // An unreadable event fails the whole claim (the events it leased come back when the
        // lease runs out); it needs an operator, and the error names it.
        rows.into_iter()
            .map(|row| OutboxEntry::try_from(row).map_err(|e| translate(OP, e.into())))
            .collect()
    }

    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        const OP: &str = "mark_sent";
        if event_ids.is_empty() {
            return Ok(());
        }
        let ids = event_ids.to_vec();
        // Sent rows are kept (`sent_at` set, out of the partial index the claims use); a later
        // clean-up can delete the old ones.
        self.run(OP, move |conn| {
            Box::pin(
                diesel::update(outbox::table)
                    .filter(outbox::event_id.eq_any(ids))
                    .filter(outbox::sent_at.is_null())
                    .set(outbox::sent_at.eq(diesel::dsl::now))
                    .execute(conn),
            )
        })
        .await
        .map(drop)
    }

    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        const OP: &str = "release";
        if event_ids.is_empty() {
            return Ok(());
        }
        let ids = event_ids.to_vec();
        self.run(OP, move |conn| {
            Box::pin(
                diesel::update(outbox::table)
                    .filter(outbox::event_id.eq_any(ids))
                    .filter(outbox::sent_at.is_null())
                    .set(outbox::leased_until.eq(None::<OffsetDateTime>))
                    .execute(conn),
            )
        })
        .await
        .map(drop)
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        const OP: &str = "stats";
        let (depth, oldest) = self
            .run(OP, |conn| {
                Box::pin(
                    outbox::table
                        .filter(outbox::sent_at.is_null())
                        .select((diesel::dsl::count_star(), diesel::dsl::min(outbox::recorded_at)))
                        .get_result::<(i64, Option<OffsetDateTime>)>(conn),
                )
            })
            .await?;
        Ok(OutboxStats {
            // A count is never negative.
            depth: u64::try_from(depth).unwrap_or_default(),
            oldest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        for url in [
            "postgres://files:s3cret@db.internal:5432/files",
            "postgresql://files:s3cret@db.internal/files?sslmode=disable",
            "postgres://db.internal/files?user=files&password=s3cret",
            "host=db.internal user=files password=s3cret dbname=files",
        ] {
            let config = PostgresConfig::new(url);
            let shown = format!("{config:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://files@db/files"),
            "postgres://files@db/files",
            "no password, nothing hidden"
        );
        assert_eq!(redact_url("postgres://u:p@w@db/x"), "postgres://u:***@db/x");
    }

    #[test]
    fn unusable_configurations_are_refused() {
        let good = PostgresConfig::new("postgres://localhost/files");
        assert!(good.validate().is_ok());
        for bad in [
            PostgresConfig {
                pool_size: 0,
                ..good.clone()
            },
            PostgresConfig {
                connect_timeout: Duration::ZERO,
                ..good.clone()
            },
            PostgresConfig {
                query_timeout: Duration::ZERO,
                ..good.clone()
            },
            PostgresConfig::new(" "),
        ] {
            assert!(matches!(bad.validate(), Err(PostgresError::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn new_outside_a_runtime_is_an_error_not_a_panic() {
        let result = PostgresStore::new(PostgresConfig::new("postgres://localhost/files"));
        assert!(matches!(result, Err(PostgresError::Config(_))));
    }

    fn row() -> FileRow {
        FileRow {
            id: Uuid::now_v7(),
            tenant_id: Uuid::new_v4(),
            device_id: None,
            name: "report.txt".to_owned(),
            sha256: vec![7; 32],
            size: Some(12),
            content_type: Some("text/plain".to_owned()),
            state: "available".to_owned(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            completed_at: Some(OffsetDateTime::UNIX_EPOCH),
        }
    }

    #[test]
    fn rows_and_records_convert_both_ways() {
        let row = row();
        let record = FileRecord::try_from(row.clone()).map_err(|e| e.to_string());
        let back = record
            .as_ref()
            .map(|r| FileRow::from_record(r).map_err(|e| e.to_string()));
        assert_eq!(back, Ok(Ok(row)));
        let device = FileRow {
            device_id: Some(Uuid::new_v4()),
            ..self::row()
        };
        let record = FileRecord::try_from(device.clone()).map_err(|e| e.to_string());
        assert_eq!(
            record.map(|r| r.owner),
            Ok(Owner::Device(DeviceId::from_uuid(device.device_id.unwrap_or_default())))
        );
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        let bad_rows = [
            FileRow {
                sha256: vec![1; 31],
                ..row()
            },
            FileRow {
                size: Some(-1),
                ..row()
            },
            FileRow {
                state: "gone".to_owned(),
                ..row()
            },
            FileRow {
                name: String::new(),
                ..row()
            },
            FileRow {
                name: "a\u{0}b".to_owned(),
                ..row()
            },
            FileRow {
                content_type: Some("not a media type".to_owned()),
                ..row()
            },
        ];
        for bad in bad_rows {
            let shown = format!("{bad:?}");
            let error = to_record("get", bad).err();
            assert!(matches!(error, Some(PortError::Failed(_))), "{shown}");
        }
    }

    #[test]
    fn outbox_rows_read_back_as_their_event_and_bad_ones_are_failures() {
        let record = match FileRecord::try_from(row()) {
            Ok(record) => record,
            Err(e) => panic!("{e}"),
        };
        let event = FileUploaded::new(Uuid::new_v4(), &record, 12, "files", OffsetDateTime::UNIX_EPOCH);
        let payload = serde_json::to_string(&event).unwrap_or_default();
        let claimed = |event_id: Uuid, payload: &str| ClaimedRow {
            event_id,
            seq: 1,
            payload: payload.to_owned(),
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        };
        let entry = OutboxEntry::try_from(claimed(event.event_id, &payload)).map_err(|e| e.to_string());
        assert_eq!(entry.map(|e| e.event), Ok(event.clone()));
        for bad in [
            claimed(event.event_id, "{}"),
            claimed(event.event_id, "null"),
            claimed(Uuid::new_v4(), &payload), // a good event under another id
        ] {
            let shown = format!("{bad:?}");
            let error = OutboxEntry::try_from(bad)
                .map_err(|e| translate("claim", e.into()))
                .err();
            assert!(matches!(error, Some(PortError::Failed(_))), "{shown}");
        }
    }

    #[test]
    fn leases_become_intervals_without_overflow() {
        assert_eq!(
            lease_interval(Duration::from_millis(300)),
            PgInterval::from_microseconds(300_000)
        );
        assert_eq!(lease_interval(Duration::MAX), PgInterval::from_microseconds(i64::MAX));
    }

    #[test]
    fn sizes_beyond_i64_are_refused_not_wrapped() {
        let mut record = match FileRecord::try_from(row()) {
            Ok(record) => record,
            Err(e) => panic!("{e}"),
        };
        record.size = Some(u64::MAX);
        assert!(FileRow::from_record(&record).is_err());
    }

    #[test]
    fn checkout_timeouts_and_lost_connections_are_unavailable_refusals_failed() {
        let checkout = Failure::Checkout {
            error: bb8::RunError::TimedOut,
            waited: Duration::from_secs(2),
            last_connect_error: Some("connection refused".to_owned()),
        };
        let error = translate("get", checkout);
        assert!(matches!(error, PortError::Unavailable(_)));
        assert!(
            files_core::ports::error_chain(&error).contains("connection refused"),
            "{}",
            files_core::ports::error_chain(&error)
        );
        assert!(matches!(
            translate("get", Failure::Timeout(Duration::from_secs(3))),
            PortError::Unavailable(_)
        ));
        // (kind, connection lost, unavailable?)
        for (kind, connection_lost, unavailable) in [
            (DatabaseErrorKind::ClosedConnection, false, true),
            (DatabaseErrorKind::Unknown, true, true),
            (DatabaseErrorKind::UniqueViolation, false, false),
        ] {
            let error = DieselError::DatabaseError(kind, Box::new(format!("{kind:?}")));
            let translated = translate("query", Failure::Query { error, connection_lost });
            assert_eq!(matches!(translated, PortError::Unavailable(_)), unavailable, "{kind:?}");
        }
    }
}
