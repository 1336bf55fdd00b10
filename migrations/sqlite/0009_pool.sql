-- The reserve pool (后备干部库, issue #16): the people of each branch and the events recorded
-- about them. Dates a person carries (birth, joined, term, removal) are calendar dates,
-- `YYYY-MM-DD` text as `rounds.start_date`, parsed when read; instants are epoch ms.
-- Keep in step with migrations/postgres/0009_pool.sql.
CREATE TABLE people (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    unit           TEXT    NOT NULL,
    tier           INTEGER NOT NULL CHECK (tier BETWEEN 1 AND 4),
    post_track     TEXT    CHECK (post_track IN ('chief', 'deputy')),
    current_post   TEXT,
    gender         TEXT    CHECK (gender IN ('male', 'female')),
    birth          TEXT    NOT NULL,
    education      TEXT,
    joined_at      TEXT    NOT NULL,
    term_start     TEXT,
    term_end       TEXT,
    mentor         TEXT,
    status         TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    removed_reason TEXT,
    removed_at     TEXT,
    phone          TEXT,
    email          TEXT,
    note           TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX people_unit ON people (unit, status, tier);
-- An import finds the person it updates by name, unit and birth.
CREATE INDEX people_identity ON people (name, unit, birth);

CREATE TABLE person_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    kind        TEXT    NOT NULL,
    date        TEXT    NOT NULL,
    note        TEXT,
    recorded_by TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX person_events_person ON person_events (person_id, date);
CREATE INDEX person_events_date ON person_events (date);

-- A person's page lists the audit entries about them (`person:ID`).
CREATE INDEX audit_log_subject ON audit_log (subject, id);
