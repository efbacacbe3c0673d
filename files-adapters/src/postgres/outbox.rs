//! The outbox: the statements on the `outbox` table and the [`Outbox`] implementation, which
//! leases events on the database's clock and claims them with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use async_trait::async_trait;
use diesel::pg::data_types::PgInterval;
use diesel::sql_types::{BigInt, Interval, Text, Timestamptz};
use diesel::{ExpressionMethods as _, QueryDsl as _, QueryableByName};
use diesel_async::RunQueryDsl as _;
use files_core::{FileEvent, Outbox, OutboxEntry, OutboxStats, PortError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresStore;
use super::errors::{BadEvent, translate};
use super::rows::outbox;

/// Records one event: `$2` is its JSON as text (diesel is built without `serde_json`), cast to
/// `jsonb`; `$3`, its recording time, is the event's `occurred_at`: the time the file became
/// available, or was deleted (as in the in-memory store).
pub(super) const RECORD_EVENT: &str =
    "INSERT INTO outbox (event_id, payload, recorded_at) VALUES ($1, CAST($2 AS jsonb), $3)";

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
pub(super) struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub(super) event_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub(super) seq: i64,
    #[diesel(sql_type = Text)]
    pub(super) payload: String,
    #[diesel(sql_type = Timestamptz)]
    pub(super) recorded_at: OffsetDateTime,
}

impl TryFrom<ClaimedRow> for OutboxEntry {
    type Error = BadEvent;

    fn try_from(row: ClaimedRow) -> Result<Self, BadEvent> {
        let event_id = row.event_id;
        let event: FileEvent = serde_json::from_str(&row.payload).map_err(|e| BadEvent {
            event_id,
            problem: format!("unreadable payload: {e}"),
        })?;
        // Events are marked sent by the row's id: a payload naming another would never be.
        if event.event_id() != event_id {
            return Err(BadEvent {
                event_id,
                problem: format!("the payload is event {}", event.event_id()),
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
pub(super) fn lease_interval(lease: Duration) -> PgInterval {
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
