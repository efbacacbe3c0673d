-- Admissions under quotas in batches, as new records without quotas are written
-- (`postgres/batch.rs`): one statement admits and records several uploads, each checked and
-- counted by `files_admit` as before, in one transaction.
--
-- Deadlocks: a batch takes the admission lock of each of its tenants (in tenant order), then
-- every counter row it will touch, in the order `files_fold_usage` takes them (the shards,
-- then the devices' usage, then their days, each sorted), inserting those missing; only then
-- does it admit its records. A single admission takes its shard, then its device's rows; a
-- device's rows are in its shard, so whoever holds them holds the shard first. What can still
-- wait in a cycle is an admission's slow way (every shard of the tenant) against the fold:
-- PostgreSQL then cancels one, and the store admits that batch's records one at a time.

-- Admits the records `p_ids` (with their tenants, devices, declared sizes and days, and each
-- one's quotas, NULL: none) in the order of their counter rows, or raises as `files_admit`
-- does at the first refusal (the statement, and so the batch, fails whole). Returns true.
CREATE FUNCTION files_admit_batch(
    p_ids uuid[], p_tenants uuid[], p_devices uuid[], p_sizes bigint[], p_days date[],
    q_bytes bigint[], q_files bigint[], q_pending bigint[], q_daily bigint[]
) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    counted text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(files_admit_key(t))
       FROM (SELECT DISTINCT t FROM unnest(p_tenants) AS x (t) ORDER BY t) AS tenants;
    INSERT INTO tenant_usage AS u (tenant_id, shard)
    SELECT DISTINCT t, files_usage_shard(d, i) FROM unnest(p_tenants, p_devices, p_ids) AS x (t, d, i)
     ORDER BY 1, 2
    ON CONFLICT (tenant_id, shard) DO UPDATE SET shard = u.shard;
    INSERT INTO device_usage AS u (tenant_id, device_id)
    SELECT DISTINCT t, d FROM unnest(p_tenants, p_devices) AS x (t, d) WHERE d IS NOT NULL
     ORDER BY 1, 2
    ON CONFLICT (tenant_id, device_id) DO UPDATE SET device_id = u.device_id;
    INSERT INTO device_daily AS u (tenant_id, device_id, day)
    SELECT DISTINCT t, d, day FROM unnest(p_tenants, p_devices, p_days) AS x (t, d, day) WHERE d IS NOT NULL
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, device_id, day) DO UPDATE SET day = u.day;
    FOR r IN
        SELECT * FROM unnest(p_ids, p_tenants, p_devices, p_sizes, p_days, q_bytes, q_files, q_pending, q_daily)
            AS x (id, tenant, device, size, day, qb, qf, qp, qd)
         ORDER BY tenant, files_usage_shard(device, id), device
    LOOP
        PERFORM files_admit(r.id, r.tenant, r.device, files_usage_shard(r.device, r.id), r.size, r.day,
                            r.qb, r.qf, r.qp, r.qd);
        counted := counted || r.id::text;
    END LOOP;
    -- The statement trigger skips what was counted here (2027-01-24-000000_count_inserts_per_statement).
    PERFORM set_config('files.counted', array_to_string(counted, ','), true);
    RETURN true;
END $$;
