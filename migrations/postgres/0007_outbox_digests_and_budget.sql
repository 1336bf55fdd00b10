-- The outbox sender claims whole messages (docs/decisions.md §18, §19).
--
-- A reminder or escalation without a Message-ID yet is "held": it waits a short digest
-- window for companions of the same recipient and hour. Held and free pending rows get
-- partial indexes of their own, so that the claim's range scans never walk the held rows
-- and the wake-up query finds the earliest of each with one index probe.
CREATE INDEX outbox_held_due ON outbox (not_before, id)
    WHERE state = 'pending'
      AND kind IN ('reminder', 'due_today', 'overdue', 'escalation')
      AND message_id IS NULL;
CREATE INDEX outbox_free_due ON outbox ((COALESCE(next_attempt_at, not_before)), id)
    WHERE state = 'pending'
      AND (kind NOT IN ('reminder', 'due_today', 'overdue', 'escalation') OR message_id IS NOT NULL);
-- A digest claims every row of its recipient in that hour.
CREATE INDEX outbox_recipient ON outbox (address, channel);

-- The rate limit shared by every daemon on this database: one GCRA state per channel
-- (the theoretical arrival time of the next message, UTC epoch microseconds).
CREATE TABLE rate_budget (
    channel TEXT    PRIMARY KEY,
    tat_us  BIGINT NOT NULL
);
