//! The roster (RFC 6121 §2) and the subscription state machine (§3, Appendix A).
//!
//! Roster get/set are IQ handlers on the user's bare JID; subscription requests from the
//! user (`outbound_subscription`) and to the user (`inbound_subscription`) change stored
//! items, push them to *interested* resources and route or deliver the presence stanza.
//! Pending-in requests and pre-approvals are stored, so they survive restarts.
//! Shared group contacts (`modules/groups.rs`) are merged in where the roster is read
//! (roster get and pushes, presence subscribers and probes), never stored.

use crate::error::StanzaError;
use crate::module::{Address, IqRequest, IqResult, Module, ModuleContext};
use crate::modules::groups;
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};
use jid::{BareJid, Jid};
use minidom::Element;
use rookery_storage::{RosterItem, Subscription};
use std::collections::HashSet;

pub struct Roster;

impl Module for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.iq(IqType::Get, Address::Bare, "query", ns::ROSTER, get);
        m.iq(IqType::Set, Address::Bare, "query", ns::ROSTER, set);
    }
}

fn user_parts(jid: &BareJid) -> (&str, &str) {
    (
        jid.domain().as_str(),
        jid.node().map(|n| n.as_str()).unwrap_or(""),
    )
}

/// `<item/>` for a roster item.
pub fn item_element(item: &RosterItem) -> Element {
    let mut e = el("item", ns::ROSTER)
        .with_attr("jid", &item.contact)
        .with_attr("subscription", item.subscription.as_str());
    if let Some(n) = &item.name {
        e.put_attr("name", n);
    }
    if item.ask_out {
        e.put_attr("ask", "subscribe");
    }
    if item.approved {
        e.put_attr("approved", "true");
    }
    for g in &item.groups {
        e.append_child(el("group", ns::ROSTER).with_text(g));
    }
    e
}

async fn get(req: IqRequest) -> IqResult {
    if !req.is_own_account() {
        return Err(StanzaError::forbidden("you can only read your own roster"));
    }
    let user = req.from_bare();
    if let Some(full) = req.from_full()
        && let Some(s) = req.server.sm().resource(&full)
    {
        s.state.lock().unwrap().interested = true;
    }
    let (host, node) = user_parts(&user);
    let (version, mut items) = req.server.stores().roster.roster(host, node).await?;
    let extras = groups::roster_extras(&req.server, &user).await;
    let ver = groups::roster_version(version, &extras);
    if req.payload().get_attr("ver") == Some(ver.as_str()) {
        // RFC 6121 §2.6.3: the client's copy is current; changes come as pushes.
        return Ok(None);
    }
    groups::merge_roster(&mut items, &extras);
    let mut q = el("query", ns::ROSTER).with_attr("ver", &ver);
    for item in items.iter().filter(|i| i.in_roster) {
        q.append_child(item_element(item));
    }
    Ok(Some(q))
}

async fn set(req: IqRequest) -> IqResult {
    if !req.is_own_account() {
        return Err(StanzaError::forbidden(
            "you can only change your own roster",
        ));
    }
    let items: Vec<&Element> = req
        .payload()
        .children()
        .filter(|c| c.is("item", ns::ROSTER))
        .collect();
    if items.len() != 1 {
        return Err(StanzaError::bad_request(
            "a roster set must contain exactly one <item/>",
        ));
    }
    let item = items[0];
    let contact = item
        .get_attr("jid")
        .ok_or_else(|| StanzaError::bad_request("the roster item has no 'jid'"))
        .and_then(|j| {
            BareJid::new(j).map_err(|e| {
                StanzaError::new(
                    crate::error::Condition::JidMalformed,
                    format!("'{j}' is not a valid bare JID: {e}"),
                )
            })
        })?;
    let user = req.from_bare();
    let server = &req.server;
    if item.get_attr("subscription") == Some("remove") {
        return remove(server, &user, &contact).await.map(|_| None);
    }
    let mut groups: Vec<String> = Vec::new();
    for g in item.children().filter(|c| c.is("group", ns::ROSTER)) {
        let name = g.text();
        if name.is_empty() {
            return Err(StanzaError::new(
                crate::error::Condition::NotAcceptable,
                "a roster group name cannot be empty",
            ));
        }
        if name.len() > 1024 || name.contains('\n') {
            return Err(StanzaError::new(
                crate::error::Condition::NotAcceptable,
                "a roster group name must be one line of at most 1024 bytes",
            ));
        }
        if groups.contains(&name) {
            return Err(StanzaError::bad_request(format!(
                "the group '{name}' is listed twice"
            )));
        }
        groups.push(name);
    }
    let name = item.get_attr("name").map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.len() > 1024) {
        return Err(StanzaError::new(
            crate::error::Condition::NotAcceptable,
            "a roster item name must be at most 1024 bytes",
        ));
    }
    let (host, node) = user_parts(&user);
    let mut stored = server
        .stores()
        .roster
        .roster_item(host, node, contact.as_str())
        .await?
        .unwrap_or_else(|| RosterItem {
            contact: contact.to_string(),
            ..Default::default()
        });
    stored.name = name;
    stored.groups = groups;
    stored.in_roster = true;
    save_and_push(server, &user, &stored).await?;
    Ok(None)
}

/// Remove a contact (RFC 6121 §2.5): cancel subscriptions both ways, then push the removal.
async fn remove(server: &Server, user: &BareJid, contact: &BareJid) -> Result<(), StanzaError> {
    let (host, node) = user_parts(user);
    let Some(item) = server
        .stores()
        .roster
        .roster_item(host, node, contact.as_str())
        .await?
    else {
        return Err(StanzaError::item_not_found(format!(
            "{contact} is not in your roster"
        )));
    };
    let (version, _) = server
        .stores()
        .roster
        .remove_roster_item(host, node, contact.as_str())
        .await?;
    let from = Jid::from(user.clone());
    if matches!(item.subscription, Subscription::To | Subscription::Both) || item.ask_out {
        route_presence(server, &from, contact, "unsubscribe").await;
    }
    if matches!(item.subscription, Subscription::From | Subscription::Both) || item.pending_in {
        route_presence(server, &from, contact, "unsubscribed").await;
        if matches!(item.subscription, Subscription::From | Subscription::Both) {
            send_unavailable_from_user(server, user, contact).await;
        }
    }
    if item.in_roster {
        let gone = RosterItem {
            contact: contact.to_string(),
            ..Default::default()
        };
        let mut e = item_element(&gone);
        e.put_attr("subscription", "remove");
        push(server, user, version, e);
    }
    Ok(())
}

/// Store the item and push it to the user's interested resources.
async fn save_and_push(
    server: &Server,
    user: &BareJid,
    item: &RosterItem,
) -> Result<(), StanzaError> {
    let (host, node) = user_parts(user);
    let keep = item.in_roster || item.pending_in || item.approved;
    let version = if keep {
        server
            .stores()
            .roster
            .put_roster_item(host, node, item)
            .await?
    } else {
        server
            .stores()
            .roster
            .remove_roster_item(host, node, &item.contact)
            .await?
            .0
    };
    if item.in_roster {
        let mut shown = item.clone();
        groups::merge_item(&mut shown, &groups::roster_extras(server, user).await);
        push(server, user, version, item_element(&shown));
    }
    Ok(())
}

/// A roster push (RFC 6121 §2.1.6) to every interested resource.
fn push(server: &Server, user: &BareJid, version: u64, item: Element) {
    let query = el("query", ns::ROSTER)
        .with_attr("ver", &version.to_string())
        .with_child(item);
    for s in server.sm().resources(user) {
        if s.is_interested() {
            let iq = el("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", &format!("push-{}", crate::c2s::random_id()))
                .with_attr("to", s.jid.as_str())
                .with_child(query.clone());
            s.send(iq);
        }
    }
}

async fn route_presence(server: &Server, from: &Jid, to: &BareJid, ty: &str) {
    let p = el("presence", ns::CLIENT)
        .with_attr("from", from.as_str())
        .with_attr("to", to.as_str())
        .with_attr("type", ty);
    server.route(p).await
}

/// The user's available resources tell `contact` they are gone.
async fn send_unavailable_from_user(server: &Server, user: &BareJid, contact: &BareJid) {
    for s in server.sm().available(user) {
        let p = el("presence", ns::CLIENT)
            .with_attr("from", s.jid.as_str())
            .with_attr("to", contact.as_str())
            .with_attr("type", "unavailable");
        server.route(p).await;
    }
}

/// The user's available resources send their current presence to `contact`.
pub async fn send_current_presence(server: &Server, user: &BareJid, contact: &Jid) {
    for s in server.sm().available(user) {
        let Some(mut p) = s.state.lock().unwrap().presence.clone() else {
            continue;
        };
        p.put_attr("from", s.jid.as_str());
        p.put_attr("to", contact.as_str());
        server.route(p).await;
    }
}

async fn load(
    server: &Server,
    user: &BareJid,
    contact: &BareJid,
) -> Result<RosterItem, StanzaError> {
    let (host, node) = user_parts(user);
    Ok(server
        .stores()
        .roster
        .roster_item(host, node, contact.as_str())
        .await?
        .unwrap_or_else(|| RosterItem {
            contact: contact.to_string(),
            ..Default::default()
        }))
}

/// A subscription stanza sent by the local `user` (RFC 6121 §3, "user's server").
pub async fn outbound_subscription(
    server: &Server,
    user: &BareJid,
    contact: &BareJid,
    ty: &str,
    mut stanza: Element,
) -> Result<(), StanzaError> {
    use Subscription::*;
    let mut item = load(server, user, contact).await?;
    let before = item.clone();
    let mut forward = true;
    match ty {
        "subscribe" => {
            if matches!(item.subscription, None | From) {
                item.ask_out = true;
            }
            item.in_roster = true;
        }
        "subscribed" => {
            if item.pending_in {
                item.subscription = with_from(item.subscription);
                item.pending_in = false;
                item.in_roster = true;
            } else if matches!(item.subscription, None | To) {
                // §3.4 pre-approval: remembered, not sent.
                item.approved = true;
                forward = false;
            } else {
                forward = false;
            }
        }
        "unsubscribe" => {
            item.subscription = without_to(item.subscription);
            item.ask_out = false;
        }
        "unsubscribed" => {
            let was_from = matches!(item.subscription, From | Both);
            if !was_from && !item.pending_in && !item.approved {
                forward = false;
            }
            item.subscription = without_from(item.subscription);
            item.pending_in = false;
            item.approved = false;
            if was_from {
                send_unavailable_from_user(server, user, contact).await;
            }
        }
        _ => return Ok(()),
    }
    if item != before {
        save_and_push(server, user, &item).await?;
    }
    if forward {
        stanza.put_attr("from", user.as_str());
        stanza.put_attr("to", contact.as_str());
        server.route(stanza).await;
        if ty == "subscribed" {
            send_current_presence(server, user, &Jid::from(contact.clone())).await;
        }
    }
    Ok(())
}

/// A subscription stanza for the local `user` from `contact` (RFC 6121 §3, "contact's
/// server" role).
pub async fn inbound_subscription(
    server: &Server,
    user: &BareJid,
    contact: &BareJid,
    ty: &str,
    mut stanza: Element,
) -> Result<(), StanzaError> {
    use Subscription::*;
    let mut item = load(server, user, contact).await?;
    let before = item.clone();
    let mut deliver = false;
    stanza.put_attr("from", contact.as_str());
    match ty {
        "subscribe" => {
            if matches!(item.subscription, From | Both) {
                // Already subscribed: answer for the user (§3.1.3).
                route_presence(server, &Jid::from(user.clone()), contact, "subscribed").await;
                return Ok(());
            }
            if item.approved {
                item.subscription = with_from(item.subscription);
                item.approved = false;
                item.in_roster = true;
                save_and_push(server, user, &item).await?;
                route_presence(server, &Jid::from(user.clone()), contact, "subscribed").await;
                send_current_presence(server, user, &Jid::from(contact.clone())).await;
                return Ok(());
            }
            item.pending_in = true;
            deliver = true;
        }
        "subscribed" => {
            if item.ask_out {
                item.subscription = with_to(item.subscription);
                item.ask_out = false;
                deliver = true;
            }
        }
        "unsubscribe" => {
            if matches!(item.subscription, From | Both) || item.pending_in {
                item.subscription = without_from(item.subscription);
                item.pending_in = false;
                item.approved = false;
                deliver = true;
            }
        }
        "unsubscribed" => {
            if matches!(item.subscription, To | Both) || item.ask_out {
                item.subscription = without_to(item.subscription);
                item.ask_out = false;
                deliver = true;
            }
        }
        _ => return Ok(()),
    }
    if item != before {
        save_and_push(server, user, &item).await?;
    }
    if deliver {
        for s in server.sm().available(user) {
            let mut p = stanza.clone();
            p.put_attr("to", user.as_str());
            s.send(p);
        }
    }
    Ok(())
}

/// Subscription state changes of RFC 6121 Appendix A: gaining or losing a direction.
fn with_from(s: Subscription) -> Subscription {
    match s {
        Subscription::None => Subscription::From,
        Subscription::To => Subscription::Both,
        s => s,
    }
}

fn with_to(s: Subscription) -> Subscription {
    match s {
        Subscription::None => Subscription::To,
        Subscription::From => Subscription::Both,
        s => s,
    }
}

fn without_from(s: Subscription) -> Subscription {
    match s {
        Subscription::From => Subscription::None,
        Subscription::Both => Subscription::To,
        s => s,
    }
}

fn without_to(s: Subscription) -> Subscription {
    match s {
        Subscription::To => Subscription::None,
        Subscription::Both => Subscription::From,
        s => s,
    }
}

/// Pending subscription requests to show a newly available resource (§3.1.3).
pub async fn pending_requests(server: &Server, user: &BareJid) -> Vec<Element> {
    let (host, node) = user_parts(user);
    let Ok((_, items)) = server.stores().roster.roster(host, node).await else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|i| i.pending_in)
        .map(|i| {
            el("presence", ns::CLIENT)
                .with_attr("from", &i.contact)
                .with_attr("to", user.as_str())
                .with_attr("type", "subscribe")
        })
        .collect()
}

/// Contacts whose presence the user receives (`to`/`both`) and who receive the user's
/// (`from`/`both`).
pub async fn contacts(server: &Server, user: &BareJid) -> (Vec<BareJid>, Vec<BareJid>) {
    let (host, node) = user_parts(user);
    let items = match server.stores().roster.roster(host, node).await {
        Ok((_, items)) => items,
        Err(e) => {
            tracing::error!(error = %e, %user, "could not load roster");
            return (Vec::new(), Vec::new());
        }
    };
    let mut to = Vec::new();
    let mut from = Vec::new();
    for i in items {
        let Ok(j) = BareJid::new(&i.contact) else {
            continue;
        };
        if matches!(i.subscription, Subscription::To | Subscription::Both) {
            to.push(j.clone());
        }
        if matches!(i.subscription, Subscription::From | Subscription::Both) {
            from.push(j);
        }
    }
    // Shared group contacts: subscribed both ways.
    let extras = groups::roster_extras(server, user).await;
    if !extras.is_empty() {
        let (known_to, known_from): (HashSet<BareJid>, HashSet<BareJid>) =
            (to.iter().cloned().collect(), from.iter().cloned().collect());
        for extra in extras.iter() {
            let Ok(j) = BareJid::new(&extra.contact) else {
                continue;
            };
            if !known_to.contains(&j) {
                to.push(j.clone());
            }
            if !known_from.contains(&j) {
                from.push(j);
            }
        }
    }
    (to, from)
}

/// The subscription `user` has with `contact`.
pub async fn subscription(server: &Server, user: &BareJid, contact: &BareJid) -> Subscription {
    let stored = load(server, user, contact)
        .await
        .map(|i| i.subscription)
        .unwrap_or_default();
    if stored != Subscription::Both
        && groups::is_shared_contact(&groups::roster_extras(server, user).await, contact.as_str())
    {
        return Subscription::Both;
    }
    stored
}
