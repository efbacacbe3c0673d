-- Usage counted without a lock in the upload's transaction. The trigger on `files` no longer
-- updates the counter rows (each upload held its tenant's shard and its device's rows locked
-- until its commit, and uploads queued on them: about half the rate, docs/performance.md); it
-- appends the change to `usage_delta`, which takes no lock. `files_fold_usage`, called every
-- second by one instance at a time, moves the deltas into the counters in one transaction, and
-- every read adds the deltas not folded yet to the counters, so reads stay exact.
--
-- An upload under quotas is the exception: `files_admit` counts it in place, in the counter
-- rows its check read, which must stay locked until it commits for the quotas to be exact
-- across instances. Admissions of different shards and devices do not wait for each other,
-- and uploads without quotas wait for nothing.

-- One change of a record's counts: the record's tenant, shard and device; `day` is the UTC day
-- its daily counts (`upload_*`, `uploads_completed`) belong to.
CREATE TABLE usage_delta (
    tenant_id         uuid     NOT NULL,
    shard             smallint NOT NULL,
    device_id         uuid     NULL,
    day               date     NULL,
    files             integer  NOT NULL,
    bytes             bigint   NOT NULL,
    pending_uploads   integer  NOT NULL,
    pending_bytes     bigint   NOT NULL,
    upload_urls       integer  NOT NULL,
    upload_bytes      bigint   NOT NULL,
    uploads_completed integer  NOT NULL
);
-- Every read of the deltas is by tenant and shard (a device's shard is its id's).
CREATE INDEX usage_delta_shard ON usage_delta (tenant_id, shard);
-- A queue: rows come and go every second, so vacuum it by rows, not by its size.
ALTER TABLE usage_delta SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

-- The lock of a tenant's slow admissions (the key 2027-01-03-000000_tenancy used).
CREATE FUNCTION files_admit_key(tenant uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN hashtextextended('files_admit:' || tenant::text, 0);

-- The lock of `files_fold_usage` (and of `files_recount_usage`, which must not race it).
CREATE FUNCTION files_fold_key() RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN hashtextextended('files_fold_usage', 0);

CREATE OR REPLACE FUNCTION files_usage_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    r           files := coalesce(NEW, OLD);
    d_files     integer := 0;
    d_bytes     bigint  := 0;
    d_pending   integer := 0;
    d_declared  bigint  := 0;
    d_day       date;
    d_urls      integer := 0;
    d_url_bytes bigint  := 0;
    d_completed integer := 0;
BEGIN
    -- An INSERT admitted by `files_admit` is counted there already.
    IF TG_OP = 'INSERT' AND current_setting('files.counted', true) = NEW.id::text THEN
        RETURN NULL;
    END IF;
    -- An available file counts in `files` and `bytes`, a pending one in `pending_uploads` and
    -- `pending_bytes` (at its declared size), anything else not at all.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.state = 'available' THEN
            d_files := d_files - 1;
            d_bytes := d_bytes - coalesce(OLD.size, 0);
        ELSIF OLD.state = 'pending' THEN
            d_pending := d_pending - 1;
            d_declared := d_declared - coalesce(OLD.size, 0);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NEW.state = 'available' THEN
            d_files := d_files + 1;
            d_bytes := d_bytes + coalesce(NEW.size, 0);
        ELSIF NEW.state = 'pending' THEN
            d_pending := d_pending + 1;
            d_declared := d_declared + coalesce(NEW.size, 0);
        END IF;
    END IF;
    -- A device's day: an upload recorded counts on the day of `created_at`, a completion on
    -- the day of `completed_at` (UTC).
    IF r.device_id IS NOT NULL THEN
        IF TG_OP = 'INSERT' THEN
            d_day := (NEW.created_at AT TIME ZONE 'UTC')::date;
            d_urls := 1;
            d_url_bytes := coalesce(NEW.size, 0);
        ELSIF TG_OP = 'UPDATE' AND NEW.state = 'available' AND OLD.state <> 'available'
              AND NEW.completed_at IS NOT NULL THEN
            d_day := (NEW.completed_at AT TIME ZONE 'UTC')::date;
            d_completed := 1;
        END IF;
    END IF;
    IF d_files = 0 AND d_bytes = 0 AND d_pending = 0 AND d_declared = 0 AND d_day IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_delta (tenant_id, shard, device_id, day, files, bytes, pending_uploads, pending_bytes,
                             upload_urls, upload_bytes, uploads_completed)
    VALUES (r.tenant_id, files_usage_shard(r.device_id, r.id), r.device_id, d_day, d_files, d_bytes, d_pending,
            d_declared, d_urls, d_url_bytes, d_completed);
    RETURN NULL;
END $$;

DROP FUNCTION files_count_day(uuid, uuid, date, integer, bigint, integer);
DROP FUNCTION files_count(files, integer);

-- Moves up to `batch` deltas into the counters, in one transaction; returns how many it moved.
-- One caller at a time: another returns 0 at once. Counter rows are locked in key order (as
-- the admission's share-out and the download counts do), so no two writers deadlock.
CREATE FUNCTION files_fold_usage(batch integer) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(files_fold_key()) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM usage_delta WHERE ctid = ANY (ARRAY(SELECT ctid FROM usage_delta LIMIT batch))
        RETURNING *
    ), tenants AS (
        INSERT INTO tenant_usage AS u (tenant_id, shard, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, shard, sum(files), sum(bytes), sum(pending_uploads), sum(pending_bytes)
          FROM gone GROUP BY tenant_id, shard ORDER BY tenant_id, shard
        ON CONFLICT (tenant_id, shard) DO UPDATE SET
            files = u.files + excluded.files,
            bytes = u.bytes + excluded.bytes,
            pending_uploads = u.pending_uploads + excluded.pending_uploads,
            pending_bytes = u.pending_bytes + excluded.pending_bytes
    ), devices AS (
        INSERT INTO device_usage AS u (tenant_id, device_id, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, device_id, sum(files), sum(bytes), sum(pending_uploads), sum(pending_bytes)
          FROM gone WHERE device_id IS NOT NULL GROUP BY tenant_id, device_id ORDER BY tenant_id, device_id
        ON CONFLICT (tenant_id, device_id) DO UPDATE SET
            files = u.files + excluded.files,
            bytes = u.bytes + excluded.bytes,
            pending_uploads = u.pending_uploads + excluded.pending_uploads,
            pending_bytes = u.pending_bytes + excluded.pending_bytes
    ), days AS (
        INSERT INTO device_daily AS d (tenant_id, device_id, day, upload_urls, upload_bytes, uploads_completed)
        SELECT tenant_id, device_id, day, sum(upload_urls), sum(upload_bytes), sum(uploads_completed)
          FROM gone WHERE device_id IS NOT NULL AND day IS NOT NULL
         GROUP BY tenant_id, device_id, day ORDER BY tenant_id, device_id, day
        ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
            upload_urls = d.upload_urls + excluded.upload_urls,
            upload_bytes = d.upload_bytes + excluded.upload_bytes,
            uploads_completed = d.uploads_completed + excluded.uploads_completed
    )
    SELECT count(*) INTO moved FROM gone;
    RETURN moved;
END $$;

-- MetadataStore::admit: whether a new record `p_id` of `size` bytes fits the quotas given
-- (NULL: no such quota). An admitted record is counted here, in place, in the rows the check
-- read (its tenant's shard, its device's usage and day), which stay locked until the
-- transaction commits: the INSERT follows in the same statement, and the next admission of
-- the same shard or device waits for this one, then sees it counted. Two instances cannot
-- both see the same room. The trigger does not count this INSERT again (`files.counted`).
-- Refusals raise SQLSTATE 'FQ001' with the quota's name as the message. Rows are locked in
-- one order: the tenant's shards, then the device's rows (as `files_fold_usage`).
--
-- The tenant's `bytes` and `files` quotas are split among its 64 shards (escrow): a shard's
-- `allowed_*` is the share it may fill without looking at the others, computed for the quota
-- in `quota_*`. The shares add up to at most the quota and a shard never holds more than its
-- share, so the tenant never holds more than its quota. The fast way reads the shard's
-- counters without the deltas not folded yet: completions (no change to a total when the
-- stored size is the declared one), deletions and expiries (releases), and records written
-- without the quota (by an instance that has not read it yet), so near its share it sees
-- less room than there is, never more. An upload that does not fit its shard's share (or
-- finds the share computed for another quota) takes the slow way, which is exact.
DROP FUNCTION files_admit(uuid, uuid, smallint, bigint, date, bigint, bigint, bigint, bigint);
CREATE FUNCTION files_admit(
    p_id uuid, p_tenant uuid, p_device uuid, p_shard smallint, p_size bigint, p_day date,
    q_bytes bigint, q_files bigint, q_pending bigint, q_daily bigint
) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    used_bytes bigint;
    used_files bigint;
    left_bytes bigint;
    left_files bigint;
    v_pending  bigint;
    v_declared bigint;
    fast       boolean;
BEGIN
    IF q_bytes IS NOT NULL OR q_files IS NOT NULL THEN
        -- The fast way: the shard's share has room; it is counted there at once. It runs in
        -- a subtransaction, rolled back when the share has no room: an UPDATE that waited for
        -- a concurrent change of the row and then found it no longer matching keeps the row
        -- locked, and a failed fast way must hold no row when it takes the slow one (which
        -- locks every shard: a deadlock otherwise).
        BEGIN
            UPDATE tenant_usage AS u
               SET pending_uploads = u.pending_uploads + 1, pending_bytes = u.pending_bytes + p_size
             WHERE u.tenant_id = p_tenant AND u.shard = p_shard
               AND u.quota_bytes IS NOT DISTINCT FROM q_bytes
               AND u.quota_files IS NOT DISTINCT FROM q_files
               AND (q_bytes IS NULL OR u.bytes + u.pending_bytes + p_size <= u.allowed_bytes)
               AND (q_files IS NULL OR u.files + u.pending_uploads + 1 <= u.allowed_files);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'no room in the shard' USING ERRCODE = 'FQ002';
            END IF;
            fast := true;
        EXCEPTION WHEN SQLSTATE 'FQ002' THEN
            fast := false;
        END;
        IF NOT fast THEN
            -- The slow way: one admission at a time per tenant takes every shard, in order,
            -- and checks the exact total (the counters and the deltas not folded yet).
            PERFORM pg_advisory_xact_lock(files_admit_key(p_tenant));
            INSERT INTO tenant_usage (tenant_id, shard)
                SELECT p_tenant, s FROM generate_series(0, 63) AS s
                ON CONFLICT (tenant_id, shard) DO NOTHING;
            PERFORM 1 FROM tenant_usage u WHERE u.tenant_id = p_tenant ORDER BY u.shard FOR UPDATE;
            SELECT sum(u.bytes + u.pending_bytes) + (
                       SELECT coalesce(sum(x.bytes + x.pending_bytes), 0) FROM usage_delta x WHERE x.tenant_id = p_tenant),
                   sum(u.files + u.pending_uploads) + (
                       SELECT coalesce(sum(x.files + x.pending_uploads), 0) FROM usage_delta x WHERE x.tenant_id = p_tenant)
              INTO used_bytes, used_files
              FROM tenant_usage u WHERE u.tenant_id = p_tenant;
            IF q_bytes IS NOT NULL AND used_bytes + p_size > q_bytes THEN
                RAISE EXCEPTION 'quota exceeded: bytes' USING ERRCODE = 'FQ001';
            END IF;
            IF q_files IS NOT NULL AND used_files + 1 > q_files THEN
                RAISE EXCEPTION 'quota exceeded: files' USING ERRCODE = 'FQ001';
            END IF;
            -- What is left after this upload, in equal shares; this upload's shard gets its
            -- size on top, and counts it.
            left_bytes := coalesce(q_bytes - used_bytes - p_size, 0) / 64;
            left_files := coalesce(q_files - used_files - 1, 0) / 64;
            UPDATE tenant_usage u SET
                quota_bytes = q_bytes,
                quota_files = q_files,
                pending_uploads = u.pending_uploads + CASE WHEN u.shard = p_shard THEN 1 ELSE 0 END,
                pending_bytes = u.pending_bytes + CASE WHEN u.shard = p_shard THEN p_size ELSE 0 END,
                allowed_bytes = u.bytes + u.pending_bytes + coalesce(d.bytes, 0) + left_bytes
                    + CASE WHEN u.shard = p_shard THEN p_size ELSE 0 END,
                allowed_files = u.files + u.pending_uploads + coalesce(d.files, 0) + left_files
                    + CASE WHEN u.shard = p_shard THEN 1 ELSE 0 END
              FROM generate_series(0, 63) AS s (shard)
              LEFT JOIN (SELECT x.shard, sum(x.bytes + x.pending_bytes) AS bytes,
                                sum(x.files + x.pending_uploads) AS files
                           FROM usage_delta x WHERE x.tenant_id = p_tenant GROUP BY x.shard) d
                ON d.shard = s.shard
             WHERE u.tenant_id = p_tenant AND u.shard = s.shard;
        END IF;
    ELSE
        -- No tenant quota: counted in its shard all the same.
        INSERT INTO tenant_usage AS u (tenant_id, shard, pending_uploads, pending_bytes)
        VALUES (p_tenant, p_shard, 1, p_size)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET
            pending_uploads = u.pending_uploads + 1, pending_bytes = u.pending_bytes + p_size;
    END IF;
    -- The device's rows: counted, then checked; over a quota, exactly, with the device's
    -- deltas not folded yet (completions and expiries release).
    IF p_device IS NOT NULL THEN
        INSERT INTO device_usage AS u (tenant_id, device_id, pending_uploads, pending_bytes)
        VALUES (p_tenant, p_device, 1, p_size)
        ON CONFLICT (tenant_id, device_id) DO UPDATE SET
            pending_uploads = u.pending_uploads + 1, pending_bytes = u.pending_bytes + p_size
        RETURNING u.pending_uploads INTO v_pending;
        INSERT INTO device_daily AS d (tenant_id, device_id, day, upload_urls, upload_bytes)
        VALUES (p_tenant, p_device, p_day, 1, p_size)
        ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
            upload_urls = d.upload_urls + 1, upload_bytes = d.upload_bytes + p_size
        RETURNING d.upload_bytes INTO v_declared;
        IF (q_pending IS NOT NULL AND v_pending > q_pending) OR (q_daily IS NOT NULL AND v_declared > q_daily) THEN
            SELECT v_pending + coalesce(sum(y.pending_uploads), 0),
                   v_declared + coalesce(sum(y.upload_bytes) FILTER (WHERE y.day = p_day), 0)
              INTO v_pending, v_declared
              FROM usage_delta y
             WHERE y.tenant_id = p_tenant AND y.shard = p_shard AND y.device_id = p_device;
            IF q_pending IS NOT NULL AND v_pending > q_pending THEN
                RAISE EXCEPTION 'quota exceeded: device_pending_uploads' USING ERRCODE = 'FQ001';
            END IF;
            IF q_daily IS NOT NULL AND v_declared > q_daily THEN
                RAISE EXCEPTION 'quota exceeded: device_bytes_per_day' USING ERRCODE = 'FQ001';
            END IF;
        END IF;
    END IF;
    -- The trigger counts every change but this INSERT, counted here.
    PERFORM set_config('files.counted', p_id::text, true);
    RETURN true;
END $$;


-- Rebuilds the counts of one tenant from its records (the downloads of `device_daily`, which
-- no record keeps, stay as they are). Its deltas are dropped in the same snapshot as the
-- records are read, so what commits later is counted once, by its own delta. The quota shares
-- are dropped, so the next upload under quotas shares out again.
CREATE OR REPLACE FUNCTION files_recount_usage(tenant uuid) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(files_fold_key());
    PERFORM pg_advisory_xact_lock(files_admit_key(tenant));
    PERFORM 1 FROM tenant_usage u WHERE u.tenant_id = tenant ORDER BY u.shard FOR UPDATE;
    PERFORM 1 FROM device_usage u WHERE u.tenant_id = tenant ORDER BY u.device_id FOR UPDATE;
    PERFORM 1 FROM device_daily d WHERE d.tenant_id = tenant ORDER BY d.device_id, d.day FOR UPDATE;
    DELETE FROM tenant_usage WHERE tenant_id = tenant;
    DELETE FROM device_usage WHERE tenant_id = tenant;
    UPDATE device_daily SET upload_urls = 0, upload_bytes = 0, uploads_completed = 0 WHERE tenant_id = tenant;
    WITH gone AS (
        DELETE FROM usage_delta WHERE tenant_id = tenant
    ), records AS (
        SELECT * FROM files WHERE tenant_id = tenant
    ), shards AS (
        INSERT INTO tenant_usage (tenant_id, shard, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, files_usage_shard(device_id, id),
               count(*) FILTER (WHERE state = 'available'),
               coalesce(sum(size) FILTER (WHERE state = 'available'), 0),
               count(*) FILTER (WHERE state = 'pending'),
               coalesce(sum(size) FILTER (WHERE state = 'pending'), 0)
          FROM records GROUP BY 1, 2
    ), devices AS (
        INSERT INTO device_usage (tenant_id, device_id, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, device_id,
               count(*) FILTER (WHERE state = 'available'),
               coalesce(sum(size) FILTER (WHERE state = 'available'), 0),
               count(*) FILTER (WHERE state = 'pending'),
               coalesce(sum(size) FILTER (WHERE state = 'pending'), 0)
          FROM records WHERE device_id IS NOT NULL GROUP BY 1, 2
    ), days AS (
        SELECT tenant_id, device_id, (created_at AT TIME ZONE 'UTC')::date AS day,
               count(*) AS upload_urls, coalesce(sum(size), 0) AS upload_bytes, 0 AS uploads_completed
          FROM records WHERE device_id IS NOT NULL GROUP BY 1, 2, 3
        UNION ALL
        SELECT tenant_id, device_id, (completed_at AT TIME ZONE 'UTC')::date, 0, 0, count(*)
          FROM records WHERE device_id IS NOT NULL AND completed_at IS NOT NULL GROUP BY 1, 2, 3
    )
    INSERT INTO device_daily AS d (tenant_id, device_id, day, upload_urls, upload_bytes, uploads_completed)
    SELECT tenant_id, device_id, day, sum(upload_urls), sum(upload_bytes), sum(uploads_completed)
      FROM days GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
        upload_urls = excluded.upload_urls,
        upload_bytes = excluded.upload_bytes,
        uploads_completed = excluded.uploads_completed;
END $$;
