-- Webhooks read the change feed: each keeps the id of the last event it has taken in, and the
-- events after it that it wants are its queue. A write no longer inserts a delivery row per
-- webhook in its own transaction (three webhooks cost a burst of writes a fifth of its rate);
-- the event it commits is already durable, and the webhook's position makes it pending. A row in
-- webhook_deliveries is written when an event is first attempted (the delivery log), and a
-- pending row is a retry waiting its turn (or a redelivery): it holds back the events after it.
ALTER TABLE webhooks ADD COLUMN feed_position INTEGER NOT NULL DEFAULT 0;
-- Every event up to now was queued as a row by the previous version: start after them.
UPDATE webhooks SET feed_position = (SELECT coalesce(max(id), 0) FROM events);
