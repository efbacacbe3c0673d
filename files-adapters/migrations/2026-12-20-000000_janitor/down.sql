DROP INDEX outbox_sent;
DROP INDEX files_pending;
DROP INDEX files_stale;
ALTER TABLE files DROP COLUMN janitor_leased_until, DROP COLUMN upload_expires_at;
ALTER TABLE files DROP CONSTRAINT files_state_check;
ALTER TABLE files ADD CONSTRAINT files_state_check CHECK (state IN ('pending', 'available', 'deleted'));
