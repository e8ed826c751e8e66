-- Each logged model counts its changes, for the loaded models a server keeps: see
-- migrations/0029_logged_model_revision.sql.
ALTER TABLE mlflow_logged_models ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

-- Its own row: any change moves the revision on (a change of the revision alone, made by the
-- triggers below, sets the same value).
CREATE FUNCTION mlflow_logged_models_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER mlflow_logged_models_revision BEFORE UPDATE ON mlflow_logged_models
    FOR EACH ROW EXECUTE FUNCTION mlflow_logged_models_revision();

-- Its params and metric values, by the logged model's id.
CREATE FUNCTION mlflow_logged_model_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = OLD.logged_model_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.logged_model_id <> OLD.logged_model_id) THEN
        UPDATE mlflow_logged_models SET revision = revision + 1 WHERE id = NEW.logged_model_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER mlflow_logged_model_params_revision AFTER INSERT OR UPDATE OR DELETE ON mlflow_logged_model_params
    FOR EACH ROW EXECUTE FUNCTION mlflow_logged_model_rows_changed();
CREATE TRIGGER mlflow_logged_model_metrics_revision AFTER INSERT OR UPDATE OR DELETE ON mlflow_logged_model_metrics
    FOR EACH ROW EXECUTE FUNCTION mlflow_logged_model_rows_changed();

-- Its tags, the labels of its ModelKeep model (a run's labels find no logged model).
CREATE FUNCTION model_labels_logged_model_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE mlflow_logged_models SET revision = revision + 1 WHERE model_id = OLD.model_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.model_id <> OLD.model_id) THEN
        UPDATE mlflow_logged_models SET revision = revision + 1 WHERE model_id = NEW.model_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER model_labels_logged_model_revision AFTER INSERT OR UPDATE OR DELETE ON model_labels
    FOR EACH ROW EXECUTE FUNCTION model_labels_logged_model_changed();
