-- Who moved which unique tag or stage, from which version to which, when and why: written in the
-- same transaction as the move (ModelRegistry.record), and kept as long as the model (the change
-- feed is pruned after event_retention_days; this history is not).
CREATE TABLE tag_stage_history (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id         TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('tag', 'stage')),
    name             TEXT NOT NULL,                 -- the tag, or the stage
    action           TEXT NOT NULL CHECK (action IN ('assigned', 'moved', 'deleted', 'entered', 'left')),
    version          TEXT,                          -- the version it names (or that entered or left the stage)
    previous_version TEXT,                          -- a moved tag: the version it named before
    actor            TEXT,
    reason           TEXT,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX tag_stage_history_by_name ON tag_stage_history (model_id, kind, name, id);
