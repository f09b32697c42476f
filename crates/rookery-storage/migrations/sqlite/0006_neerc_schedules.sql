-- NEERC scheduled tasks: a task with a schedule is not live until the contest clock (or
-- the wall clock) reaches its time; `schedule` is '' for live tasks, else 'start', 'end'
-- or 'absolute'.
ALTER TABLE neerc_tasks ADD COLUMN schedule    TEXT    NOT NULL DEFAULT '';
ALTER TABLE neerc_tasks ADD COLUMN schedule_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE neerc_tasks ADD COLUMN confirm     INTEGER NOT NULL DEFAULT 0;
