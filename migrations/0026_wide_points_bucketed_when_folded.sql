-- A wide block's points (a batch of many keys, migration 0024) now join their series' chart
-- buckets when the block is folded (ModelRegistry.foldWideBlocks), not when it is written: a
-- 1,000-key log-batch of a run past 8,192 steps touched a thousand bucket rows, each on a page
-- of its own, and its commit wrote as many pages. A series' buckets hold the points of its own
-- blocks; a chart adds those still in wide blocks.
--
-- The points in wide blocks stored before this migration are already in their buckets, and
-- their fold would add them again. So the series of every parent that has wide blocks lose
-- their buckets here; the server finds them behind when it starts (resumeChartBuckets) and
-- buckets each again from its own blocks, one transaction a series. Meanwhile a chart reads
-- them whole, as it reads a short series.
DELETE FROM metric_buckets WHERE parent_id IN (SELECT DISTINCT parent_id FROM metric_blocks WHERE key = '');
UPDATE metric_latest SET bucket_shift = NULL
WHERE bucket_shift IS NOT NULL AND parent_id IN (SELECT DISTINCT parent_id FROM metric_blocks WHERE key = '');
