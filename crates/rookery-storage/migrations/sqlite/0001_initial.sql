-- Rookery storage schema, version 1.
--
-- Portability rules (a PostgreSQL schema follows the same shape):
--   * only INTEGER / TEXT / BLOB columns;
--   * times are INTEGER microseconds since the Unix epoch;
--   * booleans are INTEGER 0/1;
--   * no column is called "user" or "key" (reserved words elsewhere).

CREATE TABLE accounts (
    host        TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    created_us  INTEGER NOT NULL,
    PRIMARY KEY (host, username)
);

-- SCRAM credentials, one row per hash function.
CREATE TABLE credentials (
    host        TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    salt        BLOB    NOT NULL,
    iterations  INTEGER NOT NULL,
    stored_key  BLOB    NOT NULL,
    server_key  BLOB    NOT NULL,
    PRIMARY KEY (host, username, hash),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- Per-user roster version counter. Kept when an account is deleted so that a
-- re-created account never hands out a version number that was used before.
CREATE TABLE roster_versions (
    host        TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (host, username)
);

CREATE TABLE roster_items (
    host         TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    contact      TEXT    NOT NULL,
    name         TEXT,
    -- group names joined with '\n'; '' for no groups
    group_names  TEXT    NOT NULL,
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      INTEGER NOT NULL CHECK (ask_out IN (0, 1)),
    pending_in   INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
    approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
    in_roster    INTEGER NOT NULL CHECK (in_roster IN (0, 1)),
    PRIMARY KEY (host, username, contact)
);

-- AUTOINCREMENT: ids are never reused, so "delete up to id N" is safe even
-- when messages arrive while older ones are being delivered.
CREATE TABLE offline_messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    host      TEXT    NOT NULL,
    username  TEXT    NOT NULL,
    stamp_us  INTEGER NOT NULL,
    stanza    TEXT    NOT NULL
);
CREATE INDEX offline_messages_by_owner ON offline_messages (host, username, id);

CREATE TABLE user_data (
    host      TEXT NOT NULL,
    username  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    item_key  TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (host, username, kind, item_key)
);

CREATE TABLE blocklist (
    host      TEXT NOT NULL,
    username  TEXT NOT NULL,
    jid       TEXT NOT NULL,
    PRIMARY KEY (host, username, jid)
);

CREATE TABLE last_activity (
    host      TEXT    NOT NULL,
    username  TEXT    NOT NULL,
    stamp_us  INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    PRIMARY KEY (host, username)
);
