-- Consumers: named users of a model (a serving endpoint, a batch job, an annotation project) with
-- a policy choosing the version they use: pinned to a version, following a unique tag or a stage,
-- or the latest version. What a consumer resolves to is kept here and brought up to date in the
-- same transaction as every change that moves it, so "who uses version 7" is one indexed query
-- and every change of the answer is recorded in the change feed (consumer.changed).
CREATE TABLE consumers (
    name                TEXT PRIMARY KEY NOT NULL,
    model_id            TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    policy              TEXT NOT NULL CHECK (policy IN ('pinned', 'tag', 'stage', 'latest')),
    selector            TEXT,       -- the version's id (pinned), the tag, or the stage; null for latest
    description         TEXT,
    properties          TEXT NOT NULL DEFAULT '{}',   -- a small JSON object
    resolved_version_id TEXT,       -- what it uses now; null when its policy names no live version
    actor               TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK ((policy = 'latest') = (selector IS NULL))
) STRICT;
CREATE INDEX consumers_by_model ON consumers (model_id);
CREATE INDEX consumers_by_version ON consumers (resolved_version_id) WHERE resolved_version_id IS NOT NULL;
