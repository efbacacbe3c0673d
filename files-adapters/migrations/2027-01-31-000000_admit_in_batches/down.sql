DROP FUNCTION files_admit_batch(uuid[], uuid[], uuid[], bigint[], date[], bigint[], bigint[], bigint[], bigint[]);
CREATE OR REPLACE FUNCTION files_usage_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_delta (tenant_id, shard, device_id, day, files, bytes, pending_uploads, pending_bytes,
                             upload_urls, upload_bytes, uploads_completed)
    SELECT tenant_id, files_usage_shard(device_id, id), device_id,
           CASE WHEN device_id IS NOT NULL THEN (created_at AT TIME ZONE 'UTC')::date END,
           count(*) FILTER (WHERE state = 'available'),
           coalesce(sum(size) FILTER (WHERE state = 'available'), 0),
           count(*) FILTER (WHERE state = 'pending'),
           coalesce(sum(size) FILTER (WHERE state = 'pending'), 0),
           CASE WHEN device_id IS NOT NULL THEN count(*) ELSE 0 END,
           CASE WHEN device_id IS NOT NULL THEN coalesce(sum(size), 0) ELSE 0 END,
           0
      FROM inserted
     WHERE id::text IS DISTINCT FROM current_setting('files.counted', true)
     GROUP BY 1, 2, 3, 4
    HAVING device_id IS NOT NULL OR count(*) FILTER (WHERE state IN ('available', 'pending')) > 0;
    RETURN NULL;
END $$;
