//! The MUC rooms as an external contest component sees them (`protocols.md` D: "it loses
//! direct access to MUC affiliations and needs XEP-0045 admin queries"):
//!
//! - **Affiliations** come from `muc#admin` queries (the owner, admin, member and outcast
//!   lists), which the room answers to its owners and admins: the component's domain
//!   must be an owner or admin of each contest room. Entries in the groups domain
//!   (`<id>@groups.<host>` on rookery) are expanded with disco#info (the group's name)
//!   and disco#items (its members). A snapshot is kept for [`FRESH`] and dropped at once
//!   when the room's presence shows an affiliation change.
//! - **Occupants** come from presence: the component enters each contest room it serves
//!   (nick [`NICK`]) and, as a moderator, sees the occupants' real JIDs. A newcomer gets
//!   the contest clock, as in the same server.
//!
//! Before entering, a room's existence is checked with its affiliation lists (a missing
//! room answers `item-not-found`), so the component never creates a room.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::error::{Condition, StanzaError};
use crate::muc::{Affiliation, Room, RoomConfig};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, el};

use super::NeercService;
use super::external::Uplink;
use super::users::{self, GroupInfo, Requester, User};
use super::view::MucView;

/// How long a snapshot of a room's affiliations is trusted.
pub const FRESH: Duration = Duration::from_secs(5);
/// The nick the component enters contest rooms with.
pub const NICK: &str = "NEERC service";

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";

/// The rooms of a MUC service on another server (or the same one, over XEP-0114).
pub struct RemoteMuc {
    uplink: Arc<Uplink>,
    /// The MUC service's domain, e.g. `conference.<host>`.
    muc: String,
    /// The domain whose JIDs name groups, e.g. `groups.<host>`.
    groups: String,
    /// Our own JID when entering rooms: `<component>/<room>`'s domain part.
    component: String,
    rooms: Mutex<HashMap<String, Arc<RemoteRoom>>>,
    service: OnceLock<Weak<NeercService>>,
}

#[derive(Default)]
struct RemoteRoom {
    /// The last snapshot; its lock is held while one is fetched, so a burst of queries
    /// shares one fetch.
    snapshot: tokio::sync::Mutex<Option<Snapshot>>,
    /// Set when presence shows an affiliation change: the next read fetches again.
    stale: std::sync::atomic::AtomicBool,
    live: Mutex<Live>,
}

/// What presence told of a room.
#[derive(Default)]
struct Live {
    entered: bool,
    /// Occupants by nick: real JID, affiliation, join order.
    occupants: BTreeMap<String, (FullJid, Affiliation, u64)>,
    joins: u64,
}

#[derive(Clone)]
struct Snapshot {
    at: Instant,
    affiliations: BTreeMap<BareJid, (Affiliation, String)>,
    groups: HashMap<BareJid, Option<GroupInfo>>,
}

impl RemoteMuc {
    pub fn new(uplink: Arc<Uplink>, component: &str, muc: &str, groups: &str) -> Arc<RemoteMuc> {
        Arc::new(RemoteMuc {
            uplink,
            muc: muc.to_owned(),
            groups: groups.to_owned(),
            component: component.to_owned(),
            rooms: Mutex::new(HashMap::new()),
            service: OnceLock::new(),
        })
    }

    /// The service that newcomers' clocks come from.
    pub fn attach(&self, service: &Arc<NeercService>) {
        let _ = self.service.set(Arc::downgrade(service));
    }

    fn room(&self, name: &str) -> Arc<RemoteRoom> {
        self.rooms
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// The stream to the server is (re)established: what presence told is gone, and the
    /// rooms followed so far, plus `also`, are entered again.
    pub async fn connected(&self, also: &[String]) {
        let mut names: Vec<String> = {
            let rooms = self.rooms.lock().unwrap();
            for r in rooms.values() {
                *r.live.lock().unwrap() = Live::default();
                r.stale.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            rooms.keys().cloned().collect()
        };
        names.extend(also.iter().cloned());
        names.sort();
        names.dedup();
        for name in names {
            // A room that does not exist is not entered (nor created).
            let _ = self.snapshot(&name).await;
        }
    }

    /// The room's affiliations, fetched when the last snapshot is too old; `Ok(None)` if
    /// there is no such room. Enters the room if the component is not in it.
    async fn snapshot(&self, name: &str) -> Result<Option<Snapshot>, StanzaError> {
        let room = self.room(name);
        let mut held = room.snapshot.lock().await;
        let stale = room.stale.swap(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = held.as_ref()
            && !stale
            && s.at.elapsed() < FRESH
        {
            return Ok(Some(s.clone()));
        }
        let room_jid = format!("{name}@{}", self.muc);
        let lists = join_all(
            [
                Affiliation::Owner,
                Affiliation::Admin,
                Affiliation::Member,
                Affiliation::Outcast,
            ]
            .map(|a| self.list(&room_jid, a)),
        )
        .await;
        let mut affiliations = BTreeMap::new();
        for list in lists {
            match list {
                Ok(items) => affiliations.extend(items),
                Err(e) if e.condition == Condition::ItemNotFound => {
                    *held = None;
                    return Ok(None);
                }
                Err(e) => {
                    tracing::error!(room = %room_jid, error = %e, "cannot read the room's affiliations");
                    return Err(StanzaError::new(
                        Condition::InternalServerError,
                        format!(
                            "the contest service cannot read the affiliations of {room_jid} \
                             ({}); the room's owner must make {} an owner or admin of it",
                            e.text, self.component
                        ),
                    ));
                }
            }
        }
        let group_jids: Vec<BareJid> = affiliations
            .keys()
            .filter(|j| j.domain().as_str() == self.groups && j.node().is_some())
            .cloned()
            .collect();
        let infos = join_all(group_jids.iter().map(|g| self.group(g))).await;
        let groups = group_jids.into_iter().zip(infos).collect();
        let snapshot = Snapshot {
            at: Instant::now(),
            affiliations,
            groups,
        };
        *held = Some(snapshot.clone());
        drop(held);
        self.enter(name, &room).await;
        Ok(Some(snapshot))
    }

    /// One affiliation list of a room.
    async fn list(
        &self,
        room: &str,
        a: Affiliation,
    ) -> Result<Vec<(BareJid, (Affiliation, String))>, StanzaError> {
        let query = el("query", NS_MUC_ADMIN)
            .with_child(el("item", NS_MUC_ADMIN).with_attr("affiliation", a.as_str()));
        let reply = self.uplink.request(room, "get", query).await?;
        let mut out = Vec::new();
        if let Some(q) = reply.get_child("query", NS_MUC_ADMIN) {
            for item in q.children().filter(|c| c.is("item", NS_MUC_ADMIN)) {
                if let Some(jid) = item.get_attr("jid").and_then(|j| BareJid::new(j).ok()) {
                    let reason = item.child_text("reason", NS_MUC_ADMIN).unwrap_or_default();
                    out.push((jid, (a, reason)));
                }
            }
        }
        Ok(out)
    }

    /// A group's name and members; `None` if the groups domain does not know it.
    async fn group(&self, jid: &BareJid) -> Option<GroupInfo> {
        let (info, items) = futures::join!(
            self.uplink
                .request(jid.as_str(), "get", el("query", ns::DISCO_INFO)),
            self.uplink
                .request(jid.as_str(), "get", el("query", ns::DISCO_ITEMS)),
        );
        let (info, items) = match (info, items) {
            (Ok(i), Ok(m)) => (i, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(group = %jid, error = %e, "cannot read a group named in a room");
                return None;
            }
        };
        let name = info
            .get_child("query", ns::DISCO_INFO)
            .and_then(|q| q.get_child("identity", ns::DISCO_INFO))
            .and_then(|i| i.get_attr("name"))
            .unwrap_or_else(|| jid.node().map_or("", |n| n.as_str()))
            .to_owned();
        let members = items
            .get_child("query", ns::DISCO_ITEMS)
            .map(|q| {
                q.children()
                    .filter_map(|i| i.get_attr("jid").and_then(|j| BareJid::new(j).ok()))
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupInfo { name, members })
    }

    /// Enter the room unless in it already.
    async fn enter(&self, name: &str, room: &RemoteRoom) {
        {
            let mut live = room.live.lock().unwrap();
            if live.entered {
                return;
            }
            // Presence answers; set now so a burst of reads enters once.
            live.entered = true;
        }
        let presence = el("presence", ns::CLIENT)
            .with_attr("from", &format!("{}/{name}", self.component))
            .with_attr("to", &format!("{name}@{}/{NICK}", self.muc))
            .with_child(
                el("x", NS_MUC).with_child(el("history", NS_MUC).with_attr("maxstanzas", "0")),
            );
        self.uplink.send(presence).await;
    }

    /// Presence leaving every room the component entered, for when it stops: otherwise
    /// the MUC service keeps it as an occupant that is not there.
    pub fn leaving(&self) -> Vec<Element> {
        let rooms = self.rooms.lock().unwrap();
        rooms
            .iter()
            .filter(|(_, r)| r.live.lock().unwrap().entered)
            .map(|(name, _)| {
                el("presence", ns::CLIENT)
                    .with_attr("type", "unavailable")
                    .with_attr("from", &format!("{}/{name}", self.component))
                    .with_attr("to", &format!("{name}@{}/{NICK}", self.muc))
            })
            .collect()
    }

    /// Presence from a room: an occupant came, changed or left, or our own entry failed.
    /// Returns a newcomer (room, session), who is to get the clock ([`Self::welcome`]).
    pub fn presence(&self, stanza: &Element) -> Option<(String, FullJid)> {
        let Some(Ok(from)) = stanza.get_attr("from").map(Jid::new) else {
            return None;
        };
        if from.domain().as_str() != self.muc {
            return None;
        }
        let (Some(name), Some(nick)) = (from.node(), from.resource()) else {
            return None;
        };
        let (name, nick) = (name.as_str().to_owned(), nick.as_str().to_owned());
        let room = self.room(&name);
        let ty = stanza.get_attr("type").unwrap_or("available");
        if ty == "error" {
            if nick == NICK {
                let reason = super::external::error_of(stanza);
                tracing::error!(room = %name, %reason, component = %self.component, "the contest service cannot enter the room; make the component an owner of it");
                room.live.lock().unwrap().entered = false;
            }
            return None;
        }
        let x = stanza.get_child("x", NS_MUC_USER);
        let item = x.and_then(|x| x.get_child("item", NS_MUC_USER));
        let affiliation = item
            .and_then(|i| i.get_attr("affiliation"))
            .and_then(Affiliation::parse)
            .unwrap_or(Affiliation::None);
        let own = nick == NICK
            || x.is_some_and(|x| {
                x.children()
                    .any(|s| s.is("status", NS_MUC_USER) && s.get_attr("code") == Some("110"))
            });
        if own {
            if ty == "unavailable" {
                // Kicked, or the room was destroyed: enter again at the next read.
                tracing::warn!(room = %name, "the contest service is out of the room");
                *room.live.lock().unwrap() = Live::default();
                room.stale.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return None;
        }
        let newcomer = {
            let mut live = room.live.lock().unwrap();
            let before = live.occupants.get(&nick).map(|(_, a, _)| *a);
            if ty == "unavailable" {
                live.occupants.remove(&nick);
                None
            } else if let Some(real) = item
                .and_then(|i| i.get_attr("jid"))
                .and_then(|j| FullJid::new(j).ok())
            {
                if before.is_some_and(|b| b != affiliation) {
                    room.stale.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                live.joins += 1;
                let order = live.joins;
                let entry = live.occupants.entry(nick.clone()).or_insert((
                    real.clone(),
                    affiliation,
                    order,
                ));
                entry.0 = real.clone();
                entry.1 = affiliation;
                before.is_none().then_some(real)
            } else {
                tracing::warn!(room = %name, %nick, "the room hides its occupants' JIDs from the contest service; make it a moderator");
                None
            }
        };
        newcomer.map(|real| (name, real))
    }

    /// Give a newcomer the contest clock, as the service in the same server does.
    pub async fn welcome(&self, room: &str, to: FullJid) {
        if let Some(svc) = self.service.get().and_then(Weak::upgrade) {
            svc.push_clock(room, to).await;
        }
    }

    /// The probe room the MUC rules run on, and the groups of each member.
    fn probe(&self, name: &str, s: &Snapshot) -> Room {
        let jid = BareJid::new(&format!("{name}@{}", self.muc))
            .unwrap_or_else(|_| BareJid::new(&self.muc).expect("the MUC domain is a JID"));
        let mut probe = Room::new(jid, RoomConfig::default());
        probe.affiliations = s.affiliations.clone();
        probe
    }
}

#[async_trait]
impl MucView for RemoteMuc {
    async fn exists(&self, _server: &Server, room: &str) -> bool {
        matches!(self.snapshot(room).await, Ok(Some(_)))
    }

    async fn requester(
        &self,
        _server: &Server,
        room: &str,
        jid: &BareJid,
    ) -> Result<Requester, StanzaError> {
        let Some(s) = self.snapshot(room).await? else {
            return users::admit(room, jid, None);
        };
        let mut group_jids: Vec<BareJid> = s
            .groups
            .iter()
            .filter(|(_, g)| g.as_ref().is_some_and(|g| g.members.contains(jid)))
            .map(|(j, _)| j.clone())
            .collect();
        users::sort_groups(&mut group_jids);
        let verdict = users::judge(&self.probe(room, &s), jid, &group_jids);
        users::admit(room, jid, Some(verdict))
    }

    async fn users(&self, _server: &Server, room: &str) -> Option<Vec<User>> {
        let s = self.snapshot(room).await.ok()??;
        let occupants: Vec<(BareJid, Affiliation)> = {
            let r = self.room(room);
            let live = r.live.lock().unwrap();
            live.occupants
                .values()
                .map(|(j, a, _)| (j.to_bare(), *a))
                .collect()
        };
        let jid = self.probe(room, &s).jid;
        Some(users::users_of(jid, &s.affiliations, &s.groups, &occupants))
    }

    async fn sessions(&self, _server: &Server, room: &str, jury_only: bool) -> Vec<FullJid> {
        let r = self.room(room);
        let live = r.live.lock().unwrap();
        let mut list: Vec<&(FullJid, Affiliation, u64)> = live
            .occupants
            .values()
            .filter(|(_, a, _)| !jury_only || users::is_power(*a))
            .collect();
        list.sort_by_key(|(_, _, order)| *order);
        list.into_iter().map(|(j, _, _)| j.clone()).collect()
    }
}
