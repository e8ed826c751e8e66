-- metric_latest holds one row per series, and every metric batch rewrites the rows of its keys.
-- Half-empty pages let PostgreSQL update them in place (HOT: no new index entry, no chain for a
-- lookup to walk), and vacuuming after 2 % of the rows changed, not 20 %, keeps the dead versions
-- of a busy run's keys from piling up between autovacuum's visits. (SQLite rewrites in place.)
ALTER TABLE metric_latest SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
