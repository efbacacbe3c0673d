ALTER TABLE files
    DROP CONSTRAINT files_multipart_all_or_none,
    DROP COLUMN multipart_expires_at,
    DROP COLUMN part_sha256,
    DROP COLUMN part_size,
    DROP COLUMN upload_id;
