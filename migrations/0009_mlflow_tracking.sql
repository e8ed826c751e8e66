-- MLflow's tracking objects: experiments, runs and LoggedModels.
--
-- Each run and each logged model is also a ModelKeep model (namespace `mlflow-runs`, named by the
-- run id; namespace `mlflow-models`, named by the `m-...` id). That model holds what ModelKeep
-- already knows how to keep: the files (artifacts), the metric series, and the tags (labels).
-- These tables hold only what MLflow has and ModelKeep did not: experiments, a run's attributes,
-- params and inputs, a logged model's attributes, params and dataset-qualified metrics.

CREATE TABLE mlflow_experiments (
    id                INTEGER PRIMARY KEY,  -- MLflow's experiment_id (decimal text on the wire); 0 is "Default"
    name              TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    deleted_at        INTEGER,              -- lifecycle_stage 'deleted' while set
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
-- MLflow keeps a deleted experiment's name taken until it is purged; so does ModelKeep.
CREATE UNIQUE INDEX mlflow_experiments_by_name ON mlflow_experiments (name);

CREATE TABLE mlflow_experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES mlflow_experiments (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) STRICT, WITHOUT ROWID;

INSERT INTO mlflow_experiments (id, name, artifact_location, created_at, updated_at)
VALUES (0, 'Default', 'mlflow-artifacts:/0',
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

CREATE TABLE mlflow_runs (
    id            TEXT PRIMARY KEY NOT NULL,  -- run_id: 32 lowercase hex digits
    model_id      TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL REFERENCES mlflow_experiments (id),
    name          TEXT NOT NULL,
    user_id       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED')),
    start_time    INTEGER NOT NULL,
    end_time      INTEGER,
    deleted_at    INTEGER                     -- lifecycle_stage 'deleted' while set
) STRICT;
CREATE UNIQUE INDEX mlflow_runs_by_model ON mlflow_runs (model_id);
-- runs/search's default order within an experiment: newest start first.
CREATE INDEX mlflow_runs_by_experiment ON mlflow_runs (experiment_id, start_time, id);

-- Params are written once: MLflow refuses to change a logged param's value.
CREATE TABLE mlflow_run_params (
    run_id TEXT NOT NULL REFERENCES mlflow_runs (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX mlflow_run_params_by_pair ON mlflow_run_params (key, value, run_id);

-- A run's inputs (datasets, models) and outputs (models), as MLflow sent them.
CREATE TABLE mlflow_run_io (
    run_id    TEXT NOT NULL REFERENCES mlflow_runs (id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    kind      TEXT NOT NULL CHECK (kind IN ('dataset', 'model')),
    key       TEXT NOT NULL,                  -- a dataset's name and digest, or a logged model's id
    document  TEXT NOT NULL,                  -- the JSON object MLflow renders
    seq       INTEGER NOT NULL,
    PRIMARY KEY (run_id, direction, kind, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE mlflow_logged_models (
    id             TEXT PRIMARY KEY NOT NULL, -- m-<32 lowercase hex digits>
    model_id       TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    experiment_id  INTEGER NOT NULL REFERENCES mlflow_experiments (id),
    name           TEXT NOT NULL,
    model_type     TEXT,
    source_run_id  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('LOGGED_MODEL_PENDING', 'LOGGED_MODEL_READY', 'LOGGED_MODEL_UPLOAD_FAILED')),
    status_message TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deleted_at     INTEGER
) STRICT;
CREATE UNIQUE INDEX mlflow_logged_models_by_model ON mlflow_logged_models (model_id);
CREATE INDEX mlflow_logged_models_by_experiment ON mlflow_logged_models (experiment_id, created_at, id);

CREATE TABLE mlflow_logged_model_params (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (logged_model_id, key)
) STRICT, WITHOUT ROWID;

-- A logged model's metrics: the run metrics that named it, with the dataset they were measured
-- on ('' for none). The same points are also the series of the logged model's ModelKeep model.
CREATE TABLE mlflow_logged_model_metrics (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    dataset_name    TEXT NOT NULL DEFAULT '',
    dataset_digest  TEXT NOT NULL DEFAULT '',
    step            INTEGER NOT NULL,
    timestamp       INTEGER NOT NULL,
    value           REAL NOT NULL,
    run_id          TEXT NOT NULL,
    PRIMARY KEY (logged_model_id, key, dataset_name, dataset_digest, step, timestamp, value)
) STRICT, WITHOUT ROWID;
-- A logged model's latest value of a metric (what a search orders by) is the first entry here.
CREATE INDEX mlflow_logged_model_metrics_latest
    ON mlflow_logged_model_metrics (logged_model_id, key, timestamp DESC, step DESC, run_id, value);

-- A version registered from a logged model keeps receiving the metrics logged to that model
-- after registration (its series are copies, so the version keeps them if the model goes).
CREATE TABLE version_metric_sources (
    source_id  TEXT NOT NULL,  -- the parent (a model) whose new points the version also gets
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, version_id)
) STRICT, WITHOUT ROWID;

-- Runs made before this migration were models of `mlflow-runs` with their attributes in the
-- `mlflow_run` metadata key; they become rows here (in experiment 0, the only one there was),
-- and the metadata key goes, so there is one truth.
INSERT INTO mlflow_runs (id, model_id, experiment_id, name, user_id, status, start_time, end_time)
SELECT m.name, m.id, 0,
       coalesce(json_extract(md.value, '$.run_name'), ''),
       coalesce(json_extract(md.value, '$.user_id'), ''),
       CASE WHEN json_extract(md.value, '$.status') IN ('RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED')
            THEN json_extract(md.value, '$.status') ELSE 'RUNNING' END,
       coalesce(json_extract(md.value, '$.start_time'), m.created_at),
       json_extract(md.value, '$.end_time')
FROM models m LEFT JOIN metadata md ON md.parent_id = m.id AND md.key = 'mlflow_run'
WHERE m.namespace = 'mlflow-runs' AND m.deleted_at IS NULL;
DELETE FROM metadata WHERE key = 'mlflow_run' AND parent_id IN (SELECT model_id FROM mlflow_runs);
