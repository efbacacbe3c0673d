-- The life of an upload: the `expired` state, until when an upload can still put bytes in the
-- store, and the janitor's leases.
ALTER TABLE files DROP CONSTRAINT files_state_check;
ALTER TABLE files ADD CONSTRAINT files_state_check
    CHECK (state IN ('pending', 'available', 'deleted', 'expired'));
ALTER TABLE files
    -- Until when the upload URL (or the multipart upload) can put bytes in the store; NULL for
    -- API 1.0 rows and once the janitor swept a deleted file's object.
    ADD COLUMN upload_expires_at timestamptz NULL,
    -- A janitor working on the row until then (on the database's clock).
    ADD COLUMN janitor_leased_until timestamptz NULL;

-- Housekeeping::claim_stale:
--   WHERE state IN ('pending', 'deleted') AND upload_expires_at < $1 ... ORDER BY upload_expires_at
CREATE INDEX files_stale ON files (upload_expires_at)
    WHERE state IN ('pending', 'deleted') AND upload_expires_at IS NOT NULL;

-- Housekeeping::count_pending: WHERE state = 'pending' (an index-only count).
CREATE INDEX files_pending ON files (id) WHERE state = 'pending';

-- Housekeeping::prune_sent: WHERE sent_at < $1.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
