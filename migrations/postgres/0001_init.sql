-- yanzhen store schema, PostgreSQL dialect. Keep in step with migrations/sqlite/0001_init.sql.
-- Every instant is UTC epoch milliseconds (BIGINT). Every integer is BIGINT so it decodes as i64.

CREATE TABLE workflow_versions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    hash        TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (workflow_id, hash),
    UNIQUE (workflow_id, version)
);

CREATE TABLE rounds (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tag         TEXT   NOT NULL UNIQUE,
    workflow_id TEXT   NOT NULL,
    version_id  BIGINT NOT NULL REFERENCES workflow_versions (id),
    start_date  TEXT   NOT NULL,
    params_json TEXT   NOT NULL,
    units_json  TEXT,
    status      TEXT   NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'finished', 'cancelled')),
    created_at  BIGINT NOT NULL,
    kickoff_key TEXT   UNIQUE
);

CREATE TABLE tasks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round_id      BIGINT NOT NULL REFERENCES rounds (id),
    key           TEXT   NOT NULL,
    task          TEXT   NOT NULL,
    stage         TEXT   NOT NULL,
    title         TEXT   NOT NULL,
    assignee_kind TEXT   NOT NULL,
    assignee_id   TEXT   NOT NULL,
    assignee_name TEXT   NOT NULL,
    due_at        BIGINT,
    state         TEXT   NOT NULL
                  CHECK (state IN ('open', 'waiting', 'done', 'waived', 'cancelled')),
    completed_at  BIGINT,
    updated_at    BIGINT NOT NULL,
    UNIQUE (round_id, key)
);

CREATE TABLE task_history (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    BIGINT NOT NULL REFERENCES tasks (id),
    at         BIGINT NOT NULL,
    from_state TEXT   NOT NULL,
    to_state   TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    note       TEXT
);

CREATE INDEX task_history_task ON task_history (task_id, id);

CREATE TABLE timers (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          TEXT   NOT NULL UNIQUE,
    round_id     BIGINT REFERENCES rounds (id),
    task_id      BIGINT REFERENCES tasks (id),
    kind         TEXT   NOT NULL,
    due_at       BIGINT NOT NULL,
    payload_json TEXT   NOT NULL,
    state        TEXT   NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'fired', 'cancelled')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  BIGINT,
    fired_at     BIGINT
);

CREATE INDEX timers_state_due ON timers (state, due_at);
CREATE INDEX timers_state_lease ON timers (state, lease_until);
CREATE INDEX timers_task ON timers (task_id);
CREATE INDEX timers_round ON timers (round_id);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key             TEXT   NOT NULL UNIQUE,
    round_id        BIGINT REFERENCES rounds (id),
    task_id         BIGINT REFERENCES tasks (id),
    kind            TEXT   NOT NULL,
    channel         TEXT   NOT NULL,
    address         TEXT   NOT NULL,
    recipient_json  TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    state           TEXT   NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    not_before      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT,
    next_attempt_at BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT
);

CREATE INDEX outbox_state_not_before ON outbox (state, not_before);

-- Append-only: rows are never changed or removed. Ids increase in insertion order; note that
-- on PostgreSQL a transaction that took a lower id may commit after one with a higher id.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    detail_json TEXT   NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
