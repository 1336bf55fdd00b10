-- yanzhen store schema, SQLite dialect. Keep in step with migrations/postgres/0001_init.sql.
-- Every instant is UTC epoch milliseconds (INTEGER). STRICT tables reject values of the wrong type.

CREATE TABLE workflow_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (workflow_id, hash),
    UNIQUE (workflow_id, version)
) STRICT;

CREATE TABLE rounds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tag         TEXT    NOT NULL UNIQUE,
    workflow_id TEXT    NOT NULL,
    version_id  INTEGER NOT NULL REFERENCES workflow_versions (id),
    start_date  TEXT    NOT NULL,
    params_json TEXT    NOT NULL,
    units_json  TEXT,
    status      TEXT    NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'finished', 'cancelled')),
    created_at  INTEGER NOT NULL,
    kickoff_key TEXT    UNIQUE
) STRICT;

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id      INTEGER NOT NULL REFERENCES rounds (id),
    key           TEXT    NOT NULL,
    task          TEXT    NOT NULL,
    stage         TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    assignee_kind TEXT    NOT NULL,
    assignee_id   TEXT    NOT NULL,
    assignee_name TEXT    NOT NULL,
    due_at        INTEGER,
    state         TEXT    NOT NULL
                  CHECK (state IN ('open', 'waiting', 'done', 'waived', 'cancelled')),
    completed_at  INTEGER,
    updated_at    INTEGER NOT NULL,
    UNIQUE (round_id, key)
) STRICT;

CREATE TABLE task_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    at         INTEGER NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    note       TEXT
) STRICT;

CREATE INDEX task_history_task ON task_history (task_id, id);

CREATE TABLE timers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT    NOT NULL UNIQUE,
    round_id     INTEGER REFERENCES rounds (id),
    task_id      INTEGER REFERENCES tasks (id),
    kind         TEXT    NOT NULL,
    due_at       INTEGER NOT NULL,
    payload_json TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'fired', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER,
    fired_at     INTEGER
) STRICT;

CREATE INDEX timers_state_due ON timers (state, due_at);
CREATE INDEX timers_state_lease ON timers (state, lease_until);
CREATE INDEX timers_task ON timers (task_id);
CREATE INDEX timers_round ON timers (round_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT    NOT NULL UNIQUE,
    round_id        INTEGER REFERENCES rounds (id),
    task_id         INTEGER REFERENCES tasks (id),
    kind            TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    recipient_json  TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    next_attempt_at INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER
) STRICT;

CREATE INDEX outbox_state_not_before ON outbox (state, not_before);

-- Append-only: ids come from AUTOINCREMENT (never reused, always increasing); rows are never
-- changed or removed.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail_json TEXT    NOT NULL
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
