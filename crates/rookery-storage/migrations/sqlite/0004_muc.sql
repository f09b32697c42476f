-- Persistent multi-user chat rooms (XEP-0045): configuration and subject, and
-- affiliations. Rooms that are not persistent are never written here.
CREATE TABLE muc_rooms (
    service    TEXT NOT NULL,
    room       TEXT NOT NULL,
    config     TEXT NOT NULL,
    subject    TEXT NOT NULL DEFAULT '',
    subject_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (service, room)
);

CREATE TABLE muc_affiliations (
    service     TEXT NOT NULL,
    room        TEXT NOT NULL,
    jid         TEXT NOT NULL,
    affiliation TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (service, room, jid)
);
