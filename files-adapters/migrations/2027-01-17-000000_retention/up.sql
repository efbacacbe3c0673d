-- Retention (API 1.2): the janitor deletes a tenant's available device-root files older than
-- its `retention_secs`.
--
-- Housekeeping::claim_retained, per tenant whose settings set `retention_secs`:
--   WHERE tenant_id = s.tenant_id AND state = 'available' AND device_id IS NOT NULL
--     AND completed_at < $now - retention
-- EXPLAIN (200 tenants, 100k files) shows a nested loop over `tenant_settings` with a bitmap
-- index scan of this index per tenant with retention (Index Cond: tenant_id = s.tenant_id AND
-- completed_at < ...): only the files past retention are read, never a tenant's other files,
-- and the files of tenants without retention not at all.
CREATE INDEX files_retained ON files (tenant_id, completed_at)
    WHERE state = 'available' AND device_id IS NOT NULL;
