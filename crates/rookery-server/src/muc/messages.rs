//! Messages to a room (XEP-0045 §7.4–7.5, §7.8, §8.1): groupchat with a stable
//! stanza-id (XEP-0359), the subject, private messages between occupants, and mediated
//! invitations.

use jid::{FullJid, Jid};
use minidom::Element;

use super::room::{AllowPm, NS_SID, NS_USER};
use super::{Affiliation, MucService, Out, Role, Room};
use crate::error::{Condition, StanzaError};
use crate::router::stanza_type;
use crate::server::Server;
use crate::xml::{ElementExt, el};

pub(super) async fn message(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    from: &Jid,
    to: &Jid,
    stanza: Element,
    out: &mut Out,
) {
    let ty = stanza_type(&stanza).to_owned();
    if to.resource().is_some() {
        return private(r, from, to, stanza, out);
    }
    if let Some(x) = stanza.get_child("x", NS_USER) {
        if x.get_child("invite", NS_USER).is_some() {
            return invite(svc, server, r, from, &stanza, out).await;
        }
        if let Some(decline) = x.get_child("decline", NS_USER) {
            return decline_invite(r, from, decline, out);
        }
    }
    if ty != "groupchat" {
        out.push(
            StanzaError::new(
                Condition::BadRequest,
                "messages to a room are of type 'groupchat' (or invitations)",
            )
            .bounce(&stanza),
        );
        return;
    }
    groupchat(svc, server, r, from, stanza, out).await
}

/// §7.4 and §8.1: a message to all occupants, or a new subject.
async fn groupchat(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    from: &Jid,
    mut stanza: Element,
    out: &mut Out,
) {
    let sender = from
        .clone()
        .try_into_full()
        .ok()
        .and_then(|f| r.occupant_of(&f).cloned());
    let Some(sender) = sender else {
        out.push(
            StanzaError::new(
                Condition::NotAcceptable,
                "only occupants may send messages to the room; enter it first",
            )
            .bounce(&stanza),
        );
        return;
    };
    if sender.role == Role::Visitor {
        out.push(
            StanzaError::forbidden("visitors may not speak in this moderated room").bounce(&stanza),
        );
        return;
    }
    let subject = stanza
        .get_child("subject", crate::ns::CLIENT)
        .map(|s| s.text());
    let has_body = stanza.has_child("body", crate::ns::CLIENT);
    if let Some(subject) = &subject
        && !has_body
    {
        if !(sender.role == Role::Moderator || r.config.change_subject) {
            out.push(
                StanzaError::forbidden("only moderators may change the subject of this room")
                    .bounce(&stanza),
            );
            return;
        }
        let max = server.config().muc.max_subject_chars;
        if subject.chars().count() > max {
            out.push(
                StanzaError::new(
                    Condition::NotAcceptable,
                    format!("the subject is longer than {max} characters"),
                )
                .bounce(&stanza),
            );
            return;
        }
        let before = (r.subject.clone(), r.subject_by.clone());
        r.subject = subject.clone();
        r.subject_by = sender.nick.clone();
        if let Err(e) = svc.save(server, r).await {
            (r.subject, r.subject_by) = before;
            out.push(e.bounce(&stanza));
            return;
        }
    }
    // Any stanza-id claimed by the room is ours to give (XEP-0359 §5).
    let room_jid = r.jid.to_string();
    drop_claimed_ids(&mut stanza, &room_jid);
    let id = crate::c2s::random_id();
    stanza.append_child(
        el("stanza-id", NS_SID)
            .with_attr("id", &id)
            .with_attr("by", &room_jid),
    );
    stanza.put_attr("from", r.occupant_jid(&sender.nick).as_str());
    stanza.remove_attr("to");
    let to: Vec<FullJid> = r
        .occupants
        .iter()
        .flat_map(|o| o.sessions.iter().cloned())
        .collect();
    if has_body {
        let max = server.config().muc.max_history;
        r.remember(stanza.clone(), rookery_storage::now_us(), max);
    }
    // Serialised once for all occupants (see `Delivery::Fanout`).
    out.fanout(stanza, to);
}

/// §7.5: a private message to one occupant (all sessions of its nick).
fn private(r: &mut Room, from: &Jid, to: &Jid, stanza: Element, out: &mut Out) {
    let sender = from
        .clone()
        .try_into_full()
        .ok()
        .and_then(|f| r.occupant_of(&f).cloned());
    let Some(sender) = sender else {
        out.push(
            StanzaError::new(
                Condition::NotAcceptable,
                "only occupants may send private messages in the room; enter it first",
            )
            .bounce(&stanza),
        );
        return;
    };
    if stanza_type(&stanza) == "groupchat" {
        out.push(
            StanzaError::bad_request("a private message is of type 'chat', not 'groupchat'")
                .bounce(&stanza),
        );
        return;
    }
    let allowed = match r.config.allow_pm {
        AllowPm::Anyone => true,
        AllowPm::Participants => sender.role >= Role::Participant,
        AllowPm::Moderators => sender.role == Role::Moderator,
        AllowPm::None => false,
    };
    if !allowed {
        out.push(
            StanzaError::forbidden("private messages are not allowed to you in this room")
                .bounce(&stanza),
        );
        return;
    }
    let nick = to.resource().map(|n| n.to_string()).unwrap_or_default();
    let Some(target) = r.occupant(&nick) else {
        out.push(
            StanzaError::item_not_found(format!("there is nobody called '{nick}' in this room"))
                .bounce(&stanza),
        );
        return;
    };
    let mut m = stanza;
    m.put_attr("from", r.occupant_jid(&sender.nick).as_str());
    if m.get_child("x", NS_USER).is_none() {
        m.append_child(el("x", NS_USER));
    }
    for s in &target.sessions {
        let mut copy = m.clone();
        copy.put_attr("to", s.as_str());
        out.push(copy);
    }
}

/// §7.8.2: a mediated invitation, passed on from the room with the inviter's JID.
async fn invite(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    from: &Jid,
    stanza: &Element,
    out: &mut Out,
) {
    let Ok(from_full) = from.clone().try_into_full() else {
        return;
    };
    let inviter = r.occupant_of(&from_full).cloned();
    let Some(inviter) = inviter else {
        out.push(
            StanzaError::new(Condition::NotAcceptable, "only occupants may invite others")
                .bounce(stanza),
        );
        return;
    };
    let privileged = inviter.affiliation >= Affiliation::Admin;
    if !(r.config.allow_invites || privileged || inviter.role == Role::Moderator) {
        out.push(
            StanzaError::forbidden("only moderators may invite others to this room").bounce(stanza),
        );
        return;
    }
    let x = stanza.get_child("x", NS_USER).expect("the caller found it");
    for invite in x.children().filter(|c| c.is("invite", NS_USER)) {
        let Some(Ok(invitee)) = invite.get_attr("to").map(Jid::new) else {
            out.push(
                StanzaError::new(
                    Condition::JidMalformed,
                    "an invitation needs a valid 'to' JID",
                )
                .bounce(stanza),
            );
            return;
        };
        // In a members-only room an admin's invitation makes the invitee a member
        // (§9.3 note), so that they can enter.
        let invitee_bare = invitee.to_bare();
        if r.config.members_only
            && privileged
            && r.affiliation_of(&invitee_bare, &[]) == Affiliation::None
        {
            let name = r.jid.node().map(|n| n.to_string()).unwrap_or_default();
            if r.config.persistent
                && let Err(e) = svc
                    .store_affiliation(server, &name, &invitee_bare, Affiliation::Member, "")
                    .await
            {
                out.push(e.bounce(stanza));
                return;
            }
            r.affiliations
                .insert(invitee_bare, (Affiliation::Member, String::new()));
        }
        let mut inv = el("invite", NS_USER).with_attr("from", from_full.as_str());
        if let Some(reason) = invite.get_child("reason", NS_USER) {
            inv.append_child(reason.clone());
        }
        let mut ux = el("x", NS_USER).with_child(inv);
        if !r.config.password.is_empty() {
            ux.append_child(el("password", NS_USER).with_text(&r.config.password));
        }
        let reason = invite
            .get_child("reason", NS_USER)
            .map(|c| c.text())
            .unwrap_or_default();
        let body = format!("{from_full} invites you to the room {}. {reason}", r.jid);
        out.push(
            el("message", crate::ns::CLIENT)
                .with_attr("from", r.jid.as_str())
                .with_attr("to", invitee.as_str())
                .with_attr("id", &crate::c2s::random_id())
                .with_child(ux)
                .with_child(el("x", super::room::NS_CONFERENCE).with_attr("jid", r.jid.as_str()))
                .with_child(el("body", crate::ns::CLIENT).with_text(body.trim_end())),
        );
    }
}

/// §7.8.2 (decline): passed on to the inviter, from the room.
fn decline_invite(r: &Room, from: &Jid, decline: &Element, out: &mut Out) {
    let Some(Ok(inviter)) = decline.get_attr("to").map(Jid::new) else {
        return;
    };
    let mut d = el("decline", NS_USER).with_attr("from", from.to_bare().as_str());
    if let Some(reason) = decline.get_child("reason", NS_USER) {
        d.append_child(reason.clone());
    }
    out.push(
        el("message", crate::ns::CLIENT)
            .with_attr("from", r.jid.as_str())
            .with_attr("to", inviter.as_str())
            .with_child(el("x", NS_USER).with_child(d)),
    );
}

/// Remove the `<stanza-id/>`s that claim to be the room's (a sender may not forge them).
fn drop_claimed_ids(stanza: &mut Element, room: &str) {
    let claimed = |c: &Element| c.is("stanza-id", NS_SID) && c.get_attr("by") == Some(room);
    if !stanza.children().any(claimed) {
        return;
    }
    let mut clean = el(stanza.name(), &stanza.ns());
    for (k, v) in stanza.attr_pairs() {
        clean.put_attr(&k, &v);
    }
    for node in stanza.nodes() {
        match node {
            minidom::Node::Element(e) if claimed(e) => {}
            minidom::Node::Element(e) => {
                clean.append_child(e.clone());
            }
            minidom::Node::Text(t) => clean.append_text_node(t.clone()),
        }
    }
    *stanza = clean;
}
