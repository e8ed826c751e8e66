-- The highest step among a series' own blocks: see migrations/0025_metric_block_last.sql.
ALTER TABLE metric_latest ADD COLUMN block_last BIGINT NOT NULL DEFAULT 9223372036854775807;
