-- Lineage: typed, directed links from a version to what it came from or went to. The target is
-- another version (derived_from), a dataset (a URI with an optional digest and name, or a
-- ModelKeep artifact), a run (an MLflow run of this server, or a URI), or where it is deployed.
CREATE TABLE version_links (
    id                 TEXT PRIMARY KEY NOT NULL,
    version_id         TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    type               TEXT NOT NULL CHECK (type IN ('derived_from', 'trained_on', 'evaluated_on', 'produced_by', 'deployed_to')),
    target_version_id  TEXT REFERENCES versions (id) ON DELETE CASCADE,
    target_artifact_id TEXT REFERENCES artifacts (id) ON DELETE CASCADE,
    target_run_id      TEXT,
    target_uri         TEXT,
    target_digest      TEXT,
    target_name        TEXT,
    properties         TEXT NOT NULL DEFAULT '{}',   -- a small JSON object
    actor              TEXT,
    created_at         INTEGER NOT NULL,
    CHECK ((target_version_id IS NOT NULL) + (target_artifact_id IS NOT NULL) + (target_run_id IS NOT NULL) + (target_uri IS NOT NULL) = 1)
) STRICT;
-- The links of a version; what links to a version (lineage downward); every version trained on a dataset.
CREATE INDEX version_links_by_version ON version_links (version_id, type);
CREATE INDEX version_links_by_target_version ON version_links (target_version_id) WHERE target_version_id IS NOT NULL;
CREATE INDEX version_links_by_uri ON version_links (target_uri, type) WHERE target_uri IS NOT NULL;
CREATE INDEX version_links_by_run ON version_links (target_run_id) WHERE target_run_id IS NOT NULL;
CREATE INDEX version_links_by_artifact ON version_links (target_artifact_id) WHERE target_artifact_id IS NOT NULL;
-- The same link twice is one link.
CREATE UNIQUE INDEX version_links_once ON version_links
    (version_id, type, coalesce(target_version_id, target_artifact_id, target_run_id, target_uri), coalesce(target_digest, ''));
