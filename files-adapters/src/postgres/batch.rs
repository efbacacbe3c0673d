//! New records written together: the [`MetadataStore::insert`](files_core::MetadataStore::insert)
//! calls that arrive while earlier ones are being written wait for each other and go to the
//! database as one multi-row `INSERT` (group commit). Nothing waits for a batch to fill: a call
//! that finds fewer than [`MAX_WRITERS`] batches in flight starts one at once; the calls that
//! arrive while they are all in flight make up the next. Under load a statement, its commit and
//! its usage count (one per statement, migration `2027-01-24-000000_count_inserts_per_statement`)
//! serve many uploads; idle, a call is written alone, as before.
//!
//! A batch the database refuses (a duplicate id, a constraint) is written again one record at a
//! time, so a bad record fails only its own call. A batch that fails otherwise (no connection, a
//! timeout, the connection lost) fails every call in it with that error: whether it committed
//! is unknown, as for a single record.
//!
//! Each batch is written by a task of its own, so a caller that gives up (its request dropped)
//! does not abandon the records of the others.

use std::sync::{Arc, Mutex, PoisonError};

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
pub(super) const MAX_WRITERS: usize = 4;
/// The most records in one statement (15 parameters each, well below PostgreSQL's 65,535).
pub(super) const MAX_ROWS: usize = 128;

/// The calls waiting to be written, and how many batches are in flight.
#[derive(Debug, Default)]
pub(super) struct Batches {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    waiting: Vec<Waiting>,
    writers: usize,
}

#[derive(Debug)]
struct Waiting {
    row: FileRow,
    done: oneshot::Sender<Result<(), PortError>>,
}

/// A batch writer, counted in `State::writers` until it finds nothing to write (or its task is
/// dropped, or panics: the records it left wait for the next call's writer).
struct Writer<'a> {
    batches: &'a Batches,
    counted: bool,
}

impl Writer<'_> {
    /// The next batch, oldest first; `None` when nothing waits, and then this writer is no
    /// longer counted. Both under one lock: a call that queues a record afterwards sees the
    /// count lowered and starts a writer, so no record is left without one.
    fn next(&mut self) -> Option<Vec<Waiting>> {
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

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.batches.lock().writers -= 1;
        }
    }
}

impl Batches {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `row`; true when the caller must start a writer (one more may run), which is
    /// then counted.
    fn queue(&self, row: FileRow, done: oneshot::Sender<Result<(), PortError>>, max_writers: usize) -> bool {
        let mut state = self.lock();
        state.waiting.push(Waiting { row, done });
        if state.writers < max_writers {
            state.writers += 1;
            true
        } else {
            false
        }
    }
}

/// How a batch's records reach the database (the store, in `metadata.rs`).
pub(super) trait Writes: Clone + Send + Sync + 'static {
    /// One record.
    fn insert_one(&self, row: FileRow) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Several records in one statement ([`InsertMany`]).
    fn insert_many(&self, rows: Vec<FileRow>) -> impl Future<Output = Result<(), PortError>> + Send;
}

impl Batches {
    /// Writes `row` with the records queued beside it, through `writes`, with at most
    /// `max_writers` batches in flight; see the module documentation.
    pub(super) async fn insert<W: Writes>(
        self: &Arc<Self>,
        writes: &W,
        row: FileRow,
        max_writers: usize,
    ) -> Result<(), PortError> {
        let (done, written) = oneshot::channel();
        if self.queue(row, done, max_writers.clamp(1, MAX_WRITERS)) {
            let (batches, writes) = (Arc::clone(self), writes.clone());
            tokio::spawn(async move { write_batches(&batches, &writes).await });
        }
        written.await.unwrap_or_else(|_| {
            Err(PortError::unavailable(
                "postgres insert: the batch was dropped before it was written",
            ))
        })
    }
}

/// One writer: writes batches until nothing waits.
async fn write_batches(batches: &Batches, writes: &impl Writes) {
    let mut writer = Writer { batches, counted: true };
    while let Some(batch) = writer.next() {
        write(writes, batch).await;
    }
}

async fn write(writes: &impl Writes, batch: Vec<Waiting>) {
    let (mut rows, mut done): (Vec<FileRow>, Vec<_>) = batch.into_iter().map(|w| (w.row, w.done)).unzip();
    let count = rows.len();
    if count == 1 {
        if let (Some(row), Some(done)) = (rows.pop(), done.pop()) {
            drop(done.send(writes.insert_one(row).await));
        }
        return;
    }
    match writes.insert_many(rows.clone()).await {
        Ok(()) => done.into_iter().for_each(|done| drop(done.send(Ok(())))),
        Err(PortError::Failed(_)) => {
            // Refused: one record may be at fault; each is written alone and answers for
            // itself.
            for (row, done) in rows.into_iter().zip(done) {
                drop(done.send(writes.insert_one(row).await));
            }
        }
        Err(error) => done
            .into_iter()
            .for_each(|done| drop(done.send(Err(again(&error, count))))),
    }
}

/// `INSERT INTO files ... SELECT * FROM unnest($1, ..., $15)`: a batch's rows, each column
/// bound as one array. A query type of its own with a static [`QueryId`], as `Admit`, so that
/// diesel-async prepares it once per connection (a `sql_query`, or diesel's multi-row
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
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let c = &self.0;
        out.push_sql(
            "INSERT INTO files (id, tenant_id, device_id, name, sha256, size, content_type, state, created_at, \
             completed_at, upload_id, part_size, part_sha256, multipart_expires_at, upload_expires_at) \
             SELECT * FROM unnest(",
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
        out.push_sql(")");
        Ok(())
    }
}

/// A batch's rows, column by column.
#[derive(Default)]
struct Columns {
    id: Vec<uuid::Uuid>,
    tenant_id: Vec<uuid::Uuid>,
    device_id: Vec<Option<uuid::Uuid>>,
    name: Vec<String>,
    sha256: Vec<Vec<u8>>,
    size: Vec<Option<i64>>,
    content_type: Vec<Option<String>>,
    state: Vec<String>,
    created_at: Vec<OffsetDateTime>,
    completed_at: Vec<Option<OffsetDateTime>>,
    upload_id: Vec<Option<String>>,
    part_size: Vec<Option<i64>>,
    part_sha256: Vec<Option<Vec<u8>>>,
    multipart_expires_at: Vec<Option<OffsetDateTime>>,
    upload_expires_at: Vec<Option<OffsetDateTime>>,
}

impl Columns {
    fn of(rows: Vec<FileRow>) -> Self {
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
