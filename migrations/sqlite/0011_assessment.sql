-- Assessment results (考核等次, issue #16 item 5): one rating per person and year, written
-- when a branch submits its ratings task. `adjust_event` is the 调整 event recorded once a
-- run of failing years ends in this year, so that re-submitting never records a second one.
-- Keep in step with migrations/postgres/0011_assessment.sql.
CREATE TABLE assessment_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id    INTEGER NOT NULL REFERENCES people (id),
    year         INTEGER NOT NULL,
    rating       TEXT    NOT NULL,
    failing      INTEGER NOT NULL CHECK (failing IN (0, 1)),
    priority     INTEGER NOT NULL CHECK (priority IN (0, 1)),
    unit         TEXT    NOT NULL,
    workflow_id  TEXT    NOT NULL,
    round_id     INTEGER NOT NULL REFERENCES rounds (id),
    task_id      INTEGER NOT NULL REFERENCES tasks (id),
    adjust_event INTEGER REFERENCES person_events (id),
    recorded_by  TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    UNIQUE (person_id, year)
) STRICT;

CREATE INDEX assessment_results_year ON assessment_results (year, unit);
