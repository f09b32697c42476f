//! Persistent storage for Rookery.
//!
//! The server talks to storage only through the narrow, per-concern traits in
//! this crate ([`AccountStore`], [`RosterStore`], [`OfflineStore`],
//! [`UserDataStore`], [`BlocklistStore`], [`LastActivityStore`], [`GroupStore`],
//! [`MucStore`], [`TaskStore`]), bundled as
//! trait objects in [`Stores`], so it never names a backend.
//!
//! The one backend today is [`sqlite::SqliteStore`]. It goes through sqlx's
//! `Any` driver with portable SQL (`$N` placeholders, integer/text/blob values
//! only, `INSERT … ON CONFLICT … DO UPDATE`), so a PostgreSQL backend can reuse
//! the same statements.
//!
//! Conventions shared by every method:
//! * `host` is the domain and `user` the (already nodeprepped) localpart;
//!   contacts and blocked JIDs are bare JID strings, stored verbatim.
//! * Times are microseconds since the Unix epoch (see [`now_us`]).
//! * When a method returns `Ok`, its effect is committed to disk.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub mod sqlite;

/// Errors returned by every store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database driver failed (I/O, constraint, lock timeout, …).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Bringing the schema up to date failed while opening.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The caller passed a value the store cannot represent, or the database
    /// holds a value this version does not understand.
    #[error("{0}")]
    Invalid(String),
}

/// Result type of every store method.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The current time in microseconds since the Unix epoch (0 if the clock is
/// before 1970).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------

/// SCRAM credentials for one hash function (RFC 5802 / RFC 7677).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The hash function name: `"SHA-1"` or `"SHA-256"`.
    pub hash: String,
    /// The salt used to derive the salted password.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

/// User accounts and their authentication credentials.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account with the given credentials, atomically.
    ///
    /// Returns `false` (and changes nothing) if the account exists already.
    /// Fails with [`StoreError::Invalid`] if two credentials share a hash name.
    async fn create_account(&self, host: &str, user: &str, creds: &[Credential]) -> Result<bool>;

    /// Replaces all credentials of an account; `false` if there is no such account.
    async fn set_credentials(&self, host: &str, user: &str, creds: &[Credential]) -> Result<bool>;

    /// The account's credential for hash function `hash`, if any.
    async fn credential(&self, host: &str, user: &str, hash: &str) -> Result<Option<Credential>>;

    /// What a login needs in one lookup: the credential for `hash` and whether the
    /// account is disabled. `None` when there is no such credential (or account).
    async fn login_credential(
        &self,
        host: &str,
        user: &str,
        hash: &str,
    ) -> Result<Option<(Credential, bool)>> {
        match self.credential(host, user, hash).await? {
            Some(c) => Ok(Some((c, self.is_disabled(host, user).await?))),
            None => Ok(None),
        }
    }

    /// Whether the account exists.
    async fn account_exists(&self, host: &str, user: &str) -> Result<bool>;

    /// Removes the account and ALL its data in every other table (roster,
    /// offline messages, user data, blocklist, last activity) in one
    /// transaction; `false` if there was no such account (any stray data of
    /// that user is removed all the same).
    async fn delete_account(&self, host: &str, user: &str) -> Result<bool>;

    /// The localparts of all accounts on `host`, sorted.
    async fn list_accounts(&self, host: &str) -> Result<Vec<String>>;

    /// Number of accounts on `host`.
    async fn count_accounts(&self, host: &str) -> Result<u64>;

    /// Disables (`true`) or re-enables an account; a disabled account keeps its data but
    /// cannot log in. `false` if there is no such account.
    async fn set_disabled(&self, host: &str, user: &str, disabled: bool) -> Result<bool>;

    /// Whether the account exists and is disabled.
    async fn is_disabled(&self, host: &str, user: &str) -> Result<bool>;

    /// The localparts of the disabled accounts on `host`, sorted.
    async fn disabled_accounts(&self, host: &str) -> Result<Vec<String>>;

    /// Records a successful login now.
    async fn record_login(&self, host: &str, user: &str, stamp_us: i64) -> Result<()>;

    /// Records many logins (host, user, time) at once; a backend can do it in one write.
    async fn record_logins(&self, logins: &[(String, String, i64)]) -> Result<()> {
        for (host, user, stamp) in logins {
            self.record_login(host, user, *stamp).await?;
        }
        Ok(())
    }

    /// When the account last logged in (microseconds since the epoch), if ever.
    async fn last_login(&self, host: &str, user: &str) -> Result<Option<i64>>;
}

// ---------------------------------------------------------------------------
// Roster
// ---------------------------------------------------------------------------

/// The subscription state of a roster item (RFC 6121 §2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    /// Neither side receives the other's presence.
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both directions.
    Both,
}

impl Subscription {
    /// The protocol spelling: `"none"`, `"to"`, `"from"` or `"both"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses the protocol spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Subscription> {
        match s {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Subscription {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Subscription::parse(s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown subscription state {s:?}")))
    }
}

/// One entry of a user's roster, plus the subscription bookkeeping of RFC 6121.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RosterItem {
    /// The contact's bare JID.
    pub contact: String,
    /// The user-assigned display name.
    pub name: Option<String>,
    /// Group names; each must be non-empty and must not contain a newline.
    pub groups: Vec<String>,
    /// Subscription state.
    pub subscription: Subscription,
    /// we sent a subscribe and await the answer (RFC 6121 "pending out", shown as ask='subscribe')
    pub ask_out: bool,
    /// the contact asked to subscribe to us and we have not answered ("pending in"); kept across restarts
    pub pending_in: bool,
    /// the user pre-approved a subscription request from the contact (RFC 6121 §3.4)
    pub approved: bool,
    /// false for an entry that exists only to remember pending_in/approved state but which the user never added (not shown in roster results)
    pub in_roster: bool,
}

/// Rosters with versioning (RFC 6121 §2.6).
///
/// Each user has a version counter: 0 for a user whose roster was never
/// changed, bumped by every change, never reused (not even when the account
/// is deleted and created again) and persistent across restarts.
#[async_trait]
pub trait RosterStore: Send + Sync {
    /// (current roster version, all items, including ones with in_roster = false; caller filters)
    ///
    /// Items are sorted by contact.
    async fn roster(&self, host: &str, user: &str) -> Result<(u64, Vec<RosterItem>)>;

    /// The current roster version (0 if the roster was never changed).
    async fn roster_version(&self, host: &str, user: &str) -> Result<u64>;

    /// The item for `contact`, if any (whatever its `in_roster`).
    async fn roster_item(
        &self,
        host: &str,
        user: &str,
        contact: &str,
    ) -> Result<Option<RosterItem>>;

    /// insert or replace; bumps and returns the user's roster version (monotonic, starts at 0 for an empty roster, never reused, survives restarts)
    ///
    /// Fails with [`StoreError::Invalid`] if a group name is empty or contains a newline.
    async fn put_roster_item(&self, host: &str, user: &str, item: &RosterItem) -> Result<u64>;

    /// Removes the item for `contact`; returns (version, whether it existed).
    ///
    /// The version is bumped when an item was removed; otherwise nothing
    /// changed and the current version is returned.
    async fn remove_roster_item(
        &self,
        host: &str,
        user: &str,
        contact: &str,
    ) -> Result<(u64, bool)>;
}

// ---------------------------------------------------------------------------
// Offline messages
// ---------------------------------------------------------------------------

/// A message stored for a user who was offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Store-assigned id, increasing in arrival order and never reused.
    pub id: i64,
    /// When the message was stored (microseconds since the epoch).
    pub stamp_us: i64,
    /// The serialised stanza.
    pub stanza: String,
}

/// Offline message storage (XEP-0160).
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// store a serialised stanza; false (and nothing stored) when the user already has `max_per_user` messages
    async fn push_offline(
        &self,
        host: &str,
        user: &str,
        stamp_us: i64,
        stanza: &str,
        max_per_user: u64,
    ) -> Result<bool>;

    /// All stored messages of the user, oldest first.
    async fn offline_messages(&self, host: &str, user: &str) -> Result<Vec<OfflineMessage>>;

    /// delete the messages with id <= up_to_id
    async fn delete_offline(&self, host: &str, user: &str, up_to_id: i64) -> Result<()>;

    /// Number of stored messages of the user.
    async fn count_offline(&self, host: &str, user: &str) -> Result<u64>;
}

// ---------------------------------------------------------------------------
// Small per-user documents
// ---------------------------------------------------------------------------

/// Small per-user XML documents keyed by (kind, key): vcard-temp (kind "vcard", key ""), private XML storage XEP-0049 (kind "private", key "{ns} name") and later features.
///
/// The empty user `""` (never a valid localpart) holds the host's own documents: the
/// message of the day, the welcome message, server-wide lists.
#[async_trait]
pub trait UserDataStore: Send + Sync {
    /// The stored document, if any.
    async fn get_user_data(
        &self,
        host: &str,
        user: &str,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>>;

    /// Stores or replaces a document.
    async fn put_user_data(
        &self,
        host: &str,
        user: &str,
        kind: &str,
        key: &str,
        value: &str,
    ) -> Result<()>;

    /// Deletes a document; `false` if there was none.
    async fn delete_user_data(&self, host: &str, user: &str, kind: &str, key: &str)
    -> Result<bool>;
}

// ---------------------------------------------------------------------------
// Blocking
// ---------------------------------------------------------------------------

/// XEP-0191 blocking command list
#[async_trait]
pub trait BlocklistStore: Send + Sync {
    /// The blocked JIDs, sorted.
    async fn blocklist(&self, host: &str, user: &str) -> Result<Vec<String>>;

    /// adds (idempotent); returns the ones that were newly added
    ///
    /// The result keeps the order of `jids` (without duplicates).
    async fn block(&self, host: &str, user: &str, jids: &[String]) -> Result<Vec<String>>;

    /// removes the given ones, or all when `jids` is empty; returns the removed ones
    ///
    /// The result keeps the order of `jids`; when unblocking all it is sorted.
    async fn unblock(&self, host: &str, user: &str, jids: &[String]) -> Result<Vec<String>>;
}

// ---------------------------------------------------------------------------
// Last activity
// ---------------------------------------------------------------------------

/// XEP-0012: when a user's last session ended and its status text
#[async_trait]
pub trait LastActivityStore: Send + Sync {
    /// Records (or replaces) the ends of users' last sessions: (host, user, time in
    /// microseconds since the epoch, status text) each. Users without an account (deleted
    /// meanwhile) are skipped.
    async fn record_last_activity(&self, ends: &[(String, String, i64, String)]) -> Result<()>;

    /// (time in microseconds since the epoch, status text), if ever recorded.
    async fn last_activity(&self, host: &str, user: &str) -> Result<Option<(i64, String)>>;
}

// ---------------------------------------------------------------------------
// Shared groups
// ---------------------------------------------------------------------------

/// A shared group of one host: named by the administrators, optionally shown in its
/// members' rosters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The host the group belongs to.
    pub host: String,
    /// The group's id: a nodeprepped JID localpart such as `halls`.
    pub id: String,
    /// The display name (one non-empty line), e.g. `Halls`; the roster group name.
    pub name: String,
    /// Whether the members see each other in their rosters.
    pub show_in_roster: bool,
}

/// Shared groups (like Prosody's mod_groups and ejabberd's shared roster groups):
/// per host, groups with an id, a display name and a "show in roster" flag, whose
/// members are bare JID strings (of this host's users or of anyone else).
///
/// Ids and members are stored verbatim: the caller nodepreps and normalises them.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group without members; `false` (and nothing changed) if a group with
    /// this id exists on `host` already.
    ///
    /// Fails with [`StoreError::Invalid`] if the id is empty or the name is empty or
    /// contains a newline.
    async fn create_group(
        &self,
        host: &str,
        id: &str,
        name: &str,
        show_in_roster: bool,
    ) -> Result<bool>;

    /// Removes the group and all its memberships; `false` if there was no such group.
    async fn delete_group(&self, host: &str, id: &str) -> Result<bool>;

    /// The groups of `host`, sorted by id.
    async fn groups(&self, host: &str) -> Result<Vec<Group>>;

    /// One group, if it exists.
    async fn group(&self, host: &str, id: &str) -> Result<Option<Group>>;

    /// Changes a group's display name and roster flag; `false` if there is no such group.
    ///
    /// Fails with [`StoreError::Invalid`] if the name is empty or contains a newline.
    async fn set_group(
        &self,
        host: &str,
        id: &str,
        name: &str,
        show_in_roster: bool,
    ) -> Result<bool>;

    /// Adds members (idempotent); returns the ones that were newly added, in the order
    /// of `members` and without duplicates.
    ///
    /// Fails with [`StoreError::Invalid`] if there is no such group.
    async fn add_members(&self, host: &str, id: &str, members: &[String]) -> Result<Vec<String>>;

    /// Removes members; returns the ones that were members, in the order of `members`.
    /// Nothing is removed (and nothing returned) if there is no such group.
    async fn remove_members(&self, host: &str, id: &str, members: &[String])
    -> Result<Vec<String>>;

    /// The members of a group, sorted (empty for a group that does not exist).
    async fn members(&self, host: &str, id: &str) -> Result<Vec<String>>;

    /// The groups of `host` that `member` belongs to, sorted by id.
    async fn groups_of(&self, host: &str, member: &str) -> Result<Vec<Group>>;

    /// Who `member` sees through the groups of `host` shown in rosters: each other
    /// member of such a group with the display name of that group, as (contact, group
    /// name) pairs sorted by contact, then name, without duplicates. One query, for the
    /// roster and presence paths.
    async fn shown_contacts(&self, host: &str, member: &str) -> Result<Vec<(String, String)>>;

    /// Removes `member` from every group of every host (its account was deleted);
    /// returns how many memberships went. [`AccountStore::delete_account`] leaves
    /// memberships alone (members need not be accounts here); the server calls this.
    async fn remove_member_everywhere(&self, member: &str) -> Result<u64>;
}

// ---------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Multi-user chat rooms
// ---------------------------------------------------------------------------

/// A persistent multi-user chat room as stored: its configuration (a JSON document the
/// MUC service owns), its subject and its affiliations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredRoom {
    /// The room's localpart (nodeprepped), e.g. `neerc`.
    pub room: String,
    /// The room configuration, serialised by the MUC service.
    pub config: String,
    /// The current subject (empty: none) and the nick that set it.
    pub subject: String,
    /// Who set the subject (a nick), empty if unknown.
    pub subject_by: String,
    /// Affiliations other than `none`, sorted by JID.
    pub affiliations: Vec<StoredAffiliation>,
}

/// One affiliation of a room: a bare JID (of a user, a server or a group) and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAffiliation {
    /// The bare JID the affiliation is for.
    pub jid: String,
    /// `owner`, `admin`, `member` or `outcast`.
    pub affiliation: String,
    /// The reason given when it was set (may be empty).
    pub reason: String,
}

/// Rooms of the multi-user chat service (XEP-0045) that outlive their occupants.
///
/// `service` is the MUC service's domain (e.g. `conference.example.org`).
#[async_trait]
pub trait MucStore: Send + Sync {
    /// Every stored room of the service, with its affiliations, sorted by room.
    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>>;

    /// Creates the room or replaces its configuration and subject (not its
    /// affiliations, which [`MucStore::set_affiliation`] changes).
    async fn save_room(&self, service: &str, room: &StoredRoom) -> Result<()>;

    /// Removes the room and its affiliations; `false` if there was no such room.
    async fn delete_room(&self, service: &str, room: &str) -> Result<bool>;

    /// Sets (or with `affiliation` = `none`, removes) one affiliation of a stored room.
    async fn set_affiliation(
        &self,
        service: &str,
        room: &str,
        jid: &str,
        affiliation: &str,
        reason: &str,
    ) -> Result<()>;
}

// ---------------------------------------------------------------------------
// NEERC contest tasks
// ---------------------------------------------------------------------------

/// A contest task of one room (the NEERC service), as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredTask {
    /// The task's id, unique in its room (e.g. `12`, or one a client chose).
    pub id: String,
    /// What to do, e.g. `Wallpapers set?`.
    pub title: String,
    /// The task type: `todo`, `todofail`, `confirm`, `okfail`, `question`, …
    pub kind: String,
    /// When the task was created, in milliseconds since the Unix epoch (kept when the
    /// task is replaced).
    pub created_ms: i64,
    /// The assignees and their statuses, in assignment order.
    pub statuses: Vec<StoredTaskStatus>,
    /// For a scheduled task (not live yet): when it becomes live.
    pub schedule: Option<TaskSchedule>,
}

/// When a scheduled task becomes live, by the contest clock or the wall clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSchedule {
    /// `start` (contest time), `end` (relative to the contest's end) or `absolute`.
    pub base: String,
    /// Milliseconds: contest time for `start`, an offset from the end (negative before
    /// it) for `end`, since the Unix epoch for `absolute`.
    pub at_ms: i64,
    /// A power user confirms it before it goes live; otherwise it goes live by itself.
    pub confirm: bool,
}

/// One assignee's status on a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredTaskStatus {
    /// The assignee's name (a JID local part, as on the wire).
    pub assignee: String,
    /// `none`, `running`, `success`, `fail` or `acknowledged`.
    pub status: String,
    /// A reason or an answer; empty for none.
    pub value: String,
}

/// One entry of a room's task audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLogEntry {
    /// When, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// Who (a bare JID).
    pub actor: String,
    /// `create`, `replace`, `remove` or `status`.
    pub action: String,
    /// The task's id.
    pub task: String,
    /// What changed, for people (e.g. `hall1: running -> success (done)`).
    pub detail: String,
}

/// The tasks of the NEERC contest service, per room, with an audit log of every change.
///
/// `service` is the NEERC service's domain (e.g. `neerc.example.org`), `room` the MUC
/// room's local part. Each write also appends its audit entry, in the same transaction.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Every task of the room, sorted by creation time, then id; statuses in
    /// assignment order.
    async fn tasks(&self, service: &str, room: &str) -> Result<Vec<StoredTask>>;

    /// A fresh task id for the room: a decimal number never handed out before in this
    /// room and not used by an existing task.
    async fn new_task_id(&self, service: &str, room: &str) -> Result<String>;

    /// Creates or fully replaces a task (title, type, creation time and statuses),
    /// logging `action` by `actor` with `detail`.
    async fn put_task(
        &self,
        service: &str,
        room: &str,
        task: &StoredTask,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<()>;

    /// Sets one assignee's status on an existing task; `false` (and nothing logged) if
    /// the task or the assignment does not exist.
    async fn set_task_status(
        &self,
        service: &str,
        room: &str,
        task: &str,
        status: &StoredTaskStatus,
        actor: &str,
        detail: &str,
    ) -> Result<bool>;

    /// Removes a task and its statuses; `false` (and nothing logged) if there was none.
    async fn delete_task(&self, service: &str, room: &str, task: &str, actor: &str)
    -> Result<bool>;

    /// The rooms of a service that have tasks.
    async fn task_rooms(&self, service: &str) -> Result<Vec<String>>;

    /// The most recent `limit` audit entries of the room, oldest first.
    async fn task_log(&self, service: &str, room: &str, limit: u32) -> Result<Vec<TaskLogEntry>>;
}

/// All stores of one backend, as trait objects, so the server never names a backend.
#[derive(Clone)]
pub struct Stores {
    /// Accounts and credentials.
    pub accounts: Arc<dyn AccountStore>,
    /// Rosters.
    pub roster: Arc<dyn RosterStore>,
    /// Offline messages.
    pub offline: Arc<dyn OfflineStore>,
    /// vCards, private XML and other small per-user documents.
    pub user_data: Arc<dyn UserDataStore>,
    /// Blocking command lists.
    pub blocklist: Arc<dyn BlocklistStore>,
    /// Last activity.
    pub last_activity: Arc<dyn LastActivityStore>,
    /// Shared groups.
    pub groups: Arc<dyn GroupStore>,
    /// Persistent multi-user chat rooms.
    pub muc: Arc<dyn MucStore>,
    /// NEERC contest tasks.
    pub tasks: Arc<dyn TaskStore>,
}

impl Stores {
    /// Uses one value implementing every store trait for all of them.
    pub fn from_backend<B>(backend: Arc<B>) -> Stores
    where
        B: AccountStore
            + RosterStore
            + OfflineStore
            + UserDataStore
            + BlocklistStore
            + LastActivityStore
            + GroupStore
            + MucStore
            + TaskStore
            + 'static,
    {
        Stores {
            accounts: backend.clone(),
            roster: backend.clone(),
            offline: backend.clone(),
            user_data: backend.clone(),
            blocklist: backend.clone(),
            last_activity: backend.clone(),
            groups: backend.clone(),
            muc: backend.clone(),
            tasks: backend,
        }
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}
