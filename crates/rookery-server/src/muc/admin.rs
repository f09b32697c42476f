//! Room administration: `muc#admin` (XEP-0045 §8–9: roles and affiliations), `muc#owner`
//! (§10: configuration and destruction), and the service's ad-hoc commands for server
//! administrators.

use std::sync::Arc;

use jid::{BareJid, Jid};
use minidom::Element;
use rookery_forms::{DataForm, Field};

use super::occupants::remove_occupant;
use super::room::{NS_ADMIN, NS_OWNER, NS_USER};
use super::{Affiliation, MucService, Out, Role, Room};
use crate::adhoc::{CommandDef, On, Permission, Reply, immediate, simple_form};
use crate::error::{Condition, StanzaError};
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};

/// What the sender of an admin request is in the room.
struct Actor {
    nick: Option<String>,
    role: Role,
    affiliation: Affiliation,
}

async fn actor(server: &Server, r: &Room, from: &Jid) -> Actor {
    let bare = from.to_bare();
    let groups = MucService::groups_of(server, &bare).await;
    let occupant = from
        .clone()
        .try_into_full()
        .ok()
        .and_then(|f| r.occupant_of(&f).cloned());
    Actor {
        nick: occupant.as_ref().map(|o| o.nick.clone()),
        role: occupant.as_ref().map_or(Role::None, |o| o.role),
        affiliation: r.affiliation_of(&bare, &groups),
    }
}

pub(super) async fn admin_iq(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    from: &Jid,
    ty: IqType,
    stanza: &Element,
    out: &mut Out,
) -> Element {
    let who = actor(server, r, from).await;
    let query = stanza.first_child().expect("the caller checked");
    let items: Vec<&Element> = query
        .children()
        .filter(|c| c.is("item", NS_ADMIN))
        .collect();
    if items.is_empty() {
        return StanzaError::bad_request("a muc#admin query needs at least one <item/>")
            .bounce(stanza);
    }
    let result = if ty == IqType::Get {
        list(r, &who, items[0]).map(Some)
    } else {
        change(svc, server, r, &who, &items, out)
            .await
            .map(|()| None)
    };
    match result {
        Ok(payload) => crate::xml::iq_result(stanza, payload),
        Err(e) => e.bounce(stanza),
    }
}

/// §9.5, §8.5: the list of one affiliation or role.
fn list(r: &Room, who: &Actor, item: &Element) -> Result<Element, StanzaError> {
    let mut q = el("query", NS_ADMIN);
    if let Some(a) = item.get_attr("affiliation") {
        let a = Affiliation::parse(a)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(|| {
                StanzaError::bad_request(format!("'{a}' is not an affiliation to list"))
            })?;
        if who.affiliation < Affiliation::Admin {
            return Err(StanzaError::forbidden(
                "only owners and admins may see affiliation lists",
            ));
        }
        for (jid, (aff, reason)) in &r.affiliations {
            if *aff == a {
                let mut i = el("item", NS_ADMIN)
                    .with_attr("affiliation", a.as_str())
                    .with_attr("jid", jid.as_str());
                if !reason.is_empty() {
                    i.append_child(el("reason", NS_ADMIN).with_text(reason));
                }
                q.append_child(i);
            }
        }
        return Ok(q);
    }
    if let Some(role) = item.get_attr("role") {
        let role = Role::parse(role)
            .filter(|r| matches!(r, Role::Moderator | Role::Participant | Role::Visitor))
            .ok_or_else(|| StanzaError::bad_request(format!("'{role}' is not a role to list")))?;
        if who.role != Role::Moderator {
            return Err(StanzaError::forbidden("only moderators may see role lists"));
        }
        for o in r.occupants.iter().filter(|o| o.role == role) {
            let mut i = el("item", NS_ADMIN)
                .with_attr("nick", &o.nick)
                .with_attr("role", role.as_str())
                .with_attr("affiliation", o.affiliation.as_str());
            if let Some(s) = o.sessions.first() {
                i.put_attr("jid", s.as_str());
            }
            q.append_child(i);
        }
        return Ok(q);
    }
    Err(StanzaError::bad_request(
        "an <item/> names an 'affiliation' or a 'role' to list",
    ))
}

/// One requested change, checked.
enum Change {
    Role {
        nick: String,
        role: Role,
        reason: String,
    },
    Affiliation {
        jid: BareJid,
        affiliation: Affiliation,
        reason: String,
    },
}

/// §8.2–8.6, §9.1–9.8: every item is checked before any is applied.
async fn change(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    who: &Actor,
    items: &[&Element],
    out: &mut Out,
) -> Result<(), StanzaError> {
    let mut changes = Vec::new();
    for item in items {
        let reason = item
            .get_child("reason", NS_ADMIN)
            .map(|c| c.text())
            .unwrap_or_default();
        if let Some(a) = item.get_attr("affiliation") {
            let affiliation = Affiliation::parse(a)
                .ok_or_else(|| StanzaError::bad_request(format!("'{a}' is not an affiliation")))?;
            let jid = match (item.get_attr("jid"), item.get_attr("nick")) {
                (Some(j), _) => BareJid::new(
                    Jid::new(j)
                        .map_err(|e| {
                            StanzaError::new(
                                Condition::JidMalformed,
                                format!("'{j}' is not a JID: {e}"),
                            )
                        })?
                        .to_bare()
                        .as_str(),
                )
                .expect("a bare JID"),
                (None, Some(n)) => r.occupant(n).map(|o| o.bare.clone()).ok_or_else(|| {
                    StanzaError::item_not_found(format!(
                        "there is nobody called '{n}' in this room"
                    ))
                })?,
                (None, None) => {
                    return Err(StanzaError::bad_request(
                        "an affiliation item needs a 'jid' or a 'nick'",
                    ));
                }
            };
            check_affiliation(r, who, &jid, affiliation)?;
            changes.push(Change::Affiliation {
                jid,
                affiliation,
                reason,
            });
        } else if let Some(role) = item.get_attr("role") {
            let role = Role::parse(role)
                .ok_or_else(|| StanzaError::bad_request(format!("'{role}' is not a role")))?;
            let nick = item
                .get_attr("nick")
                .ok_or_else(|| StanzaError::bad_request("a role item needs a 'nick'"))?
                .to_owned();
            check_role(r, who, &nick, role)?;
            changes.push(Change::Role { nick, role, reason });
        } else {
            return Err(StanzaError::bad_request(
                "an <item/> changes an 'affiliation' or a 'role'",
            ));
        }
    }
    // No owner may be left without a successor (§10.6 note).
    let mut owners: Vec<BareJid> = r.owners().cloned().collect();
    for c in &changes {
        if let Change::Affiliation {
            jid, affiliation, ..
        } = c
        {
            owners.retain(|o| o != jid);
            if *affiliation == Affiliation::Owner {
                owners.push(jid.clone());
            }
        }
    }
    if owners.is_empty() {
        return Err(StanzaError::new(
            Condition::Conflict,
            "a room must keep at least one owner",
        ));
    }
    for c in changes {
        match c {
            Change::Role { nick, role, reason } => {
                set_role(r, who.nick.as_deref(), &nick, role, &reason, out)
            }
            Change::Affiliation {
                jid,
                affiliation,
                reason,
            } => {
                set_affiliation(
                    svc,
                    server,
                    r,
                    who.nick.as_deref(),
                    &jid,
                    affiliation,
                    &reason,
                    out,
                )
                .await?
            }
        }
    }
    Ok(())
}

fn check_role(r: &Room, who: &Actor, nick: &str, role: Role) -> Result<(), StanzaError> {
    if who.role != Role::Moderator {
        return Err(StanzaError::forbidden("only moderators may change roles"));
    }
    let target = r.occupant(nick).ok_or_else(|| {
        StanzaError::item_not_found(format!("there is nobody called '{nick}' in this room"))
    })?;
    if (role == Role::Moderator || target.role == Role::Moderator)
        && who.affiliation < Affiliation::Admin
    {
        return Err(StanzaError::forbidden(
            "only owners and admins may grant or revoke moderation",
        ));
    }
    if target.affiliation >= Affiliation::Admin && role < Role::Moderator {
        return Err(StanzaError::not_allowed(format!(
            "'{nick}' is an {} of the room and keeps moderation",
            target.affiliation.as_str()
        )));
    }
    if target.affiliation > who.affiliation && role < target.role {
        return Err(StanzaError::not_allowed(format!(
            "'{nick}' has a higher affiliation than you"
        )));
    }
    Ok(())
}

fn check_affiliation(
    r: &Room,
    who: &Actor,
    jid: &BareJid,
    to: Affiliation,
) -> Result<(), StanzaError> {
    let current = r
        .affiliations
        .get(jid)
        .map_or(Affiliation::None, |(a, _)| *a);
    if who.affiliation < Affiliation::Admin {
        return Err(StanzaError::forbidden(
            "only owners and admins may change affiliations",
        ));
    }
    let touches_high = current >= Affiliation::Admin || to >= Affiliation::Admin;
    if touches_high && who.affiliation != Affiliation::Owner {
        return Err(StanzaError::not_allowed(
            "only owners may grant or revoke admin and owner affiliations",
        ));
    }
    Ok(())
}

/// Change an occupant's role and tell everyone (a kick removes them, status 307).
fn set_role(
    r: &mut Room,
    actor: Option<&str>,
    nick: &str,
    role: Role,
    reason: &str,
    out: &mut Out,
) {
    if role == Role::None {
        remove_occupant(r, nick, &[307], actor, reason, out);
        return;
    }
    let Some(o) = r.occupant_mut(nick) else {
        return;
    };
    o.role = role;
    let o = o.clone();
    // A reason for a voice or moderation change goes in the item (§8.3, §8.4).
    r.presence_to_all(
        &o,
        false,
        &[],
        |sees_jid, own| {
            let mut x = r.user_x(&o, sees_jid, if own { &[110] } else { &[] });
            if !reason.is_empty()
                && let Some(item) = x.children_mut().find(|c| c.name() == "item")
            {
                item.append_child(el("reason", NS_USER).with_text(reason));
            }
            x
        },
        out,
    );
}

/// Set (or with `none`, remove) an affiliation, store it for a persistent room, and apply
/// it to the occupants it concerns: banned ones leave (301), non-members of a
/// members-only room leave (321), the others get their new affiliation and default role.
#[allow(clippy::too_many_arguments)]
pub(super) async fn set_affiliation(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    actor: Option<&str>,
    jid: &BareJid,
    affiliation: Affiliation,
    reason: &str,
    out: &mut Out,
) -> Result<(), StanzaError> {
    let name = r.jid.node().map(|n| n.to_string()).unwrap_or_default();
    if r.config.persistent {
        svc.store_affiliation(server, &name, jid, affiliation, reason)
            .await?;
    }
    if affiliation == Affiliation::None {
        r.affiliations.remove(jid);
    } else {
        r.affiliations
            .insert(jid.clone(), (affiliation, reason.to_owned()));
    }
    // Occupants whose affiliation may have changed: the JID's own, or everyone when it
    // names a group or a server.
    let wide =
        jid.node().is_none() || crate::modules::groups::parse_group_jid(server, jid).is_some();
    let affected: Vec<(String, BareJid)> = r
        .occupants
        .iter()
        .filter(|o| wide || &o.bare == jid)
        .map(|o| (o.nick.clone(), o.bare.clone()))
        .collect();
    for (nick, bare) in affected {
        let groups = if wide {
            MucService::groups_of(server, &bare).await
        } else {
            Vec::new()
        };
        let now = r.affiliation_of(&bare, &groups);
        let Some(o) = r.occupant(&nick) else { continue };
        if o.affiliation == now {
            continue;
        }
        if now == Affiliation::Outcast {
            if let Some(o) = r.occupant_mut(&nick) {
                o.affiliation = now;
            }
            remove_occupant(r, &nick, &[301], actor, reason, out);
        } else if r.config.members_only && now < Affiliation::Member {
            if let Some(o) = r.occupant_mut(&nick) {
                o.affiliation = now;
            }
            remove_occupant(r, &nick, &[321], actor, reason, out);
        } else {
            let role = r.default_role(now);
            let o = r.occupant_mut(&nick).expect("still there");
            o.affiliation = now;
            o.role = role;
            let o = o.clone();
            r.presence_broadcast(&o, false, &[], &[], &[], out);
        }
    }
    Ok(())
}

pub(super) async fn owner_iq(
    svc: &MucService,
    server: &Server,
    r: &mut Room,
    from: &Jid,
    ty: IqType,
    stanza: &Element,
    out: &mut Out,
) -> Element {
    let who = actor(server, r, from).await;
    if who.affiliation != Affiliation::Owner {
        return StanzaError::forbidden("only owners may configure or destroy the room")
            .bounce(stanza);
    }
    let query = stanza.first_child().expect("the caller checked");
    let limits = server.config().muc.clone();
    if ty == IqType::Get {
        let q = el("query", NS_OWNER).with_child(r.config.form(&limits).to_element());
        return crate::xml::iq_result(stanza, Some(q));
    }
    if let Some(destroy) = query.get_child("destroy", NS_OWNER) {
        let alternate = destroy.get_attr("jid");
        let reason = destroy
            .get_child("reason", NS_OWNER)
            .map(|c| c.text())
            .unwrap_or_default();
        return match svc.destroy(server, r, alternate, &reason, out).await {
            Ok(()) => crate::xml::iq_result(stanza, None),
            Err(e) => e.bounce(stanza),
        };
    }
    let Some(x) = query.get_child("x", rookery_forms::NS_DATA) else {
        return StanzaError::bad_request("a muc#owner set carries a data form or <destroy/>")
            .bounce(stanza);
    };
    let form = match DataForm::from_element(x) {
        Ok(f) => f,
        Err(e) => {
            return StanzaError::bad_request(format!("the form is malformed: {e}")).bounce(stanza);
        }
    };
    if form.kind == rookery_forms::FormType::Cancel {
        if r.locked {
            // The owner gave up creating the room.
            if let Err(e) = svc.destroy(server, r, None, "", out).await {
                return e.bounce(stanza);
            }
        }
        return crate::xml::iq_result(stanza, None);
    }
    let before = r.config.clone();
    if let Err(text) = r.config.apply(&form, &limits) {
        return StanzaError::new(Condition::NotAcceptable, text).bounce(stanza);
    }
    let saved = match (before.persistent, r.config.persistent) {
        (false, true) => svc.save_all(server, r).await,
        (true, true) => svc.save(server, r).await,
        (true, false) => {
            let name = r.jid.node().map(|n| n.to_string()).unwrap_or_default();
            server
                .stores()
                .muc
                .delete_room(&svc.domain, &name)
                .await
                .map(|_| ())
                .map_err(|e| {
                    tracing::error!(room = %r.jid, error = %e, "could not delete the room");
                    StanzaError::internal("the room could not be saved; try again")
                })
        }
        (false, false) => Ok(()),
    };
    if let Err(e) = saved {
        r.config = before;
        return e.bounce(stanza);
    }
    let was_locked = r.locked;
    r.locked = false;
    if r.config.members_only && !before.members_only {
        let outsiders: Vec<String> = r
            .occupants
            .iter()
            .filter(|o| o.affiliation < Affiliation::Member)
            .map(|o| o.nick.clone())
            .collect();
        for nick in outsiders {
            remove_occupant(r, &nick, &[322], None, "", out);
        }
    }
    if !was_locked {
        // §10.2.1: occupants hear that the configuration changed (status 104).
        for o in &r.occupants {
            for to in &o.sessions {
                out.push(
                    el("message", crate::ns::CLIENT)
                        .with_attr("from", r.jid.as_str())
                        .with_attr("to", to.as_str())
                        .with_attr("type", "groupchat")
                        .with_attr("id", &crate::c2s::random_id())
                        .with_child(
                            el("x", NS_USER)
                                .with_child(el("status", NS_USER).with_attr("code", "104")),
                        ),
                );
            }
        }
    }
    crate::xml::iq_result(stanza, None)
}

/// The service's ad-hoc commands for server administrators: list rooms, destroy a room,
/// set an affiliation.
pub(super) fn register_commands(server: &Server, svc: &Arc<MucService>) {
    let on = || On::Jid(svc.domain.clone());
    let s = svc.clone();
    server.registry().add_command(
        "muc",
        CommandDef::new(
            on(),
            "rookery:muc:list-rooms",
            "List rooms",
            Permission::Admin,
            immediate(move |_req| {
                let s = s.clone();
                async move {
                    let mut form = DataForm::result("Rooms").with_reported(vec![
                        Field::jid_single("room", "Room"),
                        Field::text_single("name", "Name"),
                        Field::text_single("occupants", "Occupants"),
                        Field::boolean("persistent", "Persistent"),
                    ]);
                    for name in s.room_names() {
                        let Some(room) = s.room(&name) else { continue };
                        let r = room.lock().await;
                        form = form.with_item(&[
                            ("room", r.jid.as_str()),
                            ("name", &r.config.name),
                            ("occupants", &r.occupants.len().to_string()),
                            ("persistent", if r.config.persistent { "1" } else { "0" }),
                        ]);
                    }
                    Ok(Reply::result(form))
                }
            }),
        ),
    );
    let s = svc.clone();
    server.registry().add_command(
        "muc",
        CommandDef::new(
            on(),
            "rookery:muc:destroy-room",
            "Destroy a room",
            Permission::Admin,
            simple_form(
                DataForm::form("Destroy a room")
                    .with_field(Field::jid_single("room", "The room").required())
                    .with_field(Field::text_single(
                        "reason",
                        "Reason given to the occupants",
                    )),
                move |req, values| {
                    let s = s.clone();
                    async move {
                        let room_jid = values.jid("room").map(|j| j.to_bare());
                        let Some(name) = room_jid
                            .as_ref()
                            .and_then(|j| j.node().map(|n| n.to_string()))
                        else {
                            return Err(StanzaError::bad_request("name the room as room@service"));
                        };
                        let Some(room) = s.room(&name) else {
                            return Err(StanzaError::item_not_found(format!(
                                "there is no room {name}"
                            )));
                        };
                        let mut r = room.lock().await;
                        let mut out = Out::default();
                        let reason = values.text("reason");
                        s.destroy(&req.server, &mut r, None, &reason, &mut out)
                            .await?;
                        s.send(out).await;
                        Ok(Reply::completed().info(format!("The room {} is destroyed.", r.jid)))
                    }
                },
            ),
        ),
    );
    let s = svc.clone();
    server.registry().add_command(
        "muc",
        CommandDef::new(
            on(),
            "rookery:muc:set-affiliation",
            "Set an affiliation in a room",
            Permission::Admin,
            simple_form(
                DataForm::form("Set an affiliation")
                    .with_field(Field::jid_single("room", "The room").required())
                    .with_field(
                        Field::jid_single("jid", "The user, server or group (id@groups.host)")
                            .required(),
                    )
                    .with_field(
                        Field::list_single(
                            "affiliation",
                            "Affiliation",
                            &[
                                ("Owner", "owner"),
                                ("Admin", "admin"),
                                ("Member", "member"),
                                ("Outcast (banned)", "outcast"),
                                ("None", "none"),
                            ],
                        )
                        .required(),
                    ),
                move |req, values| {
                    let s = s.clone();
                    async move {
                        let name = values
                            .jid("room")
                            .and_then(|j| j.node().map(|n| n.to_string()))
                            .ok_or_else(|| {
                                StanzaError::bad_request("name the room as room@service")
                            })?;
                        let room = s.room(&name).ok_or_else(|| {
                            StanzaError::item_not_found(format!("there is no room {name}"))
                        })?;
                        let jid = values
                            .jid("jid")
                            .map(|j| j.to_bare())
                            .ok_or_else(|| StanzaError::bad_request("a JID is required"))?;
                        let affiliation = Affiliation::parse(&values.text("affiliation"))
                            .ok_or_else(|| StanzaError::bad_request("pick an affiliation"))?;
                        let mut r = room.lock().await;
                        let remaining = r.owners().filter(|o| **o != jid).count();
                        if affiliation != Affiliation::Owner && remaining == 0 {
                            return Err(StanzaError::new(
                                Condition::Conflict,
                                "a room must keep at least one owner",
                            ));
                        }
                        let mut out = Out::default();
                        set_affiliation(
                            &s,
                            &req.server,
                            &mut r,
                            None,
                            &jid,
                            affiliation,
                            "",
                            &mut out,
                        )
                        .await?;
                        s.send(out).await;
                        Ok(Reply::completed().info(format!(
                            "{jid} is now {} of {}.",
                            affiliation.as_str(),
                            r.jid
                        )))
                    }
                },
            ),
        ),
    );
}
