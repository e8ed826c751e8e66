-- A wide block's points join their series' chart buckets when the block is folded, not when it
-- is written: see migrations/0026_wide_points_bucketed_when_folded.sql. The series of every
-- parent with wide blocks lose their buckets (already holding those points); the server buckets
-- them again when it starts.
DELETE FROM metric_buckets WHERE parent_id IN (SELECT DISTINCT parent_id FROM metric_blocks WHERE key = '');
UPDATE metric_latest SET bucket_shift = NULL
WHERE bucket_shift IS NOT NULL AND parent_id IN (SELECT DISTINCT parent_id FROM metric_blocks WHERE key = '');
