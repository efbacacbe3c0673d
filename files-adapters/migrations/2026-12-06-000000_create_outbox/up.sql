-- The transactional outbox: one row per `file.uploaded` event, recorded in the transaction that
-- marks its file available (MetadataStore::mark_available), published by the relay
-- (files_core::relay) through the Outbox port. Rows are kept once sent (sent_at set); a later
-- clean-up can delete old sent rows.
CREATE TABLE outbox (
    event_id     uuid        PRIMARY KEY,
    -- Recording order: events are claimed oldest first.
    seq          bigserial   NOT NULL,
    -- The event's JSON (serde_json of files_core::FileUploaded).
    payload      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL,
    -- A relay claimed the event until then (the database's clock); NULL when free.
    leased_until timestamptz NULL,
    -- When it was published; NULL while it waits.
    sent_at      timestamptz NULL
);

-- Outbox::claim and Outbox::stats look only at unsent events, in order:
--   WHERE sent_at IS NULL AND (leased_until IS NULL OR leased_until <= now()) ORDER BY seq LIMIT $n
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
