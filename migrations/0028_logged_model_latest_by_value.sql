-- Each kept newest metric value (0027) carries its logged model's experiment, indexed by
-- (experiment, key, value): a logged-models search ordered by one metric walks that index in
-- the order asked and stops after the page, instead of reading every model of the experiment
-- and sorting them all (ModelRegistry.trackingPage; the models without the metric come after,
-- from the models' own index). A logged model never changes experiment, so the copy stays
-- right; fsck checks it with the value. The table is made again (SQLite adds no NOT NULL
-- column without a default, and a default would hide a write that forgot the experiment).
CREATE TABLE mlflow_logged_model_latest_0028 (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    experiment_id   INTEGER NOT NULL,
    timestamp       INTEGER NOT NULL,
    step            INTEGER NOT NULL,
    run_id          TEXT NOT NULL,
    value           REAL NOT NULL,
    PRIMARY KEY (logged_model_id, key)
) STRICT, WITHOUT ROWID;

INSERT INTO mlflow_logged_model_latest_0028 (logged_model_id, key, experiment_id, timestamp, step, run_id, value)
SELECT l.logged_model_id, l.key, m.experiment_id, l.timestamp, l.step, l.run_id, l.value
FROM mlflow_logged_model_latest l JOIN mlflow_logged_models m ON m.id = l.logged_model_id;

DROP TABLE mlflow_logged_model_latest;
ALTER TABLE mlflow_logged_model_latest_0028 RENAME TO mlflow_logged_model_latest;

CREATE INDEX mlflow_logged_model_latest_by_value ON mlflow_logged_model_latest (experiment_id, key, value);
