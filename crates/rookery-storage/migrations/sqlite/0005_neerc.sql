-- NEERC contest service: tasks per room, each assignee's status, an audit log of every
-- change, and a per-room counter for new task ids (never reused).
CREATE TABLE neerc_tasks (
    service    TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (service, room, id)
);

CREATE TABLE neerc_task_statuses (
    service  TEXT    NOT NULL,
    room     TEXT    NOT NULL,
    task     TEXT    NOT NULL,
    assignee TEXT    NOT NULL,
    pos      INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    value    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (service, room, task, assignee)
);

CREATE TABLE neerc_task_ids (
    service TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    next_id INTEGER NOT NULL,
    PRIMARY KEY (service, room)
);

CREATE TABLE neerc_task_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    task    TEXT    NOT NULL,
    at_us   INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX neerc_task_log_by_room ON neerc_task_log (service, room, seq);
