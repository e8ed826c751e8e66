-- Several servers on one bucket: which chunks an upload in flight on any of them relies on, so
-- that gc (on whichever server runs it) never deletes one of them. An upload claims each chunk
-- in a write transaction before it sends or reuses it, and drops its claims once its manifest
-- commits or it fails; a claim left by a server that died expires (ModelKeep's claim lifetime).
-- gc, in one write transaction, takes a chunk only when no manifest, resumable upload or live
-- claim uses it, and marks it first: object_store_chunks.stored_at < 0 (minus the time it was
-- marked) means "being deleted": an upload that meets a mark waits until the row is gone, then
-- sends the chunk again. With the write lock serializing the two, a claim and a deletion never
-- overlap.
CREATE TABLE chunk_claims (
    sha256     TEXT NOT NULL,
    holder     TEXT NOT NULL,     -- one upload (a random id)
    claimed_at INTEGER NOT NULL,  -- ms; renewed while the upload runs
    PRIMARY KEY (sha256, holder)
) STRICT, WITHOUT ROWID;
CREATE INDEX chunk_claims_by_holder ON chunk_claims (holder);
CREATE INDEX chunk_claims_by_time ON chunk_claims (claimed_at);
