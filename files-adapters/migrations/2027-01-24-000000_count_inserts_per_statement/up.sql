-- New records are counted per statement, not per row. The store writes the uploads recorded
-- at the same moment as one multi-row INSERT (`postgres/batch.rs`); counted per row, each
-- record appended a delta row of its own through a PL/pgSQL call, which doubled the cost of
-- its INSERT. Counted per statement, the INSERT appends one delta per tenant shard, device
-- and day, whatever the number of records. What is counted is unchanged (the row trigger's
-- INSERT branch in 2027-01-10-000000_usage_deltas): an available record counts in `files`
-- and `bytes`, a pending one in `pending_uploads` and `pending_bytes` at its declared size,
-- and a device's record in its day's `upload_urls` and `upload_bytes`. Deletions and changes
-- stay counted per row.
DROP TRIGGER files_usage ON files;
CREATE TRIGGER files_usage_delete AFTER DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION files_usage_trigger();

CREATE FUNCTION files_usage_inserted() RETURNS trigger
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
     -- The records an INSERT admitted are counted already, by `files_admit`: `files.counted`
     -- lists them (one id, or a batch's ids separated by commas).
     WHERE NOT (id::text = ANY (string_to_array(coalesce(current_setting('files.counted', true), ''), ',')))
     GROUP BY 1, 2, 3, 4
    -- As the row trigger: a record that is neither available nor pending, and not a device's,
    -- counts nowhere.
    HAVING device_id IS NOT NULL OR count(*) FILTER (WHERE state IN ('available', 'pending')) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER files_usage_insert AFTER INSERT ON files
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION files_usage_inserted();
