-- Claims read an ordered range of one index: timers by (due_at, id), the outbox by
-- (COALESCE(next_attempt_at, not_before), id). Without id in the index, a burst of rows
-- due at the same instant was sorted on every claim.
CREATE INDEX timers_state_due_id ON timers (state, due_at, id);
DROP INDEX timers_state_due;
CREATE INDEX outbox_state_due ON outbox (state, (COALESCE(next_attempt_at, not_before)), id);
