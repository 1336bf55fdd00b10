-- Assessment results (考核等次, issue #16 item 5): one rating per person and year, written
-- when a branch submits its ratings task. `adjust_event` is the 调整 event recorded once a
-- run of failing years ends in this year, so that re-submitting never records a second one.
-- Keep in step with migrations/sqlite/0011_assessment.sql.
CREATE TABLE assessment_results (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id    BIGINT  NOT NULL REFERENCES people (id),
    year         BIGINT  NOT NULL,
    rating       TEXT    NOT NULL,
    failing      BIGINT  NOT NULL CHECK (failing IN (0, 1)),
    priority     BIGINT  NOT NULL CHECK (priority IN (0, 1)),
    unit         TEXT    NOT NULL,
    workflow_id  TEXT    NOT NULL,
    round_id     BIGINT  NOT NULL REFERENCES rounds (id),
    task_id      BIGINT  NOT NULL REFERENCES tasks (id),
    adjust_event BIGINT  REFERENCES person_events (id),
    recorded_by  TEXT    NOT NULL,
    recorded_at  BIGINT  NOT NULL,
    UNIQUE (person_id, year)
);

CREATE INDEX assessment_results_year ON assessment_results (year, unit);
