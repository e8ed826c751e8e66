-- Webhooks read the change feed from a position (see the SQLite migration 0022): the events after
-- it that a webhook wants are its queue; a delivery row is written when an event is first attempted.
ALTER TABLE webhooks ADD COLUMN feed_position BIGINT NOT NULL DEFAULT 0;
UPDATE webhooks SET feed_position = (SELECT coalesce(max(id), 0) FROM events);
