-- no-transaction
-- Submissions on the branch link (issue #17): a task may now be `submitted` (handed in,
-- waiting for the office to accept or return it), and each hand-in is kept with its field
-- values and the files it stored (by content hash; the bytes live in the file store).
-- SQLite cannot change a CHECK constraint in place, so `tasks` is rebuilt the documented way
-- (foreign keys off, outside sqlx's transaction, in a transaction of its own), keeping
-- 0010's person columns and index.
-- Keep in step with migrations/postgres/0012_submissions.sql.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE tasks_0012 (
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
                  CHECK (state IN ('open', 'waiting', 'submitted', 'done', 'waived', 'cancelled')),
    completed_at  INTEGER,
    updated_at    INTEGER NOT NULL,
    provisional   INTEGER NOT NULL DEFAULT 0 CHECK (provisional IN (0, 1)),
    person_id     INTEGER,
    person_json   TEXT,
    UNIQUE (round_id, key)
) STRICT;
INSERT INTO tasks_0012 (id, round_id, key, task, stage, title, assignee_kind, assignee_id,
        assignee_name, due_at, state, completed_at, updated_at, provisional, person_id,
        person_json)
    SELECT id, round_id, key, task, stage, title, assignee_kind, assignee_id,
        assignee_name, due_at, state, completed_at, updated_at, provisional, person_id,
        person_json FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_0012 RENAME TO tasks;
-- The rebuild dropped 0010's index with the old table.
CREATE INDEX tasks_person ON tasks (person_id, task) WHERE person_id IS NOT NULL;

CREATE TABLE submissions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL REFERENCES tasks (id),
    round_id    INTEGER NOT NULL REFERENCES rounds (id),
    unit        TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    fields_json TEXT    NOT NULL,
    files_json  TEXT    NOT NULL,
    outcome     TEXT    CHECK (outcome IN ('accepted', 'returned')),
    decided_at  INTEGER,
    decided_by  TEXT,
    reason      TEXT
) STRICT;
CREATE INDEX submissions_task ON submissions (task_id, id);
CREATE INDEX submissions_round ON submissions (round_id, unit);
COMMIT;
PRAGMA foreign_keys = ON;
