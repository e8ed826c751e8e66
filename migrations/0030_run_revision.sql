-- Each run counts its changes to what a search loads of it besides its metrics: `revision` goes
-- up in the same transaction as any change to its own row, its tags (its ModelKeep model's
-- labels), its params, inputs and outputs. A server keeps the runs its searches loaded, without
-- their metrics, with the revision it read them at; a search that reads the same revision for a
-- run uses the kept one and reads only its latest metric values (ModelRegistry.runCache), as
-- migration 0029 does for logged models. Metrics are left out on purpose: their latest values
-- move with every logged point, and a trigger per point would tax every metric write.
-- (The answer also shows its experiment's artifact location, which never changes.)
ALTER TABLE mlflow_runs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- Its own row: any column but the revision (the inner UPDATE sets only that one, so it does not
-- fire this trigger again).
CREATE TRIGGER mlflow_runs_revision AFTER UPDATE OF
    model_id, experiment_id, name, user_id, status, start_time, end_time, deleted_at
    ON mlflow_runs
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id = NEW.id;
END;

-- Its tags are its ModelKeep model's labels (a logged model's labels find no run).
CREATE TRIGGER model_labels_run_insert AFTER INSERT ON model_labels
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE model_id = NEW.model_id;
END;
CREATE TRIGGER model_labels_run_update AFTER UPDATE ON model_labels
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE model_id IN (OLD.model_id, NEW.model_id);
END;
CREATE TRIGGER model_labels_run_delete AFTER DELETE ON model_labels
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE model_id = OLD.model_id;
END;

CREATE TRIGGER mlflow_run_params_insert AFTER INSERT ON mlflow_run_params
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id = NEW.run_id;
END;
CREATE TRIGGER mlflow_run_params_update AFTER UPDATE ON mlflow_run_params
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id IN (OLD.run_id, NEW.run_id);
END;
CREATE TRIGGER mlflow_run_params_delete AFTER DELETE ON mlflow_run_params
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id = OLD.run_id;
END;

CREATE TRIGGER mlflow_run_io_insert AFTER INSERT ON mlflow_run_io
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id = NEW.run_id;
END;
CREATE TRIGGER mlflow_run_io_update AFTER UPDATE ON mlflow_run_io
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id IN (OLD.run_id, NEW.run_id);
END;
CREATE TRIGGER mlflow_run_io_delete AFTER DELETE ON mlflow_run_io
BEGIN
    UPDATE mlflow_runs SET revision = revision + 1 WHERE id = OLD.run_id;
END;
