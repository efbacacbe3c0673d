-- Multipart uploads (API 1.1): the store's upload id, the part plan (the part size and each
-- part's SHA-256, 32 bytes each, concatenated in part order) and when the upload expires.
-- All four are NULL for a single PUT, all four set for a multipart upload.
ALTER TABLE files
    ADD COLUMN upload_id            text        NULL CHECK (octet_length(upload_id) BETWEEN 1 AND 1024),
    ADD COLUMN part_size            bigint      NULL CHECK (part_size > 0),
    ADD COLUMN part_sha256          bytea       NULL
        CHECK (octet_length(part_sha256) > 0 AND octet_length(part_sha256) % 32 = 0),
    ADD COLUMN multipart_expires_at timestamptz NULL,
    ADD CONSTRAINT files_multipart_all_or_none CHECK (
        (upload_id IS NULL) = (part_size IS NULL)
        AND (part_size IS NULL) = (part_sha256 IS NULL)
        AND (part_sha256 IS NULL) = (multipart_expires_at IS NULL)
    );
