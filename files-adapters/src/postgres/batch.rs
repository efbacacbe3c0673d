//! New records written together: the [`MetadataStore::insert`](files_core::MetadataStore::insert)
//! calls (and the admissions under quotas, `MetadataStore::admit`) that arrive while earlier
//! ones are being written wait for each other and go to the database as one multi-row `INSERT`
//! (group commit). Nothing waits for a batch to fill: a call that finds fewer than
//! [`MAX_WRITERS`] batches in flight starts one at once; the calls that arrive while they are
//! all in flight make up the next. Under load a statement, its commit and its usage count (one
//! per statement, migration `2027-01-24-000000_count_inserts_per_statement`) serve many
//! uploads; idle, a call is written alone, as before.
//!
//! A batch the database refuses (a duplicate id, a constraint, a quota) is written again one
//! record at a time, so a bad record fails only its own call and each admission gets its own
//! answer. A batch that fails otherwise (no connection, a timeout, the connection lost) fails
//! every call in it with that error: whether it committed is unknown, as for a single record.
//!
//! Each batch is written by a task of its own, so a caller that gives up (its request dropped)
//! does not abandon the records of the others.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bytea, Int8, Nullable, Text, Timestamptz, Uuid};
use files_core::PortError;
use files_core::ports::error_chain;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::rows::FileRow;

/// The most batches in flight at once, each on a pooled connection of its own (at most the
/// pool's size).
const MAX_WRITERS: usize = 4;
/// The most records in one statement (15 parameters each, well below PostgreSQL's 65,535).
const MAX_ROWS: usize = 128;

/// The calls waiting to be written, and how many batches are in flight: of records `R`, each
/// call answered `O` when its record is written.
#[derive(Debug)]
pub(super) struct Batches<R, O> {
    state: Mutex<State<R, O>>,
}

impl<R, O> Default for Batches<R, O> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                writers: 0,
            }),
        }
    }
}

#[derive(Debug)]
struct State<R, O> {
    waiting: Vec<Waiting<R, O>>,
    writers: usize,
}

#[derive(Debug)]
struct Waiting<R, O> {
    row: R,
    done: oneshot::Sender<Result<O, PortError>>,
}

/// A batch writer, counted in `State::writers` until it finds nothing to write (or its task is
/// dropped, or panics: the records it left wait for the next call's writer).
struct Writer<'a, R, O> {
    batches: &'a Batches<R, O>,
    counted: bool,
}

impl<R, O> Writer<'_, R, O> {
    /// The next batch, oldest first; `None` when nothing waits, and then this writer is no
    /// longer counted. Both under one lock: a call that queues a record afterwards sees the
    /// count lowered and starts a writer, so no record is left without one.
    fn next(&mut self) -> Option<Vec<Waiting<R, O>>> {
        let mut state = self.batches.lock();
        if state.waiting.is_empty() {
            state.writers -= 1;
            self.counted = false;
            return None;
        }
        let n = state.waiting.len().min(MAX_ROWS);
        Some(state.waiting.drain(..n).collect())
    }
}

impl<R, O> Drop for Writer<'_, R, O> {
    fn drop(&mut self) {
        if self.counted {
            self.batches.lock().writers -= 1;
        }
    }
}

/// How a batch's records reach the database (the store: new records in `metadata.rs`,
/// admissions under quotas in `tenancy.rs`).
pub(super) trait Writes<R, O>: Clone + Send + Sync + 'static {
    /// One record.
    fn one(&self, row: R) -> impl Future<Output = Result<O, PortError>> + Send;
    /// Several records in one statement, all or none; each call of the batch answers the `O`
    /// it returns.
    fn many(&self, rows: Vec<R>) -> impl Future<Output = Result<O, PortError>> + Send;
}

impl<R, O> Batches<R, O> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<R, O>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R, O> Batches<R, O>
where
    R: Clone + Send + 'static,
    O: Clone + Send + 'static,
{
    /// Queues `row`; true when the caller must start a writer (one more may run), which is
    /// then counted.
    fn queue(&self, row: R, done: oneshot::Sender<Result<O, PortError>>, max_writers: usize) -> bool {
        let mut state = self.lock();
        state.waiting.push(Waiting { row, done });
        if state.writers < max_writers {
            state.writers += 1;
            true
        } else {
            false
        }
    }

    /// Writes `row` with the records queued beside it, through `writes`, with at most
    /// `max_writers` batches in flight, waiting at most `bound` for the answer (past it,
    /// whether the record was written is unknown, as after a query's timeout); see the module
    /// documentation.
    pub(super) async fn write<W: Writes<R, O>>(
        self: &Arc<Self>,
        writes: &W,
        row: R,
        max_writers: usize,
        bound: Duration,
    ) -> Result<O, PortError> {
        let (done, written) = oneshot::channel();
        if self.queue(row, done, max_writers.clamp(1, MAX_WRITERS)) {
            let (batches, writes) = (Arc::clone(self), writes.clone());
            tokio::spawn(async move { write_batches(&batches, &writes).await });
        }
        match tokio::time::timeout(bound, written).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(PortError::unavailable(
                "postgres: the batch was dropped before it was written",
            )),
            Err(_) => Err(PortError::unavailable(format!(
                "postgres: the batch was not written within {bound:?}"
            ))),
        }
    }
}

/// One writer: writes batches until nothing waits.
async fn write_batches<R, O, W>(batches: &Batches<R, O>, writes: &W)
where
    R: Clone + Send + 'static,
    O: Clone + Send + 'static,
    W: Writes<R, O>,
{
    let mut writer = Writer { batches, counted: true };
    while let Some(batch) = writer.next() {
        write(writes, batch).await;
    }
}

async fn write<R, O, W>(writes: &W, batch: Vec<Waiting<R, O>>)
where
    R: Clone + Send + 'static,
    O: Clone + Send + 'static,
    W: Writes<R, O>,
{
    let (mut rows, mut done): (Vec<R>, Vec<_>) = batch.into_iter().map(|w| (w.row, w.done)).unzip();
    let count = rows.len();
    if count == 1 {
        if let (Some(row), Some(done)) = (rows.pop(), done.pop()) {
            drop(done.send(writes.one(row).await));
        }
        return;
    }
    match writes.many(rows.clone()).await {
        Ok(answer) => done.into_iter().for_each(|done| drop(done.send(Ok(answer.clone())))),
        Err(PortError::Failed(_)) => {
            // Refused: one record may be at fault (or over its quota); each is written alone
            // and answers for itself.
            for (row, done) in rows.into_iter().zip(done) {
                drop(done.send(writes.one(row).await));
            }
        }
        Err(error) => done
            .into_iter()
            .for_each(|done| drop(done.send(Err(again(&error, count))))),
    }
}

/// `INSERT INTO files ... SELECT u.* FROM unnest($1, ..., $15) AS u`: a batch's rows, each
/// column bound as one array. A query type of its own with a static [`QueryId`], as `Admit`,
/// so that diesel-async prepares it once per connection (a `sql_query`, or diesel's multi-row
/// `VALUES`, differs with the number of rows and is prepared at every call).
pub(super) struct InsertMany(Columns);

impl InsertMany {
    pub(super) fn new(rows: Vec<FileRow>) -> Self {
        Self(Columns::of(rows))
    }
}

impl QueryId for InsertMany {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for InsertMany {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.push_insert(out)
    }
}

/// A batch's rows, column by column.
#[derive(Default)]
pub(super) struct Columns {
    pub(super) id: Vec<uuid::Uuid>,
    pub(super) tenant_id: Vec<uuid::Uuid>,
    pub(super) device_id: Vec<Option<uuid::Uuid>>,
    name: Vec<String>,
    sha256: Vec<Vec<u8>>,
    pub(super) size: Vec<Option<i64>>,
    content_type: Vec<Option<String>>,
    state: Vec<String>,
    pub(super) created_at: Vec<OffsetDateTime>,
    completed_at: Vec<Option<OffsetDateTime>>,
    upload_id: Vec<Option<String>>,
    part_size: Vec<Option<i64>>,
    part_sha256: Vec<Option<Vec<u8>>>,
    multipart_expires_at: Vec<Option<OffsetDateTime>>,
    upload_expires_at: Vec<Option<OffsetDateTime>>,
}

impl Columns {
    /// `INSERT INTO files (...) SELECT u.* FROM unnest(...) AS u`, the columns bound as arrays.
    pub(super) fn push_insert<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let c = self;
        out.push_sql(
            "INSERT INTO files (id, tenant_id, device_id, name, sha256, size, content_type, state, created_at, \
             completed_at, upload_id, part_size, part_sha256, multipart_expires_at, upload_expires_at) \
             SELECT u.* FROM unnest(",
        );
        out.push_bind_param::<Array<Uuid>, _>(&c.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Uuid>, _>(&c.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Uuid>>, _>(&c.device_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&c.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bytea>, _>(&c.sha256)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Int8>>, _>(&c.size)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.content_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&c.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&c.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(&c.completed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.upload_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Int8>>, _>(&c.part_size)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Bytea>>, _>(&c.part_sha256)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(&c.multipart_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(&c.upload_expires_at)?;
        out.push_sql(") AS u");
        Ok(())
    }

    pub(super) fn of(rows: Vec<FileRow>) -> Self {
        let mut columns = Self::default();
        for row in rows {
            columns.id.push(row.id);
            columns.tenant_id.push(row.tenant_id);
            columns.device_id.push(row.device_id);
            columns.name.push(row.name);
            columns.sha256.push(row.sha256);
            columns.size.push(row.size);
            columns.content_type.push(row.content_type);
            columns.state.push(row.state);
            columns.created_at.push(row.created_at);
            columns.completed_at.push(row.completed_at);
            columns.upload_id.push(row.upload_id);
            columns.part_size.push(row.part_size);
            columns.part_sha256.push(row.part_sha256);
            columns.multipart_expires_at.push(row.multipart_expires_at);
            columns.upload_expires_at.push(row.upload_expires_at);
        }
        columns
    }
}

/// `error`, for each of the `count` calls of its batch (a [`PortError`] has one owner).
fn again(error: &PortError, count: usize) -> PortError {
    let text = format!("{} (a batch of {count} records)", error_chain(error));
    match error {
        PortError::Unavailable(_) => PortError::unavailable(text),
        PortError::Failed(_) => PortError::failed(text),
    }
}
