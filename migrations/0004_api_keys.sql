-- API keys. The secret is shown once at creation and stored only as its SHA-256 (secrets are
-- 256 random bits, so a plain hash is enough; there is nothing to brute-force).

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,   -- public; the key reads mk_<id>_<secret>
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    namespaces  TEXT,                        -- a JSON array of the namespaces it may use; null: all
    secret_hash TEXT NOT NULL,               -- lowercase hex SHA-256 of the secret part
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
) STRICT;

-- A name names one live key; a revoked key keeps its name for the record.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
