-- Web UI sessions: a person signs in with an API key once and the browser keeps an opaque
-- session id in an HttpOnly cookie (never the key). Only the SHA-256 of the id is stored, so
-- the database does not hold live sessions; each session acts as its key (same scope and
-- namespaces) and ends at sign-out, at its expiry, or when the key is revoked or expires.
CREATE TABLE ui_sessions (
    id_hash    TEXT PRIMARY KEY NOT NULL,   -- lowercase hex SHA-256 of the session id
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,               -- sent back with every form that changes something
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
