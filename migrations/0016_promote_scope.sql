-- A `promote` scope between write and admin: everything a write key may do, and moving protected
-- tags and stages. SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE api_keys_new (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'promote', 'admin')),
    namespaces  TEXT,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
) STRICT;
INSERT INTO api_keys_new (id, name, scope, namespaces, secret_hash, created_at, expires_at, revoked_at)
    SELECT id, name, scope, namespaces, secret_hash, created_at, expires_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
