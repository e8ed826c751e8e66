-- Each logged model's newest value of each metric, over every dataset: see
-- migrations/0027_logged_model_latest_metrics.sql.
CREATE TABLE mlflow_logged_model_latest (
    logged_model_id TEXT NOT NULL REFERENCES mlflow_logged_models (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    timestamp       BIGINT NOT NULL,
    step            BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (logged_model_id, key)
);

INSERT INTO mlflow_logged_model_latest (logged_model_id, key, timestamp, step, run_id, value)
SELECT DISTINCT ON (logged_model_id, key) logged_model_id, key, timestamp, step, run_id, value
FROM mlflow_logged_model_metrics
ORDER BY logged_model_id, key, timestamp DESC, step DESC, run_id, value;
