-- Each kept newest metric value carries its logged model's experiment, indexed by
-- (experiment, key, value), for a logged-models search ordered by one metric: see
-- migrations/0028_logged_model_latest_by_value.sql.
ALTER TABLE mlflow_logged_model_latest ADD COLUMN experiment_id BIGINT;
UPDATE mlflow_logged_model_latest l SET experiment_id = m.experiment_id FROM mlflow_logged_models m WHERE m.id = l.logged_model_id;
ALTER TABLE mlflow_logged_model_latest ALTER COLUMN experiment_id SET NOT NULL;
CREATE INDEX mlflow_logged_model_latest_by_value ON mlflow_logged_model_latest (experiment_id, key, value);
