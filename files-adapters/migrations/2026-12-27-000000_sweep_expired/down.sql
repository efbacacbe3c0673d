DROP INDEX files_stale;
CREATE INDEX files_stale ON files (upload_expires_at)
    WHERE state IN ('pending', 'deleted') AND upload_expires_at IS NOT NULL;
