-- Each logged model's newest value of each metric, over every dataset: the row of
-- mlflow_logged_model_metrics that comes first in the order latest timestamp, latest step,
-- lowest run id, lowest value (the order of that table's `_latest` index). A logged-models
-- search ordered by a metric without datasets joins this row instead of running a correlated
-- subquery a model (on PostgreSQL a subplan per row: half of the search statement's time).
-- Kept by the write that stores a logged model's point (ModelRegistry.insertRunMetrics), which moves
-- the row only when the new point comes first; points are never removed but with their model,
-- and the row goes with it. fsck compares every row with the points and repairs a wrong one.
CREATE TABLE mlflow_logged_model_latest (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    timestamp       INTEGER NOT NULL,
    step            INTEGER NOT NULL,
    run_id          TEXT NOT NULL,
    value           REAL NOT NULL,
    PRIMARY KEY (logged_model_id, key)
) STRICT, WITHOUT ROWID;

INSERT INTO mlflow_logged_model_latest (logged_model_id, key, timestamp, step, run_id, value)
SELECT logged_model_id, key, timestamp, step, run_id, value FROM (
    SELECT m.*, row_number() OVER (PARTITION BY logged_model_id, key ORDER BY timestamp DESC, step DESC, run_id, value) AS newest
    FROM mlflow_logged_model_metrics m) AS ranked
WHERE newest = 1;
