-- Every text column compares byte by byte (COLLATE "C"), as SQLite's do, whatever the database's
-- locale. 0001 gave "C" only to the names, versions, tags and paths that the native lists order
-- by; the rest took the database's collation, so on a database made in a locale such as en_US
-- (the usual default outside containers), runs/search ordered by a param, a tag or a run name,
-- logged models by name, consumers, and a parent's metric and metadata keys came in that locale's
-- order (a_1, a1, B, _x, Z) instead of SQLite's (B, Z, _x, a1, a_1). Byte order is also cheaper to
-- keep: a B-tree of "C" text compares with memcmp, not strcoll.
--
-- One ALTER TABLE a table, all of its columns at once: the column types stay text (no row is
-- rewritten); the indexes holding them are rebuilt. Tables made later declare COLLATE "C" on
-- their text columns (a test checks that none is left without it). The two triggers that name
-- columns (UPDATE OF) hold their columns' types, so they are dropped and made again as 0001 made
-- them.
DROP TRIGGER versions_after_update ON versions;
DROP TRIGGER unique_tags_set_version ON unique_tags;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.table_name, string_agg(format('ALTER COLUMN %I TYPE text COLLATE "C"', c.column_name), ', ' ORDER BY c.ordinal_position) AS clauses
        FROM information_schema.columns c
        JOIN information_schema.tables r ON r.table_schema = c.table_schema AND r.table_name = c.table_name AND r.table_type = 'BASE TABLE'
        WHERE c.table_schema = current_schema() AND c.data_type = 'text' AND c.collation_name IS DISTINCT FROM 'C'
        GROUP BY c.table_name
        ORDER BY c.table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.table_name, t.clauses);
    END LOOP;
END;
$$;

CREATE TRIGGER versions_after_update AFTER UPDATE OF deleted_at, model_id, created_at, version ON versions
    FOR EACH ROW EXECUTE FUNCTION versions_after_update();
CREATE TRIGGER unique_tags_set_version BEFORE INSERT OR UPDATE OF version_id ON unique_tags
    FOR EACH ROW EXECUTE FUNCTION unique_tags_set_version();
