-- Back to counters written by the trigger: the deltas are folded in first, then the
-- functions of 2027-01-03-000000_tenancy are restored. Run it with the service stopped.
SELECT files_fold_usage(2147483647);
DROP FUNCTION files_admit(uuid, uuid, uuid, smallint, bigint, date, bigint, bigint, bigint, bigint);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM usage_delta) THEN
        RAISE EXCEPTION 'usage deltas are left (a fold was running): run this again';
    END IF;
END $$;

CREATE FUNCTION files_count(r files, sign integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    available integer := CASE WHEN r.state = 'available' THEN sign ELSE 0 END;
    pending   integer := CASE WHEN r.state = 'pending' THEN sign ELSE 0 END;
    size      bigint  := coalesce(r.size, 0);
BEGIN
    IF available = 0 AND pending = 0 THEN
        RETURN;
    END IF;
    INSERT INTO tenant_usage AS u (tenant_id, shard, files, bytes, pending_uploads, pending_bytes)
    VALUES (r.tenant_id, files_usage_shard(r.device_id, r.id), available, available * size, pending, pending * size)
    ON CONFLICT (tenant_id, shard) DO UPDATE SET
        files = u.files + excluded.files,
        bytes = u.bytes + excluded.bytes,
        pending_uploads = u.pending_uploads + excluded.pending_uploads,
        pending_bytes = u.pending_bytes + excluded.pending_bytes;
    IF r.device_id IS NOT NULL THEN
        INSERT INTO device_usage AS u (tenant_id, device_id, files, bytes, pending_uploads, pending_bytes)
        VALUES (r.tenant_id, r.device_id, available, available * size, pending, pending * size)
        ON CONFLICT (tenant_id, device_id) DO UPDATE SET
            files = u.files + excluded.files,
            bytes = u.bytes + excluded.bytes,
            pending_uploads = u.pending_uploads + excluded.pending_uploads,
            pending_bytes = u.pending_bytes + excluded.pending_bytes;
    END IF;
END $$;

CREATE FUNCTION files_count_day(
    tenant uuid, device uuid, day date, upload_urls integer, upload_bytes bigint, uploads_completed integer
) RETURNS void
    LANGUAGE sql AS $$
    INSERT INTO device_daily AS d (tenant_id, device_id, day, upload_urls, upload_bytes, uploads_completed)
    VALUES (tenant, device, day, upload_urls, upload_bytes, uploads_completed)
    ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
        upload_urls = d.upload_urls + excluded.upload_urls,
        upload_bytes = d.upload_bytes + excluded.upload_bytes,
        uploads_completed = d.uploads_completed + excluded.uploads_completed
$$;

CREATE OR REPLACE FUNCTION files_usage_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM files_count(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM files_count(NEW, 1);
    END IF;
    IF NEW.device_id IS NOT NULL THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM files_count_day(NEW.tenant_id, NEW.device_id, (NEW.created_at AT TIME ZONE 'UTC')::date,
                                    1, coalesce(NEW.size, 0), 0);
        ELSIF TG_OP = 'UPDATE' AND NEW.state = 'available' AND OLD.state <> 'available'
              AND NEW.completed_at IS NOT NULL THEN
            PERFORM files_count_day(NEW.tenant_id, NEW.device_id, (NEW.completed_at AT TIME ZONE 'UTC')::date,
                                    0, 0, 1);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION files_admit(
    p_tenant uuid, p_device uuid, p_shard smallint, p_size bigint, p_day date,
    q_bytes bigint, q_files bigint, q_pending bigint, q_daily bigint
) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    used_bytes bigint;
    used_files bigint;
    left_bytes bigint;
    left_files bigint;
    pending    bigint;
    declared   bigint;
    fast       boolean;
BEGIN
    IF q_bytes IS NOT NULL OR q_files IS NOT NULL THEN
        -- The fast way: the shard's share has room. It runs in a subtransaction that is rolled
        -- back when it fails: an UPDATE that waited for a concurrent change of the row and then
        -- found it no longer matching keeps the row locked, and a failed fast way must hold no
        -- lock when it takes the slow one (which locks every shard: a deadlock otherwise).
        BEGIN
            UPDATE tenant_usage AS u SET shard = u.shard
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
            -- The slow way: one admission at a time per tenant takes every shard, in order.
            PERFORM pg_advisory_xact_lock(hashtextextended('files_admit:' || p_tenant::text, 0));
            INSERT INTO tenant_usage (tenant_id, shard)
                SELECT p_tenant, s FROM generate_series(0, 63) AS s
                ON CONFLICT (tenant_id, shard) DO NOTHING;
            PERFORM 1 FROM tenant_usage u WHERE u.tenant_id = p_tenant ORDER BY u.shard FOR UPDATE;
            SELECT sum(u.bytes + u.pending_bytes), sum(u.files + u.pending_uploads)
              INTO used_bytes, used_files
              FROM tenant_usage u WHERE u.tenant_id = p_tenant;
            IF q_bytes IS NOT NULL AND used_bytes + p_size > q_bytes THEN
                RAISE EXCEPTION 'quota exceeded: bytes' USING ERRCODE = 'FQ001';
            END IF;
            IF q_files IS NOT NULL AND used_files + 1 > q_files THEN
                RAISE EXCEPTION 'quota exceeded: files' USING ERRCODE = 'FQ001';
            END IF;
            -- What is left after this upload, in equal shares; this upload's shard gets its size
            -- on top.
            left_bytes := coalesce(q_bytes - used_bytes - p_size, 0) / 64;
            left_files := coalesce(q_files - used_files - 1, 0) / 64;
            UPDATE tenant_usage u SET
                quota_bytes = q_bytes,
                quota_files = q_files,
                allowed_bytes = u.bytes + u.pending_bytes + left_bytes
                    + CASE WHEN u.shard = p_shard THEN p_size ELSE 0 END,
                allowed_files = u.files + u.pending_uploads + left_files
                    + CASE WHEN u.shard = p_shard THEN 1 ELSE 0 END
             WHERE u.tenant_id = p_tenant;
        END IF;
    END IF;
    IF p_device IS NOT NULL AND q_pending IS NOT NULL THEN
        INSERT INTO device_usage (tenant_id, device_id) VALUES (p_tenant, p_device)
            ON CONFLICT (tenant_id, device_id) DO NOTHING;
        SELECT u.pending_uploads INTO pending FROM device_usage u
         WHERE u.tenant_id = p_tenant AND u.device_id = p_device FOR UPDATE;
        IF pending + 1 > q_pending THEN
            RAISE EXCEPTION 'quota exceeded: device_pending_uploads' USING ERRCODE = 'FQ001';
        END IF;
    END IF;
    IF p_device IS NOT NULL AND q_daily IS NOT NULL THEN
        INSERT INTO device_daily (tenant_id, device_id, day) VALUES (p_tenant, p_device, p_day)
            ON CONFLICT (tenant_id, device_id, day) DO NOTHING;
        SELECT d.upload_bytes INTO declared FROM device_daily d
         WHERE d.tenant_id = p_tenant AND d.device_id = p_device AND d.day = p_day FOR UPDATE;
        IF declared + p_size > q_daily THEN
            RAISE EXCEPTION 'quota exceeded: device_bytes_per_day' USING ERRCODE = 'FQ001';
        END IF;
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION files_recount_usage(tenant uuid) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('files_admit:' || tenant::text, 0));
    DELETE FROM tenant_usage WHERE tenant_id = tenant;
    DELETE FROM device_usage WHERE tenant_id = tenant;
    INSERT INTO tenant_usage (tenant_id, shard, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, files_usage_shard(device_id, id),
               count(*) FILTER (WHERE state = 'available'),
               coalesce(sum(size) FILTER (WHERE state = 'available'), 0),
               count(*) FILTER (WHERE state = 'pending'),
               coalesce(sum(size) FILTER (WHERE state = 'pending'), 0)
          FROM files WHERE tenant_id = tenant GROUP BY 1, 2;
    INSERT INTO device_usage (tenant_id, device_id, files, bytes, pending_uploads, pending_bytes)
        SELECT tenant_id, device_id,
               count(*) FILTER (WHERE state = 'available'),
               coalesce(sum(size) FILTER (WHERE state = 'available'), 0),
               count(*) FILTER (WHERE state = 'pending'),
               coalesce(sum(size) FILTER (WHERE state = 'pending'), 0)
          FROM files WHERE tenant_id = tenant AND device_id IS NOT NULL GROUP BY 1, 2;
    UPDATE device_daily SET upload_urls = 0, upload_bytes = 0, uploads_completed = 0 WHERE tenant_id = tenant;
    INSERT INTO device_daily AS d (tenant_id, device_id, day, upload_urls, upload_bytes)
        SELECT tenant_id, device_id, (created_at AT TIME ZONE 'UTC')::date, count(*), coalesce(sum(size), 0)
          FROM files WHERE tenant_id = tenant AND device_id IS NOT NULL GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
            upload_urls = excluded.upload_urls, upload_bytes = excluded.upload_bytes;
    INSERT INTO device_daily AS d (tenant_id, device_id, day, uploads_completed)
        SELECT tenant_id, device_id, (completed_at AT TIME ZONE 'UTC')::date, count(*)
          FROM files WHERE tenant_id = tenant AND device_id IS NOT NULL AND completed_at IS NOT NULL
         GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET uploads_completed = excluded.uploads_completed;
END $$;

DROP FUNCTION files_fold_usage(integer);
DROP FUNCTION files_fold_key();
DROP FUNCTION files_admit_key(uuid);
DROP TABLE usage_delta;
