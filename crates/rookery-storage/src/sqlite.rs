//! The embedded SQLite backend.
//!
//! Every statement goes through sqlx's `Any` driver and sticks to SQL that
//! PostgreSQL understands as well: `$N` placeholders, integer/text/blob
//! values, `INSERT … ON CONFLICT … DO UPDATE` and `RETURNING`. Only opening
//! the database (file URL, pragmas, `BEGIN IMMEDIATE`) is SQLite-specific.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`: a committed
//! transaction survives the process being killed (not necessarily a power
//! cut), and the server and the admin CLI can have the file open at the same
//! time, readers never blocking the single writer. Writers wait up to five
//! seconds for each other (`busy_timeout`). Write transactions start with
//! `BEGIN IMMEDIATE`, so a read-then-write transaction takes the write lock
//! up front instead of failing when another connection wrote in between.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::{
    AccountStore, BlocklistStore, Credential, LastActivityStore, OfflineMessage, OfflineStore,
    Result, RosterItem, RosterStore, StoreError, Stores, UserDataStore, now_us,
};

mod groups;
mod muc;
mod neerc;

/// The schema, embedded at compile time from `migrations/sqlite`.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Connections per file-backed pool. SQLite has one writer at a time; the
/// others serve concurrent readers.
const MAX_CONNECTIONS: u32 = 8;

/// Starts a transaction that takes the write lock immediately.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The SQLite backend; implements every store trait of this crate.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: AnyPool,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path` and brings
    /// its schema up to date. The parent directory must exist.
    ///
    /// Safe to call while another process has the same file open.
    pub async fn open(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let file = resolve_path(path)?;
        let url = format!("sqlite://{}?mode=rwc", encode_path(&file)?);
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // A connection to a local file does not go stale; the ping before every
            // query was a round trip to the connection's thread, and most of a login's
            // store cost.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| Box::pin(configure_connection(conn)))
            .connect_with(options)
            .await?;
        let store = SqliteStore { pool };
        store.ensure_wal().await?;
        store.migrate().await?;
        tracing::info!(path = %file.display(), "opened SQLite store");
        Ok(store)
    }

    /// Opens a fresh, private in-memory database (for tests). It lives as
    /// long as this store (and its clones) are open.
    pub async fn open_memory() -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        sqlx::any::install_default_drivers();
        let url = format!(
            "sqlite:file:rookery-memory-{}-{}?mode=memory&cache=shared",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let options = AnyConnectOptions::from_str(&url)?;
        // A single connection that is never recycled: the database vanishes
        // with its last connection.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _meta| Box::pin(configure_connection(conn)))
            .connect_with(options)
            .await?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps this store as the trait objects the server uses.
    pub fn into_stores(self) -> Stores {
        Stores::from_backend(Arc::new(self))
    }

    /// Closes all connections (waiting for those in use to be returned).
    /// Every store sharing this pool stops working.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Switches the file to WAL mode (a persistent property of the file).
    /// Retries for a while if another process holds a lock on it.
    async fn ensure_wal(&self) -> Result<()> {
        const ATTEMPTS: u32 = 50;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = async {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&self.pool)
                    .await?;
                if mode.eq_ignore_ascii_case("wal") {
                    return Ok(mode);
                }
                sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
                    .fetch_one(&self.pool)
                    .await
            }
            .await;
            match outcome {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Ok(mode) if attempt >= ATTEMPTS => {
                    return Err(StoreError::Invalid(format!(
                        "cannot switch the database to WAL mode (journal mode is {mode:?})"
                    )));
                }
                Err(e) if attempt >= ATTEMPTS || !is_busy(&e) => return Err(e.into()),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Applies pending migrations. Two processes opening a new file at the
    /// same moment may race on a migration; the loser fails, and on retry
    /// finds it applied.
    async fn migrate(&self) -> Result<()> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= ATTEMPTS => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "migrating the SQLite store failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// A transaction holding the write lock from the start.
    async fn write_tx(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.pool.begin_with(BEGIN_WRITE).await?)
    }
}

/// Per-connection settings (these do not persist in the file).
async fn configure_connection(conn: &mut AnyConnection) -> std::result::Result<(), sqlx::Error> {
    // sqlx sets the busy timeout and foreign keys by default; state them
    // anyway so the guarantees do not hinge on driver defaults.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    // In WAL mode, NORMAL loses nothing when the process dies; only an OS
    // crash or power cut can roll back the last transactions.
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A `credentials` row (hash, salt, iterations, stored_key, server_key).
fn credential_of(row: &AnyRow) -> Result<Credential> {
    let iterations: i64 = row.try_get("iterations")?;
    Ok(Credential {
        hash: row.try_get("hash")?,
        salt: row.try_get("salt")?,
        iterations: u32::try_from(iterations).map_err(|_| {
            StoreError::Invalid(format!("iteration count {iterations} out of range"))
        })?,
        stored_key: row.try_get("stored_key")?,
        server_key: row.try_get("server_key")?,
    })
}

/// Whether `e` is SQLite's SQLITE_BUSY or SQLITE_LOCKED (any extended code).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// An absolute path without `.`/`..` components (these would be rewritten
/// when the path goes through a URL).
fn resolve_path(path: &Path) -> Result<PathBuf> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("database path {}: {what}: {e}", path.display()))
    };
    let absolute = std::path::absolute(path).map_err(|e| invalid("not usable", &e))?;
    let name = absolute
        .file_name()
        .ok_or_else(|| invalid("not a file name", &"missing file name"))?;
    let parent = absolute
        .parent()
        .ok_or_else(|| invalid("no parent directory", &"missing parent"))?;
    let parent = parent
        .canonicalize()
        .map_err(|e| invalid("parent directory", &e))?;
    Ok(parent.join(name))
}

/// Percent-encodes a path for a `sqlite://` URL (the driver decodes it).
fn encode_path(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| {
        StoreError::Invalid(format!(
            "database path {} is not valid UTF-8",
            path.display()
        ))
    })?;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Value conversions
// ---------------------------------------------------------------------------

/// The rows of a `VALUES` list of numbered parameters: `($1, $2), ($3, $4)` for 2 rows of 2.
fn values_params(rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let params: Vec<String> = (1..=columns)
            .map(|c| format!("${}", r * columns + c))
            .collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn unsigned(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Invalid(format!("negative {what} {value} in database")))
}

fn join_groups(groups: &[String]) -> Result<String> {
    for g in groups {
        if g.is_empty() {
            return Err(StoreError::Invalid("empty roster group name".into()));
        }
        if g.contains('\n') {
            return Err(StoreError::Invalid(format!(
                "roster group name {g:?} contains a newline"
            )));
        }
    }
    Ok(groups.join("\n"))
}

fn split_groups(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split('\n').map(str::to_owned).collect()
    }
}

fn check_credentials(creds: &[Credential]) -> Result<()> {
    for (i, c) in creds.iter().enumerate() {
        if c.hash.is_empty() {
            return Err(StoreError::Invalid("credential without hash name".into()));
        }
        if creds[..i].iter().any(|o| o.hash == c.hash) {
            return Err(StoreError::Invalid(format!(
                "two credentials for hash {:?}",
                c.hash
            )));
        }
    }
    Ok(())
}

async fn insert_credentials(
    conn: &mut AnyConnection,
    host: &str,
    user: &str,
    creds: &[Credential],
) -> Result<()> {
    for c in creds {
        sqlx::query(
            "INSERT INTO credentials (host, username, hash, salt, iterations, stored_key, server_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(host)
        .bind(user)
        .bind(c.hash.as_str())
        .bind(c.salt.as_slice())
        .bind(i64::from(c.iterations))
        .bind(c.stored_key.as_slice())
        .bind(c.server_key.as_slice())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

const ROSTER_COLUMNS: &str =
    "contact, name, group_names, subscription, ask_out, pending_in, approved, in_roster";

fn roster_item_from_row(row: &AnyRow) -> Result<RosterItem> {
    let subscription: String = row.try_get("subscription")?;
    let group_names: String = row.try_get("group_names")?;
    Ok(RosterItem {
        contact: row.try_get("contact")?,
        name: row.try_get("name")?,
        groups: split_groups(&group_names),
        subscription: subscription.parse()?,
        ask_out: row.try_get::<i64, _>("ask_out")? != 0,
        pending_in: row.try_get::<i64, _>("pending_in")? != 0,
        approved: row.try_get::<i64, _>("approved")? != 0,
        in_roster: row.try_get::<i64, _>("in_roster")? != 0,
    })
}

async fn read_roster_version(conn: &mut AnyConnection, host: &str, user: &str) -> Result<u64> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM roster_versions WHERE host = $1 AND username = $2")
            .bind(host)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    unsigned(version.unwrap_or(0), "roster version")
}

async fn bump_roster_version(conn: &mut AnyConnection, host: &str, user: &str) -> Result<u64> {
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1) \
         ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1 \
         RETURNING version",
    )
    .bind(host)
    .bind(user)
    .fetch_one(&mut *conn)
    .await?;
    unsigned(version, "roster version")
}

// ---------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, host: &str, user: &str, creds: &[Credential]) -> Result<bool> {
        check_credentials(creds)?;
        let mut tx = self.write_tx().await?;
        let created = sqlx::query(
            "INSERT INTO accounts (host, username, created_us) VALUES ($1, $2, $3) \
             ON CONFLICT (host, username) DO NOTHING",
        )
        .bind(host)
        .bind(user)
        .bind(now_us())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_credentials(&mut tx, host, user, creds).await?;
        tx.commit().await?;
        tracing::debug!(host, user, "account created");
        Ok(true)
    }

    async fn set_credentials(&self, host: &str, user: &str, creds: &[Credential]) -> Result<bool> {
        check_credentials(creds)?;
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM accounts WHERE host = $1 AND username = $2")
            .bind(host)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM credentials WHERE host = $1 AND username = $2")
            .bind(host)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        insert_credentials(&mut tx, host, user, creds).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn credential(&self, host: &str, user: &str, hash: &str) -> Result<Option<Credential>> {
        let row = sqlx::query(
            "SELECT hash, salt, iterations, stored_key, server_key FROM credentials \
             WHERE host = $1 AND username = $2 AND hash = $3",
        )
        .bind(host)
        .bind(user)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| credential_of(&r)).transpose()
    }

    async fn login_credential(
        &self,
        host: &str,
        user: &str,
        hash: &str,
    ) -> Result<Option<(Credential, bool)>> {
        let row = sqlx::query(
            "SELECT c.hash, c.salt, c.iterations, c.stored_key, c.server_key, \
                    a.disabled_us IS NOT NULL AS disabled \
             FROM credentials c JOIN accounts a ON a.host = c.host AND a.username = c.username \
             WHERE c.host = $1 AND c.username = $2 AND c.hash = $3",
        )
        .bind(host)
        .bind(user)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let disabled: i64 = row.try_get("disabled")?;
        Ok(Some((credential_of(&row)?, disabled != 0)))
    }

    async fn account_exists(&self, host: &str, user: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM accounts WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    async fn delete_account(&self, host: &str, user: &str) -> Result<bool> {
        // The roster version counter stays on purpose: see `roster_versions`
        // in the schema.
        const OWNED_DATA: [&str; 6] = [
            "DELETE FROM credentials WHERE host = $1 AND username = $2",
            "DELETE FROM roster_items WHERE host = $1 AND username = $2",
            "DELETE FROM offline_messages WHERE host = $1 AND username = $2",
            "DELETE FROM user_data WHERE host = $1 AND username = $2",
            "DELETE FROM blocklist WHERE host = $1 AND username = $2",
            "DELETE FROM last_activity WHERE host = $1 AND username = $2",
        ];
        let mut tx = self.write_tx().await?;
        for sql in OWNED_DATA {
            sqlx::query(sql)
                .bind(host)
                .bind(user)
                .execute(&mut *tx)
                .await?;
        }
        let existed = sqlx::query("DELETE FROM accounts WHERE host = $1 AND username = $2")
            .bind(host)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        if existed {
            tracing::debug!(host, user, "account deleted");
        }
        Ok(existed)
    }

    async fn list_accounts(&self, host: &str) -> Result<Vec<String>> {
        let mut users: Vec<String> =
            sqlx::query_scalar("SELECT username FROM accounts WHERE host = $1 ORDER BY username")
                .bind(host)
                .fetch_all(&self.pool)
                .await?;
        // Code point order whatever the database's collation.
        users.sort_unstable();
        Ok(users)
    }

    async fn count_accounts(&self, host: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE host = $1")
            .bind(host)
            .fetch_one(&self.pool)
            .await?;
        unsigned(n, "count")
    }

    async fn set_disabled(&self, host: &str, user: &str, disabled: bool) -> Result<bool> {
        let stamp = disabled.then(now_us);
        let n =
            sqlx::query("UPDATE accounts SET disabled_us = $3 WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(user)
                .bind(stamp)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n > 0)
    }

    async fn is_disabled(&self, host: &str, user: &str) -> Result<bool> {
        let v: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT disabled_us FROM accounts WHERE host = $1 AND username = $2",
        )
        .bind(host)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(matches!(v, Some(Some(_))))
    }

    async fn disabled_accounts(&self, host: &str) -> Result<Vec<String>> {
        let mut users: Vec<String> = sqlx::query_scalar(
            "SELECT username FROM accounts WHERE host = $1 AND disabled_us IS NOT NULL",
        )
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        users.sort_unstable();
        Ok(users)
    }

    async fn record_login(&self, host: &str, user: &str, stamp_us: i64) -> Result<()> {
        sqlx::query("UPDATE accounts SET last_login_us = $3 WHERE host = $1 AND username = $2")
            .bind(host)
            .bind(user)
            .bind(stamp_us)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_logins(&self, logins: &[(String, String, i64)]) -> Result<()> {
        // One statement per chunk (three parameters a login, well under SQLite's limit).
        for chunk in logins.chunks(300) {
            let sql = format!(
                "UPDATE accounts SET last_login_us = v.stamp \
                 FROM (SELECT column1 AS host, column2 AS username, column3 AS stamp \
                       FROM (VALUES {})) AS v \
                 WHERE accounts.host = v.host AND accounts.username = v.username",
                values_params(chunk.len(), 3)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (host, user, stamp) in chunk {
                q = q.bind(host.as_str()).bind(user.as_str()).bind(*stamp);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn last_login(&self, host: &str, user: &str) -> Result<Option<i64>> {
        let v: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT last_login_us FROM accounts WHERE host = $1 AND username = $2",
        )
        .bind(host)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.flatten())
    }
}

// ---------------------------------------------------------------------------
// Roster
// ---------------------------------------------------------------------------

#[async_trait]
impl RosterStore for SqliteStore {
    async fn roster(&self, host: &str, user: &str) -> Result<(u64, Vec<RosterItem>)> {
        // One read transaction, so the version matches the items.
        let mut tx = self.pool.begin().await?;
        let version = read_roster_version(&mut tx, host, user).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROSTER_COLUMNS} FROM roster_items WHERE host = $1 AND username = $2 \
             ORDER BY contact"
        )))
        .bind(host)
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut items = rows
            .iter()
            .map(roster_item_from_row)
            .collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| a.contact.cmp(&b.contact));
        Ok((version, items))
    }

    async fn roster_version(&self, host: &str, user: &str) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        read_roster_version(&mut conn, host, user).await
    }

    async fn roster_item(
        &self,
        host: &str,
        user: &str,
        contact: &str,
    ) -> Result<Option<RosterItem>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROSTER_COLUMNS} FROM roster_items \
             WHERE host = $1 AND username = $2 AND contact = $3"
        )))
        .bind(host)
        .bind(user)
        .bind(contact)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(roster_item_from_row).transpose()
    }

    async fn put_roster_item(&self, host: &str, user: &str, item: &RosterItem) -> Result<u64> {
        let groups = join_groups(&item.groups)?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO roster_items \
               (host, username, contact, name, group_names, subscription, \
                ask_out, pending_in, approved, in_roster) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (host, username, contact) DO UPDATE SET \
               name = excluded.name, group_names = excluded.group_names, \
               subscription = excluded.subscription, ask_out = excluded.ask_out, \
               pending_in = excluded.pending_in, approved = excluded.approved, \
               in_roster = excluded.in_roster",
        )
        .bind(host)
        .bind(user)
        .bind(item.contact.as_str())
        .bind(item.name.as_deref())
        .bind(groups)
        .bind(item.subscription.as_str())
        .bind(flag(item.ask_out))
        .bind(flag(item.pending_in))
        .bind(flag(item.approved))
        .bind(flag(item.in_roster))
        .execute(&mut *tx)
        .await?;
        let version = bump_roster_version(&mut tx, host, user).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn remove_roster_item(
        &self,
        host: &str,
        user: &str,
        contact: &str,
    ) -> Result<(u64, bool)> {
        let mut tx = self.write_tx().await?;
        let existed = sqlx::query(
            "DELETE FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3",
        )
        .bind(host)
        .bind(user)
        .bind(contact)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let version = if existed {
            bump_roster_version(&mut tx, host, user).await?
        } else {
            read_roster_version(&mut tx, host, user).await?
        };
        tx.commit().await?;
        Ok((version, existed))
    }
}

// ---------------------------------------------------------------------------
// Offline messages
// ---------------------------------------------------------------------------

#[async_trait]
impl OfflineStore for SqliteStore {
    async fn push_offline(
        &self,
        host: &str,
        user: &str,
        stamp_us: i64,
        stanza: &str,
        max_per_user: u64,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2",
        )
        .bind(host)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        if unsigned(count, "count")? >= max_per_user {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO offline_messages (host, username, stamp_us, stanza) VALUES ($1, $2, $3, $4)",
        )
        .bind(host)
        .bind(user)
        .bind(stamp_us)
        .bind(stanza)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn offline_messages(&self, host: &str, user: &str) -> Result<Vec<OfflineMessage>> {
        let rows = sqlx::query(
            "SELECT id, stamp_us, stanza FROM offline_messages \
             WHERE host = $1 AND username = $2 ORDER BY id",
        )
        .bind(host)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OfflineMessage {
                    id: row.try_get("id")?,
                    stamp_us: row.try_get("stamp_us")?,
                    stanza: row.try_get("stanza")?,
                })
            })
            .collect()
    }

    async fn delete_offline(&self, host: &str, user: &str, up_to_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM offline_messages WHERE host = $1 AND username = $2 AND id <= $3")
            .bind(host)
            .bind(user)
            .bind(up_to_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_offline(&self, host: &str, user: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2",
        )
        .bind(host)
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        unsigned(n, "count")
    }
}

// ---------------------------------------------------------------------------
// User data
// ---------------------------------------------------------------------------

#[async_trait]
impl UserDataStore for SqliteStore {
    async fn get_user_data(
        &self,
        host: &str,
        user: &str,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM user_data \
             WHERE host = $1 AND username = $2 AND kind = $3 AND item_key = $4",
        )
        .bind(host)
        .bind(user)
        .bind(kind)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn put_user_data(
        &self,
        host: &str,
        user: &str,
        kind: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_data (host, username, kind, item_key, value) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (host, username, kind, item_key) DO UPDATE SET value = excluded.value",
        )
        .bind(host)
        .bind(user)
        .bind(kind)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_user_data(
        &self,
        host: &str,
        user: &str,
        kind: &str,
        key: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "DELETE FROM user_data \
             WHERE host = $1 AND username = $2 AND kind = $3 AND item_key = $4",
        )
        .bind(host)
        .bind(user)
        .bind(kind)
        .bind(key)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }
}

// ---------------------------------------------------------------------------
// Blocklist
// ---------------------------------------------------------------------------

#[async_trait]
impl BlocklistStore for SqliteStore {
    async fn blocklist(&self, host: &str, user: &str) -> Result<Vec<String>> {
        let mut jids: Vec<String> = sqlx::query_scalar(
            "SELECT jid FROM blocklist WHERE host = $1 AND username = $2 ORDER BY jid",
        )
        .bind(host)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        jids.sort_unstable();
        Ok(jids)
    }

    async fn block(&self, host: &str, user: &str, jids: &[String]) -> Result<Vec<String>> {
        if jids.is_empty() {
            return Ok(Vec::new());
        }
        let mut added = Vec::new();
        let mut tx = self.write_tx().await?;
        for jid in jids {
            let inserted = sqlx::query(
                "INSERT INTO blocklist (host, username, jid) VALUES ($1, $2, $3) \
                 ON CONFLICT (host, username, jid) DO NOTHING",
            )
            .bind(host)
            .bind(user)
            .bind(jid.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                added.push(jid.clone());
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn unblock(&self, host: &str, user: &str, jids: &[String]) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let removed = if jids.is_empty() {
            let mut all: Vec<String> =
                sqlx::query_scalar("SELECT jid FROM blocklist WHERE host = $1 AND username = $2")
                    .bind(host)
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?;
            sqlx::query("DELETE FROM blocklist WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            all.sort_unstable();
            all
        } else {
            let mut removed = Vec::new();
            for jid in jids {
                let deleted = sqlx::query(
                    "DELETE FROM blocklist WHERE host = $1 AND username = $2 AND jid = $3",
                )
                .bind(host)
                .bind(user)
                .bind(jid.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if deleted {
                    removed.push(jid.clone());
                }
            }
            removed
        };
        tx.commit().await?;
        Ok(removed)
    }
}

// ---------------------------------------------------------------------------
// Last activity
// ---------------------------------------------------------------------------

#[async_trait]
impl LastActivityStore for SqliteStore {
    async fn record_last_activity(&self, ends: &[(String, String, i64, String)]) -> Result<()> {
        // One statement per chunk (four parameters a user, well under SQLite's limit).
        for chunk in ends.chunks(200) {
            let sql = format!(
                "INSERT INTO last_activity (host, username, stamp_us, status) \
                 SELECT v.column1, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v \
                 WHERE EXISTS (SELECT 1 FROM accounts a \
                               WHERE a.host = v.column1 AND a.username = v.column2) \
                 ON CONFLICT (host, username) DO UPDATE SET \
                   stamp_us = excluded.stamp_us, status = excluded.status",
                values_params(chunk.len(), 4)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (host, user, stamp, status) in chunk {
                q = q
                    .bind(host.as_str())
                    .bind(user.as_str())
                    .bind(*stamp)
                    .bind(status.as_str());
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn last_activity(&self, host: &str, user: &str) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT stamp_us, status FROM last_activity WHERE host = $1 AND username = $2",
        )
        .bind(host)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("stamp_us")?, r.try_get("status")?)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subscription;

    #[test]
    fn values_params_number_every_row_on() {
        assert_eq!(values_params(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_params(1, 1), "($1)");
    }

    /// Every pooled connection runs with the settings durability relies on.
    #[tokio::test]
    async fn connections_use_wal_normal_sync_foreign_keys_and_busy_timeout() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        // Hold several connections at once so more than one gets checked.
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut conns {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(sync, 1, "synchronous = NORMAL");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(timeout, i64::from(BUSY_TIMEOUT_MS));
        }
    }

    #[test]
    fn groups_round_trip_and_reject_newlines() {
        let groups = vec!["Friends".to_owned(), "Work mates".to_owned()];
        let joined = join_groups(&groups).unwrap();
        assert_eq!(split_groups(&joined), groups);
        assert_eq!(
            split_groups(&join_groups(&[]).unwrap()),
            Vec::<String>::new()
        );
        assert!(join_groups(&["a\nb".to_owned()]).is_err());
        assert!(join_groups(&[String::new()]).is_err());
    }

    #[test]
    fn paths_are_percent_encoded() {
        let encoded = encode_path(Path::new("/tmp/my db?#%.sqlite")).unwrap();
        assert_eq!(encoded, "/tmp/my%20db%3F%23%25.sqlite");
    }

    #[test]
    fn subscription_spellings() {
        for s in [
            Subscription::None,
            Subscription::To,
            Subscription::From,
            Subscription::Both,
        ] {
            assert_eq!(Subscription::parse(s.as_str()), Some(s));
        }
        assert_eq!(Subscription::parse("remove"), None);
    }
}
