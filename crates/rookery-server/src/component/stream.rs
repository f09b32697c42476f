//! A connected component: its route (stanzas for its domain go into a bounded queue that
//! its task writes out) and the loop that reads, checks and routes what it sends.
//!
//! Addressing (XEP-0114 §3, RFC 6120 §4.9.3): every stanza from a component must carry a
//! `to` and a `from` whose domain is the component's. A stanza that does not is answered
//! with a stream error, `improper-addressing` for a missing address and `invalid-from` for
//! a foreign or malformed one, as RFC 6120 does for a server that claims a domain it did
//! not authenticate. A component is trusted software; a wrong address is a bug in it, and
//! a stream error makes it visible at once, whereas a stanza error would have to be sent
//! to the very address that is wrong.
//!
//! Namespaces are rewritten at the edge: what the component sends in
//! `jabber:component:accept` becomes `jabber:client` inside the server, and stanzas are
//! written to it without a namespace declaration, so they inherit the stream's.

use crate::c2s::{Conn, End};
use crate::error::{StreamCondition, StreamError};
use crate::ns;
use crate::router::{Route, stanza_type};
use crate::server::Server;
use crate::sm::{Outbox, Outgoing, PushError};
use crate::xml::ElementExt;
use async_trait::async_trait;
use jid::Jid;
use minidom::{Element, Node};
use rookery_xml::StreamEvent;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most stanzas written in one batch.
const WRITE_BATCH: usize = 64;

/// A connected component as the router sees it: the route of its domain.
pub struct ComponentLink {
    name: String,
    peer: SocketAddr,
    /// Stanzas waiting to be written to the component; when it is full the component is
    /// not reading, and it is disconnected rather than allowed to grow the server's memory.
    outbox: Outbox,
    /// Why the stream must end; set before `kill` is cancelled.
    kill_reason: Mutex<Option<StreamError>>,
    kill: CancellationToken,
}

impl ComponentLink {
    pub(super) fn new(name: String, peer: SocketAddr, queue: usize) -> Self {
        ComponentLink {
            name,
            peer,
            outbox: Outbox::new(queue),
            kill_reason: Mutex::new(None),
            kill: CancellationToken::new(),
        }
    }

    /// The component's domain.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Ask the component's task to end the stream with this error.
    pub fn close(&self, reason: StreamError) {
        let mut r = self.kill_reason.lock().unwrap();
        if r.is_none() {
            *r = Some(reason);
        }
        self.kill.cancel();
    }

    fn ended(&self) -> End {
        End::Stream(self.kill_reason.lock().unwrap().clone().unwrap_or_else(|| {
            StreamError::new(
                StreamCondition::PolicyViolation,
                "disconnected by the server",
            )
        }))
    }
}

#[async_trait]
impl Route for ComponentLink {
    async fn route(&self, server: &Server, stanza: Element) {
        // What a refusal bounces, kept before the stanza moves into the queue.
        let refused = bounce_copy(&stanza);
        let err = match self.outbox.push(Outgoing::Stanza(stanza)) {
            Ok(()) => return,
            Err(e) => e,
        };
        if err == PushError::Full {
            tracing::warn!(component = %self.name, "outbound queue full; disconnecting the component");
            self.close(StreamError::new(
                StreamCondition::PolicyViolation,
                "too many stanzas are waiting for this component: it is not reading them",
            ));
        }
        if let Some(s) = refused {
            super::unavailable(server, &self.name, &s).await;
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The part of a stanza its bounce needs (addresses; an IQ's payload), or `None` for
/// stanzas that are never bounced.
fn bounce_copy(stanza: &Element) -> Option<Element> {
    match (stanza.name(), stanza_type(stanza)) {
        ("presence", _) | (_, "error" | "result") => None,
        ("iq", _) => Some(stanza.clone()),
        (name, _) => {
            let mut copy = Element::bare(name, ns::CLIENT);
            *copy.attrs_mut() = stanza.attrs().clone();
            Some(copy)
        }
    }
}

/// Confirm the handshake of a component whose route is registered and serve it until its
/// stream ends; then remove its route and answer what was still queued for it.
pub(super) async fn run(server: &Server, conn: &mut Conn, link: Arc<ComponentLink>) -> End {
    let end = match conn.send_raw(b"<handshake/>").await {
        Ok(()) => stream_loop(server, conn, &link).await,
        Err(e) => End::Io(e),
    };
    server.unregister_service(&link.name);
    for s in link.outbox.close() {
        super::unavailable(server, &link.name, &s).await;
        // The senders' sessions write each bounce before the next: a whole queue bounced
        // at once to one sender would overflow that sender's own queue and cut it off.
        tokio::task::yield_now().await;
    }
    end
}

async fn stream_loop(server: &Server, conn: &mut Conn, link: &ComponentLink) -> End {
    let idle_secs = server.config().limits.idle_timeout_secs;
    // A component may be quiet for days: silence is not an error, but a whitespace
    // keepalive after `idle_timeout_secs` without traffic finds a dead connection.
    let keepalive = Duration::from_secs(if idle_secs == 0 {
        365 * 24 * 3600
    } else {
        idle_secs
    });
    let killed = link.kill.cancelled();
    let shutdown = server.shutdown_token().cancelled();
    let tick = tokio::time::sleep(keepalive);
    tokio::pin!(killed, shutdown, tick);
    let mut last_io = Instant::now();
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut killed => return link.ended(),
            _ = &mut shutdown => {
                return End::Stream(StreamError::shutdown());
            }
            _ = link.outbox.ready() => {
                while link.outbox.take(&mut batch, WRITE_BATCH) > 0 {
                    // A component that does not read blocks this write; the router
                    // meanwhile fills its queue and disconnects it, which must win.
                    tokio::select! {
                        r = conn.send_outgoing(batch.drain(..)) => if let Err(e) = r {
                            return End::Io(e);
                        },
                        _ = &mut killed => return link.ended(),
                    }
                }
                batch = Vec::new();
                last_io = Instant::now();
            }
            ev = conn.next_event() => {
                last_io = Instant::now();
                match ev {
                    Ok(Some(StreamEvent::Stanza(s))) => {
                        if let Err(e) = inbound(server, link, s).await {
                            return End::Stream(e);
                        }
                    }
                    Ok(Some(StreamEvent::End)) | Ok(None) => return End::Closed,
                    Ok(Some(StreamEvent::Header(_))) => {
                        return End::Stream(StreamError::new(StreamCondition::NotWellFormed, "a second stream header was sent"));
                    }
                    Err(e) => return End::Stream(e),
                }
            }
            _ = &mut tick => {
                if last_io.elapsed() >= keepalive {
                    // Raced against disconnection like any write: a frozen component
                    // must not keep its name.
                    tokio::select! {
                        r = tokio::time::timeout(keepalive, conn.send_raw(b" ")) => match r {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return End::Io(e),
                            Err(_) => {
                                return End::Io(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "the component stopped reading",
                                ));
                            }
                        },
                        _ = &mut killed => return link.ended(),
                        _ = &mut shutdown => {
                            return End::Stream(StreamError::shutdown());
                        }
                    }
                    last_io = Instant::now();
                }
                tick.as_mut().reset((last_io + keepalive).into());
            }
        }
    }
}

/// A stanza from the component: check its addresses and route it.
async fn inbound(
    server: &Server,
    link: &ComponentLink,
    mut stanza: Element,
) -> Result<(), StreamError> {
    if !matches!(stanza.name(), "message" | "presence" | "iq")
        || !stanza.has_ns(ns::COMPONENT_ACCEPT)
    {
        return Err(StreamError::new(
            StreamCondition::UnsupportedStanzaType,
            format!(
                "<{} xmlns='{}'/> is not a stanza",
                stanza.name(),
                stanza.ns()
            ),
        ));
    }
    into_client_ns(&mut stanza);
    let name = &link.name;
    let Some(from) = stanza.get_attr("from") else {
        return Err(StreamError::new(
            StreamCondition::ImproperAddressing,
            format!("every stanza from a component needs a 'from' address in {name}"),
        ));
    };
    let jid = Jid::new(from).map_err(|e| {
        StreamError::new(
            StreamCondition::InvalidFrom,
            format!("'from' is not a valid address: {e}"),
        )
    })?;
    if jid.domain().as_str() != name {
        return Err(StreamError::new(
            StreamCondition::InvalidFrom,
            format!("'from' must be an address in {name}, not {from}"),
        ));
    }
    if from != jid.as_str() {
        stanza.put_attr("from", jid.as_str());
    }
    if stanza.get_attr("to").is_none() {
        return Err(StreamError::new(
            StreamCondition::ImproperAddressing,
            "every stanza from a component needs a 'to' address",
        ));
    }
    server.route(stanza).await;
    Ok(())
}

/// Move every element in `jabber:component:accept` to `jabber:client`, the namespace
/// stanzas have inside the server.
pub(crate) fn into_client_ns(e: &mut Element) {
    if e.has_ns(ns::COMPONENT_ACCEPT) {
        let name = e.name().to_owned();
        let mut old = std::mem::replace(e, Element::bare(name, ns::CLIENT));
        *e.attrs_mut() = std::mem::take(old.attrs_mut());
        for node in old.take_nodes() {
            match node {
                Node::Element(mut child) => {
                    into_client_ns(&mut child);
                    e.append_child(child);
                }
                Node::Text(text) => e.append_text_node(text),
            }
        }
    } else {
        for child in e.children_mut() {
            into_client_ns(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_namespace_becomes_the_client_one() {
        let xml = "<message xmlns='jabber:component:accept' from='a@echo.localhost' to='b@localhost'>\
                   <body>hi &amp; bye</body><x xmlns='urn:x'><message xmlns='jabber:component:accept'/></x></message>";
        let mut e: Element = xml.parse().unwrap();
        into_client_ns(&mut e);
        assert!(e.is("message", ns::CLIENT));
        assert_eq!(e.get_attr("from"), Some("a@echo.localhost"));
        assert_eq!(e.get_child("body", ns::CLIENT).unwrap().text(), "hi & bye");
        let x = e.get_child("x", "urn:x").unwrap();
        assert!(x.get_child("message", ns::CLIENT).is_some());
    }
}
