//! Presence (RFC 6121 §4): initial presence with probes, broadcast to subscribers and own
//! resources, directed presence, unavailable on logout, and presence addressed to users.

use super::roster;
use crate::error::StanzaError;
use crate::module::Event;
use crate::ns;
use crate::router::stanza_type;
use crate::server::Server;
use crate::sm::SessionHandle;
use crate::xml::{ElementExt, el};
use jid::{BareJid, Jid};
use minidom::Element;
use rookery_storage::Subscription;
use std::sync::Arc;

const SUBSCRIPTION_TYPES: [&str; 4] = ["subscribe", "subscribed", "unsubscribe", "unsubscribed"];

/// Presence sent by a local user's session.
pub async fn outbound(
    server: &Server,
    session: &Arc<SessionHandle>,
    to: Option<Jid>,
    stanza: Element,
) {
    let ty = stanza_type(&stanza).to_owned();
    let user = session.jid.to_bare();
    match (to, ty.as_str()) {
        (Some(to), t) if SUBSCRIPTION_TYPES.contains(&t) => {
            let contact = to.to_bare();
            if let Err(e) =
                roster::outbound_subscription(server, &user, &contact, t, stanza.clone()).await
            {
                session.send(e.bounce(&stanza));
            }
        }
        (_, "probe") => {} // clients do not probe; the server does (§4.3)
        (Some(to), t) => {
            {
                let mut st = session.state.lock().unwrap();
                match t {
                    "available" => {
                        st.directed.insert(to.clone());
                    }
                    "unavailable" => {
                        st.directed.remove(&to);
                    }
                    _ => {}
                }
            }
            server.route(stanza).await
        }
        (None, "available") => {
            session.state.lock().unwrap().left_with = None;
            available(server, session, stanza).await
        }
        (None, "unavailable") => {
            // Its status is what last activity reports once the session ends (XEP-0012 §4).
            let status = stanza.get_child("status", ns::CLIENT).map(|s| s.text());
            session.state.lock().unwrap().left_with = status;
            unavailable(server, session, Some(stanza)).await
        }
        (None, _) => {
            let e = StanzaError::bad_request(format!("presence of type '{ty}' needs a 'to'"));
            session.send(e.bounce(&stanza));
        }
    }
}

fn parse_priority(stanza: &Element) -> Result<i8, StanzaError> {
    match stanza.child_text("priority", ns::CLIENT) {
        None => Ok(0),
        Some(t) => t.trim().parse::<i8>().map_err(|_| {
            StanzaError::bad_request(format!(
                "priority must be a whole number from -128 to 127, not '{t}'"
            ))
        }),
    }
}

async fn available(server: &Server, session: &Arc<SessionHandle>, mut stanza: Element) {
    let priority = match parse_priority(&stanza) {
        Ok(p) => p,
        Err(e) => {
            session.send(e.bounce(&stanza));
            return;
        }
    };
    stanza.remove_attr("to");
    let initial = {
        let mut st = session.state.lock().unwrap();
        let initial = st.presence.is_none();
        st.presence = Some(stanza.clone());
        st.priority = priority;
        initial
    };
    let user = session.jid.to_bare();
    let (to, from) = roster::contacts(server, &user).await;
    broadcast(server, session, &from, &stanza).await;
    if initial {
        // Probe the contacts we are subscribed to (§4.3); local ones answer at once.
        for contact in &to {
            let probe = el("presence", ns::CLIENT)
                .with_attr("type", "probe")
                .with_attr("from", session.jid.as_str())
                .with_attr("to", contact.as_str());
            server.route(probe).await;
        }
        for req in roster::pending_requests(server, &user).await {
            session.send(req);
        }
        server
            .registry()
            .fire(
                server,
                Event::InitialPresence {
                    jid: session.jid.clone(),
                    priority,
                },
            )
            .await;
    }
}

/// Send `stanza` (from this session) to subscribers and to the user's available resources.
async fn broadcast(
    server: &Server,
    session: &Arc<SessionHandle>,
    subscribers: &[BareJid],
    stanza: &Element,
) {
    for contact in subscribers {
        let mut p = stanza.clone();
        p.put_attr("from", session.jid.as_str());
        p.put_attr("to", contact.as_str());
        server.route(p).await;
    }
    for own in server.sm().available(&session.jid.to_bare()) {
        let mut p = stanza.clone();
        p.put_attr("from", session.jid.as_str());
        p.put_attr("to", own.jid.as_str());
        own.send(p);
    }
}

async fn unavailable(server: &Server, session: &Arc<SessionHandle>, stanza: Option<Element>) {
    let (was_available, directed) = {
        let mut st = session.state.lock().unwrap();
        let was = st.presence.take().is_some();
        (was, std::mem::take(&mut st.directed))
    };
    let mut p =
        stanza.unwrap_or_else(|| el("presence", ns::CLIENT).with_attr("type", "unavailable"));
    p.remove_attr("to");
    p.put_attr("type", "unavailable");
    let user = session.jid.to_bare();
    if was_available {
        let (_, from) = roster::contacts(server, &user).await;
        broadcast(server, session, &from, &p).await;
        // The session itself hears its own unavailable, as it heard its available.
        let mut own = p.clone();
        own.put_attr("from", session.jid.as_str());
        own.put_attr("to", session.jid.as_str());
        session.send(own);
    }
    for to in directed {
        let mut d = p.clone();
        d.put_attr("from", session.jid.as_str());
        d.put_attr("to", to.as_str());
        server.route(d).await;
    }
}

/// The session ended: if it was available or sent directed presence, say it is gone.
pub async fn session_ended(server: &Server, session: &Arc<SessionHandle>, status: &str) {
    let p = el("presence", ns::CLIENT)
        .with_attr("type", "unavailable")
        .with_child(el("status", ns::CLIENT).with_text(status));
    unavailable(server, session, Some(p)).await;
}

/// Presence addressed to a local user (`to` has a node part).
pub async fn inbound(server: &Server, to: Jid, stanza: Element) {
    let ty = stanza_type(&stanza).to_owned();
    let Some(Ok(from)) = stanza.get_attr("from").map(Jid::new) else {
        return;
    };
    let user = to.to_bare();
    if SUBSCRIPTION_TYPES.contains(&ty.as_str()) {
        let contact = from.to_bare();
        if let Err(e) =
            roster::inbound_subscription(server, &user, &contact, &ty, stanza.clone()).await
        {
            tracing::warn!(error = %e, "subscription handling failed");
        }
        return;
    }
    if ty == "probe" {
        return probe(server, &user, from).await;
    }
    if let Ok(full) = to.clone().try_into_full() {
        if let Some(s) = server.sm().resource(&full) {
            s.send(stanza);
        }
        return;
    }
    for s in server.sm().available(&user) {
        s.send(stanza.clone());
    }
}

/// A probe (§4.3.2): subscribers get the user's current presence, or unavailable.
async fn probe(server: &Server, user: &BareJid, from: Jid) {
    let sub = roster::subscription(server, user, &from.to_bare()).await;
    if !matches!(sub, Subscription::From | Subscription::Both) && from.to_bare() != *user {
        return;
    }
    if server.sm().available(user).is_empty() {
        let p = el("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", user.as_str())
            .with_attr("to", from.as_str());
        server.route(p).await;
        return;
    }
    roster::send_current_presence(server, user, &from).await;
}
