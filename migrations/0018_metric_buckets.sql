-- A chart's copy of a long series. A chart is 720 pixels wide; reading a million points to draw
-- it costs tens of milliseconds however they are indexed. So a series whose steps span 8,192 or
-- more also keeps, for each bucket of 2^shift consecutive steps (bucket = step >> shift), how many
-- numeric points fell in it and its lowest and highest point (value and step): real points, so a
-- spike is never lost. The shift is the smallest of 4, 8, 12, ... 52 that leaves the series fewer
-- than 8,192 buckets; when the series grows past that, its buckets are merged sixteen to one
-- (exact: the low of a merged bucket is the lowest of the lows). All of it is kept in the
-- transaction that writes the points (ModelRegistry.insertPoints); a shorter series is read whole.

-- The series' lowest step (the highest is metric_latest.step) and its buckets' shift (NULL: none).
ALTER TABLE metric_latest ADD COLUMN first_step INTEGER;
ALTER TABLE metric_latest ADD COLUMN bucket_shift INTEGER;

CREATE TABLE metric_buckets (
    parent_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    shift     INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,   -- step >> shift (arithmetic: negative steps floor)
    points    INTEGER NOT NULL,   -- the numeric points in the bucket
    low       REAL NOT NULL,
    low_step  INTEGER NOT NULL,
    high      REAL NOT NULL,
    high_step INTEGER NOT NULL,
    PRIMARY KEY (parent_id, key, shift, bucket)
) STRICT, WITHOUT ROWID;

-- The series stored before this migration: their lowest step (one index seek each), their shift,
-- and their buckets. With exactly one min() or max() in a query, SQLite takes the bare column
-- (step) from the row holding it: that is the low's and the high's step.
UPDATE metric_latest SET first_step = (
    SELECT min(m.step) FROM metrics m WHERE m.parent_id = metric_latest.parent_id AND m.key = metric_latest.key);
UPDATE metric_latest SET first_step = step WHERE first_step IS NULL;
UPDATE metric_latest SET bucket_shift = CASE
    WHEN step - first_step < 8192 THEN NULL
    WHEN step - first_step < 8192 * 16 THEN 4
    WHEN step - first_step < 8192 * 256 THEN 8
    WHEN step - first_step < 8192 * 4096 THEN 12
    WHEN step - first_step < 8192 * 65536 THEN 16
    WHEN step - first_step < 8192 * 1048576 THEN 20
    WHEN step - first_step < 8192 * 16777216 THEN 24
    WHEN step - first_step < 8192 * 268435456 THEN 28
    WHEN step - first_step < 8192.0 * 4294967296 THEN 32
    WHEN step - first_step < 8192.0 * 68719476736 THEN 36
    WHEN step - first_step < 8192.0 * 1099511627776 THEN 40
    WHEN step - first_step < 8192.0 * 17592186044416 THEN 44
    WHEN step - first_step < 8192.0 * 281474976710656 THEN 48
    ELSE 52 END;
INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
SELECT m.parent_id, m.key, l.bucket_shift, m.step >> l.bucket_shift, count(*), min(m.number), m.step, 0, 0
FROM metric_latest l JOIN metrics m ON m.parent_id = l.parent_id AND m.key = l.key
WHERE l.bucket_shift IS NOT NULL AND m.number IS NOT NULL
GROUP BY m.parent_id, m.key, m.step >> l.bucket_shift;
INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
SELECT m.parent_id, m.key, l.bucket_shift, m.step >> l.bucket_shift, 0, 0, 0, max(m.number), m.step
FROM metric_latest l JOIN metrics m ON m.parent_id = l.parent_id AND m.key = l.key
WHERE l.bucket_shift IS NOT NULL AND m.number IS NOT NULL
GROUP BY m.parent_id, m.key, m.step >> l.bucket_shift
ON CONFLICT (parent_id, key, shift, bucket) DO UPDATE SET high = excluded.high, high_step = excluded.high_step;

-- A deleted model or version takes its buckets with it, as it takes its points.
DROP TRIGGER models_delete_metrics;
DROP TRIGGER versions_delete_metrics;
CREATE TRIGGER models_delete_metrics AFTER DELETE ON models
BEGIN
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
END;
CREATE TRIGGER versions_delete_metrics AFTER DELETE ON versions
BEGIN
    DELETE FROM metrics WHERE parent_id = OLD.id;
    DELETE FROM metric_latest WHERE parent_id = OLD.id;
    DELETE FROM metric_buckets WHERE parent_id = OLD.id;
END;
