-- Each logged model counts its changes: `revision` goes up in the same transaction as anything
-- a logged model's answer shows (its own row, its tags, params and metric values). A server
-- keeps the models it loaded with the revision it read them at, and a search that reads the same
-- revision for a model uses the kept one instead of loading its tags, params and metrics again
-- (ModelRegistry.loggedModelCache): the revision is read in the search's own transaction, so a
-- kept model is never older than the page it is shown on, on one server or many. Triggers, not
-- the writes' own statements, so that no write path (the MLflow dialect, the native labels API,
-- cascades, fsck) can change a model and leave its revision behind. (The answer also shows its
-- experiment's artifact location, which nothing changes once the experiment exists.)
ALTER TABLE mlflow_logged_models ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- Its own row: any column but the revision (the inner UPDATE sets only that one, so it does not
-- fire this trigger again).
CREATE TRIGGER mlflow_logged_models_revision AFTER UPDATE OF
    model_id, experiment_id, name, model_type, source_run_id, status, status_message, created_at, updated_at, deleted_at
    ON mlflow_logged_models
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = NEW.id;
END;

-- Its tags are its ModelKeep model's labels (a run's labels find no logged model).
CREATE TRIGGER model_labels_logged_model_insert AFTER INSERT ON model_labels
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE model_id = NEW.model_id;
END;
CREATE TRIGGER model_labels_logged_model_update AFTER UPDATE ON model_labels
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE model_id IN (OLD.model_id, NEW.model_id);
END;
CREATE TRIGGER model_labels_logged_model_delete AFTER DELETE ON model_labels
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE model_id = OLD.model_id;
END;

CREATE TRIGGER mlflow_logged_model_params_insert AFTER INSERT ON mlflow_logged_model_params
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = NEW.logged_model_id;
END;
CREATE TRIGGER mlflow_logged_model_params_update AFTER UPDATE ON mlflow_logged_model_params
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id IN (OLD.logged_model_id, NEW.logged_model_id);
END;
CREATE TRIGGER mlflow_logged_model_params_delete AFTER DELETE ON mlflow_logged_model_params
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = OLD.logged_model_id;
END;

CREATE TRIGGER mlflow_logged_model_metrics_insert AFTER INSERT ON mlflow_logged_model_metrics
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = NEW.logged_model_id;
END;
CREATE TRIGGER mlflow_logged_model_metrics_update AFTER UPDATE ON mlflow_logged_model_metrics
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id IN (OLD.logged_model_id, NEW.logged_model_id);
END;
CREATE TRIGGER mlflow_logged_model_metrics_delete AFTER DELETE ON mlflow_logged_model_metrics
BEGIN
    UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = OLD.logged_model_id;
END;
