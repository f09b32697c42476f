//! What the contest service reads of the MUC rooms it serves, behind one narrow trait:
//! in the same server, the MUC service itself ([`LocalMuc`], live, nothing cached); as an
//! external component, what XEP-0045 queries and the room's presence tell
//! (`remote.rs`).

use async_trait::async_trait;
use jid::{BareJid, FullJid};

use crate::error::StanzaError;
use crate::server::Server;

use super::users::{self, Requester, User};

/// The MUC rooms of the service's host, as the service needs them.
#[async_trait]
pub trait MucView: Send + Sync {
    /// Whether the room exists.
    async fn exists(&self, server: &Server, room: &str) -> bool;
    /// Check that `jid` may use the room's contest service, and with what power.
    async fn requester(
        &self,
        server: &Server,
        room: &str,
        jid: &BareJid,
    ) -> Result<Requester, StanzaError>;
    /// The room's users in `#users` order; `None` if there is no such room.
    async fn users(&self, server: &Server, room: &str) -> Option<Vec<User>>;
    /// The sessions of the room's occupants, in join order (of the jury only, with
    /// `jury_only`).
    async fn sessions(&self, server: &Server, room: &str, jury_only: bool) -> Vec<FullJid>;
}

/// The MUC service of the same server.
pub struct LocalMuc {
    /// The hosted domain whose MUC service it reads.
    pub host: String,
}

#[async_trait]
impl MucView for LocalMuc {
    async fn exists(&self, server: &Server, room: &str) -> bool {
        users::with_room(server, &self.host, room, |_| ())
            .await
            .is_some()
    }

    async fn requester(
        &self,
        server: &Server,
        room: &str,
        jid: &BareJid,
    ) -> Result<Requester, StanzaError> {
        users::requester(server, &self.host, room, jid).await
    }

    async fn users(&self, server: &Server, room: &str) -> Option<Vec<User>> {
        users::room_users(server, &self.host, room).await
    }

    async fn sessions(&self, server: &Server, room: &str, jury_only: bool) -> Vec<FullJid> {
        users::with_room(server, &self.host, room, |r| {
            r.occupants
                .iter()
                .filter(|o| !jury_only || users::is_power(o.affiliation))
                .flat_map(|o| o.sessions.iter().cloned())
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}
