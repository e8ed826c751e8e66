-- SQLite's 0021: chunks that uploads in flight on any server rely on; gc takes none of them.
-- object_store_chunks.stored_at < 0 marks a chunk gc is deleting.
CREATE TABLE chunk_claims (
    sha256     TEXT NOT NULL,
    holder     TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (sha256, holder)
);
CREATE INDEX chunk_claims_by_holder ON chunk_claims (holder);
CREATE INDEX chunk_claims_by_time ON chunk_claims (claimed_at);
