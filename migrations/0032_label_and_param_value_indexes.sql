-- The indexes PostgreSQL's migration 0017 makes, so both backends keep the same ones: a label's
-- or a run param's lookups by key use (key, owner), its lookups by value an index led by the
-- value (PostgreSQL's is a hash of the value alone; SQLite's also holds the key, so a value common
-- to many keys, such as 'true', is found for its key). PostgreSQL could not hold a long value in
-- the old (key, value, owner) B-tree; SQLite can, but one set of indexes is easier to reason about.
DROP INDEX model_labels_by_pair;
CREATE INDEX model_labels_by_key_model ON model_labels (key, model_id);
CREATE INDEX model_labels_by_value ON model_labels (value, key);

DROP INDEX version_labels_by_pair;
CREATE INDEX version_labels_by_key_version ON version_labels (key, version_id);
CREATE INDEX version_labels_by_value ON version_labels (value, key);

DROP INDEX mlflow_run_params_by_pair;
CREATE INDEX mlflow_run_params_by_key_run ON mlflow_run_params (key, run_id);
CREATE INDEX mlflow_run_params_by_value ON mlflow_run_params (value, key);
