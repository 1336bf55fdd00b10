-- The outbox is claimed in due order (`COALESCE(next_attempt_at, not_before)`, then id):
-- this index makes that an ordered range scan instead of a sort of every pending row.
-- (timers_state_due already serves the timer claim: SQLite appends the rowid, i.e. id.)
CREATE INDEX outbox_state_due ON outbox (state, COALESCE(next_attempt_at, not_before));
