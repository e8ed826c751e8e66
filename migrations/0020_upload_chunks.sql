-- A resumable upload keeps what it has received in the chunk store, not in a file of one
-- server's data directory: each append's bytes are cut into chunks as they arrive, stored (in
-- the bucket when several servers share one), and listed here in order; the whole file's SHA-256
-- state after `received` bytes is kept with the session. Any server can then take the next
-- append, and the last one completes the artifact without reading its bytes again. The listed
-- chunks are referenced for gc until the session ends.
-- Sessions begun before this migration have their bytes in uploads/<id>.part (hash_state NULL,
-- received > 0): their next append, on the server holding that file, moves them here.
ALTER TABLE upload_sessions ADD COLUMN hash_state BLOB;

CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL REFERENCES upload_sessions (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (upload_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX upload_chunks_by_sha ON upload_chunks (sha256);
