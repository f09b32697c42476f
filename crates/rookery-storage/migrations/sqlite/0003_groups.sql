-- Shared groups: named groups of users per host, managed by administrators and
-- optionally shown in their members' rosters. Members are bare JIDs.
CREATE TABLE shared_groups (
    host            TEXT    NOT NULL,
    group_id        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    show_in_roster  INTEGER NOT NULL CHECK (show_in_roster IN (0, 1)),
    PRIMARY KEY (host, group_id)
);

CREATE TABLE shared_group_members (
    host      TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    member    TEXT NOT NULL,
    PRIMARY KEY (host, group_id, member),
    FOREIGN KEY (host, group_id) REFERENCES shared_groups (host, group_id) ON DELETE CASCADE
);
-- "Which groups is this JID in", for rosters and presence.
CREATE INDEX shared_group_members_by_member ON shared_group_members (member, host);
