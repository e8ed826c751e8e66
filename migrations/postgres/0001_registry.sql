-- The registry's schema on PostgreSQL: the same tables, columns, constraints, indexes and trigger
-- rules as SQLite's migrations 0001-0019 (migrations/*.sql) leave, in one file, because no
-- PostgreSQL registry predates it. Later changes go into both directories, each in its own
-- dialect; a test compares the two schemas column by column (Tests/ModelKeepStorageTests).
--
-- Text that lists are ordered by (names, version strings and their sort keys, tags, paths) is
-- COLLATE "C": compared byte by byte as SQLite compares it, whatever the database's locale, so
-- both backends answer one order and keyset pages never depend on where the server runs.
--
-- Dialect, against SQLite's files: INTEGER is BIGINT (SQLite's integers are 64-bit), REAL is
-- DOUBLE PRECISION, BLOB is BYTEA; a rowid key is an identity column; "offset" is quoted (a
-- reserved word here); a CHECK that summed booleans uses num_nonnulls; each group of SQLite
-- triggers on one table and event is one PL/pgSQL function. Times are integer milliseconds since
-- the Unix epoch (UTC). Ids are opaque text chosen by the server.

CREATE TABLE models (
    id             TEXT PRIMARY KEY NOT NULL,
    namespace      TEXT COLLATE "C" NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    owner          TEXT,
    task           TEXT,
    description    TEXT,
    license        TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT,
    -- The next number the server assigns to a version; never goes down, so deleted numbers
    -- are never reused.
    next_version   BIGINT NOT NULL DEFAULT 1,
    -- Kept by the versions triggers below: how many versions are live, and the newest one's string.
    live_versions  BIGINT NOT NULL DEFAULT 0,
    latest_version TEXT
);
CREATE UNIQUE INDEX models_live_name ON models (namespace, name) WHERE deleted_at IS NULL;
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
);
CREATE INDEX model_labels_by_pair ON model_labels (key, value, model_id);

CREATE TABLE versions (
    id             TEXT PRIMARY KEY NOT NULL,
    model_id       TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version        TEXT COLLATE "C" NOT NULL,
    -- The sort key of `version`: integers zero-padded to 20 digits, so "10" sorts after "9";
    -- anything else prefixed with '~', after every integer. Set by the server.
    version_order  TEXT COLLATE "C" NOT NULL,
    name           TEXT,
    description    TEXT,
    framework      TEXT,
    source_uri     TEXT,
    stage          TEXT NOT NULL DEFAULT 'none'
                   CHECK (stage IN ('none', 'staging', 'production', 'archived')),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE UNIQUE INDEX versions_by_model_version ON versions (model_id, version);
CREATE INDEX versions_by_model_created ON versions (model_id, created_at, id);
CREATE INDEX versions_by_model_order ON versions (model_id, version_order, id);
CREATE INDEX versions_by_model_stage ON versions (model_id, stage, created_at, id);
CREATE INDEX versions_by_model_framework ON versions (model_id, framework, created_at, id) WHERE framework IS NOT NULL;
CREATE INDEX versions_by_model_live ON versions (model_id, deleted_at, created_at, id);
CREATE INDEX versions_by_model_stage_order ON versions (model_id, stage, version_order);
CREATE INDEX versions_stage_holders ON versions (model_id, stage, updated_at, version, deleted_at)
    WHERE deleted_at IS NULL AND stage IN ('staging', 'production');

CREATE TABLE version_labels (
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
);
CREATE INDEX version_labels_by_pair ON version_labels (key, value, version_id);

CREATE TABLE unique_tags (
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    tag        TEXT COLLATE "C" NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    version    TEXT,  -- the version string it names, kept by triggers
    PRIMARY KEY (model_id, tag)
);
CREATE INDEX unique_tags_by_version ON unique_tags (version_id, tag);

CREATE TABLE metadata (
    parent_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (parent_id, key)
);

CREATE TABLE metrics (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    parent_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    step       BIGINT NOT NULL,
    wallclock  BIGINT NOT NULL,  -- milliseconds since the Unix epoch
    number     DOUBLE PRECISION,
    text       TEXT,
    bytes      BYTEA,
    CHECK (num_nonnulls(number, text, bytes) = 1)
);
CREATE INDEX metrics_by_series ON metrics (parent_id, key, step, wallclock, id);

CREATE TABLE metric_latest (
    parent_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    step         BIGINT NOT NULL,
    wallclock    BIGINT NOT NULL,
    point_id     BIGINT NOT NULL,
    number       DOUBLE PRECISION,
    text         TEXT,
    bytes        BYTEA,
    first_step   BIGINT,
    bucket_shift BIGINT,
    PRIMARY KEY (parent_id, key)
);

CREATE TABLE metric_buckets (
    parent_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    shift     BIGINT NOT NULL,
    bucket    BIGINT NOT NULL,   -- step >> shift (arithmetic: negative steps floor)
    points    BIGINT NOT NULL,   -- the numeric points in the bucket
    low       DOUBLE PRECISION NOT NULL,
    low_step  BIGINT NOT NULL,
    high      DOUBLE PRECISION NOT NULL,
    high_step BIGINT NOT NULL,
    PRIMARY KEY (parent_id, key, shift, bucket)
);

-- The change feed. Ids come from a sequence; on PostgreSQL a sequence alone does not give commit
-- order (an id taken first can commit last), so writers that append events must serialize their
-- transactions (the registry's writes take one transaction-scoped advisory lock) for a reader
-- following the feed by id never to skip an event that commits late.
CREATE TABLE events (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    namespace  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    actor      TEXT,
    payload    TEXT NOT NULL  -- a small JSON object
);
CREATE INDEX events_by_namespace ON events (namespace, id);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY NOT NULL,
    parent_id  TEXT NOT NULL,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    path       TEXT COLLATE "C" NOT NULL,
    size       BIGINT,            -- null only for a tracked artifact of unknown size
    sha256     TEXT,              -- the whole file's; null only for a tracked artifact without one
    file_type  TEXT CHECK (file_type IN ('model', 'checkpoint', 'text', 'image', 'audio', 'video')),
    mime_type  TEXT NOT NULL,
    uri        TEXT,              -- set for a tracked artifact: the bytes live there, not here
    state      TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'corrupt')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX artifacts_by_parent_path ON artifacts (parent_id, path);
CREATE INDEX artifacts_by_model ON artifacts (model_id);

CREATE TABLE artifact_chunks (
    artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    "offset"    BIGINT NOT NULL,
    PRIMARY KEY (artifact_id, seq)
);
CREATE INDEX artifact_chunks_by_sha ON artifact_chunks (sha256);

CREATE TABLE upload_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    parent_id   TEXT NOT NULL,
    model_id    TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT,
    file_type   TEXT,
    overwrite   BIGINT NOT NULL DEFAULT 0,
    received    BIGINT NOT NULL DEFAULT 0,
    artifact_id TEXT,              -- set once complete; the session stays until it expires
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX upload_sessions_by_expiry ON upload_sessions (expires_at);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'promote', 'admin')),
    namespaces  TEXT,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE ui_sessions (
    id_hash    TEXT PRIMARY KEY NOT NULL,   -- lowercase hex SHA-256 of the session id
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,               -- sent back with every form that changes something
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);

-- MLflow's tracking entities (SQLite's 0009 onwards).
CREATE TABLE mlflow_experiments (
    id                BIGINT PRIMARY KEY NOT NULL,  -- MLflow's experiment_id (decimal text on the wire); 0 is "Default"
    name              TEXT COLLATE "C" NOT NULL,
    artifact_location TEXT NOT NULL,
    deleted_at        BIGINT,                       -- lifecycle_stage 'deleted' while set
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX mlflow_experiments_by_name ON mlflow_experiments (name);
INSERT INTO mlflow_experiments (id, name, artifact_location, created_at, updated_at)
VALUES (0, 'Default', 'mlflow-artifacts:/0',
        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);

CREATE TABLE mlflow_experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES mlflow_experiments (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE mlflow_runs (
    id            TEXT PRIMARY KEY NOT NULL,  -- run_id: 32 lowercase hex digits
    model_id      TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    experiment_id BIGINT NOT NULL REFERENCES mlflow_experiments (id),
    name          TEXT NOT NULL,
    user_id       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED')),
    start_time    BIGINT NOT NULL,
    end_time      BIGINT,
    deleted_at    BIGINT                      -- lifecycle_stage 'deleted' while set
);
CREATE UNIQUE INDEX mlflow_runs_by_model ON mlflow_runs (model_id);
CREATE INDEX mlflow_runs_by_experiment ON mlflow_runs (experiment_id, start_time, id);

CREATE TABLE mlflow_run_params (
    run_id TEXT NOT NULL REFERENCES mlflow_runs (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX mlflow_run_params_by_pair ON mlflow_run_params (key, value, run_id);

CREATE TABLE mlflow_run_io (
    run_id    TEXT NOT NULL REFERENCES mlflow_runs (id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    kind      TEXT NOT NULL CHECK (kind IN ('dataset', 'model')),
    key       TEXT NOT NULL,                  -- a dataset's name and digest, or a logged model's id
    document  TEXT NOT NULL,                  -- the JSON object MLflow renders
    seq       BIGINT NOT NULL,
    PRIMARY KEY (run_id, direction, kind, key)
);

CREATE TABLE mlflow_logged_models (
    id             TEXT PRIMARY KEY NOT NULL, -- m-<32 lowercase hex digits>
    model_id       TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    experiment_id  BIGINT NOT NULL REFERENCES mlflow_experiments (id),
    name           TEXT NOT NULL,
    model_type     TEXT,
    source_run_id  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('LOGGED_MODEL_PENDING', 'LOGGED_MODEL_READY', 'LOGGED_MODEL_UPLOAD_FAILED')),
    status_message TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE UNIQUE INDEX mlflow_logged_models_by_model ON mlflow_logged_models (model_id);
CREATE INDEX mlflow_logged_models_by_experiment ON mlflow_logged_models (experiment_id, created_at, id);

CREATE TABLE mlflow_logged_model_params (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (logged_model_id, key)
);

CREATE TABLE mlflow_logged_model_metrics (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    dataset_name    TEXT NOT NULL DEFAULT '',
    dataset_digest  TEXT NOT NULL DEFAULT '',
    step            BIGINT NOT NULL,
    timestamp       BIGINT NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    run_id          TEXT NOT NULL,
    PRIMARY KEY (logged_model_id, key, dataset_name, dataset_digest, step, timestamp, value)
);
CREATE INDEX mlflow_logged_model_metrics_latest
    ON mlflow_logged_model_metrics (logged_model_id, key, timestamp DESC, step DESC, run_id, value);

CREATE TABLE version_metric_sources (
    source_id  TEXT NOT NULL,  -- the parent (a model) whose new points the version also gets
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, version_id)
);

-- The chunks in an S3-compatible bucket, for gc's grace period.
CREATE TABLE object_store_chunks (
    sha256    TEXT PRIMARY KEY NOT NULL,
    size      BIGINT NOT NULL,
    stored_at BIGINT NOT NULL    -- ms; stored or last reused by an upload (gc's grace period)
);

CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY NOT NULL,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,            -- signs deliveries; never answered by the API again
    namespace            TEXT,                     -- only events of this namespace (null: all)
    model_id             TEXT,                     -- only events of this model (null: all)
    active               BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    dialect              TEXT NOT NULL DEFAULT 'native' CHECK (dialect IN ('native', 'mlflow')),
    dialect_events       TEXT,                     -- mlflow: the events as MLflow names them, JSON
    name                 TEXT,
    description          TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    paused_reason        TEXT,                     -- set when deliveries kept failing and it was paused
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    pattern    TEXT NOT NULL,
    PRIMARY KEY (webhook_id, pattern)
);

CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,  -- the order of delivery per webhook
    delivery_id     TEXT NOT NULL UNIQUE,               -- sent as X-ModelKeep-Delivery
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    response_status BIGINT,
    error           TEXT,
    latency_ms      BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_done_by_time ON webhook_deliveries (created_at) WHERE status != 'pending';

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
    created_at         BIGINT NOT NULL,
    CHECK (num_nonnulls(target_version_id, target_artifact_id, target_run_id, target_uri) = 1)
);
CREATE INDEX version_links_by_version ON version_links (version_id, type);
CREATE INDEX version_links_by_target_version ON version_links (target_version_id) WHERE target_version_id IS NOT NULL;
CREATE INDEX version_links_by_uri ON version_links (target_uri, type) WHERE target_uri IS NOT NULL;
CREATE INDEX version_links_by_run ON version_links (target_run_id) WHERE target_run_id IS NOT NULL;
CREATE INDEX version_links_by_artifact ON version_links (target_artifact_id) WHERE target_artifact_id IS NOT NULL;
CREATE UNIQUE INDEX version_links_once ON version_links
    (version_id, type, coalesce(target_version_id, target_artifact_id, target_run_id, target_uri), coalesce(target_digest, ''));

CREATE TABLE tag_stage_history (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    model_id         TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('tag', 'stage')),
    name             TEXT NOT NULL,                 -- the tag, or the stage
    action           TEXT NOT NULL CHECK (action IN ('assigned', 'moved', 'deleted', 'entered', 'left')),
    version          TEXT,                          -- the version it names (or that entered or left the stage)
    previous_version TEXT,                          -- a moved tag: the version it named before
    actor            TEXT,
    reason           TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX tag_stage_history_by_name ON tag_stage_history (model_id, kind, name, id);

CREATE TABLE protections (
    scope      TEXT NOT NULL CHECK (scope IN ('model', 'namespace')),
    scope_id   TEXT NOT NULL,       -- the model's id, or the namespace
    kind       TEXT NOT NULL CHECK (kind IN ('tag', 'stage')),
    name       TEXT NOT NULL,       -- the tag, or the stage
    actor      TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id, kind, name)
);
CREATE INDEX protections_by_name ON protections (kind, name);

CREATE TABLE consumers (
    name                TEXT PRIMARY KEY NOT NULL,
    model_id            TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    policy              TEXT NOT NULL CHECK (policy IN ('pinned', 'tag', 'stage', 'latest')),
    selector            TEXT,       -- the version's id (pinned), the tag, or the stage; null for latest
    description         TEXT,
    properties          TEXT NOT NULL DEFAULT '{}',   -- a small JSON object
    resolved_version_id TEXT,       -- what it uses now; null when its policy names no live version
    actor               TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    CHECK ((policy = 'latest') = (selector IS NULL))
);
CREATE INDEX consumers_by_model ON consumers (model_id);
CREATE INDEX consumers_by_version ON consumers (resolved_version_id) WHERE resolved_version_id IS NOT NULL;

CREATE TABLE oci_uploads (
    id          TEXT PRIMARY KEY NOT NULL,
    model_id    TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    received    BIGINT NOT NULL DEFAULT 0,
    -- 1: the bytes so far came in one request and are already the model's file .oci/uploads/<id>,
    -- chunked and hashed as they arrived (a push in one PATCH is then one pass over its bytes)
    provisional BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX oci_uploads_by_expiry ON oci_uploads (expires_at);

CREATE TABLE oci_manifests (
    version_id TEXT PRIMARY KEY NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    model_id   TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,   -- sha256:<hex> of bytes
    media_type TEXT NOT NULL,
    bytes      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX oci_manifests_by_digest ON oci_manifests (model_id, digest);

CREATE TABLE oci_referrers (
    model_id      TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    subject       TEXT NOT NULL,   -- sha256:<hex> of the manifest it refers to
    media_type    TEXT NOT NULL,
    artifact_type TEXT NOT NULL,   -- its artifactType, else its config's media type
    annotations   TEXT,            -- its annotations, JSON, for the referrers list
    bytes         BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (model_id, digest)
);
CREATE INDEX oci_referrers_by_subject ON oci_referrers (model_id, subject);

-- Trigger rules. SQLite's: 0001 and 0002 (a deleted model or version takes its metadata and
-- metric points along), 0003 (a deleted version its artifacts), 0006 and 0008 (models keep their
-- live-version count and newest version string; a unique tag keeps the string of the version it
-- names), 0018 (metric buckets go with their parent), 0019 (a version's stored OCI manifest goes
-- stale when its files change).

-- A model deleted for good: its metadata and metric points (no foreign key reaches them:
-- parent_id names a model or a version).
CREATE FUNCTION models_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metadata WHERE parent_id = OLD.id;
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER models_after_delete AFTER DELETE ON models FOR EACH ROW EXECUTE FUNCTION models_after_delete();

-- The newest live version's string of one model.
CREATE FUNCTION model_latest_version(model TEXT) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT v.version FROM versions v WHERE v.model_id = model AND v.deleted_at IS NULL
    ORDER BY v.created_at DESC, v.id DESC LIMIT 1
$$;

CREATE FUNCTION versions_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        UPDATE models SET live_versions = live_versions + 1, latest_version = model_latest_version(NEW.model_id)
        WHERE id = NEW.model_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER versions_after_insert AFTER INSERT ON versions FOR EACH ROW EXECUTE FUNCTION versions_after_insert();

CREATE FUNCTION versions_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metadata WHERE parent_id = OLD.id;
    DELETE FROM artifacts WHERE parent_id = OLD.id;
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
    IF OLD.deleted_at IS NULL THEN
        UPDATE models SET live_versions = live_versions - 1, latest_version = model_latest_version(OLD.model_id)
        WHERE id = OLD.model_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER versions_after_delete AFTER DELETE ON versions FOR EACH ROW EXECUTE FUNCTION versions_after_delete();

CREATE FUNCTION versions_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.deleted_at IS NULL) != (NEW.deleted_at IS NULL) OR OLD.model_id != NEW.model_id THEN
        UPDATE models SET live_versions = live_versions - 1 WHERE id = OLD.model_id AND OLD.deleted_at IS NULL;
        UPDATE models SET live_versions = live_versions + 1 WHERE id = NEW.model_id AND NEW.deleted_at IS NULL;
    END IF;
    IF OLD.deleted_at IS DISTINCT FROM NEW.deleted_at OR OLD.model_id != NEW.model_id
       OR OLD.created_at != NEW.created_at OR OLD.version != NEW.version THEN
        UPDATE models SET latest_version = model_latest_version(models.id) WHERE id IN (OLD.model_id, NEW.model_id);
    END IF;
    IF OLD.version != NEW.version THEN
        UPDATE unique_tags SET version = NEW.version WHERE version_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER versions_after_update AFTER UPDATE OF deleted_at, model_id, created_at, version ON versions
    FOR EACH ROW EXECUTE FUNCTION versions_after_update();

-- A unique tag carries the string of the version it names (set on insert and on a move).
CREATE FUNCTION unique_tags_set_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := (SELECT v.version FROM versions v WHERE v.id = NEW.version_id);
    RETURN NEW;
END $$;
CREATE TRIGGER unique_tags_set_version BEFORE INSERT OR UPDATE OF version_id ON unique_tags
    FOR EACH ROW EXECUTE FUNCTION unique_tags_set_version();

-- A stored OCI manifest of a version whose files change no longer describes it.
CREATE FUNCTION artifacts_stale_oci_manifest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM oci_manifests WHERE version_id = OLD.parent_id;
    ELSE
        DELETE FROM oci_manifests WHERE version_id = NEW.parent_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER artifacts_stale_oci_manifest AFTER INSERT OR DELETE ON artifacts
    FOR EACH ROW EXECUTE FUNCTION artifacts_stale_oci_manifest();

-- SQLite's functions that the registry's statements use, under their SQLite names, so one text
-- of a statement runs on both backends (each behaves as SQLite's does for what the registry
-- passes it). Where no function can stand in (rowid, json_each, a GROUP BY's bare columns), the
-- statement has a PostgreSQL variant in the code instead.

-- json_group_object(key, value): a JSON object text; '{}' for no rows, as SQLite answers.
CREATE FUNCTION mk_json_object_step(state jsonb, key text, value text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$ SELECT state || jsonb_build_object(key, value) $$;
CREATE FUNCTION mk_json_text(state jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT state::text $$;
CREATE AGGREGATE json_group_object(text, text) (
    SFUNC = mk_json_object_step, STYPE = jsonb, INITCOND = '{}', FINALFUNC = mk_json_text);

-- json_group_array(value): a JSON array text; '[]' for no rows.
CREATE FUNCTION mk_json_array_step(state jsonb, value text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$ SELECT state || jsonb_build_array(value) $$;
CREATE AGGREGATE json_group_array(text) (
    SFUNC = mk_json_array_step, STYPE = jsonb, INITCOND = '[]', FINALFUNC = mk_json_text);

-- iif(condition, then, else), instr(haystack, needle), and the two-argument (scalar) min and max.
CREATE FUNCTION iif(condition boolean, yes anycompatible, no anycompatible) RETURNS anycompatible
    LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN condition THEN yes ELSE no END $$;
CREATE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE AS $$ SELECT strpos(haystack, needle) $$;
CREATE FUNCTION min(a anycompatible, b anycompatible) RETURNS anycompatible
    LANGUAGE sql IMMUTABLE AS $$ SELECT LEAST(a, b) $$;
CREATE FUNCTION max(a anycompatible, b anycompatible) RETURNS anycompatible
    LANGUAGE sql IMMUTABLE AS $$ SELECT GREATEST(a, b) $$;

-- glob(pattern, value): SQLite's case-sensitive GLOB (`*` any run, `?` one character, `[...]` one
-- of a set, `[^...]` none of it), through an anchored regular expression.
CREATE FUNCTION mk_glob_regex(pattern text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    out text := '^';
    i integer := 1;
    n integer := length(pattern);
    c text;
    close integer;
BEGIN
    WHILE i <= n LOOP
        c := substr(pattern, i, 1);
        IF c = '*' THEN
            out := out || '.*';
        ELSIF c = '?' THEN
            out := out || '.';
        ELSIF c = '[' THEN
            -- A set runs to the next ']' after its first character (so '[]]' and '[[]' are sets).
            close := strpos(substr(pattern, i + 2), ']');
            IF close = 0 THEN
                out := out || '\[';
            ELSE
                DECLARE
                    body text := substr(pattern, i + 1, close);
                BEGIN
                    IF left(body, 1) = '^' THEN
                        body := '^' || replace(replace(substr(body, 2), '\', '\\'), '[', '\[');
                    ELSE
                        body := replace(replace(replace(body, '\', '\\'), '[', '\['), '^', '\^');
                    END IF;
                    out := out || '[' || body || ']';
                    i := i + close + 1;
                END;
            END IF;
        ELSIF c ~ '[.+(){}|^$\\\]]' THEN
            out := out || '\' || c;
        ELSE
            out := out || c;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN out || '$';
END $$;
CREATE FUNCTION glob(pattern text, value text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT value ~ mk_glob_regex(pattern) $$;

-- json_extract(document, '$.a.b'): the text at a plain dotted path (what the registry asks), or null.
CREATE FUNCTION json_extract(document text, path text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT document::jsonb #>> string_to_array(substr(path, 3), '.') $$;

-- json_each(document, '$.path'): the elements of the array (or the members of the object) at a
-- plain dotted path, as SQLite's table-valued function answers them: key, and value as JSON text.
CREATE FUNCTION json_each(document text, path text) RETURNS TABLE (key text, value text)
    LANGUAGE sql IMMUTABLE AS $$
    WITH target AS (SELECT document::jsonb #> string_to_array(substr(path, 3), '.') AS j)
    SELECT (a.n - 1)::text, a.v::text FROM target, jsonb_array_elements(CASE WHEN jsonb_typeof(target.j) = 'array' THEN target.j ELSE '[]' END) WITH ORDINALITY AS a(v, n)
    UNION ALL
    SELECT o.key, o.value::text FROM target, jsonb_each(CASE WHEN jsonb_typeof(target.j) = 'object' THEN target.j ELSE '{}' END) AS o
$$;

-- randomblob(n) and hex(bytes), as SQLite's (upper-case hex), for ids made inside a statement
-- (from version 4 UUIDs: 122 random bits in every 16 bytes).
CREATE FUNCTION randomblob(n integer) RETURNS bytea LANGUAGE sql VOLATILE AS $$
    SELECT substring(decode(string_agg(replace(gen_random_uuid()::text, '-', ''), ''), 'hex') FROM 1 FOR n)
    FROM generate_series(1, (n + 15) / 16) AS g
$$;
CREATE FUNCTION hex(bytes bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(encode(bytes, 'hex')) $$;

-- ifnull(a, b): coalesce of two.
CREATE FUNCTION ifnull(a anycompatible, b anycompatible) RETURNS anycompatible
    LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(a, b) $$;

-- Every transaction that adds events tells the servers listening on channel modelkeep_events, at
-- its commit (PostgreSQL sends NOTIFY then, and once per transaction for the same payload): the
-- change feed's long-polling readers on every replica wake on any replica's write.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('modelkeep_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
