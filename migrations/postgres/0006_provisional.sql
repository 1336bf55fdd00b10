-- A task's deadline counted over a year without a holiday file (the provisional calendar:
-- weekends and statutory holidays only) is marked, so status, the console, messages and the
-- .ics feed can say so without re-planning; re-projection clears it when the file is added.
-- (Timers carry the same mark in their payload.)
ALTER TABLE tasks ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT FALSE;
