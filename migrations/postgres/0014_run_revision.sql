-- Each run counts its changes (not its metrics'), for the loaded runs a server keeps: see
-- migrations/0030_run_revision.sql.
ALTER TABLE mlflow_runs ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

-- Its own row: any change moves the revision on (a change of the revision alone, made by the
-- triggers below, sets the same value).
CREATE FUNCTION mlflow_runs_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER mlflow_runs_revision BEFORE UPDATE ON mlflow_runs
    FOR EACH ROW EXECUTE FUNCTION mlflow_runs_revision();

-- Its params, inputs and outputs, by the run's id.
CREATE FUNCTION mlflow_run_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE mlflow_runs SET revision = revision + 1 WHERE id = OLD.run_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.run_id <> OLD.run_id) THEN
        UPDATE mlflow_runs SET revision = revision + 1 WHERE id = NEW.run_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER mlflow_run_params_revision AFTER INSERT OR UPDATE OR DELETE ON mlflow_run_params
    FOR EACH ROW EXECUTE FUNCTION mlflow_run_rows_changed();
CREATE TRIGGER mlflow_run_io_revision AFTER INSERT OR UPDATE OR DELETE ON mlflow_run_io
    FOR EACH ROW EXECUTE FUNCTION mlflow_run_rows_changed();

-- Its tags, the labels of its ModelKeep model (a logged model's labels find no run).
CREATE FUNCTION model_labels_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE mlflow_runs SET revision = revision + 1 WHERE model_id = OLD.model_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.model_id <> OLD.model_id) THEN
        UPDATE mlflow_runs SET revision = revision + 1 WHERE model_id = NEW.model_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER model_labels_run_revision AFTER INSERT OR UPDATE OR DELETE ON model_labels
    FOR EACH ROW EXECUTE FUNCTION model_labels_run_changed();
