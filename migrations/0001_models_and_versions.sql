-- Models, their versions, labels, unique tags and metadata.
-- Times are integer milliseconds since the Unix epoch (UTC). Ids are opaque text chosen by the server.

CREATE TABLE models (
    id           TEXT PRIMARY KEY NOT NULL,
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    owner        TEXT,
    task         TEXT,
    description  TEXT,
    license      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    -- The next number the server assigns to a version; never goes down, so deleted numbers
    -- are never reused.
    next_version INTEGER NOT NULL DEFAULT 1
) STRICT;

-- (namespace, name) is unique among live models; soft-deleted ones keep their name.
CREATE UNIQUE INDEX models_live_name ON models (namespace, name) WHERE deleted_at IS NULL;
-- One index per list order (keyset pagination walks them), and per common filter + order.
CREATE INDEX models_by_name ON models (name, id);
CREATE INDEX models_by_created ON models (created_at, id);
CREATE INDEX models_by_updated ON models (updated_at, id);
CREATE INDEX models_by_namespace_created ON models (namespace, created_at, id);
CREATE INDEX models_by_owner ON models (owner, created_at, id) WHERE owner IS NOT NULL;
CREATE INDEX models_by_task ON models (task, created_at, id) WHERE task IS NOT NULL;

CREATE TABLE model_labels (
    model_id TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX model_labels_by_pair ON model_labels (key, value, model_id);

CREATE TABLE versions (
    id             TEXT PRIMARY KEY NOT NULL,
    model_id       TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version        TEXT NOT NULL,
    -- The sort key of `version`: integers zero-padded to 20 digits, so "10" sorts after "9";
    -- anything else prefixed with '~', after every integer. Set by the server.
    version_order  TEXT NOT NULL,
    name           TEXT,
    description    TEXT,
    framework      TEXT,
    source_uri     TEXT,
    stage          TEXT NOT NULL DEFAULT 'none'
                   CHECK (stage IN ('none', 'staging', 'production', 'archived')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deleted_at     INTEGER
) STRICT;

-- A version string is unique within its model, deleted or not (a soft-deleted version can be restored).
CREATE UNIQUE INDEX versions_by_model_version ON versions (model_id, version);
CREATE INDEX versions_by_model_created ON versions (model_id, created_at, id);
CREATE INDEX versions_by_model_order ON versions (model_id, version_order, id);
CREATE INDEX versions_by_model_stage ON versions (model_id, stage, created_at, id);
CREATE INDEX versions_by_model_framework ON versions (model_id, framework, created_at, id) WHERE framework IS NOT NULL;

CREATE TABLE version_labels (
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX version_labels_by_pair ON version_labels (key, value, version_id);

-- A unique tag names exactly one version of a model: the primary key makes a second holder
-- impossible, whatever the timing of concurrent writers.
CREATE TABLE unique_tags (
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (model_id, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX unique_tags_by_version ON unique_tags (version_id, tag);

-- Free-form JSON per parent (a model or a version), one row per key; the value is JSON text.
CREATE TABLE metadata (
    parent_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (parent_id, key)
) STRICT, WITHOUT ROWID;

-- A hard delete takes the parent's metadata with it (versions go by cascade, which fires this too).
CREATE TRIGGER models_delete_metadata AFTER DELETE ON models
BEGIN
    DELETE FROM metadata WHERE parent_id = OLD.id;
END;
CREATE TRIGGER versions_delete_metadata AFTER DELETE ON versions
BEGIN
    DELETE FROM metadata WHERE parent_id = OLD.id;
END;
