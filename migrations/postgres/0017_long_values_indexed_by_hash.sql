-- Label values (up to 5,000 bytes) and run params (up to 6,000) were indexed whole in B-trees
-- (key, value, owner), and a PostgreSQL B-tree entry holds at most 2,704 bytes: a value longer than
-- that which did not compress (a prompt's template, a JSON param) was refused with a 500 ("index
-- row size exceeds btree version 4 maximum"). Each pair index becomes a B-tree of (key, owner),
-- for the lookups by key (a label's presence, and the key of every equality), and a hash index of
-- the value, which takes a value of any length, for the lookups by value (equality is all that is
-- asked of it). SQLite's migration 0032 makes the same indexes (B-trees there: it has no bound).
DROP INDEX model_labels_by_pair;
CREATE INDEX model_labels_by_key_model ON model_labels (key, model_id);
CREATE INDEX model_labels_by_value ON model_labels USING hash (value);

DROP INDEX version_labels_by_pair;
CREATE INDEX version_labels_by_key_version ON version_labels (key, version_id);
CREATE INDEX version_labels_by_value ON version_labels USING hash (value);

DROP INDEX mlflow_run_params_by_pair;
CREATE INDEX mlflow_run_params_by_key_run ON mlflow_run_params (key, run_id);
CREATE INDEX mlflow_run_params_by_value ON mlflow_run_params USING hash (value);
