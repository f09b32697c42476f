//! One room: its configuration, affiliations, occupants, history and subject, and the
//! rules that follow from them (XEP-0045 §5). Nothing here does I/O: the handlers in
//! `occupants.rs`, `messages.rs` and `admin.rs` change a `Room` and collect the stanzas to
//! send, which the service delivers in order.

use std::collections::{BTreeMap, VecDeque};

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use rookery_forms::{DataForm, Field};
use serde::{Deserialize, Serialize};

use super::Out;
use crate::xml::{ElementExt, el};

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const NS_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_CONFERENCE: &str = "jabber:x:conference";

/// A long-lived relation between a JID and the room (XEP-0045 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// A role within one visit (XEP-0045 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// Who may send private messages to occupants (`muc#roomconfig_allowpm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    None,
}

impl AllowPm {
    fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::None => "none",
        }
    }
}

/// The owner's configuration (`muc#roomconfig`), stored as JSON for persistent rooms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// Empty: no password.
    pub password: String,
    pub max_users: usize,
    /// Real JIDs shown to everyone (`anyone`, non-anonymous) or to moderators only.
    pub whois_anyone: bool,
    pub history_length: usize,
    pub allow_pm: AllowPm,
    pub allow_invites: bool,
    pub change_subject: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: String::new(),
            max_users: 0,
            whois_anyone: false,
            history_length: 20,
            allow_pm: AllowPm::Anyone,
            allow_invites: false,
            change_subject: false,
        }
    }
}

impl RoomConfig {
    /// The configuration form (XEP-0045 §10.2), filled with the current values.
    pub fn form(&self, limits: &rookery_config::Muc) -> DataForm {
        let b = |v: bool| if v { "1" } else { "0" };
        DataForm::form("Room configuration")
            .with_instructions("Configure the room; submit an empty form to keep the defaults.")
            .with_form_type(NS_ROOMCONFIG)
            .with_field(
                Field::text_single("muc#roomconfig_roomname", "Name").with_value(&self.name),
            )
            .with_field(
                Field::text_multi("muc#roomconfig_roomdesc", "Description")
                    .with_value(&self.description),
            )
            .with_field(
                Field::boolean(
                    "muc#roomconfig_persistentroom",
                    "Keep the room when it is empty",
                )
                .with_value(b(self.persistent)),
            )
            .with_field(
                Field::boolean("muc#roomconfig_publicroom", "List the room in searches")
                    .with_value(b(self.public)),
            )
            .with_field(
                Field::boolean("muc#roomconfig_membersonly", "Members only")
                    .with_value(b(self.members_only)),
            )
            .with_field(
                Field::boolean(
                    "muc#roomconfig_moderatedroom",
                    "Moderated (only participants speak)",
                )
                .with_value(b(self.moderated)),
            )
            .with_field(
                Field::boolean("muc#roomconfig_passwordprotectedroom", "Password protected")
                    .with_value(b(!self.password.is_empty())),
            )
            .with_field(
                Field::text_private("muc#roomconfig_roomsecret", "Password")
                    .with_value(&self.password),
            )
            .with_field(
                Field::list_single(
                    "muc#roomconfig_maxusers",
                    "Maximum number of occupants",
                    &[
                        ("10", "10"),
                        ("20", "20"),
                        ("50", "50"),
                        ("100", "100"),
                        ("500", "500"),
                        ("1000", "1000"),
                        ("no limit", "0"),
                    ],
                )
                .with_value(self.max_users.to_string())
                .with_desc(&format!("At most {} in any room", limits.max_occupants)),
            )
            .with_field(
                Field::list_single(
                    "muc#roomconfig_whois",
                    "Who may see real JIDs",
                    &[("Moderators only", "moderators"), ("Anyone", "anyone")],
                )
                .with_value(if self.whois_anyone {
                    "anyone"
                } else {
                    "moderators"
                }),
            )
            .with_field(
                Field::text_single("muc#maxhistoryfetch", "Messages of history sent on join")
                    .with_value(self.history_length.to_string())
                    .with_desc(&format!("0 to {}", limits.max_history)),
            )
            .with_field(
                Field::list_single(
                    "muc#roomconfig_allowpm",
                    "Who may send private messages",
                    &[
                        ("Anyone", "anyone"),
                        ("Participants", "participants"),
                        ("Moderators", "moderators"),
                        ("Nobody", "none"),
                    ],
                )
                .with_value(self.allow_pm.as_str()),
            )
            .with_field(
                Field::boolean("muc#roomconfig_allowinvites", "Occupants may invite others")
                    .with_value(b(self.allow_invites)),
            )
            .with_field(
                Field::boolean(
                    "muc#roomconfig_changesubject",
                    "Occupants may change the subject",
                )
                .with_value(b(self.change_subject)),
            )
    }

    /// Apply a submitted form; fields left out keep their values. Returns a message for
    /// the first value that is not acceptable.
    pub fn apply(&mut self, form: &DataForm, limits: &rookery_config::Muc) -> Result<(), String> {
        let mut next = self.clone();
        let boolean = |var: &str| -> Result<Option<bool>, String> {
            match form.value(var) {
                None => Ok(None),
                Some("1" | "true") => Ok(Some(true)),
                Some("0" | "false") => Ok(Some(false)),
                Some(v) => Err(format!("{var}: '{v}' is not a boolean")),
            }
        };
        let number = |var: &str, max: usize| -> Result<Option<usize>, String> {
            match form.value(var) {
                None | Some("") => Ok(None),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) if n <= max => Ok(Some(n)),
                    _ => Err(format!("{var}: '{v}' is not a number from 0 to {max}")),
                },
            }
        };
        if let Some(v) = form.value("muc#roomconfig_roomname") {
            next.name = v.chars().take(200).collect();
        }
        if let Some(f) = form.field("muc#roomconfig_roomdesc") {
            next.description = f.values.join("\n").chars().take(2000).collect();
        }
        if let Some(v) = boolean("muc#roomconfig_persistentroom")? {
            next.persistent = v;
        }
        if let Some(v) = boolean("muc#roomconfig_publicroom")? {
            next.public = v;
        }
        if let Some(v) = boolean("muc#roomconfig_membersonly")? {
            next.members_only = v;
        }
        if let Some(v) = boolean("muc#roomconfig_moderatedroom")? {
            next.moderated = v;
        }
        if let Some(v) = form.value("muc#roomconfig_roomsecret") {
            next.password = v.to_owned();
        }
        if boolean("muc#roomconfig_passwordprotectedroom")? == Some(false) {
            next.password.clear();
        } else if boolean("muc#roomconfig_passwordprotectedroom")? == Some(true)
            && next.password.is_empty()
        {
            return Err(
                "a password-protected room needs a password (muc#roomconfig_roomsecret)".into(),
            );
        }
        if let Some(n) = number("muc#roomconfig_maxusers", limits.max_occupants)? {
            next.max_users = n;
        }
        match form.value("muc#roomconfig_whois") {
            None => {}
            Some("anyone") => next.whois_anyone = true,
            Some("moderators") => next.whois_anyone = false,
            Some(v) => {
                return Err(format!(
                    "muc#roomconfig_whois: '{v}' is not 'moderators' or 'anyone'"
                ));
            }
        }
        if let Some(n) = number("muc#maxhistoryfetch", limits.max_history)? {
            next.history_length = n;
        }
        match form.value("muc#roomconfig_allowpm") {
            None => {}
            Some("anyone") => next.allow_pm = AllowPm::Anyone,
            Some("participants") => next.allow_pm = AllowPm::Participants,
            Some("moderators") => next.allow_pm = AllowPm::Moderators,
            Some("none") => next.allow_pm = AllowPm::None,
            Some(v) => return Err(format!("muc#roomconfig_allowpm: '{v}' is not a choice")),
        }
        if let Some(v) = boolean("muc#roomconfig_allowinvites")? {
            next.allow_invites = v;
        }
        if let Some(v) = boolean("muc#roomconfig_changesubject")? {
            next.change_subject = v;
        }
        *self = next;
        Ok(())
    }
}

/// A message kept for new occupants.
#[derive(Clone, Debug)]
pub struct HistoryItem {
    /// As broadcast (from the occupant JID, no `to`).
    pub stanza: Element,
    pub stamp_us: i64,
    /// Characters of the stanza as XML, for `maxchars`.
    pub chars: usize,
}

/// One occupant: a nick and the sessions (full JIDs of one bare JID) using it.
#[derive(Clone, Debug)]
pub struct Occupant {
    pub nick: String,
    pub bare: BareJid,
    pub sessions: Vec<FullJid>,
    pub role: Role,
    pub affiliation: Affiliation,
    /// The last presence sent, as received (its children are repeated to others).
    pub presence: Element,
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// `room@service`.
    pub jid: BareJid,
    pub config: RoomConfig,
    /// Affiliations other than `none`, by bare JID (users, servers or groups).
    pub affiliations: BTreeMap<BareJid, (Affiliation, String)>,
    /// Occupants by nick, in join order.
    pub occupants: Vec<Occupant>,
    pub history: VecDeque<HistoryItem>,
    pub subject: String,
    pub subject_by: String,
    /// A new room waits for its owner's configuration (or an instant-room submission);
    /// nobody else may enter meanwhile.
    pub locked: bool,
}

impl Room {
    pub fn new(jid: BareJid, config: RoomConfig) -> Room {
        Room {
            jid,
            config,
            affiliations: BTreeMap::new(),
            occupants: Vec::new(),
            history: VecDeque::new(),
            subject: String::new(),
            subject_by: String::new(),
            locked: false,
        }
    }

    /// The occupant JID of a nick: `room@service/nick`.
    pub fn occupant_jid(&self, nick: &str) -> Jid {
        Jid::from(
            self.jid
                .with_resource_str(nick)
                .expect("nicks are checked resources"),
        )
    }

    pub fn occupant(&self, nick: &str) -> Option<&Occupant> {
        self.occupants.iter().find(|o| o.nick == nick)
    }

    pub fn occupant_mut(&mut self, nick: &str) -> Option<&mut Occupant> {
        self.occupants.iter_mut().find(|o| o.nick == nick)
    }

    /// The occupant one of whose sessions is `jid`.
    pub fn occupant_of(&self, jid: &FullJid) -> Option<&Occupant> {
        self.occupants.iter().find(|o| o.sessions.contains(jid))
    }

    /// The occupant used by `bare`'s sessions, if any.
    pub fn occupant_of_bare(&self, bare: &BareJid) -> Option<&Occupant> {
        self.occupants.iter().find(|o| &o.bare == bare)
    }

    /// The affiliation of a user: their own entry, else the best entry of a group they
    /// are in (`groups`: the JIDs of their shared groups), else their server's, else none.
    /// An outcast entry of their own wins over everything.
    pub fn affiliation_of(&self, bare: &BareJid, groups: &[BareJid]) -> Affiliation {
        if let Some((a, _)) = self.affiliations.get(bare) {
            return *a;
        }
        let mut best: Option<Affiliation> = None;
        for g in groups {
            if let Some((a, _)) = self.affiliations.get(g) {
                best = Some(match best {
                    Some(b) if b >= *a || b == Affiliation::Outcast => b,
                    _ => *a,
                });
            }
        }
        if best.is_none()
            && let Ok(domain) = BareJid::new(bare.domain().as_str())
            && let Some((a, _)) = self.affiliations.get(&domain)
        {
            best = Some(*a);
        }
        best.unwrap_or(Affiliation::None)
    }

    /// The role an occupant gets by default for their affiliation (§5.1.2): moderators
    /// exactly for owners and admins.
    pub fn default_role(&self, a: Affiliation) -> Role {
        match a {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if self.config.moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    pub fn owners(&self) -> impl Iterator<Item = &BareJid> {
        self.affiliations
            .iter()
            .filter(|(_, (a, _))| *a == Affiliation::Owner)
            .map(|(j, _)| j)
    }

    /// The `<x xmlns='muc#user'>` of an occupant's presence as `viewer` sees it: the item
    /// (with the real JID when the room shows it to the viewer) and status codes.
    pub fn user_x(&self, o: &Occupant, viewer_is_moderator: bool, codes: &[u16]) -> Element {
        let mut item = el("item", NS_USER)
            .with_attr("affiliation", o.affiliation.as_str())
            .with_attr("role", o.role.as_str());
        if (self.config.whois_anyone || viewer_is_moderator)
            && let Some(s) = o.sessions.first()
        {
            item.put_attr("jid", s.as_str());
        }
        let mut x = el("x", NS_USER).with_child(item);
        for c in codes {
            x.append_child(el("status", NS_USER).with_attr("code", &c.to_string()));
        }
        x
    }

    /// Presence of occupant `o` for every session of the occupants, with `codes` for
    /// everyone and `self_codes` added for the occupant's own sessions (110 among them).
    /// `extra` is appended to the `<x/>` (e.g. `<destroy/>`, an actor, a reason).
    pub fn presence_broadcast(
        &self,
        o: &Occupant,
        unavailable: bool,
        codes: &[u16],
        self_codes: &[u16],
        extra: &[Element],
        out: &mut Out,
    ) {
        self.presence_to_all(
            o,
            unavailable,
            &[],
            |sees_jid, own| {
                let mut all: Vec<u16> = codes.to_vec();
                if own {
                    all.extend_from_slice(self_codes);
                    all.push(110);
                    all.sort_unstable();
                    all.dedup();
                }
                let mut x = self.user_x(o, sees_jid, &all);
                for e in extra {
                    x.append_child(e.clone());
                }
                x
            },
            out,
        );
    }

    /// Presence of occupant `o` to every occupant session, built once for each kind of
    /// viewer — the occupant itself, those who see real JIDs, the others — and fanned out
    /// (a room of N costs three presences per change, not N). `x(sees_jid, own)` makes the
    /// `<x/>` of each kind; `tail` is appended to the presence (e.g. a `<status/>`).
    pub fn presence_to_all(
        &self,
        o: &Occupant,
        unavailable: bool,
        tail: &[Element],
        x: impl Fn(bool, bool) -> Element,
        out: &mut Out,
    ) {
        let from = self.occupant_jid(&o.nick);
        let mut kinds: [(bool, bool, Vec<FullJid>); 3] = [
            (true, true, Vec::new()),
            (true, false, Vec::new()),
            (false, false, Vec::new()),
        ];
        for viewer in &self.occupants {
            let own = viewer.bare == o.bare && viewer.nick == o.nick;
            let kind = if own {
                0
            } else if viewer.role == Role::Moderator || self.config.whois_anyone {
                1
            } else {
                2
            };
            kinds[kind].2.extend(viewer.sessions.iter().cloned());
        }
        for (sees_jid, own, to) in kinds {
            if to.is_empty() {
                continue;
            }
            let mut p = self.presence_from(o, &from, unavailable, x(sees_jid, own));
            for t in tail {
                p.append_child(t.clone());
            }
            out.fanout(p, to);
        }
    }

    /// One presence of occupant `o` to `to`.
    pub fn presence_of(
        &self,
        o: &Occupant,
        from: &Jid,
        to: &FullJid,
        unavailable: bool,
        x: Element,
    ) -> Element {
        let mut p = self.presence_from(o, from, unavailable, x);
        p.put_attr("to", to.as_str());
        p
    }

    /// A presence of occupant `o`, not yet addressed.
    fn presence_from(&self, o: &Occupant, from: &Jid, unavailable: bool, x: Element) -> Element {
        let mut p = el("presence", crate::ns::CLIENT).with_attr("from", from.as_str());
        if unavailable {
            p.put_attr("type", "unavailable");
        } else {
            // The occupant's own show/status/priority and extensions, without any MUC
            // payload of theirs.
            for c in o.presence.children() {
                if !(c.ns() == NS_MUC || c.ns() == NS_USER) {
                    p.append_child(c.clone());
                }
            }
        }
        p.append_child(x);
        p
    }

    /// The `muc_*` disco features of the room (XEP-0045 §6.4).
    pub fn features(&self) -> Vec<&'static str> {
        let c = &self.config;
        vec![
            NS_MUC,
            NS_SID,
            if c.persistent {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
            if c.public { "muc_public" } else { "muc_hidden" },
            if c.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if c.moderated {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
            if c.password.is_empty() {
                "muc_unsecured"
            } else {
                "muc_passwordprotected"
            },
            if c.whois_anyone {
                "muc_nonanonymous"
            } else {
                "muc_semianonymous"
            },
        ]
    }

    /// The `muc#roominfo` form of disco#info.
    pub fn info_form(&self) -> DataForm {
        DataForm::result("Room information")
            .with_form_type(NS_ROOMINFO)
            .with_field(
                Field::text_single("muc#roominfo_description", "Description")
                    .with_value(&self.config.description),
            )
            .with_field(
                Field::text_single("muc#roominfo_occupants", "Number of occupants")
                    .with_value(self.occupants.len().to_string()),
            )
            .with_field(
                Field::text_single("muc#roominfo_subject", "Subject").with_value(&self.subject),
            )
            .with_field(
                Field::boolean(
                    "muc#roominfo_changesubject",
                    "Occupants may change the subject",
                )
                .with_value(if self.config.change_subject { "1" } else { "0" }),
            )
            .with_field(
                Field::text_single("muc#roomconfig_roomname", "Name").with_value(&self.config.name),
            )
    }

    /// Keep a broadcast message for history, within the room's and the service's limit.
    pub fn remember(&mut self, stanza: Element, stamp_us: i64, max: usize) {
        let keep = self.config.history_length.min(max);
        if keep == 0 {
            self.history.clear();
            return;
        }
        let chars = String::from(&stanza).chars().count();
        self.history.push_back(HistoryItem {
            stanza,
            stamp_us,
            chars,
        });
        while self.history.len() > keep {
            self.history.pop_front();
        }
    }

    /// The room as stored.
    pub fn to_stored(&self) -> rookery_storage::StoredRoom {
        rookery_storage::StoredRoom {
            room: self.jid.node().map(|n| n.to_string()).unwrap_or_default(),
            config: serde_json::to_string(&self.config).expect("the configuration serialises"),
            subject: self.subject.clone(),
            subject_by: self.subject_by.clone(),
            affiliations: Vec::new(),
        }
    }

    /// A stored room, without occupants.
    pub fn from_stored(service: &str, stored: &rookery_storage::StoredRoom) -> Option<Room> {
        let jid = BareJid::new(&format!("{}@{service}", stored.room)).ok()?;
        let config: RoomConfig = serde_json::from_str(&stored.config).unwrap_or_default();
        let mut room = Room::new(jid, config);
        room.subject = stored.subject.clone();
        room.subject_by = stored.subject_by.clone();
        for a in &stored.affiliations {
            if let (Ok(j), Some(aff)) = (BareJid::new(&a.jid), Affiliation::parse(&a.affiliation)) {
                room.affiliations.insert(j, (aff, a.reason.clone()));
            }
        }
        Some(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Room {
        Room::new(
            BareJid::new("neerc@conference.example.org").unwrap(),
            RoomConfig::default(),
        )
    }

    #[test]
    fn a_users_own_entry_wins_then_the_best_group_then_the_server() {
        let mut r = room();
        let alice = BareJid::new("alice@example.org").unwrap();
        let halls = BareJid::new("halls@groups.example.org").unwrap();
        let jury = BareJid::new("jury@groups.example.org").unwrap();
        assert_eq!(r.affiliation_of(&alice, &[]), Affiliation::None);
        r.affiliations.insert(
            BareJid::new("example.org").unwrap(),
            (Affiliation::Member, String::new()),
        );
        assert_eq!(r.affiliation_of(&alice, &[]), Affiliation::Member);
        r.affiliations
            .insert(halls.clone(), (Affiliation::Member, String::new()));
        r.affiliations
            .insert(jury.clone(), (Affiliation::Admin, String::new()));
        assert_eq!(
            r.affiliation_of(&alice, &[halls.clone(), jury.clone()]),
            Affiliation::Admin
        );
        r.affiliations
            .insert(alice.clone(), (Affiliation::Outcast, String::new()));
        assert_eq!(r.affiliation_of(&alice, &[jury]), Affiliation::Outcast);
    }

    #[test]
    fn moderators_are_exactly_owners_and_admins() {
        let mut r = room();
        assert_eq!(r.default_role(Affiliation::Owner), Role::Moderator);
        assert_eq!(r.default_role(Affiliation::Admin), Role::Moderator);
        assert_eq!(r.default_role(Affiliation::Member), Role::Participant);
        assert_eq!(r.default_role(Affiliation::None), Role::Participant);
        r.config.moderated = true;
        assert_eq!(r.default_role(Affiliation::None), Role::Visitor);
    }

    #[test]
    fn a_submitted_form_changes_only_what_it_names_and_refuses_bad_values() {
        let limits = rookery_config::Muc::default();
        let mut c = RoomConfig::default();
        let form = DataForm::submit()
            .with_field(Field::text_single("muc#roomconfig_roomname", "").with_value("Contest"))
            .with_field(Field::boolean("muc#roomconfig_persistentroom", "").with_value("1"));
        c.apply(&form, &limits).unwrap();
        assert_eq!(c.name, "Contest");
        assert!(c.persistent);
        assert!(c.public);
        let bad = DataForm::submit()
            .with_field(Field::text_single("muc#roomconfig_maxusers", "").with_value("lots"));
        assert!(c.apply(&bad, &limits).unwrap_err().contains("maxusers"));
        assert_eq!(c.name, "Contest");
        let form = c.form(&limits);
        assert_eq!(form.value("muc#roomconfig_roomname"), Some("Contest"));
    }
}
