-- Protected unique tags and stages: only an admin key may move a protected tag (assign, move,
-- delete) or move a version into or out of a protected stage; others get 403 naming the rule.
-- A rule holds for one model or for every model of a namespace.
CREATE TABLE protections (
    scope      TEXT NOT NULL CHECK (scope IN ('model', 'namespace')),
    scope_id   TEXT NOT NULL,       -- the model's id, or the namespace
    kind       TEXT NOT NULL CHECK (kind IN ('tag', 'stage')),
    name       TEXT NOT NULL,       -- the tag, or the stage
    actor      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, kind, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX protections_by_name ON protections (kind, name);
