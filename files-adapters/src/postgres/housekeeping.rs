//! The [`Housekeeping`] implementation: the janitor's claims (leased on the database's clock,
//! with `FOR UPDATE SKIP LOCKED`, so concurrent janitors take different rows), and the pruning
//! of sent outbox rows, each bounded by a limit.

use std::time::Duration;

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Interval, Timestamptz};
use diesel::{ExpressionMethods as _, QueryDsl as _, QueryableByName, SelectableHelper as _};
use diesel_async::RunQueryDsl as _;
use files_core::{FileId, FileRecord, FileState, Housekeeping, PortError, TenantId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresStore;
use super::outbox::lease_interval;
use super::rows::{FileRow, files, to_records};

/// Leases up to `$3` rows that need the janitor, the oldest expiry first, until `now() + $1`:
/// pending, deleted or expired rows (not yet swept) whose upload could put bytes in the store
/// until before `$2`, not leased by another janitor. `SKIP LOCKED` passes over rows another
/// claim is taking now.
const CLAIM_STALE: &str = "UPDATE files SET janitor_leased_until = now() + $1 \
     WHERE id IN (\
         SELECT id FROM files \
         WHERE state IN ('pending', 'deleted', 'expired') AND upload_expires_at < $2 \
           AND (janitor_leased_until IS NULL OR janitor_leased_until <= now()) \
         ORDER BY upload_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id";

/// Leases up to `$3` available device-root files until `now() + $1`, the oldest completion
/// first: of tenants whose settings set `retention_secs`, completed before `$2` less it, not
/// leased by another janitor. Served by the partial index `files_retained` (tenant_id,
/// completed_at): EXPLAIN shows a (bitmap) index scan of it per tenant with retention (see the
/// migration `2027-01-17-000000_retention`). `FOR UPDATE OF f SKIP LOCKED` locks the files, not
/// the settings, and passes over files another claim is taking now. A retention is capped at
/// 10^11 s (about 3,000 years): a longer one never ends anyway, and `$2` less it must stay a
/// timestamp (the setting goes up to 2^63 - 1 s).
const CLAIM_RETAINED: &str = "UPDATE files SET janitor_leased_until = now() + $1 \
     WHERE id IN (\
         SELECT f.id FROM files f JOIN tenant_settings s ON s.tenant_id = f.tenant_id \
         WHERE s.settings ? 'retention_secs' \
           AND jsonb_typeof(s.settings -> 'retention_secs') = 'number' \
           AND f.state = 'available' AND f.device_id IS NOT NULL \
           AND f.completed_at < $2 - make_interval(secs => \
               least((s.settings ->> 'retention_secs')::double precision, 1e11)) \
           AND (f.janitor_leased_until IS NULL OR f.janitor_leased_until <= now()) \
         ORDER BY f.completed_at LIMIT $3 FOR UPDATE OF f SKIP LOCKED) \
     RETURNING id";

/// Deletes up to `$2` outbox rows sent before `$1` (never an unsent one).
const PRUNE_SENT: &str = "DELETE FROM outbox WHERE event_id IN (\
         SELECT event_id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 LIMIT $2)";

#[derive(Debug, QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

impl PostgresStore {
    /// The records of the rows a claim leased, ordered by `key`.
    async fn load_claimed<K: Ord>(
        &self,
        op: &'static str,
        claimed: Vec<ClaimedId>,
        key: impl Fn(&FileRecord) -> K + Send,
    ) -> Result<Vec<FileRecord>, PortError> {
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = claimed.into_iter().map(|c| c.id).collect();
        let rows: Vec<FileRow> = self
            .run(op, move |conn| {
                Box::pin(
                    files::table
                        .filter(files::id.eq_any(ids))
                        .select(FileRow::as_select())
                        .load(conn),
                )
            })
            .await?;
        let mut records = to_records(op, rows)?;
        records.sort_by_key(key);
        Ok(records)
    }
}

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn claim_stale(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        const OP: &str = "claim_stale";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = lease_interval(lease);
        let claimed: Vec<ClaimedId> = self
            .run(OP, move |conn| {
                Box::pin(
                    diesel::sql_query(CLAIM_STALE)
                        .bind::<Interval, _>(lease)
                        .bind::<Timestamptz, _>(cutoff)
                        .bind::<BigInt, _>(limit)
                        .load(conn),
                )
            })
            .await?;
        self.load_claimed(OP, claimed, |r| r.upload_expires_at).await
    }

    async fn claim_retained(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<FileRecord>, PortError> {
        const OP: &str = "claim_retained";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = lease_interval(lease);
        let claimed: Vec<ClaimedId> = self
            .run(OP, move |conn| {
                Box::pin(
                    diesel::sql_query(CLAIM_RETAINED)
                        .bind::<Interval, _>(lease)
                        .bind::<Timestamptz, _>(now)
                        .bind::<BigInt, _>(limit)
                        .load(conn),
                )
            })
            .await?;
        self.load_claimed(OP, claimed, |r| r.completed_at).await
    }

    async fn mark_swept(&self, tenant: TenantId, id: FileId) -> Result<(), PortError> {
        const OP: &str = "mark_swept";
        let (tenant, id) = (*tenant.as_uuid(), *id.as_uuid());
        self.run(OP, move |conn| {
            Box::pin(
                diesel::update(files::table)
                    .filter(files::id.eq(id))
                    .filter(files::tenant_id.eq(tenant))
                    .set((
                        files::upload_expires_at.eq(None::<OffsetDateTime>),
                        files::janitor_leased_until.eq(None::<OffsetDateTime>),
                    ))
                    .execute(conn),
            )
        })
        .await
        .map(drop)
    }

    async fn count_pending(&self) -> Result<u64, PortError> {
        const OP: &str = "count_pending";
        let count: i64 = self
            .run(OP, |conn| {
                Box::pin(
                    files::table
                        .filter(files::state.eq(FileState::Pending.as_str()))
                        .count()
                        .get_result(conn),
                )
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn prune_sent(&self, before: OffsetDateTime, limit: usize) -> Result<u64, PortError> {
        const OP: &str = "prune_sent";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let pruned = self
            .run(OP, move |conn| {
                Box::pin(
                    diesel::sql_query(PRUNE_SENT)
                        .bind::<Timestamptz, _>(before)
                        .bind::<BigInt, _>(limit)
                        .execute(conn),
                )
            })
            .await?;
        Ok(pruned as u64)
    }
}
