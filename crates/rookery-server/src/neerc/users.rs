//! Who is in a contest room, derived live from the MUC room's affiliations and the shared
//! groups they name (A.3, A.14): nothing is cached, so an affiliation change shows at the
//! next query.
//!
//! - A user is listed when their affiliation, as the room computes it for entering
//!   (`Room::affiliation_of`: own entry, else the best group entry, else their server's),
//!   is member, admin or owner.
//! - `power` = any owner or admin entry for them, their own or one of their groups'.
//! - `group` = the display name of a group that gives them an entry: the owner groups
//!   first, then admin, then member groups, each alphabetically by name (then id);
//!   with no group entry, `Admins` for power users and `Users` for the others.
//! - `name` = the JID's local part (the original's identity on the wire).
//! - Order: power users first, then the others; within each, by name in natural order
//!   (`hall2` before `hall10`), then by bare JID.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jid::{BareJid, FullJid};

use crate::error::StanzaError;
use crate::modules::groups;
use crate::muc::{Affiliation, MucService, Room, RoomConfig};
use crate::router::Route;
use crate::server::Server;

use super::tasks::natural_cmp;

/// One line of the `#users` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub jid: BareJid,
    pub name: String,
    pub group: String,
    pub power: bool,
}

/// The sender of a query, once let in.
#[derive(Clone, Debug)]
pub struct Requester {
    pub jid: BareJid,
    /// The local part: how tasks name assignees.
    pub name: String,
    pub affiliation: Affiliation,
    pub power: bool,
}

/// What the service reads of a MUC room.
pub struct RoomView {
    pub affiliations: BTreeMap<BareJid, (Affiliation, String)>,
    /// Occupants: bare JID, affiliation, sessions.
    pub occupants: Vec<(BareJid, Affiliation, Vec<FullJid>)>,
}

/// The MUC service of `host`, if it runs.
fn muc(server: &Server, host: &str) -> Option<Arc<dyn Route>> {
    crate::muc::service_for(server, host)
}

/// Read a MUC room under its lock; `None` if there is no MUC service or no such room.
pub async fn with_room<T>(
    server: &Server,
    host: &str,
    room: &str,
    f: impl FnOnce(&Room) -> T,
) -> Option<T> {
    let route = muc(server, host)?;
    let service = route.as_any()?.downcast_ref::<MucService>()?;
    let room = service.room(room)?;
    let r = room.lock().await;
    Some(f(&r))
}

/// A snapshot of the room's affiliations and occupants.
pub async fn view(server: &Server, host: &str, room: &str) -> Option<RoomView> {
    with_room(server, host, room, |r| RoomView {
        affiliations: r.affiliations.clone(),
        occupants: r
            .occupants
            .iter()
            .map(|o| (o.bare.clone(), o.affiliation, o.sessions.clone()))
            .collect(),
    })
    .await
}

/// Owners and admins are the jury.
pub fn is_power(a: Affiliation) -> bool {
    matches!(a, Affiliation::Owner | Affiliation::Admin)
}

/// A room's verdict on `jid`: its affiliation (as the room computes it for entering,
/// `group_jids` being the groups `jid` is in) and whether it has power.
pub fn judge(r: &Room, jid: &BareJid, group_jids: &[BareJid]) -> (Affiliation, bool) {
    let affiliation = r.affiliation_of(jid, group_jids);
    let group_power = group_jids
        .iter()
        .any(|g| r.affiliations.get(g).is_some_and(|(a, _)| is_power(*a)));
    (affiliation, is_power(affiliation) || group_power)
}

/// The requester, from the room's verdict (`None`: there is no such room).
pub fn admit(
    room: &str,
    jid: &BareJid,
    verdict: Option<(Affiliation, bool)>,
) -> Result<Requester, StanzaError> {
    let Some((affiliation, power)) = verdict else {
        return Err(StanzaError::service_unavailable(format!(
            "there is no chat room {room}, so there is no contest service for it"
        )));
    };
    if matches!(affiliation, Affiliation::None | Affiliation::Outcast) {
        return Err(StanzaError::forbidden(format!(
            "you are not a member of the room {room}; ask the jury to add you"
        )));
    }
    Ok(Requester {
        jid: jid.clone(),
        name: jid.node().map(|n| n.to_string()).unwrap_or_default(),
        affiliation,
        power,
    })
}

/// Check that `jid` may use the room's contest service (A.2 steps 4.1–4.2) and work out
/// their power.
pub async fn requester(
    server: &Server,
    host: &str,
    room: &str,
    jid: &BareJid,
) -> Result<Requester, StanzaError> {
    let group_jids = MucService::groups_of(server, jid).await;
    let verdict = with_room(server, host, room, |r| judge(r, jid, &group_jids)).await;
    admit(room, jid, verdict)
}

/// A group named in a room's affiliations.
#[derive(Clone, Debug, Default)]
pub struct GroupInfo {
    /// The display name (the `group` of its members' `#users` lines).
    pub name: String,
    pub members: Vec<BareJid>,
}

/// Every user of the room, in the documented order.
pub async fn room_users(server: &Server, host: &str, room: &str) -> Option<Vec<User>> {
    let view = view(server, host, room).await?;
    let mut groups: HashMap<BareJid, Option<GroupInfo>> = HashMap::new();
    for (jid, (a, _)) in &view.affiliations {
        if *a == Affiliation::None {
            continue;
        }
        if let Some((ghost, id)) = groups::parse_group_jid(server, jid) {
            let info = match server.stores().groups.group(&ghost, &id).await {
                Ok(Some(g)) => Some(GroupInfo {
                    name: g.name,
                    members: groups::members(server, &ghost, &id).await,
                }),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, group = %jid, "could not load a group");
                    None
                }
            };
            groups.insert(jid.clone(), info);
        }
    }
    let occupants: Vec<(BareJid, Affiliation)> = view
        .occupants
        .iter()
        .map(|(j, a, _)| (j.clone(), *a))
        .collect();
    let room = BareJid::new(&format!("{room}@{host}")).ok()?;
    Some(users_of(room, &view.affiliations, &groups, &occupants))
}

/// The users of a room from its affiliations, `groups` expanding the group JIDs among
/// them (`None`: a group JID naming no group, skipped), and its occupants (those let in
/// by their server's entry are listed too).
pub fn users_of(
    room: BareJid,
    affiliations: &BTreeMap<BareJid, (Affiliation, String)>,
    groups: &HashMap<BareJid, Option<GroupInfo>>,
    occupants: &[(BareJid, Affiliation)],
) -> Vec<User> {
    // Each user's entries: (affiliation, group (jid, display name) or none for their own).
    type Entry = (Affiliation, Option<(BareJid, String)>);
    let mut entries: HashMap<BareJid, Vec<Entry>> = HashMap::new();
    for (jid, (a, _)) in affiliations {
        if *a == Affiliation::None {
            continue;
        }
        if let Some(group) = groups.get(jid) {
            let Some(group) = group else { continue };
            for member in &group.members {
                entries
                    .entry(member.clone())
                    .or_default()
                    .push((*a, Some((jid.clone(), group.name.clone()))));
            }
        } else if jid.node().is_some() {
            entries.entry(jid.clone()).or_default().push((*a, None));
        }
        // A server's entry covers users who cannot be listed; those in the room are
        // added below from the occupants.
    }
    // The room's own rule decides whether each one is in (an own outcast entry wins).
    let mut probe = Room::new(room, RoomConfig::default());
    probe.affiliations = affiliations.clone();
    let mut users: Vec<User> = Vec::new();
    for (jid, list) in &entries {
        let mut group_jids: Vec<BareJid> = list
            .iter()
            .filter_map(|(_, g)| g.as_ref().map(|(j, _)| j.clone()))
            .collect();
        sort_groups(&mut group_jids);
        let effective = probe.affiliation_of(jid, &group_jids);
        if matches!(effective, Affiliation::None | Affiliation::Outcast) {
            continue;
        }
        let power = is_power(effective) || list.iter().any(|(a, _)| is_power(*a));
        let mut named: Vec<(Affiliation, &str, &str)> = list
            .iter()
            .filter(|(a, _)| *a >= Affiliation::Member)
            .filter_map(|(a, g)| {
                g.as_ref()
                    .map(|(j, n)| (*a, n.as_str(), j.node().map_or("", |n| n.as_str())))
            })
            .collect();
        named.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(y.1)).then(x.2.cmp(y.2)));
        let group = match named.first() {
            Some((_, name, _)) => (*name).to_owned(),
            None if power => "Admins".to_owned(),
            None => "Users".to_owned(),
        };
        users.push(User {
            jid: jid.clone(),
            name: jid.node().map(|n| n.to_string()).unwrap_or_default(),
            group,
            power,
        });
    }
    // Occupants let in by their server's entry.
    for (jid, a) in occupants {
        if *a >= Affiliation::Member && !entries.contains_key(jid) && jid.node().is_some() {
            users.push(User {
                jid: jid.clone(),
                name: jid.node().map(|n| n.to_string()).unwrap_or_default(),
                group: if is_power(*a) { "Admins" } else { "Users" }.to_owned(),
                power: is_power(*a),
            });
        }
    }
    users.sort_by(|a, b| {
        b.power
            .cmp(&a.power)
            .then_with(|| natural_cmp(&a.name, &b.name))
            .then_with(|| a.jid.as_str().cmp(b.jid.as_str()))
    });
    users.dedup_by(|a, b| a.jid == b.jid);
    users
}

/// Group JIDs in the order `MucService::groups_of` gives them: by host, then id.
pub fn sort_groups(group_jids: &mut [BareJid]) {
    group_jids.sort_by(|a, b| {
        (a.domain().as_str(), a.node().map(|n| n.as_str()))
            .cmp(&(b.domain().as_str(), b.node().map(|n| n.as_str())))
    });
}
