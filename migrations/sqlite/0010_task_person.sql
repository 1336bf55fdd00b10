-- Tasks per person (issue #16 item 3): a task made for one person of the pool
-- (`assignee: {each: reserve}`) names the person: `person_id` (people.id, kept when the
-- person is later removed from the pool) and `person_json`, the snapshot the task was made
-- with ({"id", "name", "unit", "tier"}) that messages and pages show without another read.
-- Keep in step with migrations/postgres/0010_task_person.sql.
ALTER TABLE tasks ADD COLUMN person_id INTEGER;
ALTER TABLE tasks ADD COLUMN person_json TEXT;
-- The counting rule (`counts:`) counts a year's done tasks per person.
CREATE INDEX tasks_person ON tasks (person_id, task) WHERE person_id IS NOT NULL;
