-- A logged model's latest value of a metric by the highest step, then the newest timestamp, then
-- the highest value, as MLflow 3.18 takes it: see migrations/0033_logged_model_latest_by_step.sql.
DROP INDEX mlflow_logged_model_metrics_latest;
CREATE INDEX mlflow_logged_model_metrics_latest
    ON mlflow_logged_model_metrics (logged_model_id, key, step DESC, timestamp DESC, value DESC, run_id);

DELETE FROM mlflow_logged_model_latest;
INSERT INTO mlflow_logged_model_latest (logged_model_id, key, experiment_id, timestamp, step, run_id, value)
SELECT DISTINCT ON (p.logged_model_id, p.key) p.logged_model_id, p.key, m.experiment_id, p.timestamp, p.step, p.run_id, p.value
FROM mlflow_logged_model_metrics p JOIN mlflow_logged_models m ON m.id = p.logged_model_id
ORDER BY p.logged_model_id, p.key, p.step DESC, p.timestamp DESC, p.value DESC, p.run_id;
