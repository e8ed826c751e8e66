-- OCI pushes (the /v2/ API). A blob is uploaded in a session (its bytes wait in the scratch
-- area, like a resumable artifact upload's, until the client names the digest); it is then kept
-- as an artifact of the model itself under .oci/blobs/sha256/<hex>, chunked and deduplicated
-- like every file, so gc and fsck know it. A pushed manifest is kept byte for byte (a client
-- checks the digest of what it pulls against the one it pushed) beside the version it made.
CREATE TABLE oci_uploads (
    id         TEXT PRIMARY KEY NOT NULL,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    received   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX oci_uploads_by_expiry ON oci_uploads (expires_at);

CREATE TABLE oci_manifests (
    version_id TEXT PRIMARY KEY NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,   -- sha256:<hex> of bytes
    media_type TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX oci_manifests_by_digest ON oci_manifests (model_id, digest);
