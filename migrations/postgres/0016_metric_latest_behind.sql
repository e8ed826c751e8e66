-- Wide blocks whose latest points metric_latest does not hold yet: see
-- migrations/0031_metric_latest_behind.sql.
ALTER TABLE metric_blocks ADD COLUMN latest_behind BIGINT;
CREATE INDEX metric_blocks_latest_behind ON metric_blocks (parent_id) WHERE latest_behind IS NOT NULL;
