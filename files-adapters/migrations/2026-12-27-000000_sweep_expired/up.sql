-- The janitor expires an abandoned upload before it clears the store (state first, store
-- second), so an expired row keeps `upload_expires_at` until its upload is cleared (swept),
-- like a deleted one. Housekeeping::claim_stale:
--   WHERE state IN ('pending', 'deleted', 'expired') AND upload_expires_at < $1 ... ORDER BY upload_expires_at
DROP INDEX files_stale;
CREATE INDEX files_stale ON files (upload_expires_at)
    WHERE state IN ('pending', 'deleted', 'expired') AND upload_expires_at IS NOT NULL;
