//! The tenancy statements: [`SettingsStore`] and [`UsageStore`] over the tables of the tenancy
//! migrations, and the admission of records under quotas (`files_admit`, in the same statement
//! as their INSERT, queued in batches as new records are: `files_admit_batch`). The counts
//! themselves are appended by the usage triggers of `files` (one per `INSERT` statement, one
//! per row changed or deleted) to `usage_delta` and folded into the counters by
//! [`UsageStore::settle`]; reads add the deltas not folded yet.

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError, QueryResult};
use diesel::sql_types::{Array, BigInt, Bytea, Date as SqlDate, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::RunQueryDsl as _;
use files_core::ports::{
    Admission, DailyUsage, DeviceUsage, DownloadCount, Limits, QuotaRefusal, SettingsStore, StoredSettings,
    TenantUsage, UsageStore,
};
use files_core::tenancy::{Ceilings, TenantSettings};
use files_core::{DeviceId, FileRecord, PortError, TenantId};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::PostgresStore;
use super::batch::{Columns, Writes};
use super::errors::{BadRow, translate};
use super::rows::{Admit, FileRow};

/// Records `$1`..`$15` (the columns of [`FileRow`]) when `files_admit` admits it under the
/// quotas `$16`..`$19` (tenant bytes, tenant files, device pending uploads, device bytes per
/// day; NULL: none). A refusal raises, naming the quota after [`REFUSAL`]. In three parts:
/// diesel writes each parameter's `$n` as it binds it ([`Admit`]).
const ADMIT: [&str; 3] = [
    "INSERT INTO files (id, tenant_id, device_id, name, sha256, size, content_type, state, \
         created_at, completed_at, upload_id, part_size, part_sha256, multipart_expires_at, upload_expires_at) \
     SELECT ",
    " WHERE files_admit($1, $2, $3, files_usage_shard($3, $1), coalesce($6, 0), ($9 AT TIME ZONE 'UTC')::date, ",
    ")",
];

// `Admit` (in rows.rs) is [`ADMIT`] with its parameters. A query type of its own, with a
// static [`QueryId`], so that diesel-async prepares it once per connection and keeps it (a
// `sql_query` is parsed and planned anew at every call: about 0.7x the rate,
// docs/performance.md).
impl QueryId for Admit {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for Admit {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::Uuid as SqlUuid;
        let row = &self.row;
        out.push_sql(ADMIT[0]);
        out.push_bind_param::<SqlUuid, _>(&row.id)?;
        out.push_sql(", ");
        out.push_bind_param::<SqlUuid, _>(&row.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<SqlUuid>, _>(&row.device_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Bytea, _>(&row.sha256)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.size)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.content_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&row.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&row.completed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.upload_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.part_size)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Bytea>, _>(&row.part_sha256)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&row.multipart_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&row.upload_expires_at)?;
        out.push_sql(ADMIT[1]);
        for (i, quota) in self.quotas.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Nullable<BigInt>, _>(quota)?;
        }
        out.push_sql(ADMIT[2]);
        Ok(())
    }
}

/// How `files_admit` begins the message of a refusal; the quota's name follows.
const REFUSAL: &str = "quota exceeded: ";

const GET_SETTINGS: &str = "SELECT settings::text AS settings, updated_at FROM tenant_settings WHERE tenant_id = $1";

const PUT_SETTINGS: &str = "INSERT INTO tenant_settings (tenant_id, settings, updated_at) \
     VALUES ($1, CAST($2 AS jsonb), $3) \
     ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at";

/// A tenant's counts: the counters plus the deltas not folded into them yet, in one snapshot.
const TENANT_USAGE: &str = "SELECT coalesce(sum(files), 0)::int8 AS files, coalesce(sum(bytes), 0)::int8 AS bytes, \
         coalesce(sum(pending_uploads), 0)::int8 AS pending_uploads, \
         coalesce(sum(pending_bytes), 0)::int8 AS pending_bytes \
     FROM (SELECT files, bytes, pending_uploads, pending_bytes FROM tenant_usage WHERE tenant_id = $1 \
           UNION ALL \
           SELECT files, bytes, pending_uploads, pending_bytes FROM usage_delta WHERE tenant_id = $1) AS counts";

/// A device's counts and its day `$3`, deltas not folded yet included (found by the device's
/// shard, which is its id's).
const DEVICE_USAGE: &str = "SELECT coalesce(u.files, 0) + coalesce(x.files, 0) AS files, \
         coalesce(u.bytes, 0) + coalesce(x.bytes, 0) AS bytes, \
         coalesce(u.pending_uploads, 0) + coalesce(x.pending_uploads, 0) AS pending_uploads, \
         coalesce(d.upload_urls, 0) + coalesce(x.upload_urls, 0) AS upload_urls, \
         coalesce(d.upload_bytes, 0) + coalesce(x.upload_bytes, 0) AS upload_bytes, \
         coalesce(d.uploads_completed, 0) + coalesce(x.uploads_completed, 0) AS uploads_completed, \
         coalesce(d.download_urls, 0) AS download_urls \
     FROM (SELECT sum(files)::int8 AS files, sum(bytes)::int8 AS bytes, sum(pending_uploads)::int8 AS pending_uploads, \
                  sum(upload_urls) FILTER (WHERE day = $3)::int8 AS upload_urls, \
                  sum(upload_bytes) FILTER (WHERE day = $3)::int8 AS upload_bytes, \
                  sum(uploads_completed) FILTER (WHERE day = $3)::int8 AS uploads_completed \
             FROM usage_delta \
            WHERE tenant_id = $1 AND shard = files_usage_shard($2, $2) AND device_id = $2) AS x \
     LEFT JOIN device_usage u ON u.tenant_id = $1 AND u.device_id = $2 \
     LEFT JOIN device_daily d ON d.tenant_id = $1 AND d.device_id = $2 AND d.day = $3";

/// Adds download counts, one row per (tenant, device, day) in the arrays; rows are locked in
/// key order, as `files_fold_usage` locks them, so the two never deadlock.
const ADD_DOWNLOADS: &str = "INSERT INTO device_daily AS d (tenant_id, device_id, day, download_urls) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::int8[]) AS c (tenant_id, device_id, day, n) \
     ORDER BY 1, 2, 3 \
     ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET download_urls = d.download_urls + excluded.download_urls";

/// Folds deltas into the counters (one instance at a time; another folds nothing).
const FOLD: &str = "SELECT files_fold_usage($1) AS folded";

/// The most deltas one fold moves: one second of uploads at several times the rate measured
/// on one instance (docs/performance.md), so a fold keeps up and no transaction grows large.
const FOLD_BATCH: i32 = 50_000;

#[derive(QueryableByName)]
struct Folded {
    #[diesel(sql_type = BigInt)]
    folded: i64,
}

#[derive(QueryableByName)]
struct SettingsRow {
    #[diesel(sql_type = Text)]
    settings: String,
    #[diesel(sql_type = Timestamptz)]
    updated_at: OffsetDateTime,
}

#[derive(QueryableByName)]
struct TenantUsageRow {
    #[diesel(sql_type = BigInt)]
    files: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
    #[diesel(sql_type = BigInt)]
    pending_uploads: i64,
    #[diesel(sql_type = BigInt)]
    pending_bytes: i64,
}

#[derive(QueryableByName)]
struct DeviceUsageRow {
    #[diesel(sql_type = BigInt)]
    files: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
    #[diesel(sql_type = BigInt)]
    pending_uploads: i64,
    #[diesel(sql_type = BigInt)]
    upload_urls: i64,
    #[diesel(sql_type = BigInt)]
    upload_bytes: i64,
    #[diesel(sql_type = BigInt)]
    uploads_completed: i64,
    #[diesel(sql_type = BigInt)]
    download_urls: i64,
}

/// A count as stored; counts are never negative, and one that is reads as 0.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A quota as the database keeps it; settings are validated to fit.
fn quota(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The quota a refusal of `files_admit` names.
fn refusal(error: &DieselError) -> Option<QuotaRefusal> {
    let DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) = error else {
        return None;
    };
    match info.message().strip_prefix(REFUSAL)? {
        "bytes" => Some(QuotaRefusal::Bytes),
        "files" => Some(QuotaRefusal::Files),
        "device_pending_uploads" => Some(QuotaRefusal::DevicePendingUploads),
        "device_bytes_per_day" => Some(QuotaRefusal::DeviceBytesPerDay),
        _ => None,
    }
}

impl PostgresStore {
    /// Records `record` if it fits `limits`: queued with the admissions that arrive beside it
    /// (`batch.rs`), admitted one at a time if their batch is refused.
    pub(super) async fn admit_record(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        let row = FileRow::from_record(record).map_err(|e| translate("admit", e.into()))?;
        let quotas = [
            quota(limits.tenant_bytes),
            quota(limits.tenant_files),
            quota(limits.device_pending_uploads),
            quota(limits.device_bytes_per_day),
        ];
        let (max_writers, bound) = self.batching();
        self.admissions
            .write(self, Admit { row, quotas }, max_writers, bound)
            .await
    }
}

/// The writes of the batches of admissions (`batch.rs`).
impl Writes<Admit, Admission> for PostgresStore {
    /// One record, in one statement ([`ADMIT`]); a refusal is an answer, not an error.
    async fn one(&self, admit: Admit) -> Result<Admission, PortError> {
        self.run("admit", move |conn| {
            Box::pin(async move {
                let inserted = admit.execute(conn).await;
                match inserted {
                    Ok(_) => Ok(Admission::Admitted),
                    Err(error) => refusal(&error).map(Admission::Refused).ok_or(error),
                }
            })
        })
        .await
    }

    /// Several records, in one statement ([`AdmitMany`]); anything but room for all (a quota,
    /// a shard without its share) fails the batch, whose records are then admitted one at a
    /// time.
    async fn many(&self, admits: Vec<Admit>) -> Result<Admission, PortError> {
        let admit = AdmitMany::new(admits);
        self.run("admit_batch", move |conn| Box::pin(admit.execute(conn)))
            .await
            .map(|_| Admission::Admitted)
    }
}

/// `WITH admitted AS MATERIALIZED (SELECT files_admit_batch($1, ..., $9) AS ok) INSERT INTO
/// files ... SELECT u.* FROM unnest($10, ..., $24) AS u, admitted WHERE admitted.ok`: a batch
/// of admissions, each column bound as one array (`files_admit_batch` in the migration
/// `2027-01-31-000000_admit_in_batches`: `files_admit`'s fast way as a set, the counter rows
/// in the fold's order). A query type of its own, prepared once per connection.
pub(super) struct AdmitMany {
    rows: Columns,
    sizes: Vec<i64>,
    days: Vec<Date>,
    quotas: [Vec<Option<i64>>; 4],
}

impl AdmitMany {
    pub(super) fn new(admits: Vec<Admit>) -> Self {
        let sizes = admits.iter().map(|a| a.row.size.unwrap_or(0)).collect();
        let days = admits
            .iter()
            .map(|a| a.row.created_at.to_offset(time::UtcOffset::UTC).date())
            .collect();
        let quotas = std::array::from_fn(|i| admits.iter().map(|a| a.quotas[i]).collect());
        let rows = Columns::of(admits.into_iter().map(|a| a.row).collect());
        Self {
            rows,
            sizes,
            days,
            quotas,
        }
    }
}

impl QueryId for AdmitMany {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for AdmitMany {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::Uuid as SqlUuid;
        out.push_sql("WITH admitted AS MATERIALIZED (SELECT files_admit_batch(");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.rows.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.rows.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.rows.device_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.sizes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlDate>, _>(&self.days)?;
        for quota in &self.quotas {
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<BigInt>>, _>(quota)?;
        }
        out.push_sql(") AS ok) ");
        self.rows.push_insert(out.reborrow())?;
        out.push_sql(", admitted WHERE admitted.ok");
        Ok(())
    }
}

#[async_trait]
impl SettingsStore for PostgresStore {
    async fn get_settings(&self, tenant: TenantId) -> Result<Option<StoredSettings>, PortError> {
        const OP: &str = "get_settings";
        let id = *tenant.as_uuid();
        let row = self
            .run(OP, move |conn| {
                Box::pin(async move {
                    diesel::sql_query(GET_SETTINGS)
                        .bind::<diesel::sql_types::Uuid, _>(id)
                        .get_result::<SettingsRow>(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        row.map(|row| {
            let bad = |problem: String| translate(OP, BadRow { id, problem }.into());
            let document: serde_json::Value =
                serde_json::from_str(&row.settings).map_err(|e| bad(format!("settings: {e}")))?;
            // Read without the ceilings: those in force when it was set admitted it, and the
            // policy caps every value by today's.
            let settings = TenantSettings::from_json(&document, &Ceilings::NONE).map_err(|e| bad(e.to_string()))?;
            Ok(StoredSettings {
                settings,
                updated_at: row.updated_at,
            })
        })
        .transpose()
    }

    async fn put_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> Result<StoredSettings, PortError> {
        const OP: &str = "put_settings";
        let id = *tenant.as_uuid();
        let document = serde_json::to_string(settings).map_err(|e| {
            translate(
                OP,
                BadRow {
                    id,
                    problem: format!("settings: {e}"),
                }
                .into(),
            )
        })?;
        self.run(OP, move |conn| {
            Box::pin(
                diesel::sql_query(PUT_SETTINGS)
                    .bind::<diesel::sql_types::Uuid, _>(id)
                    .bind::<Text, _>(document)
                    .bind::<Timestamptz, _>(at)
                    .execute(conn),
            )
        })
        .await?;
        Ok(StoredSettings {
            settings: settings.clone(),
            updated_at: at,
        })
    }
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage, PortError> {
        let id = *tenant.as_uuid();
        let row = self
            .run("tenant_usage", move |conn| {
                Box::pin(async move {
                    diesel::sql_query(TENANT_USAGE)
                        .bind::<diesel::sql_types::Uuid, _>(id)
                        .get_result::<TenantUsageRow>(conn)
                        .await
                })
            })
            .await?;
        Ok(TenantUsage {
            files: count(row.files),
            bytes: count(row.bytes),
            pending_uploads: count(row.pending_uploads),
            pending_bytes: count(row.pending_bytes),
        })
    }

    async fn device_usage(&self, tenant: TenantId, device: DeviceId, date: Date) -> Result<DeviceUsage, PortError> {
        let (tenant, device) = (*tenant.as_uuid(), *device.as_uuid());
        let row = self
            .run("device_usage", move |conn| {
                Box::pin(async move {
                    diesel::sql_query(DEVICE_USAGE)
                        .bind::<diesel::sql_types::Uuid, _>(tenant)
                        .bind::<diesel::sql_types::Uuid, _>(device)
                        .bind::<SqlDate, _>(date)
                        .get_result::<DeviceUsageRow>(conn)
                        .await
                })
            })
            .await?;
        Ok(DeviceUsage {
            files: count(row.files),
            bytes: count(row.bytes),
            pending_uploads: count(row.pending_uploads),
            today: DailyUsage {
                date,
                upload_urls: count(row.upload_urls),
                upload_bytes: count(row.upload_bytes),
                uploads_completed: count(row.uploads_completed),
                download_urls: count(row.download_urls),
            },
        })
    }

    async fn add_downloads(&self, counts: &[DownloadCount]) -> Result<(), PortError> {
        if counts.is_empty() {
            return Ok(());
        }
        let tenants: Vec<Uuid> = counts.iter().map(|c| *c.tenant.as_uuid()).collect();
        let devices: Vec<Uuid> = counts.iter().map(|c| *c.device.as_uuid()).collect();
        let days: Vec<Date> = counts.iter().map(|c| c.date).collect();
        let added: Vec<i64> = counts
            .iter()
            .map(|c| i64::try_from(c.count).unwrap_or(i64::MAX))
            .collect();
        self.run("add_downloads", move |conn| {
            Box::pin(
                diesel::sql_query(ADD_DOWNLOADS)
                    .bind::<Array<diesel::sql_types::Uuid>, _>(tenants)
                    .bind::<Array<diesel::sql_types::Uuid>, _>(devices)
                    .bind::<Array<SqlDate>, _>(days)
                    .bind::<Array<BigInt>, _>(added)
                    .execute(conn),
            )
        })
        .await
        .map(drop)
    }

    async fn settle(&self) -> Result<u64, PortError> {
        let row = self
            .run("settle", move |conn| {
                Box::pin(async move {
                    diesel::sql_query(FOLD)
                        .bind::<diesel::sql_types::Integer, _>(FOLD_BATCH)
                        .get_result::<Folded>(conn)
                        .await
                })
            })
            .await?;
        Ok(count(row.folded))
    }
}
