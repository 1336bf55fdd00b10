-- Timer claims and wake-ups only ever look for pending rows by due instant and running
-- rows by lease. Partial indexes hold just those rows: the two state changes of every
-- fire (pending -> running -> fired) write one index entry fewer each, the fired history
-- stays out of them, and the claim's range scan starts at the earliest pending row.
CREATE INDEX timers_pending_due ON timers (due_at, id) WHERE state = 'pending';
CREATE INDEX timers_running_lease ON timers (lease_until) WHERE state = 'running';
DROP INDEX timers_state_due_id;
DROP INDEX timers_state_lease;
