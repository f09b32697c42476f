//! Offline messages (XEP-0160 behaviour): a chat or normal message for a user with no
//! available resource is stored with a XEP-0203 delay stamp and delivered, in order, when
//! the user next sends initial presence with a non-negative priority.

use crate::module::{Address, Direction, Event, EventKind, Flow, Module, ModuleContext, Verdict};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, el};
use minidom::Element;

pub struct Offline;

impl Module for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::OFFLINE);
        m.hook(EventKind::MessageUndeliverable, 0, store);
        m.hook(EventKind::InitialPresence, 0, deliver);
    }
}

/// Whether a message carries something a person would miss (not just a chat state).
fn worth_storing(stanza: &Element) -> bool {
    stanza.has_child("body", ns::CLIENT) || stanza.has_child("subject", ns::CLIENT)
}

async fn store(server: Server, event: Event) -> Flow {
    let Event::MessageUndeliverable { to, mut stanza } = event else {
        return Flow::Continue;
    };
    if !worth_storing(&stanza) {
        return Flow::Handled; // dropped silently, as chat states are ephemeral
    }
    let now = rookery_storage::now_us();
    stanza.append_child(
        el("delay", ns::DELAY)
            .with_attr("from", to.domain().as_str())
            .with_attr("stamp", &crate::util::format_datetime(now))
            .with_text("Offline storage"),
    );
    let xml = String::from_utf8(rookery_xml::serialize(&stanza, "")).unwrap_or_default();
    let max = server.config().limits.max_offline_messages;
    let node = to.node().map(|n| n.as_str()).unwrap_or("");
    match server
        .stores()
        .offline
        .push_offline(to.domain().as_str(), node, now, &xml, max)
        .await
    {
        Ok(true) => Flow::Handled,
        Ok(false) => {
            tracing::info!(user = %to, "offline storage full; message refused");
            Flow::Continue
        }
        Err(e) => {
            tracing::error!(error = %e, user = %to, "could not store an offline message");
            Flow::Continue
        }
    }
}

async fn deliver(server: Server, event: Event) -> Flow {
    let Event::InitialPresence { jid, priority } = event else {
        return Flow::Continue;
    };
    if priority < 0 {
        return Flow::Continue;
    }
    let Some(session) = server.sm().resource(&jid) else {
        return Flow::Continue;
    };
    let (host, node) = (
        jid.domain().as_str(),
        jid.node().map(|n| n.as_str()).unwrap_or(""),
    );
    let messages = match server.stores().offline.offline_messages(host, node).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, %jid, "could not load offline messages");
            return Flow::Continue;
        }
    };
    let Some(last) = messages.last().map(|m| m.id) else {
        return Flow::Continue;
    };
    for m in &messages {
        let Ok(stanza) = m.stanza.parse::<Element>() else {
            tracing::warn!(id = m.id, "skipping an unreadable offline message");
            continue;
        };
        if let Verdict::Pass = server
            .registry()
            .filter(&server, &stanza, Direction::Inbound)
            && !session.send(stanza)
        {
            // The session went away: keep the rest for next time.
            return Flow::Continue;
        }
    }
    if let Err(e) = server
        .stores()
        .offline
        .delete_offline(host, node, last)
        .await
    {
        tracing::error!(error = %e, %jid, "could not delete delivered offline messages");
    }
    Flow::Continue
}
