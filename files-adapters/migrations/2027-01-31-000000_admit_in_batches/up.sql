-- Admissions under quotas in batches, as new records without quotas are written
-- (`postgres/batch.rs`): one statement admits and records several uploads.
--
-- A batch takes the fast way only, as a set: each of its shards must have room in its share
-- for all of the batch's records in it, and each of its devices for all of its records,
-- counted without the deltas not folded yet (as `files_admit` counts). Anything else (a shard
-- without room or without its share, a device over a quota) raises 'FQ003', and the store
-- admits that batch's records one at a time with `files_admit`, which is exact (the slow way,
-- the deltas, the refusals).
--
-- Locks are taken in the order `files_fold_usage` takes them: the batch's shards, then its
-- devices' usage, then their days, each sorted. A single admission takes its shard, then its
-- device's rows (a device's rows are in its shard), and the slow way every shard in order, then
-- the device's: no two of them can wait for each other in a cycle.

-- Admits the records `p_ids` (with their tenants, devices, declared sizes and days, and each
-- one's quotas, NULL: none) or raises 'FQ003'. Returns true.
CREATE FUNCTION files_admit_batch(
    p_ids uuid[], p_tenants uuid[], p_devices uuid[], p_sizes bigint[], p_days date[],
    q_bytes bigint[], q_files bigint[], q_pending bigint[], q_daily bigint[]
) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    g record;
    v bigint;
BEGIN
    FOR g IN
        SELECT x.t, files_usage_shard(x.d, x.i) AS shard, x.qb, x.qf, count(*) AS n, sum(x.s) AS bytes
          FROM unnest(p_tenants, p_devices, p_ids, p_sizes, q_bytes, q_files) AS x (t, d, i, s, qb, qf)
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2
    LOOP
        IF g.qb IS NOT NULL OR g.qf IS NOT NULL THEN
            UPDATE tenant_usage AS u
               SET pending_uploads = u.pending_uploads + g.n, pending_bytes = u.pending_bytes + g.bytes
             WHERE u.tenant_id = g.t AND u.shard = g.shard
               AND u.quota_bytes IS NOT DISTINCT FROM g.qb
               AND u.quota_files IS NOT DISTINCT FROM g.qf
               AND (g.qb IS NULL OR u.bytes + u.pending_bytes + g.bytes <= u.allowed_bytes)
               AND (g.qf IS NULL OR u.files + u.pending_uploads + g.n <= u.allowed_files);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'a shard without room for the batch' USING ERRCODE = 'FQ003';
            END IF;
        ELSE
            INSERT INTO tenant_usage AS u (tenant_id, shard, pending_uploads, pending_bytes)
            VALUES (g.t, g.shard, g.n, g.bytes)
            ON CONFLICT (tenant_id, shard) DO UPDATE SET
                pending_uploads = u.pending_uploads + g.n, pending_bytes = u.pending_bytes + g.bytes;
        END IF;
    END LOOP;
    FOR g IN
        SELECT x.t, x.d, min(x.qp) AS qp, count(*) AS n, sum(x.s) AS bytes
          FROM unnest(p_tenants, p_devices, p_sizes, q_pending) AS x (t, d, s, qp)
         WHERE x.d IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    LOOP
        INSERT INTO device_usage AS u (tenant_id, device_id, pending_uploads, pending_bytes)
        VALUES (g.t, g.d, g.n, g.bytes)
        ON CONFLICT (tenant_id, device_id) DO UPDATE SET
            pending_uploads = u.pending_uploads + g.n, pending_bytes = u.pending_bytes + g.bytes
        RETURNING u.pending_uploads INTO v;
        IF g.qp IS NOT NULL AND v > g.qp THEN
            RAISE EXCEPTION 'a device over its pending uploads in the batch' USING ERRCODE = 'FQ003';
        END IF;
    END LOOP;
    FOR g IN
        SELECT x.t, x.d, x.day, min(x.qd) AS qd, count(*) AS n, sum(x.s) AS bytes
          FROM unnest(p_tenants, p_devices, p_days, p_sizes, q_daily) AS x (t, d, day, s, qd)
         WHERE x.d IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    LOOP
        INSERT INTO device_daily AS u (tenant_id, device_id, day, upload_urls, upload_bytes)
        VALUES (g.t, g.d, g.day, g.n, g.bytes)
        ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET
            upload_urls = u.upload_urls + g.n, upload_bytes = u.upload_bytes + g.bytes
        RETURNING u.upload_bytes INTO v;
        IF g.qd IS NOT NULL AND v > g.qd THEN
            RAISE EXCEPTION 'a device over its bytes of the day in the batch' USING ERRCODE = 'FQ003';
        END IF;
    END LOOP;
    -- The statement trigger skips what was counted here (2027-01-24-000000_count_inserts_per_statement).
    PERFORM set_config('files.counted', array_to_string(p_ids, ','), true);
    RETURN true;
END $$;
