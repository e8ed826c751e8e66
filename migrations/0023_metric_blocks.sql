-- Metric points packed by series. A row per point cost every batch a table row and an index
-- entry per point: a log-batch of 1,000 points was 1,000 b-tree inserts, most of its time. Now a
-- batch's numeric points of one key are one row, a block: their (step, wallclock, value) packed
-- in `data` as 24 bytes each (two little-endian 64-bit integers and an IEEE double), sorted by
-- step, then wallclock, then arrival. A series read merges its blocks in step order.
--
-- A block of one point (MLflow's log_metric, the points stored before this migration, and every
-- text or bytes point) keeps it in the columns wallclock, number, text, bytes instead, data NULL.
-- A point's id, which orders points of equal step and wallclock by arrival, is its block's id
-- times 65,536 plus its place in the block (ModelRegistry.pointID).
CREATE TABLE metric_blocks (
    id         INTEGER PRIMARY KEY,
    parent_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    first_step INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    points     INTEGER NOT NULL,
    low        REAL,              -- the lowest and highest numeric value (NULL: a text or bytes point)
    high       REAL,
    data       BLOB,              -- the packed points, NULL for a block of one point
    wallclock  INTEGER,           -- a block of one point: its wallclock and its value
    number     REAL,
    text       TEXT,
    bytes      BLOB,
    CHECK (points >= 1 AND first_step <= last_step),
    CHECK ((data IS NOT NULL AND points >= 2 AND wallclock IS NULL AND number IS NULL AND text IS NULL AND bytes IS NULL)
        OR (data IS NULL AND points = 1 AND first_step = last_step AND wallclock IS NOT NULL
            AND (number IS NOT NULL) + (text IS NOT NULL) + (bytes IS NOT NULL) = 1))
) STRICT;

-- Every stored point becomes a block of one, keeping its id; the latest points' ids follow.
INSERT INTO metric_blocks (id, parent_id, key, first_step, last_step, points, low, high, wallclock, number, text, bytes)
SELECT id, parent_id, key, step, step, 1, number, number, wallclock, number, text, bytes FROM metrics;
UPDATE metric_latest SET point_id = point_id * 65536;

-- The widest block of each series (last_step - first_step): a block holding step s starts at or
-- after s - block_span, so a read from step s seeks there instead of walking the series from its
-- first block. It only ever grows; fsck checks it against the blocks.
ALTER TABLE metric_latest ADD COLUMN block_span INTEGER NOT NULL DEFAULT 0;

-- A series read walks this index: the blocks of a key by their first step, from the first that
-- can reach the steps it wants (last_step lets it skip, in the index alone, those that end before).
CREATE INDEX metric_blocks_by_series ON metric_blocks (parent_id, key, first_step, last_step);

DROP TRIGGER models_delete_metrics;
DROP TRIGGER versions_delete_metrics;
DROP TABLE metrics;
CREATE TRIGGER models_delete_metrics AFTER DELETE ON models
BEGIN
    DELETE FROM metric_blocks WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
END;
CREATE TRIGGER versions_delete_metrics AFTER DELETE ON versions
BEGIN
    DELETE FROM metric_blocks WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
END;
