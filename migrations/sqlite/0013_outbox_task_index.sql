-- The messages sent about one task, for its console page (#18 item 8).
CREATE INDEX outbox_task ON outbox (task_id, id);
