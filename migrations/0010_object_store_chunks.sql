-- The chunks an object-store backend (blob_backend = s3) holds, so that "which of these chunks
-- exist?" (dedupe on upload, POST /api/v1/chunks/missing) is answered here and not by one HEAD
-- request per chunk. A row is written only after its object is durable in the bucket, and
-- removed before its object is deleted, so a row always means the object is there. The local
-- store does not use this table: its files are their own index.
CREATE TABLE object_store_chunks (
    sha256    TEXT PRIMARY KEY NOT NULL,
    size      INTEGER NOT NULL,
    stored_at INTEGER NOT NULL    -- ms; stored or last reused by an upload (gc's grace period)
) STRICT, WITHOUT ROWID;
