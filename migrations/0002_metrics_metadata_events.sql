-- Metric points, the latest point per key, and the change feed.

-- A point of a series: (key, step, wallclock, value) on a parent (a model or a version).
-- Exactly one of the value columns is set: a finite number, a string, or bytes.
CREATE TABLE metrics (
    id         INTEGER PRIMARY KEY,
    parent_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    step       INTEGER NOT NULL,
    wallclock  INTEGER NOT NULL,  -- milliseconds since the Unix epoch
    number     REAL,
    text       TEXT,
    bytes      BLOB,
    CHECK ((number IS NOT NULL) + (text IS NOT NULL) + (bytes IS NOT NULL) = 1)
) STRICT;
-- A series read walks this index in order: step, then wallclock, then arrival.
CREATE INDEX metrics_by_series ON metrics (parent_id, key, step, wallclock, id);

-- The latest point (highest step, then wallclock, then arrival) of every key of a parent,
-- kept in the same transaction as the points, so a summary never scans a series.
CREATE TABLE metric_latest (
    parent_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    step      INTEGER NOT NULL,
    wallclock INTEGER NOT NULL,
    point_id  INTEGER NOT NULL,
    number    REAL,
    text      TEXT,
    bytes     BLOB,
    PRIMARY KEY (parent_id, key)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER models_delete_metrics AFTER DELETE ON models
BEGIN
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
END;
CREATE TRIGGER versions_delete_metrics AFTER DELETE ON versions
BEGIN
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
END;

-- The change feed: one row per change, written in the change's own transaction.
-- AUTOINCREMENT: ids only ever grow, even after old events are pruned, so `since` stays meaningful.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    namespace  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    actor      TEXT,
    payload    TEXT NOT NULL  -- a small JSON object
);
CREATE INDEX events_by_namespace ON events (namespace, id);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_time ON events (created_at);
