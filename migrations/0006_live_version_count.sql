-- Each model's number of live versions, kept by triggers, so a model's summary reads one column
-- instead of counting its versions: a model that had taken 50,000 versions answered the MLflow
-- dialect's writes (which read the model first) at 600 requests/s, falling as it grew.
-- Triggers keep it true on every path that writes versions: creation, soft delete, restore,
-- hard delete, and the cascade of a model's hard delete.
ALTER TABLE models ADD COLUMN live_versions INTEGER NOT NULL DEFAULT 0;
UPDATE models SET live_versions =
    (SELECT count(*) FROM versions v WHERE v.model_id = models.id AND v.deleted_at IS NULL);

CREATE TRIGGER versions_live_count_insert AFTER INSERT ON versions
WHEN NEW.deleted_at IS NULL
BEGIN
    UPDATE models SET live_versions = live_versions + 1 WHERE id = NEW.model_id;
END;

CREATE TRIGGER versions_live_count_delete AFTER DELETE ON versions
WHEN OLD.deleted_at IS NULL
BEGIN
    UPDATE models SET live_versions = live_versions - 1 WHERE id = OLD.model_id;
END;

CREATE TRIGGER versions_live_count_update AFTER UPDATE OF deleted_at, model_id ON versions
WHEN (OLD.deleted_at IS NULL) != (NEW.deleted_at IS NULL) OR OLD.model_id != NEW.model_id
BEGIN
    UPDATE models SET live_versions = live_versions - 1 WHERE id = OLD.model_id AND OLD.deleted_at IS NULL;
    UPDATE models SET live_versions = live_versions + 1 WHERE id = NEW.model_id AND NEW.deleted_at IS NULL;
END;
