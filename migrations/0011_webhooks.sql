-- Webhooks: who is told of which changes, and every delivery. A delivery row is written in the
-- same transaction as the event it carries (ModelRegistry.record), so a committed change is never
-- lost to a crash before it is sent: deliveries are at least once, in order per webhook.
CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY NOT NULL,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,            -- signs deliveries; never answered by the API again
    namespace            TEXT,                     -- only events of this namespace (null: all)
    model_id             TEXT,                     -- only events of this model (null: all)
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    dialect              TEXT NOT NULL DEFAULT 'native' CHECK (dialect IN ('native', 'mlflow')),
    dialect_events       TEXT,                     -- mlflow: the events as MLflow names them, JSON
    name                 TEXT,
    description          TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    paused_reason        TEXT,                     -- set when deliveries kept failing and it was paused
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
) STRICT;

-- The event kinds a webhook wants: exact (version.created) or a GLOB pattern (version.*, *).
-- (An MLflow webhook's events are mapped to these; a queued event its dialect has no name for
-- is marked skipped instead of sent.)
CREATE TABLE webhook_events (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    pattern    TEXT NOT NULL,
    PRIMARY KEY (webhook_id, pattern)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order of delivery per webhook
    delivery_id     TEXT NOT NULL UNIQUE,               -- sent as X-ModelKeep-Delivery
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    response_status INTEGER,
    error           TEXT,
    latency_ms      INTEGER,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
) STRICT;
-- The head of each webhook's queue, and the log of one webhook newest first.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
-- Pruning the log with the change feed finds what is done and old without scanning the table.
CREATE INDEX webhook_deliveries_done_by_time ON webhook_deliveries (created_at) WHERE status != 'pending';
