//! Presence to a room (XEP-0045 §7.2–7.7, §7.14): entering, presence updates, changing
//! nick, leaving, and errors that end an occupant's visit.

use jid::{FullJid, Jid};
use minidom::Element;

use super::room::{NS_MUC, NS_USER, Occupant};
use super::{Affiliation, MucService, Out, Role, Room};
use crate::error::{Condition, StanzaError};
use crate::router::stanza_type;
use crate::server::Server;
use crate::xml::{ElementExt, el};

pub(super) async fn presence(
    server: &Server,
    r: &mut Room,
    from: &Jid,
    to: &Jid,
    stanza: Element,
    out: &mut Out,
) {
    let Ok(from) = from.clone().try_into_full() else {
        return; // only a user's session can be an occupant
    };
    match stanza_type(&stanza) {
        "unavailable" => leave(r, &from, &stanza, out),
        "available" => {
            let Some(nick) = to.resource().map(|n| n.to_string()) else {
                out.push(
                    StanzaError::new(
                        Condition::JidMalformed,
                        "to enter a room, address your presence to room@service/nickname",
                    )
                    .bounce(&stanza),
                );
                return;
            };
            let current = r.occupant_of(&from).map(|o| o.nick.clone());
            match current {
                Some(old) if old == nick => update(r, &nick, stanza, out),
                Some(old) => change_nick(r, &old, &nick, stanza, out),
                None => join(server, r, &from, &nick, stanza, out).await,
            }
        }
        _ => {} // subscriptions and probes mean nothing to a room
    }
}

/// §7.2: enter the room.
async fn join(
    server: &Server,
    r: &mut Room,
    from: &FullJid,
    nick: &str,
    stanza: Element,
    out: &mut Out,
) {
    let bare = from.to_bare();
    let groups = MucService::groups_of(server, &bare).await;
    let affiliation = r.affiliation_of(&bare, &groups);
    let refuse = |cond: Condition, text: &str| -> Element {
        let mut reply = StanzaError::new(cond, text).bounce(&stanza);
        // The error echoes the MUC payload so clients know which join failed.
        if let Some(x) = stanza.get_child("x", NS_MUC) {
            reply.append_child(x.clone());
        }
        reply
    };
    let creating = r.locked && r.occupants.is_empty() && affiliation == Affiliation::Owner;
    if r.locked && affiliation != Affiliation::Owner {
        out.push(refuse(
            Condition::ItemNotFound,
            "the room is being set up by its owner; try again later",
        ));
        return;
    }
    if affiliation == Affiliation::Outcast {
        out.push(refuse(
            Condition::Forbidden,
            "you are banned from this room",
        ));
        return;
    }
    if let Some(o) = r.occupant(nick)
        && o.bare != bare
    {
        out.push(refuse(
            Condition::Conflict,
            &format!("the nickname '{nick}' is in use in this room"),
        ));
        return;
    }
    if let Some(o) = r.occupant_of_bare(&bare)
        && o.nick != nick
        && !o.sessions.is_empty()
    {
        // One user, one nick: another session must use the same nick.
        out.push(refuse(
            Condition::NotAcceptable,
            &format!(
                "you are in this room as '{}' already; use that nickname",
                o.nick
            ),
        ));
        return;
    }
    if r.config.members_only && affiliation < Affiliation::Member {
        out.push(refuse(
            Condition::RegistrationRequired,
            "this room is for members only",
        ));
        return;
    }
    if !r.config.password.is_empty() && affiliation != Affiliation::Owner {
        let given = stanza
            .get_child("x", NS_MUC)
            .and_then(|x| x.get_child("password", NS_MUC))
            .map(|p| p.text());
        if given.as_deref() != Some(r.config.password.as_str()) {
            out.push(refuse(
                Condition::NotAuthorized,
                "this room needs a password, and the one given is missing or wrong",
            ));
            return;
        }
    }
    let limit = match r.config.max_users {
        0 => server.config().muc.max_occupants,
        n => n.min(server.config().muc.max_occupants),
    };
    let already = r.occupant(nick).is_some();
    if !already && r.occupants.len() >= limit && affiliation < Affiliation::Admin {
        out.push(refuse(
            Condition::ServiceUnavailable,
            &format!("the room is full ({limit} occupants)"),
        ));
        return;
    }

    let role = r.default_role(affiliation);
    let mut own_presence = stanza.clone();
    strip_addressing(&mut own_presence);
    if already {
        // Another session of the same user under the same nick.
        let o = r.occupant_mut(nick).expect("checked above");
        o.sessions.push(from.clone());
        o.presence = own_presence;
    } else {
        r.occupants.push(Occupant {
            nick: nick.to_owned(),
            bare,
            sessions: vec![from.clone()],
            role,
            affiliation,
            presence: own_presence,
        });
    }
    // The others first, then the newcomer's own presence (§7.2.3), to the new session.
    let me = r.occupant(nick).expect("just added").clone();
    for o in &r.occupants {
        if o.nick == nick {
            continue;
        }
        let x = r.user_x(o, me.role == Role::Moderator, &[]);
        out.push(r.presence_of(o, &r.occupant_jid(&o.nick), from, false, x));
    }
    let mut self_codes = Vec::new();
    if r.config.whois_anyone {
        self_codes.push(100);
    }
    if creating {
        self_codes.push(201);
    }
    r.presence_broadcast(&me, false, &[], &self_codes, &[], out);
    // The subject ends every entry (§7.2.16), the creator's of a locked room too:
    // clients take it as the end of the join.
    send_history(r, from, &stanza, out);
    let subject_from = if r.subject_by.is_empty() {
        Jid::from(r.jid.clone())
    } else {
        r.occupant_jid(&r.subject_by)
    };
    out.push(
        el("message", crate::ns::CLIENT)
            .with_attr("from", subject_from.as_str())
            .with_attr("to", from.as_str())
            .with_attr("type", "groupchat")
            .with_attr("id", &crate::c2s::random_id())
            .with_child(el("subject", crate::ns::CLIENT).with_text(&r.subject)),
    );
}

/// Remove the addressing of a presence kept to be repeated to others.
fn strip_addressing(p: &mut Element) {
    p.remove_attr("to");
    p.remove_attr("from");
    p.remove_attr("id");
}

/// §7.2.15: the history the newcomer asked for (default: all the room keeps).
fn send_history(r: &Room, to: &FullJid, join: &Element, out: &mut Out) {
    let req = join
        .get_child("x", NS_MUC)
        .and_then(|x| x.get_child("history", NS_MUC));
    let num = |name: &str| {
        req.and_then(|h| h.get_attr(name))
            .and_then(|v| v.parse::<i64>().ok())
    };
    let max_stanzas = num("maxstanzas").map_or(usize::MAX, |n| n.max(0) as usize);
    let max_chars = num("maxchars").map_or(usize::MAX, |n| n.max(0) as usize);
    let now = rookery_storage::now_us();
    let mut after = num("seconds").map_or(i64::MIN, |s| now - s.max(0) * 1_000_000);
    if let Some(since) = req
        .and_then(|h| h.get_attr("since"))
        .and_then(crate::util::parse_datetime)
    {
        after = after.max(since);
    }
    let mut picked = Vec::new();
    let mut chars = 0usize;
    for item in r.history.iter().rev() {
        if picked.len() >= max_stanzas || item.stamp_us < after {
            break;
        }
        chars += item.chars;
        if chars > max_chars {
            break;
        }
        picked.push(item);
    }
    for item in picked.into_iter().rev() {
        let mut m = item.stanza.clone();
        m.put_attr("to", to.as_str());
        m.append_child(
            el("delay", crate::ns::DELAY)
                .with_attr("from", r.jid.as_str())
                .with_attr("stamp", &crate::util::format_datetime(item.stamp_us)),
        );
        out.push(m);
    }
}

/// §7.7: a presence update, broadcast to everyone.
fn update(r: &mut Room, nick: &str, stanza: Element, out: &mut Out) {
    let mut p = stanza;
    strip_addressing(&mut p);
    let Some(o) = r.occupant_mut(nick) else {
        return;
    };
    o.presence = p;
    let o = o.clone();
    r.presence_broadcast(&o, false, &[], &[], &[], out);
}

/// §7.6: a new nick: unavailable with 303 and the new nick, then available again.
fn change_nick(r: &mut Room, old: &str, new: &str, stanza: Element, out: &mut Out) {
    let me = r.occupant(old).expect("the caller found it").clone();
    if r.occupant(new).is_some() {
        let mut reply = StanzaError::new(
            Condition::Conflict,
            format!("the nickname '{new}' is in use in this room"),
        )
        .bounce(&stanza);
        reply.put_attr("from", r.occupant_jid(new).as_str());
        out.push(reply);
        return;
    }
    let mut leaving = me.clone();
    leaving.presence = el("presence", crate::ns::CLIENT);
    // The item carries the new nick.
    r.presence_to_all(
        &leaving,
        true,
        &[],
        |sees_jid, own| {
            let codes: &[u16] = if own { &[110, 303] } else { &[303] };
            let mut x = r.user_x(&leaving, sees_jid, codes);
            if let Some(item) = x.children_mut().find(|c| c.name() == "item") {
                item.put_attr("nick", new);
            }
            x
        },
        out,
    );
    let mut p = stanza;
    strip_addressing(&mut p);
    let o = r.occupant_mut(old).expect("still there");
    o.nick = new.to_owned();
    o.presence = p;
    let o = o.clone();
    r.presence_broadcast(&o, false, &[], &[], &[], out);
}

/// §7.14: one session leaves; the occupant is gone with its last session.
fn leave(r: &mut Room, from: &FullJid, stanza: &Element, out: &mut Out) {
    let Some(idx) = r.occupants.iter().position(|o| o.sessions.contains(from)) else {
        return;
    };
    let status = stanza
        .get_child("status", crate::ns::CLIENT)
        .map(|s| s.text());
    let o = &mut r.occupants[idx];
    o.sessions.retain(|s| s != from);
    let mut gone = o.clone();
    gone.role = Role::None;
    gone.presence = el("presence", crate::ns::CLIENT);
    if let Some(s) = &status {
        gone.presence
            .append_child(el("status", crate::ns::CLIENT).with_text(s));
    }
    let occupant_jid = r.occupant_jid(&gone.nick);
    // The leaving session hears its own exit.
    let x = r.user_x(&gone, true, &[110]);
    let mut own = r.presence_of(&gone, &occupant_jid, from, true, x);
    if let Some(s) = &status {
        own.append_child(el("status", crate::ns::CLIENT).with_text(s));
    }
    out.push(own);
    if !r.occupants[idx].sessions.is_empty() {
        return; // the nick stays in the room through the other sessions
    }
    r.occupants.remove(idx);
    let tail: Vec<Element> = status
        .iter()
        .map(|s| el("status", crate::ns::CLIENT).with_text(s))
        .collect();
    r.presence_to_all(
        &gone,
        true,
        &tail,
        |sees_jid, _| r.user_x(&gone, sees_jid, &[]),
        out,
    );
}

/// Remove an occupant for a reason given by status codes (kick 307, ban 301, affiliation
/// change 321, members-only 322, shutdown 332), telling everyone, the occupant included.
pub(super) fn remove_occupant(
    r: &mut Room,
    nick: &str,
    codes: &[u16],
    actor: Option<&str>,
    reason: &str,
    out: &mut Out,
) {
    let Some(idx) = r.occupants.iter().position(|o| o.nick == nick) else {
        return;
    };
    let mut gone = r.occupants[idx].clone();
    gone.role = Role::None;
    let mut extra_item_children = Vec::new();
    if let Some(a) = actor {
        extra_item_children.push(el("actor", NS_USER).with_attr("nick", a));
    }
    if !reason.is_empty() {
        extra_item_children.push(el("reason", NS_USER).with_text(reason));
    }
    r.presence_to_all(
        &gone,
        true,
        &[],
        |sees_jid, own| {
            let mut all = codes.to_vec();
            if own {
                all.push(110);
            }
            let mut x = r.user_x(&gone, sees_jid, &all);
            if let Some(item) = x.children_mut().find(|c| c.name() == "item") {
                for c in &extra_item_children {
                    item.append_child(c.clone());
                }
            }
            x
        },
        out,
    );
    r.occupants.remove(idx);
}

/// An error from an occupant's client (a presence or message the room sent was refused):
/// that session's visit ends (§7.14 note), and with its last session the occupant leaves
/// as kicked by the service (333).
pub(super) fn refused(r: &mut Room, from: &Jid, stanza: &Element, out: &mut Out) {
    let Ok(from) = from.clone().try_into_full() else {
        return;
    };
    if stanza.name() == "presence" {
        return leave(r, &from, stanza, out);
    }
    if let Some(o) = r.occupant_of(&from) {
        let nick = o.nick.clone();
        remove_occupant(r, &nick, &[333], None, "", out);
    }
}
