-- A model's summary names the live version that holds each of staging and production (every
-- row of a model list, every GET of a model). versions_by_model_stage_order finds those
-- versions, but each then cost a read of its table row for updated_at and version: at 1,000,000
-- versions those rows sit on pages of their own, and this lookup was the largest part of a page
-- of 100 models (0.7 of 1.8 ms of SQLite's time). This partial index holds only the staged live
-- versions, with every column the lookup reads, so it is answered from the index alone; it is
-- small, and writes of versions in no stage do not touch it.
CREATE INDEX versions_stage_holders ON versions (model_id, stage, updated_at, version, deleted_at)
    WHERE deleted_at IS NULL AND stage IN ('staging', 'production');
