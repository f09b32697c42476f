//! Last-login times (XEP-0133 get-user-lastlogin) and last activity (XEP-0012), noted in
//! memory when they happen and written to the store in batches.
//!
//! Writing them inside the login and the logout was most of a session's store writes; a
//! login storm now costs one statement of each kind per second instead of one per login
//! and one per logout. A time not yet written is lost only if the process dies within
//! that second (a clean shutdown writes everything once the connections have closed);
//! readers look at what is pending first, so they always see the latest.

use crate::server::Server;
use jid::BareJid;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often noted times are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Values per user noted but not yet written: (host, user) → value.
pub struct Pending<V> {
    map: Mutex<HashMap<(String, String), V>>,
}

impl<V> Default for Pending<V> {
    fn default() -> Self {
        Pending {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Pending<V> {
    fn note(&self, jid: &BareJid, value: V) {
        let node = jid.node().map(|n| n.as_str()).unwrap_or_default();
        let key = (jid.domain().as_str().to_owned(), node.to_owned());
        self.map.lock().unwrap().insert(key, value);
    }

    /// The value noted for `host`/`user` and not written yet.
    pub fn get(&self, host: &str, user: &str) -> Option<V> {
        self.map
            .lock()
            .unwrap()
            .get(&(host.to_owned(), user.to_owned()))
            .cloned()
    }

    fn take(&self) -> Vec<((String, String), V)> {
        self.map.lock().unwrap().drain().collect()
    }
}

/// Everything noted and not written yet.
#[derive(Default)]
pub struct Stamps {
    /// Login times, microseconds since the epoch.
    logins: Pending<i64>,
    /// Ends of users' last sessions: time and the status they left with.
    activity: Pending<(i64, String)>,
}

impl Server {
    /// Note that `jid` has just logged in.
    pub fn note_login(&self, jid: &BareJid) {
        self.stamps().logins.note(jid, rookery_storage::now_us());
    }

    /// Note that the last session of `jid` has just ended, with `status`.
    pub fn note_last_activity(&self, jid: &BareJid, status: &str) {
        let now = rookery_storage::now_us();
        self.stamps().activity.note(jid, (now, status.to_owned()));
    }

    /// When the last session of `host`/`user` ended, and its status, if not written yet.
    pub fn pending_last_activity(&self, host: &str, user: &str) -> Option<(i64, String)> {
        self.stamps().activity.get(host, user)
    }

    /// Write everything noted to the store.
    pub async fn flush_stamps(&self) {
        let logins: Vec<_> = self.stamps().logins.take();
        if !logins.is_empty() {
            let batch: Vec<_> = logins.into_iter().map(|((h, u), t)| (h, u, t)).collect();
            if let Err(e) = self.stores().accounts.record_logins(&batch).await {
                tracing::warn!(error = %e, logins = batch.len(), "could not record login times");
            }
        }
        let activity = self.stamps().activity.take();
        if !activity.is_empty() {
            let batch: Vec<_> = activity
                .into_iter()
                .map(|((h, u), (t, s))| (h, u, t, s))
                .collect();
            if let Err(e) = self
                .stores()
                .last_activity
                .record_last_activity(&batch)
                .await
            {
                tracing::error!(error = %e, users = batch.len(), "could not record last activity");
            }
        }
    }

    /// Flush noted times every [`FLUSH_EVERY`] until shutdown ([`Server::shutdown`] writes
    /// what the closing sessions note after that).
    pub(crate) async fn write_stamps(self) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.flush_stamps().await,
                _ = self.shutdown_token().cancelled() => break,
            }
        }
    }
}
