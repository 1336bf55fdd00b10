-- Submissions on the branch link (issue #17): a task may now be `submitted` (handed in,
-- waiting for the office to accept or return it), and each hand-in is kept with its field
-- values and the files it stored (by content hash; the bytes live in the file store).
-- Keep in step with migrations/sqlite/0012_submissions.sql.
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_state_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
    CHECK (state IN ('open', 'waiting', 'submitted', 'done', 'waived', 'cancelled'));

CREATE TABLE submissions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id),
    round_id    BIGINT NOT NULL REFERENCES rounds (id),
    unit        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    fields_json TEXT   NOT NULL,
    files_json  TEXT   NOT NULL,
    outcome     TEXT   CHECK (outcome IN ('accepted', 'returned')),
    decided_at  BIGINT,
    decided_by  TEXT,
    reason      TEXT
);
CREATE INDEX submissions_task ON submissions (task_id, id);
CREATE INDEX submissions_round ON submissions (round_id, unit);
