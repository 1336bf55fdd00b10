//! The SQL text both backends run (`$N` placeholders work on SQLite too). Statements that
//! differ only by a lock clause or an index hint are made once per backend by [`dialect!`]
//! from the same text; what else differs between the backends lives in their own files.
//!
//! These statements were tuned against the claim-order and partial indexes of the
//! migrations (decision 7, decision 22, architecture.md): change them only with the
//! indexes in view.

/// Column lists, as literals so that `concat!` can build `&'static str` statements.
macro_rules! cols {
    (version) => {
        "id, workflow_id, version, hash, source, created_at"
    };
    (round) => {
        "id, tag, workflow_id, version_id, start_date, params_json, units_json, status, \
         created_at, kickoff_key"
    };
    (task) => {
        "id, round_id, key, task, stage, title, assignee_kind, assignee_id, \
         assignee_name, due_at, state, completed_at, updated_at, provisional, person_json"
    };
    (timer) => {
        "id, key, round_id, task_id, kind, due_at, payload_json, state, attempts, \
         lease_owner, lease_until, fired_at"
    };
    (outbox) => {
        "id, key, round_id, task_id, kind, channel, address, recipient_json, subject, \
         body, state, attempts, not_before, created_at, sent_at, last_error, html, \
         item_json, message_id, next_attempt_at"
    };
    (history) => {
        "id, at, from_state, to_state, actor, note"
    };
    (audit) => {
        "id, at, actor, action, subject, detail_json"
    };
}
pub(crate) use cols;

/// Pending reminders and escalations not yet attempted: they wait for their digest.
/// Spelled exactly as in the partial index `outbox_held_due` (SQLite uses a partial
/// index only when the query repeats its terms).
macro_rules! outbox_held {
    () => {
        "kind IN ('reminder', 'due_today', 'overdue', 'escalation') AND message_id IS NULL"
    };
}
/// Every other pending row (partial index `outbox_free_due`).
macro_rules! outbox_free {
    () => {
        "(kind NOT IN ('reminder', 'due_today', 'overdue', 'escalation') \
         OR message_id IS NOT NULL)"
    };
}
pub(crate) use {outbox_free, outbox_held};

pub(crate) const SELECT_ONE: &str = "SELECT 1";
pub(crate) const LATEST_MIGRATION: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";

pub(crate) const VERSION_BY_HASH: &str = concat!(
    "SELECT ",
    cols!(version),
    " FROM workflow_versions WHERE workflow_id = $1 AND hash = $2"
);
/// Numbers the new version one above the highest; a concurrent insert of the same number
/// or hash makes this insert nothing (the caller then reads or retries).
pub(crate) const VERSION_INSERT: &str = concat!(
    "INSERT INTO workflow_versions (workflow_id, version, hash, source, created_at) \
     SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM workflow_versions \
     WHERE workflow_id = $1 ON CONFLICT DO NOTHING RETURNING ",
    cols!(version)
);
pub(crate) const VERSIONS_OF: &str = concat!(
    "SELECT ",
    cols!(version),
    " FROM workflow_versions WHERE workflow_id = $1 ORDER BY version"
);
pub(crate) const VERSION_BY_ID: &str = concat!(
    "SELECT ",
    cols!(version),
    " FROM workflow_versions WHERE id = $1"
);

pub(crate) const ROUND_INSERT: &str = "INSERT INTO rounds (tag, workflow_id, version_id, \
     start_date, params_json, units_json, status, created_at, kickoff_key) \
     VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8) \
     ON CONFLICT (kickoff_key) DO NOTHING RETURNING id";
pub(crate) const ROUND_BY_ID: &str = concat!("SELECT ", cols!(round), " FROM rounds WHERE id = $1");
pub(crate) const ROUNDS_ALL: &str =
    concat!("SELECT ", cols!(round), " FROM rounds ORDER BY id DESC");
pub(crate) const ROUND_SET_STATUS: &str = "UPDATE rounds SET status = $2 WHERE id = $1";

pub(crate) const TASK_INSERT: &str = "INSERT INTO tasks (round_id, key, task, stage, title, \
     assignee_kind, assignee_id, assignee_name, due_at, state, completed_at, updated_at, \
     provisional, person_id, person_json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14)";
pub(crate) const TASK_BY_ID: &str = concat!("SELECT ", cols!(task), " FROM tasks WHERE id = $1");
/// Followed by a bound id list and `)`.
pub(crate) const TASKS_BY_IDS: &str = concat!("SELECT ", cols!(task), " FROM tasks WHERE id IN (");
pub(crate) const TASK_BY_KEY: &str = concat!(
    "SELECT ",
    cols!(task),
    " FROM tasks WHERE round_id = $1 AND key = $2"
);
pub(crate) const TASK_ID_BY_KEY: &str = "SELECT id FROM tasks WHERE round_id = $1 AND key = $2";
pub(crate) const ROUND_OF_TASK: &str = "SELECT round_id FROM tasks WHERE id = $1";
/// Followed by a bound round id, ` AND task IN (`, a bound list and `) ORDER BY id`.
pub(crate) const TASKS_OF_ROUND_BY_TASK: &str =
    concat!("SELECT ", cols!(task), " FROM tasks WHERE round_id = ");
/// Followed by a bound id list and `) ORDER BY task_id, due_at, id`.
pub(crate) const TIMERS_OF_TASKS: &str =
    concat!("SELECT ", cols!(timer), " FROM timers WHERE task_id IN (");
pub(crate) const TASKS_OF_ROUND: &str = concat!(
    "SELECT ",
    cols!(task),
    " FROM tasks WHERE round_id = $1 ORDER BY id"
);
pub(crate) const TASK_SET_STATE: &str =
    "UPDATE tasks SET state = $2, updated_at = $3, completed_at = $4 WHERE id = $1";
pub(crate) const TASK_ACTIVATE: &str = "UPDATE tasks SET state = 'open', due_at = $2, \
     updated_at = $3, provisional = $4 WHERE id = $1";
pub(crate) const TASK_CANCEL: &str =
    "UPDATE tasks SET state = 'cancelled', updated_at = $2 WHERE id = $1";

pub(crate) const ROUND_REPIN: &str =
    "UPDATE rounds SET version_id = $2, units_json = $3 WHERE id = $1";
pub(crate) const TIMER_CANCEL_PENDING: &str =
    "UPDATE timers SET state = 'cancelled' WHERE id = $1 AND state = 'pending'";
pub(crate) const TASK_SET_DUE: &str = "UPDATE tasks SET due_at = $2, updated_at = $3, \
     provisional = $4 WHERE id = $1 AND state IN ('open', 'waiting')";

pub(crate) const TASK_SET_TITLE: &str = "UPDATE tasks SET title = $2, updated_at = $3 \
     WHERE id = $1 AND state IN ('open', 'waiting')";

pub(crate) const HISTORY_INSERT: &str = "INSERT INTO task_history \
     (task_id, at, from_state, to_state, actor, note) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const HISTORY_OF: &str = concat!(
    "SELECT ",
    cols!(history),
    " FROM task_history WHERE task_id = $1 ORDER BY id"
);

pub(crate) const TIMER_INSERT: &str = "INSERT INTO timers \
     (key, round_id, task_id, kind, due_at, payload_json) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (key) DO NOTHING";
pub(crate) const TIMERS_CANCEL_OF_TASK: &str = "UPDATE timers SET state = 'cancelled', \
     lease_owner = NULL, lease_until = NULL \
     WHERE task_id = $1 AND state IN ('pending', 'running')";
pub(crate) const TIMERS_CANCEL_OF_ROUND: &str = "UPDATE timers SET state = 'cancelled', \
     lease_owner = NULL, lease_until = NULL \
     WHERE (round_id = $1 OR task_id IN (SELECT id FROM tasks WHERE round_id = $1)) \
     AND state IN ('pending', 'running')";
pub(crate) const TIMER_RELEASE: &str = "UPDATE timers SET state = 'pending', \
     lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2";
pub(crate) const TIMER_BRING_FORWARD: &str = "UPDATE timers SET due_at = $2 \
     WHERE id = $1 AND state = 'pending' AND due_at > $2";
pub(crate) const NEXT_DUE: &str = "SELECT MIN(t) FROM (\
     SELECT MIN(due_at) AS t FROM timers WHERE state = 'pending' \
     UNION ALL SELECT MIN(lease_until) AS t FROM timers WHERE state = 'running') AS m";
pub(crate) const PENDING_TIMERS: &str = concat!(
    "SELECT ",
    cols!(timer),
    " FROM timers WHERE state = 'pending' AND ($1 IS NULL OR round_id = $1) \
     ORDER BY due_at, id LIMIT $2"
);
/// `substr` rather than `LIKE`: SQLite's `LIKE` ignores ASCII case and both treat `%`/`_`.
pub(crate) const TIMERS_WITH_PREFIX: &str = concat!(
    "SELECT ",
    cols!(timer),
    " FROM timers WHERE substr(key, 1, length($1)) = $1 ORDER BY due_at, id"
);

/// A claimed row of a message, right before its send: still ours, lease extended,
/// Message-ID fixed if unset, one more attempt.
pub(crate) const OUTBOX_BEGIN_ATTEMPT: &str = "UPDATE outbox SET lease_until = $3, \
     attempts = attempts + 1, message_id = COALESCE(message_id, $4) \
     WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
pub(crate) const OUTBOX_RELEASE: &str = "UPDATE outbox SET state = 'pending', \
     lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
pub(crate) const OUTBOX_SENT: &str = "UPDATE outbox SET state = 'sent', sent_at = $3, \
     last_error = NULL, lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
pub(crate) const OUTBOX_RETRY: &str = "UPDATE outbox SET state = 'pending', \
     next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
pub(crate) const OUTBOX_DEAD: &str = "UPDATE outbox SET state = 'dead', last_error = $3, \
     lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
/// A claimed row that does not parse leaves the queue, with the reason.
pub(crate) const OUTBOX_CORRUPT: &str = "UPDATE outbox SET state = 'dead', last_error = $2, \
     lease_owner = NULL, lease_until = NULL WHERE id = $1";
/// Seeds of a claim: light columns of the rows that can start a message.
pub(crate) const OUTBOX_SEEDS_EXPIRED: &str = "SELECT id, kind, channel, address, \
     not_before, message_id FROM outbox WHERE state = 'sending' AND lease_until < $1 \
     ORDER BY id LIMIT $2";
/// Rows a claim may take at `$3`: pending and due, or sending with an expired lease.
macro_rules! claim_outbox_set {
    () => {
        "UPDATE outbox SET state = 'sending', lease_owner = $1, lease_until = $2 \
         WHERE ((state = 'pending' AND COALESCE(next_attempt_at, not_before) <= $3) \
         OR (state = 'sending' AND lease_until < $3)) AND "
    };
}
/// Ends the claim of single rows, built with a bound id list (`claim_outbox_in`).
pub(crate) const OUTBOX_RETURNING: &str = concat!(" RETURNING ", cols!(outbox));
pub(crate) const OUTBOX_CLAIM_FIXED: &str = concat!(
    claim_outbox_set!(),
    "message_id = $4 RETURNING ",
    cols!(outbox)
);
/// A recipient's reminders of one clock hour ([`crate::store::DIGEST_CLASSES`]).
pub(crate) const OUTBOX_CLAIM_REMIND: &str = concat!(
    claim_outbox_set!(),
    "address = $4 AND channel = $5 AND message_id IS NULL \
     AND kind IN ('reminder', 'due_today', 'overdue') \
     AND not_before >= $6 AND not_before < $7 RETURNING ",
    cols!(outbox)
);
/// A recipient's escalations of one clock hour.
pub(crate) const OUTBOX_CLAIM_ESCALATE: &str = concat!(
    claim_outbox_set!(),
    "address = $4 AND channel = $5 AND message_id IS NULL \
     AND kind IN ('escalation') \
     AND not_before >= $6 AND not_before < $7 RETURNING ",
    cols!(outbox)
);

pub(crate) const BUDGET_INSERT: &str = "INSERT INTO rate_budget (channel, tat_us) \
     VALUES ($1, 0) ON CONFLICT (channel) DO NOTHING";
pub(crate) const BUDGET_PUT: &str = "UPDATE rate_budget SET tat_us = $2 WHERE channel = $1";
pub(crate) const BUDGET_REFUND: &str =
    "UPDATE rate_budget SET tat_us = tat_us - $2 WHERE channel = $1";

pub(crate) const SETTINGS_WITH_PREFIX: &str = "SELECT key, value FROM settings \
     WHERE substr(key, 1, length($1)) = $1 ORDER BY key";
pub(crate) const SETTINGS_DELETE_PREFIX: &str =
    "DELETE FROM settings WHERE substr(key, 1, length($1)) = $1";
pub(crate) const OUTBOX_AFTER: &str = concat!(
    "SELECT ",
    cols!(outbox),
    " FROM outbox WHERE id > $1 ORDER BY id LIMIT $2"
);

pub(crate) const OUTBOX_FOR_TASK: &str = concat!(
    "SELECT ",
    cols!(outbox),
    " FROM outbox WHERE task_id = $1 ORDER BY id"
);

pub(crate) const TOKEN_INSERT: &str = "INSERT INTO api_tokens \
     (name, hash, rights, created_at, revoked_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// A revoked token's row taken over by a new token of the same name.
pub(crate) const TOKEN_REPLACE_REVOKED: &str = "UPDATE api_tokens SET hash = $2, rights = $3, \
     created_at = $4, revoked_at = $5, expires_at = $6, last_used_at = NULL \
     WHERE name = $1 AND revoked_at IS NOT NULL";
pub(crate) const TOKEN_BY_HASH: &str = "SELECT name, hash, rights, created_at, revoked_at, \
     expires_at, last_used_at FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL";
pub(crate) const TOKEN_BY_NAME: &str = "SELECT name, hash, rights, created_at, revoked_at, \
     expires_at, last_used_at FROM api_tokens WHERE name = $1";
pub(crate) const TOKENS_ALL: &str = "SELECT name, hash, rights, created_at, revoked_at, \
     expires_at, last_used_at FROM api_tokens ORDER BY name";
pub(crate) const TOKEN_REVOKE: &str =
    "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL";
pub(crate) const TOKEN_USED: &str = "UPDATE api_tokens SET last_used_at = $2 WHERE name = $1";
pub(crate) const SESSION_INSERT: &str = "INSERT INTO sessions \
     (id_hash, token_name, created_at, expires_at, last_seen) VALUES ($1, $2, $3, $4, $5)";
/// A live session with its token: unexpired at `$2`, and its token unrevoked (the token's
/// own expiry is checked by the caller, at the same clock).
pub(crate) const SESSION_GET: &str = "SELECT s.id_hash, s.token_name, \
     s.created_at AS s_created_at, s.expires_at AS s_expires_at, s.last_seen, \
     t.name, t.hash, t.rights, t.created_at, t.revoked_at, t.expires_at, t.last_used_at \
     FROM sessions s JOIN api_tokens t ON t.name = s.token_name \
     WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL";
pub(crate) const SESSION_TOUCH: &str =
    "UPDATE sessions SET last_seen = $2, expires_at = $3 WHERE id_hash = $1";
pub(crate) const SESSION_DELETE: &str = "DELETE FROM sessions WHERE id_hash = $1";
pub(crate) const SESSIONS_OF_TOKEN_DELETE: &str = "DELETE FROM sessions WHERE token_name = $1";
pub(crate) const SESSIONS_EXPIRED_DELETE: &str = "DELETE FROM sessions WHERE expires_at <= $1";
pub(crate) const SETTING_INSERT: &str =
    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
pub(crate) const SETTING_GET: &str = "SELECT value FROM settings WHERE key = $1";
pub(crate) const SETTING_PUT: &str = "INSERT INTO settings (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

pub(crate) const COUNTS: &str = "SELECT \
     (SELECT COUNT(*) FROM timers WHERE state = 'pending'), \
     (SELECT COUNT(*) FROM tasks WHERE state = 'open' AND due_at < $1), \
     (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')), \
     (SELECT COUNT(*) FROM outbox WHERE state = 'dead')";

pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_log \
     (at, actor, action, subject, detail_json) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const AUDIT_AFTER: &str = concat!(
    "SELECT ",
    cols!(audit),
    " FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
);

/// Rows per multi-row INSERT (12 parameters a task row: well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters per statement).
pub(crate) const INSERT_CHUNK: usize = 1000;

/// Most seed rows read per scan of an outbox claim (expired, held-and-released, free); a
/// claim of few messages reads four rows per message it may take.
pub(crate) const OUTBOX_SEED_SCAN: i64 = 200;

/// Followed by a bound workflow id, `) AND task IN (`, a bound list and `)`: the done
/// per-person task instances a counting rule counts (index `tasks_person`).
pub(crate) const PERSON_TASKS_DONE_HEAD: &str = "SELECT person_id, completed_at FROM tasks \
     WHERE person_id IS NOT NULL AND state = 'done' AND completed_at IS NOT NULL \
     AND round_id IN (SELECT id FROM rounds WHERE workflow_id = ";

/// Heads of the statements built with a row count (multi-row `VALUES`, bound id lists).
pub(crate) const TASKS_INSERT_HEAD: &str = "INSERT INTO tasks (round_id, key, task, stage, \
     title, assignee_kind, assignee_id, assignee_name, due_at, state, completed_at, \
     updated_at, provisional, person_id, person_json) ";
/// Followed by multi-row `VALUES` and ` ON CONFLICT (key) DO NOTHING`.
pub(crate) const TIMERS_INSERT_HEAD: &str =
    "INSERT INTO timers (key, round_id, task_id, kind, due_at, payload_json) ";
/// Followed by the instant, the owner and a bound id list (`fire_timers`).
pub(crate) const TIMERS_FIRE_HEAD: &str = "UPDATE timers SET state = 'fired', fired_at = ";
/// Followed by multi-row `VALUES`.
pub(crate) const AUDIT_INSERT_HEAD: &str =
    "INSERT INTO audit_log (at, actor, action, subject, detail_json) ";
/// Followed by multi-row `VALUES` and ` ON CONFLICT (key) DO NOTHING` (SQLite; PostgreSQL
/// inserts from arrays, see its store).
pub(crate) const OUTBOX_INSERT_HEAD: &str = "INSERT INTO outbox (key, round_id, task_id, \
     kind, channel, address, recipient_json, subject, body, not_before, created_at, html, \
     item_json) ";

/// The statements whose text differs between the backends: a lock clause appended to the
/// rows a transaction will change, the claim's `SKIP LOCKED`, how outbox claims take turns,
/// and SQLite's index hints. Made by [`dialect!`] from the one text.
#[derive(Debug)]
pub struct Dialect {
    /// A task by id, locked.
    pub(crate) task_by_id_locked: &'static str,
    /// A task by round and key, locked.
    pub(crate) task_by_key_locked: &'static str,
    /// The round row, locked: every transition of a task takes it first (as do cancelling
    /// and re-projecting a round), so transitions of one round run one after the other and
    /// each reads what the one before committed.
    pub(crate) round_lock: &'static str,
    /// The open and waiting tasks of a round, locked, to cancel them.
    pub(crate) tasks_to_cancel: &'static str,
    /// Held rows (reminders, escalations not yet attempted) whose digest is released, by
    /// the partial index of held rows (SQLite's planner prefers the full `(state, …)`
    /// indexes, which walk every held row).
    pub(crate) outbox_seeds_held: &'static str,
    /// Every other pending row that is due.
    pub(crate) outbox_seeds_free: &'static str,
    /// The earliest due free row, the earliest held row (released later by the sender's
    /// rule) and the earliest lease expiry; each one probe of an index.
    pub(crate) outbox_next: &'static str,
    /// A channel's rate budget, locked.
    pub(crate) budget_get: &'static str,
    /// Running timers whose lease expired (their daemon died).
    pub(crate) claim_expired: &'static str,
    /// Due pending timers.
    pub(crate) claim_due: &'static str,
    /// Run first in an outbox claim's transaction so that claims take turns.
    pub(crate) outbox_lock: &'static str,
}

/// The [`Dialect`] of a backend, from its lock clauses and index hints (literals, so the
/// statements are `&'static str` built at compile time).
macro_rules! dialect {
    (
        row_lock: $row_lock:literal,
        claim_lock: $claim_lock:literal,
        outbox_lock: $outbox_lock:literal,
        held_index: $held_index:literal,
        free_index: $free_index:literal $(,)?
    ) => {
        $crate::store::sql::Dialect {
            task_by_id_locked: concat!(
                "SELECT ",
                $crate::store::sql::cols!(task),
                " FROM tasks WHERE id = $1",
                $row_lock
            ),
            task_by_key_locked: concat!(
                "SELECT ",
                $crate::store::sql::cols!(task),
                " FROM tasks WHERE round_id = $1 AND key = $2",
                $row_lock
            ),
            round_lock: concat!("SELECT id FROM rounds WHERE id = $1", $row_lock),
            tasks_to_cancel: concat!(
                "SELECT id, state FROM tasks WHERE round_id = $1 \
                 AND state IN ('open', 'waiting') ORDER BY id",
                $row_lock
            ),
            outbox_seeds_held: concat!(
                "SELECT id, kind, channel, address, not_before, message_id FROM outbox",
                $held_index,
                " WHERE state = 'pending' AND ",
                $crate::store::sql::outbox_held!(),
                " AND not_before <= $1 ORDER BY not_before, id LIMIT $2"
            ),
            outbox_seeds_free: concat!(
                "SELECT id, kind, channel, address, not_before, message_id FROM outbox",
                $free_index,
                " WHERE state = 'pending' AND ",
                $crate::store::sql::outbox_free!(),
                " AND COALESCE(next_attempt_at, not_before) <= $1 \
                 ORDER BY COALESCE(next_attempt_at, not_before), id LIMIT $2"
            ),
            outbox_next: concat!(
                "SELECT (SELECT MIN(COALESCE(next_attempt_at, not_before)) FROM outbox",
                $free_index,
                " WHERE state = 'pending' AND ",
                $crate::store::sql::outbox_free!(),
                "), (SELECT MIN(not_before) FROM outbox",
                $held_index,
                " WHERE state = 'pending' AND ",
                $crate::store::sql::outbox_held!(),
                "), (SELECT MIN(lease_until) FROM outbox WHERE state = 'sending')"
            ),
            budget_get: concat!(
                "SELECT tat_us FROM rate_budget WHERE channel = $1",
                $row_lock
            ),
            claim_expired: concat!(
                "UPDATE timers SET state = 'running', lease_owner = $2, lease_until = $3, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM timers \
                 WHERE state = 'running' AND lease_until < $1 AND due_at <= $1 \
                 ORDER BY due_at, id LIMIT $4",
                $claim_lock,
                ") RETURNING ",
                $crate::store::sql::cols!(timer)
            ),
            claim_due: concat!(
                "UPDATE timers SET state = 'running', lease_owner = $2, lease_until = $3, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM timers \
                 WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $4",
                $claim_lock,
                ") RETURNING ",
                $crate::store::sql::cols!(timer)
            ),
            outbox_lock: $outbox_lock,
        }
    };
}
pub(crate) use dialect;
