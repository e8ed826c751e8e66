-- OCI pushes (the /v2/ API). A blob is uploaded in a session: the first request's bytes are
-- chunked as they come into a file of the model, .oci/uploads/<id>; later requests move them to
-- the scratch area and append there, like a resumable artifact upload, until the client names
-- the digest. The blob is then kept
-- as an artifact of the model itself under .oci/blobs/sha256/<hex>, chunked and deduplicated
-- like every file, so gc and fsck know it. A pushed manifest is kept byte for byte (a client
-- checks the digest of what it pulls against the one it pushed) beside the version it made.
CREATE TABLE oci_uploads (
    id         TEXT PRIMARY KEY NOT NULL,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    received   INTEGER NOT NULL DEFAULT 0,
    -- 1: the bytes so far came in one request and are already the model's file .oci/uploads/<id>,
    -- chunked and hashed as they arrived (a push in one PATCH is then one pass over its bytes)
    provisional INTEGER NOT NULL DEFAULT 0,
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
-- A pushed manifest describes the files the version had then: once they change (a file added,
-- replaced or removed through any API), the version is pulled through its generated manifest.
CREATE TRIGGER oci_manifest_stale_on_insert AFTER INSERT ON artifacts
WHEN EXISTS (SELECT 1 FROM oci_manifests WHERE version_id = NEW.parent_id)
BEGIN
    DELETE FROM oci_manifests WHERE version_id = NEW.parent_id;
END;
CREATE TRIGGER oci_manifest_stale_on_delete AFTER DELETE ON artifacts
WHEN EXISTS (SELECT 1 FROM oci_manifests WHERE version_id = OLD.parent_id)
BEGIN
    DELETE FROM oci_manifests WHERE version_id = OLD.parent_id;
END;

-- Manifests pushed with a subject (signatures, SBOMs, attestations: the referrers API) belong to
-- the manifest they refer to, not to a version of their own; their blobs are the model's.
CREATE TABLE oci_referrers (
    model_id      TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    subject       TEXT NOT NULL,   -- sha256:<hex> of the manifest it refers to
    media_type    TEXT NOT NULL,
    artifact_type TEXT NOT NULL,   -- its artifactType, else its config's media type
    annotations   TEXT,            -- its annotations, JSON, for the referrers list
    bytes         BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (model_id, digest)
) STRICT, WITHOUT ROWID;
CREATE INDEX oci_referrers_by_subject ON oci_referrers (model_id, subject);
