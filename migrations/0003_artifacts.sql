-- Artifacts: files of a parent (a model or a version), stored as manifests of content-addressed
-- chunks (the bytes live under blobs/sha256/ in the data directory), or tracked by URI.

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY NOT NULL,
    parent_id  TEXT NOT NULL,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       INTEGER,           -- null only for a tracked artifact of unknown size
    sha256     TEXT,              -- the whole file's; null only for a tracked artifact without one
    file_type  TEXT CHECK (file_type IN ('model', 'checkpoint', 'text', 'image', 'audio', 'video')),
    mime_type  TEXT NOT NULL,
    uri        TEXT,              -- set for a tracked artifact: the bytes live there, not here
    state      TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'corrupt')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX artifacts_by_parent_path ON artifacts (parent_id, path);
CREATE INDEX artifacts_by_model ON artifacts (model_id);

-- The ordered chunks of an uploaded artifact; `offset` is where the chunk starts in the file.
CREATE TABLE artifact_chunks (
    artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    PRIMARY KEY (artifact_id, seq)
) STRICT, WITHOUT ROWID;
-- Garbage collection asks "does any manifest still use this chunk?".
CREATE INDEX artifact_chunks_by_sha ON artifact_chunks (sha256);

-- A hard-deleted version takes its artifact records along (a model's go by cascade).
CREATE TRIGGER versions_delete_artifacts AFTER DELETE ON versions
BEGIN
    DELETE FROM artifacts WHERE parent_id = OLD.id;
END;

-- Resumable uploads: the bytes received so far are in uploads/<id>.part in the data directory.
CREATE TABLE upload_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    parent_id  TEXT NOT NULL,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT,
    file_type  TEXT,
    overwrite  INTEGER NOT NULL DEFAULT 0,
    received   INTEGER NOT NULL DEFAULT 0,
    artifact_id TEXT,              -- set once complete; the session stays until it expires
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX upload_sessions_by_expiry ON upload_sessions (expires_at);
