-- The highest step among a series' own blocks (its key's rows of metric_blocks), kept by every
-- write and fold (ModelRegistry.insertPoints, foldWideBlocks), so that a log-batch knows which of
-- its keys can hold a repeat there: only those whose own blocks reach the batch's lowest step.
-- metric_latest.step is the series' latest step wherever its point lies, wide blocks included:
-- a batch of a thousand keys sent a step behind another (eight writers of one run) reached every
-- key by that measure and sought each key's blocks, while its points were still in wide blocks,
-- which are read apart. The value may be higher than the blocks reach (never lower): a series
-- with none yet has the lowest Int64; rows stored before this migration, and series copied to a
-- version, the highest (every batch reads their blocks, as before).
ALTER TABLE metric_latest ADD COLUMN block_last INTEGER NOT NULL DEFAULT 9223372036854775807;
