-- The metadata of files: one row per version of a file. The source of truth of the service.
CREATE TABLE files (
    -- UUIDv7: ordering by id is ordering by creation, so "newest" is "highest id".
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    -- NULL for a tenant-root file, else the device whose root holds it.
    device_id    uuid        NULL,
    name         text        NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
    sha256       bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    size         bigint      NULL CHECK (size >= 0),
    content_type text        NULL CHECK (octet_length(content_type) <= 255),
    state        text        NOT NULL CHECK (state IN ('pending', 'available', 'deleted')),
    created_at   timestamptz NOT NULL,
    completed_at timestamptz NULL
);

-- Every index comes in two partial halves, device roots (device_id IS NOT NULL) and tenant
-- roots (device_id IS NULL): a plain index on (tenant_id, device_id, ...) can find the
-- `device_id IS NULL` rows but cannot hand them over in id order (IS NULL is not an equality
-- to the planner), so the tenant-root queries would sort every version of a name or of a
-- whole root before applying LIMIT. The queries filter with `device_id = $n` (which implies
-- the device half's predicate) or `device_id IS NULL`.

-- MetadataStore::latest in a device root:
--   WHERE tenant_id = $1 AND device_id = $2 AND name = $3 AND state = $4 ORDER BY id DESC LIMIT 1
CREATE INDEX files_latest_device ON files (tenant_id, device_id, name, state, id DESC)
    WHERE device_id IS NOT NULL;

-- MetadataStore::latest in a tenant root:
--   WHERE tenant_id = $1 AND device_id IS NULL AND name = $2 AND state = $3 ORDER BY id DESC LIMIT 1
CREATE INDEX files_latest_tenant ON files (tenant_id, name, state, id DESC)
    WHERE device_id IS NULL;

-- MetadataStore::list in a device root, newest first, keyset-paged on id:
--   WHERE tenant_id = $1 AND device_id = $2 AND state = $3 [AND id < $4] ORDER BY id DESC LIMIT $5
CREATE INDEX files_list_device ON files (tenant_id, device_id, state, id DESC)
    WHERE device_id IS NOT NULL;

-- MetadataStore::list in a tenant root, newest first, keyset-paged on id:
--   WHERE tenant_id = $1 AND device_id IS NULL AND state = $2 [AND id < $3] ORDER BY id DESC LIMIT $4
CREATE INDEX files_list_tenant ON files (tenant_id, state, id DESC)
    WHERE device_id IS NULL;

-- get, mark_available and mark_deleted go by id: the primary key (tenant_id is checked on
-- the one row it finds).
