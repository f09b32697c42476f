//! Rooms set up by the operator rather than by a user's presence (`rookery contest init`
//! through [`crate::admin`]): a room is created, or an existing one reconfigured, as
//! persistent, members-only and hidden, and given affiliations (of users, servers or
//! shared groups `id@groups.<host>`).
//!
//! On a running server this goes through the [`MucService`], so occupants of an existing
//! room see the changes as an owner's would show them (new affiliations, outsiders of a
//! room that became members-only leave with status 322); with no server running it goes
//! to the [`rookery_storage::MucStore`] alone, and the server loads the room when it
//! starts. Nothing is removed: affiliations not named are kept.

use jid::BareJid;
use rookery_config::Config;
use rookery_storage::Stores;
use serde::{Deserialize, Serialize};

use super::occupants::remove_occupant;
use super::{Affiliation, MucService, Out, Room, RoomConfig};
use crate::error::StanzaError;
use crate::server::Server;
use crate::xml::{ElementExt, el};

/// What the operator asks of a room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomSetup {
    /// The room's local part (e.g. `neerc`).
    pub room: String,
    /// Its display name; an existing room keeps its own when this is `None`.
    #[serde(default)]
    pub name: Option<String>,
    /// Affiliations to set: (bare JID of a user, server or group, affiliation).
    #[serde(default)]
    pub affiliations: Vec<(String, String)>,
}

/// The checked form of a [`RoomSetup`].
struct Checked {
    jid: BareJid,
    name: String,
    affiliations: Vec<(BareJid, Affiliation)>,
}

fn check(domain: &str, setup: &RoomSetup) -> Result<Checked, String> {
    let room = setup.room.trim();
    let jid = BareJid::new(&format!("{room}@{domain}"))
        .ok()
        .filter(|j| !room.is_empty() && j.node().is_some())
        .ok_or_else(|| format!("'{}' is not a valid room name", setup.room))?;
    let name = jid.node().map(|n| n.to_string()).unwrap_or_default();
    let mut affiliations = Vec::new();
    for (who, a) in &setup.affiliations {
        let who_jid = BareJid::new(who.trim()).map_err(|_| format!("'{who}' is not a bare JID"))?;
        let a = Affiliation::parse(a)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(|| format!("'{a}' is not owner, admin, member or outcast"))?;
        affiliations.push((who_jid, a));
    }
    Ok(Checked {
        jid,
        name,
        affiliations,
    })
}

/// The configuration an operator's room gets: kept across restarts and empty periods,
/// open to its members only, not listed.
fn configure(config: &mut RoomConfig, name: Option<&str>) {
    config.persistent = true;
    config.members_only = true;
    config.public = false;
    if let Some(n) = name {
        config.name = n.chars().take(200).collect();
    }
}

/// A new room's configuration, with the service's limits.
fn new_config(config: &Config, name: Option<&str>) -> RoomConfig {
    let mut c = RoomConfig {
        max_users: config.muc.max_occupants,
        history_length: config.muc.max_history,
        ..RoomConfig::default()
    };
    configure(&mut c, name);
    c
}

/// What was done, for the operator.
fn summary(created: bool, jid: &BareJid, changed: &[String]) -> (String, Vec<String>) {
    let verb = if created { "created" } else { "set up" };
    (
        format!("{verb} the room {jid} (persistent, members-only, hidden)"),
        changed.to_vec(),
    )
}

impl MucService {
    /// Create or reconfigure a room for the operator (see the module documentation).
    /// Returns a message and one line per affiliation set.
    pub async fn provision(
        &self,
        server: &Server,
        setup: &RoomSetup,
    ) -> Result<(String, Vec<String>), String> {
        let c = check(&self.domain, setup)?;
        let room_ref = match self.room(&c.name) {
            Some(r) => r,
            None => {
                let mut room = Room::new(
                    c.jid.clone(),
                    new_config(server.config(), setup.name.as_deref()),
                );
                for (j, a) in &c.affiliations {
                    room.affiliations.insert(j.clone(), (*a, String::new()));
                }
                let (r, created) = self.insert_room(&c.name, room);
                if created {
                    let guard = r.lock().await;
                    if let Err(e) = self.save_all(server, &guard).await {
                        drop(guard);
                        self.remove_room(&c.name);
                        return Err(e.text);
                    }
                    let changed = affiliation_lines(&c.affiliations);
                    tracing::info!(room = %c.jid, "room created by the operator");
                    return Ok(summary(true, &c.jid, &changed));
                }
                // Someone created it meanwhile: set it up like any existing room.
                r
            }
        };
        let mut r = room_ref.lock().await;
        let mut out = Out::default();
        let before = r.config.clone();
        let was_locked = r.locked;
        configure(&mut r.config, setup.name.as_deref());
        let saved = if before.persistent {
            self.save(server, &r).await
        } else {
            self.save_all(server, &r).await
        };
        if let Err(e) = saved {
            r.config = before;
            return Err(e.text);
        }
        r.locked = false;
        let mut changed = Vec::new();
        for (j, a) in &c.affiliations {
            if r.affiliations.get(j).map(|(have, _)| *have) == Some(*a) {
                continue;
            }
            super::admin::set_affiliation(self, server, &mut r, None, j, *a, "", &mut out)
                .await
                .map_err(|e: StanzaError| e.text)?;
            changed.push(format!("{j}\t{}", a.as_str()));
        }
        if !before.members_only {
            let outsiders: Vec<String> = r
                .occupants
                .iter()
                .filter(|o| o.affiliation < Affiliation::Member)
                .map(|o| o.nick.clone())
                .collect();
            for nick in outsiders {
                remove_occupant(&mut r, &nick, &[322], None, "", &mut out);
            }
        }
        if r.config != before && !was_locked {
            // XEP-0045 §10.2.1: occupants hear that the configuration changed (104).
            for o in &r.occupants {
                for to in &o.sessions {
                    out.push(
                        el("message", crate::ns::CLIENT)
                            .with_attr("from", r.jid.as_str())
                            .with_attr("to", to.as_str())
                            .with_attr("type", "groupchat")
                            .with_attr("id", &crate::c2s::random_id())
                            .with_child(el("x", super::room::NS_USER).with_child(
                                el("status", super::room::NS_USER).with_attr("code", "104"),
                            )),
                    );
                }
            }
        }
        self.send(out).await;
        tracing::info!(room = %c.jid, "room set up by the operator");
        Ok(summary(false, &c.jid, &changed))
    }
}

fn affiliation_lines(affiliations: &[(BareJid, Affiliation)]) -> Vec<String> {
    affiliations
        .iter()
        .map(|(j, a)| format!("{j}\t{}", a.as_str()))
        .collect()
}

/// The same as [`MucService::provision`] on the store alone, for when no server runs.
pub async fn provision_stored(
    stores: &Stores,
    config: &Config,
    host: &str,
    setup: &RoomSetup,
) -> Result<(String, Vec<String>), String> {
    let domain = format!("{}.{host}", config.muc.subdomain);
    let c = check(&domain, setup)?;
    let db = |e: rookery_storage::StoreError| format!("database error: {e}");
    let stored = stores.muc.rooms(&domain).await.map_err(db)?;
    let (mut room, created) = match stored.iter().find(|s| s.room == c.name) {
        Some(s) => (
            Room::from_stored(&domain, s).ok_or("the stored room is unreadable")?,
            false,
        ),
        None => (
            Room::new(c.jid.clone(), new_config(config, setup.name.as_deref())),
            true,
        ),
    };
    configure(&mut room.config, setup.name.as_deref());
    stores
        .muc
        .save_room(&domain, &room.to_stored())
        .await
        .map_err(db)?;
    let mut changed = Vec::new();
    for (j, a) in &c.affiliations {
        if room.affiliations.get(j).map(|(have, _)| *have) == Some(*a) {
            continue;
        }
        stores
            .muc
            .set_affiliation(&domain, &c.name, j.as_str(), a.as_str(), "")
            .await
            .map_err(db)?;
        changed.push(format!("{j}\t{}", a.as_str()));
    }
    Ok(summary(created, &c.jid, &changed))
}

/// The admin request (see [`crate::admin`]): on the running `server`'s MUC service, or on
/// the store when none runs. Returns (success, message, items: `jid<TAB>affiliation` set).
pub async fn admin(
    server: Option<&Server>,
    stores: &Stores,
    config: &Config,
    host: &str,
    setup: RoomSetup,
) -> (bool, String, Vec<String>) {
    if !config.hosts.iter().any(|h| h == host) {
        return (
            false,
            format!("this server does not serve the domain {host}"),
            Vec::new(),
        );
    }
    if !config.muc.enabled {
        return (
            false,
            "the chat room service is disabled ([muc] enabled = false)".into(),
            Vec::new(),
        );
    }
    let outcome = match server {
        Some(server) => {
            let svc = super::service_for(server, host);
            match svc
                .as_ref()
                .and_then(|s| s.as_any())
                .and_then(|a| a.downcast_ref::<MucService>())
            {
                Some(muc) => muc.provision(server, &setup).await,
                None => Err(format!("the chat room service of {host} is not running")),
            }
        }
        None => provision_stored(stores, config, host, &setup).await,
    };
    match outcome {
        Ok((message, items)) => (true, message, items),
        Err(e) => (false, e, Vec::new()),
    }
}
