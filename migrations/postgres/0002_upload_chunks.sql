-- SQLite's 0020: resumable uploads' received bytes as chunks in the store, listed in order, with
-- the whole file's SHA-256 state so far; any server can take a session's next append.
ALTER TABLE upload_sessions ADD COLUMN hash_state BYTEA;

CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL REFERENCES upload_sessions (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    sha256    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (upload_id, seq)
);
CREATE INDEX upload_chunks_by_sha ON upload_chunks (sha256);
