-- MLflow 3.18 takes a logged model's latest value of a metric as it takes a run's: the highest
-- step, then the newest timestamp, then the highest value (3.17 took the newest timestamp
-- first), and its searches filter by that value as well as order by it (3.17 matched a filter
-- against any value). The index that finds a model's latest value and the row kept for it
-- (0027) follow the new order, the run id last so that one row comes first
-- (ModelRegistry.loggedModelNewestOrder).
DROP INDEX mlflow_logged_model_metrics_latest;
CREATE INDEX mlflow_logged_model_metrics_latest
    ON mlflow_logged_model_metrics (logged_model_id, key, step DESC, timestamp DESC, value DESC, run_id);

DELETE FROM mlflow_logged_model_latest;
INSERT INTO mlflow_logged_model_latest (logged_model_id, key, experiment_id, timestamp, step, run_id, value)
SELECT logged_model_id, key, experiment_id, timestamp, step, run_id, value FROM (
    SELECT p.logged_model_id, p.key, m.experiment_id, p.timestamp, p.step, p.run_id, p.value,
           row_number() OVER (PARTITION BY p.logged_model_id, p.key
                              ORDER BY p.step DESC, p.timestamp DESC, p.value DESC, p.run_id) AS newest
    FROM mlflow_logged_model_metrics p JOIN mlflow_logged_models m ON m.id = p.logged_model_id) AS ranked
WHERE newest = 1;
