-- A wide block's points (a batch of many keys, migration 0024) no longer move their series'
-- latest point in metric_latest when they are written. A log-batch of a thousand keys at one
-- step rewrote a thousand metric_latest rows; a training loop sending one every step rewrote
-- them all every request, a third of the request's time. Now such a batch writes rows only for
-- keys new to the parent (or whose lowest step it lowers), and its block is marked: its points
-- may be later than metric_latest says. The mark goes when those points are in metric_latest:
-- when the block is folded (ModelRegistry.foldWideBlocks moves their latest points in with the
-- blocks it makes), or before anything reads a latest point of its parent
-- (ModelRegistry.catchUpLatest, in a write, only when a mark is found). So every read of a
-- latest point, a run's metrics, a search by a metric, sees every point written, and a batch's
-- latest points are written once a fold (MetricBlocks.foldAt batches), or once a read.
--
-- NULL: the block's latest points are in metric_latest (every block but a wide one just
-- written; wide blocks written before this migration moved metric_latest themselves).
ALTER TABLE metric_blocks ADD COLUMN latest_behind INTEGER;

-- The marked blocks, which are few (a parent's unfolded wide blocks, until a read or a fold):
-- a read looks its parents up here, a search every parent of its experiments.
CREATE INDEX metric_blocks_latest_behind ON metric_blocks (parent_id) WHERE latest_behind IS NOT NULL;
