-- Delivery of the outbox: an HTML body, the structured items a digest lists, and the
-- Message-ID fixed before the first attempt so that every retry repeats it.
ALTER TABLE outbox ADD COLUMN html TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN item_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE outbox ADD COLUMN message_id TEXT;
CREATE INDEX outbox_message_id ON outbox (message_id);
