//! Last-login times (XEP-0133 get-user-lastlogin), noted at each successful
//! authentication and written to the store in batches.
//!
//! Writing the time inside the login itself was one of its few store writes; a login storm
//! now costs one `UPDATE` per second instead of one per login. A time not yet written is
//! lost only if the process dies within that second; readers call
//! [`Server::flush_logins`] first, so they always see the latest.

use crate::server::Server;
use jid::BareJid;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often noted logins are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Logins noted but not yet written: (host, user) → time, microseconds since the epoch.
#[derive(Default)]
pub struct LoginLog {
    pending: Mutex<HashMap<(String, String), i64>>,
}

impl Server {
    /// Note that `jid` has just logged in.
    pub fn note_login(&self, jid: &BareJid) {
        let node = jid.node().map(|n| n.as_str()).unwrap_or_default();
        let key = (jid.domain().as_str().to_owned(), node.to_owned());
        self.login_log()
            .pending
            .lock()
            .unwrap()
            .insert(key, rookery_storage::now_us());
    }

    /// Write every noted login to the store.
    pub async fn flush_logins(&self) {
        let batch: Vec<(String, String, i64)> = {
            let mut pending = self.login_log().pending.lock().unwrap();
            pending.drain().map(|((h, u), t)| (h, u, t)).collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.stores().accounts.record_logins(&batch).await {
            tracing::warn!(error = %e, logins = batch.len(), "could not record login times");
        }
    }

    /// Flush noted logins every [`FLUSH_EVERY`] until shutdown, and once more then.
    pub(crate) async fn write_logins(self) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.flush_logins().await,
                _ = self.shutdown_token().cancelled() => break,
            }
        }
        self.flush_logins().await;
    }
}
