-- A lineage link's target URI may be 4,096 bytes and its digest 1,024, but PostgreSQL indexed
-- them whole in B-trees, whose entries hold at most 2,704 bytes: a long signed URL that did not
-- compress was refused with a 500 (see 0017). The "same link once" rule compares the target's
-- and the digest's MD5 instead (the index SQLite keeps whole: it has no bound), and the lookup of
-- every version linked to a URI (equality) goes through a hash index.
DROP INDEX version_links_once;
CREATE UNIQUE INDEX version_links_once ON version_links
    (version_id, type, md5(coalesce(target_version_id, target_artifact_id, target_run_id, target_uri)), md5(coalesce(target_digest, '')));
DROP INDEX version_links_by_uri;
CREATE INDEX version_links_by_uri ON version_links USING hash (target_uri) WHERE target_uri IS NOT NULL;
