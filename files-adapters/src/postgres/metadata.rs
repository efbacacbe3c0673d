//! The [`MetadataStore`] implementation: one statement per call, each through
//! `PostgresStore::run`; `mark_available` and `mark_deleted` record their events in the same
//! transaction. New records are the exception: `insert` queues them for the batches of
//! `batch.rs`, which write them through [`Writes`], implemented here.

use async_trait::async_trait;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Text, Timestamptz};
use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, SelectableHelper as _};
use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
use files_core::{
    Admission, Deletion, FileId, FileName, FileRecord, FileState, FileUploaded, Limits, MetadataStore, Owner,
    PortError, Scope, TenantId,
};
use time::OffsetDateTime;

use super::PostgresStore;
use super::batch::{InsertMany, Writes};
use super::errors::{BadEvent, BadRow, translate};
use super::outbox::RECORD_EVENT;
use super::rows::{FileRow, files, to_record, to_records};

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

/// The writes of the batches of new records (`batch.rs`).
impl Writes<FileRow, ()> for PostgresStore {
    /// A statement prepared once per connection.
    async fn one(&self, row: FileRow) -> Result<(), PortError> {
        self.run("insert", move |conn| {
            Box::pin(diesel::insert_into(files::table).values(row).execute(conn))
        })
        .await
        .map(drop)
    }

    async fn many(&self, rows: Vec<FileRow>) -> Result<(), PortError> {
        let insert = InsertMany::new(rows);
        self.run("insert_batch", move |conn| Box::pin(insert.execute(conn)))
            .await
            .map(drop)
    }
}

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        const OP: &str = "insert";
        let row = FileRow::from_record(record).map_err(|e| translate(OP, e.into()))?;
        let (max_writers, bound) = self.batching();
        self.inserts.write(self, row, max_writers, bound).await
    }

    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        if *limits == Limits::NONE {
            // No quota to check: the plain INSERT (the usage trigger counts it all the same).
            return self.insert(record).await.map(|()| Admission::Admitted);
        }
        self.admit_record(record, limits).await
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

    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        const OP: &str = "mark_deleted";
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        let deletion = deletion.clone();
        // One transaction: lock the row, see what it was, move it, and record the event only
        // when it was available. A concurrent caller waits on the row lock and then reads the
        // tombstone this one committed: it records nothing.
        self.run(OP, move |conn| {
            Box::pin(conn.transaction::<_, DieselError, _>(async move |conn| {
                let before = files::table
                    .filter(files::id.eq(id))
                    .filter(files::tenant_id.eq(tenant))
                    .select(FileRow::as_select())
                    .for_update()
                    .get_result(conn)
                    .await
                    .optional()?;
                let Some(before) = before else {
                    return Ok(None);
                };
                let before = FileRecord::try_from(before).map_err(|e| DieselError::DeserializationError(e.into()))?;
                if before.state == FileState::Deleted {
                    return Ok(Some(before));
                }
                let row = diesel::update(files::table)
                    .filter(files::id.eq(id))
                    .set(files::state.eq(FileState::Deleted.as_str()))
                    .returning(FileRow::as_returning())
                    .get_result(conn)
                    .await?;
                let record = FileRecord::try_from(row).map_err(|e| DieselError::DeserializationError(e.into()))?;
                if let Some(event) = deletion.event_for(&before) {
                    let payload = serde_json::to_string(&event).map_err(|e| {
                        DieselError::SerializationError(
                            BadEvent {
                                event_id: event.event_id,
                                problem: format!("cannot be written as JSON: {e}"),
                            }
                            .into(),
                        )
                    })?;
                    diesel::sql_query(RECORD_EVENT)
                        .bind::<diesel::sql_types::Uuid, _>(event.event_id)
                        .bind::<Text, _>(payload)
                        .bind::<Timestamptz, _>(deletion.at)
                        .execute(conn)
                        .await?;
                }
                Ok(Some(record))
            }))
        })
        .await
    }

    async fn mark_expired(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        self.move_to("mark_expired", tenant, id, &[FileState::Pending], FileState::Expired)
            .await
    }
}

impl PostgresStore {
    /// Moves a row in one of the states `from` to `to`; the moved row, or `None`.
    async fn move_to(
        &self,
        op: &'static str,
        tenant: TenantId,
        id: FileId,
        from: &[FileState],
        to: FileState,
    ) -> Result<Option<FileRecord>, PortError> {
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        let from: Vec<&'static str> = from.iter().map(|state| state.as_str()).collect();
        let row = self
            .run(op, move |conn| {
                Box::pin(async move {
                    diesel::update(files::table)
                        .filter(files::id.eq(id))
                        .filter(files::tenant_id.eq(tenant))
                        .filter(files::state.eq_any(from))
                        .set(files::state.eq(to.as_str()))
                        .returning(FileRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        row.map(|row| to_record(op, row)).transpose()
    }
}
