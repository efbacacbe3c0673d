-- The query plans of the hot statements, run by scripts/bench on the rows server's table (10
-- million rows of other tenants) after its measurements: each statement as the service sends
-- it (the text of files-adapters/src/postgres, with the bench tenant's values), under EXPLAIN
-- (ANALYZE, BUFFERS). Writes are rolled back. psql variables: tenant, device, file (an
-- available file of that device).
\pset pager off
\set QUIET on
SET plan_cache_mode = force_generic_plan;

\echo '== download-url by name: MetadataStore::latest in a device root (on a cache miss)'
PREPARE latest(uuid, uuid, text, text) AS
  SELECT * FROM files WHERE tenant_id = $1 AND device_id = $2 AND name = $3 AND state = $4
  ORDER BY id DESC LIMIT 1;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) EXECUTE latest(:'tenant', :'device', 'bench/seed-0.txt', 'available');

\echo '== list: MetadataStore::list in a device root, first page of 20'
PREPARE list(uuid, uuid, text, bigint) AS
  SELECT * FROM files WHERE tenant_id = $1 AND device_id = $2 AND state = $3 ORDER BY id DESC LIMIT $4;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) EXECUTE list(:'tenant', :'device', 'available', 21);

\echo '== complete, get by id: MetadataStore::get'
PREPARE get(uuid, uuid) AS SELECT * FROM files WHERE id = $1 AND tenant_id = $2;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) EXECUTE get(:'file', :'tenant');

\echo '== upload-url: the INSERT of a pending record (its usage trigger included; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
INSERT INTO files (id, tenant_id, device_id, name, sha256, size, content_type, state, created_at,
                   upload_expires_at)
VALUES (gen_random_uuid(), :'tenant', :'device', 'bench/upload.bin', sha256('bench'::bytea), 1048576,
        NULL, 'pending', now(), now() + interval '15 minutes');
ROLLBACK;

\echo '== upload-url under load: a batch of 32 pending records in one INSERT from unnest (batch.rs; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
INSERT INTO files (id, tenant_id, device_id, name, sha256, size, content_type, state, created_at, completed_at,
                   upload_id, part_size, part_sha256, multipart_expires_at, upload_expires_at)
SELECT * FROM unnest(
  ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 32)), array_fill(:'tenant'::uuid, ARRAY[32]),
  array_fill(:'device'::uuid, ARRAY[32]), array_fill('bench/upload.bin'::text, ARRAY[32]),
  array_fill(sha256('bench'::bytea), ARRAY[32]), array_fill(1048576::int8, ARRAY[32]),
  array_fill(NULL::text, ARRAY[32]), array_fill('pending'::text, ARRAY[32]), array_fill(now(), ARRAY[32]),
  array_fill(NULL::timestamptz, ARRAY[32]), array_fill(NULL::text, ARRAY[32]), array_fill(NULL::int8, ARRAY[32]),
  array_fill(NULL::bytea, ARRAY[32]), array_fill(NULL::timestamptz, ARRAY[32]),
  array_fill(now() + interval '15 minutes', ARRAY[32]));
ROLLBACK;

\echo '== complete of a pending upload: mark_available (rolled back)'
BEGIN;
UPDATE files SET state = 'pending', completed_at = NULL WHERE id = :'file';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
UPDATE files SET state = 'available', completed_at = now()
WHERE id = :'file' AND tenant_id = :'tenant' AND state = 'pending';
ROLLBACK;

\echo '== janitor: claim_stale (Housekeeping::claim_stale; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
UPDATE files SET janitor_leased_until = now() + interval '5 minutes'
WHERE id IN (
  SELECT id FROM files
  WHERE state IN ('pending', 'deleted', 'expired') AND upload_expires_at < now() - interval '1 hour'
    AND (janitor_leased_until IS NULL OR janitor_leased_until <= now())
  ORDER BY upload_expires_at LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING id;
ROLLBACK;

\echo '== janitor: claim_retained (Housekeeping::claim_retained, 1,000 tenants with retention; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
UPDATE files SET janitor_leased_until = now() + interval '5 minutes'
WHERE id IN (
  SELECT f.id FROM files f JOIN tenant_settings s ON s.tenant_id = f.tenant_id
  WHERE s.settings ? 'retention_secs'
    AND jsonb_typeof(s.settings -> 'retention_secs') = 'number'
    AND f.state = 'available' AND f.device_id IS NOT NULL
    AND f.completed_at < now() - make_interval(secs => least((s.settings ->> 'retention_secs')::double precision, 1e11))
    AND (f.janitor_leased_until IS NULL OR f.janitor_leased_until <= now())
  ORDER BY f.completed_at LIMIT 100 FOR UPDATE OF f SKIP LOCKED)
RETURNING id;
ROLLBACK;

\echo '== janitor: count_pending (Housekeeping::count_pending)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) SELECT count(*) FROM files WHERE state = 'pending';

\echo '== janitor: prune_sent'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
DELETE FROM outbox WHERE event_id IN (
  SELECT event_id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < now() - interval '1 day' LIMIT 100);
ROLLBACK;

\echo '== usage: one fold of the deltas (files_fold_usage; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) SELECT files_fold_usage(50000);
ROLLBACK;
