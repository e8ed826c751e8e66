-- Wide blocks and explicit point ids, as SQLite's migration 0024 does (its comment says why).
ALTER TABLE metric_blocks ADD COLUMN ids BYTEA;
