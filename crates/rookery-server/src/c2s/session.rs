//! A bound c2s session: resource binding (RFC 6120 §7), then the loop that reads the
//! client's stanzas, stamps and routes them, and writes what the router queued for it.

use super::negotiation::{Authenticated, next_element};
use super::{Conn, End, random_id};
use crate::error::{Condition, StanzaError, StreamCondition, StreamError};
use crate::im::presence;
use crate::module::{Address, Direction, Event, Verdict};
use crate::ns;
use crate::router::stanza_type;
use crate::server::Server;
use crate::sm::{Outgoing, SessionHandle, Wake};
use crate::xml::{ElementExt, IqType, el, iq_result};
use jid::{FullJid, Jid};
use minidom::Element;
use rookery_xml::StreamEvent;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most stanzas written in one batch.
const WRITE_BATCH: usize = 64;

pub(crate) async fn run(server: &Server, conn: &mut Conn, auth: Authenticated) -> End {
    // The steps before and after the session loop are boxed, so the connection's task
    // holds room for the loop only (see `c2s::tests`).
    let full = match Box::pin(bind(conn, &auth)).await {
        Ok(f) => f,
        Err(end) => return end,
    };
    conn.jid = Some(full.to_string());
    let queue = server.config().limits.outbound_queue;
    let handle = Arc::new(SessionHandle::new(full.clone(), conn.peer, queue));
    if let Some(old) = server.sm().bind(handle.clone()) {
        old.close(StreamError::new(
            StreamCondition::Conflict,
            "replaced by a new connection that bound the same resource",
        ));
    }
    tracing::info!(peer = %conn.peer, jid = %full, "c2s resource bound");
    Box::pin(
        server
            .registry()
            .fire(server, Event::SessionBound { jid: full.clone() }),
    )
    .await;

    let mut reroute = Vec::new();
    let end = session_loop(server, conn, &handle, &mut reroute).await;
    Box::pin(session_ended(server, &handle, full, &end, reroute)).await;
    end
}

/// The session is over: tell its contacts and modules, and deliver what it did not write.
async fn session_ended(
    server: &Server,
    handle: &Arc<SessionHandle>,
    full: FullJid,
    end: &End,
    reroute: Vec<Element>,
) {
    server.sm().unbind(handle);
    let status = match end {
        End::Closed => "logged out".to_owned(),
        End::Io(e) => format!("connection lost: {e}"),
        End::Stream(e) => e.text.clone(),
    };
    presence::session_ended(server, handle, &status).await;
    // What the client said as it went, if anything, rather than how the stream ended.
    let said = handle.state.lock().unwrap().left_with.take();
    let status = said.unwrap_or(status);
    server
        .registry()
        .fire(server, Event::SessionClosed { jid: full, status })
        .await;
    // Messages queued but never written go elsewhere (another resource or offline storage)
    // rather than being lost with the connection.
    let unsent = handle.outbox.close();
    for s in reroute {
        server.route(s).await;
    }
    for s in unsent {
        if s.name() == "message" && matches!(stanza_type(&s), "chat" | "normal") {
            server.route(s).await;
        }
    }
}

/// Wait for the bind request and answer it.
async fn bind(conn: &mut Conn, auth: &Authenticated) -> Result<FullJid, End> {
    loop {
        let iq = next_element(conn).await?;
        let bind = iq.get_child("bind", ns::BIND);
        if !iq.is("iq", ns::CLIENT) || bind.is_none() {
            return Err(StreamError::new(
                StreamCondition::NotAuthorized,
                format!(
                    "<{}/> was sent before a resource was bound; bind one first",
                    iq.name()
                ),
            )
            .into());
        }
        if iq.get_attr("type") != Some("set") {
            let e = StanzaError::bad_request("resource binding is an IQ of type 'set'");
            conn.send_stanza(e.bounce(&iq)).await?;
            continue;
        }
        let requested = bind
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let resource = requested.unwrap_or_else(|| format!("rookery-{}", random_id()));
        match auth.jid.with_resource_str(&resource) {
            Ok(full) => {
                let payload =
                    el("bind", ns::BIND).with_child(el("jid", ns::BIND).with_text(full.as_str()));
                let mut reply = iq_result(&iq, Some(payload));
                reply.remove_attr("to");
                conn.send_stanza(reply).await?;
                return Ok(full);
            }
            Err(e) => {
                let err = StanzaError::bad_request(format!("the resource is not valid: {e}"));
                let mut reply = err.bounce(&iq);
                reply.remove_attr("to");
                conn.send_stanza(reply).await?;
            }
        }
    }
}

async fn session_loop(
    server: &Server,
    conn: &mut Conn,
    handle: &Arc<SessionHandle>,
    reroute: &mut Vec<Element>,
) -> End {
    let idle_secs = server.config().limits.idle_timeout_secs;
    // 0 turns keepalives off: a timer that never fires in practice (a year).
    let keepalive = Duration::from_secs(if idle_secs == 0 {
        365 * 24 * 3600
    } else {
        idle_secs
    });
    let ended = || {
        End::Stream(handle.kill_reason().unwrap_or_else(|| {
            StreamError::new(
                StreamCondition::PolicyViolation,
                "session ended by the server",
            )
        }))
    };
    // Created once, not per turn of the loop: registering a timer for every stanza was a
    // measurable part of a message's cost. Ending the session (also at shutdown) and
    // queued stanzas wake the loop through one flag and waker (`next_wake`).
    let tick = tokio::time::sleep(keepalive);
    tokio::pin!(tick);
    let mut last_read = Instant::now();
    let mut last_io = last_read;
    if server.shutdown_token().is_cancelled() {
        // Bound after the shutdown closed every session.
        handle.close(StreamError::shutdown());
    }
    loop {
        tokio::select! {
            biased;
            wake = handle.next_wake() => {
                if wake == Wake::Killed {
                    Box::pin(flush_before_end(conn, handle, reroute)).await;
                    return ended();
                }
                // A client that does not read blocks this write; the router meanwhile fills
                // its queue and ends the session, which must win over the stuck write.
                while let Some(write) = conn.prepare_write(&handle.outbox, WRITE_BATCH) {
                    tokio::select! {
                        r = write.send(conn) => if let Err(e) = r {
                            return End::Io(e);
                        },
                        _ = handle.wait_killed() => return ended(),
                    }
                }
                last_io = Instant::now();
            }
            ev = conn.next_event() => {
                last_read = conn.read_at();
                last_io = last_read;
                match ev {
                    Ok(Some(StreamEvent::Stanza(s))) => {
                        handle.touch(last_read);
                        if let Err(end) = inbound(server, handle, s).await {
                            return end;
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
                let quiet = last_io.elapsed();
                if quiet < keepalive {
                    // Something happened since the timer was set: wait out the rest.
                    tick.as_mut().reset((last_io + keepalive).into());
                    continue;
                }
                if last_read.elapsed() >= keepalive * 3 {
                    return End::Stream(StreamError::new(
                        StreamCondition::ConnectionTimeout,
                        format!("nothing was received for {} seconds", last_read.elapsed().as_secs()),
                    ));
                }
                // A whitespace keepalive finds dead connections.
                if let Err(e) = conn.send_raw(b" ").await {
                    return End::Io(e);
                }
                last_io = Instant::now();
                tick.as_mut().reset((last_io + keepalive).into());
            }
        }
    }
}

/// What was queued before the session was ended (e.g. the result of the request that
/// removed the account) still goes out, if the client is reading at all; messages that
/// could not be written go to `reroute`.
async fn flush_before_end(conn: &mut Conn, handle: &SessionHandle, reroute: &mut Vec<Element>) {
    let pending = handle.outbox.take_all();
    if pending.is_empty() {
        return;
    }
    let copy: Vec<Element> = pending
        .iter()
        .filter_map(|o| match o {
            Outgoing::Stanza(s) => Some(s.clone()),
            Outgoing::Prepared(..) => None,
        })
        .collect();
    let sent = tokio::time::timeout(Duration::from_secs(2), conn.send_outgoing(pending)).await;
    if !matches!(sent, Ok(Ok(()))) {
        // Not written: rather deliver a message twice than lose it.
        for s in copy {
            if s.name() == "message" && matches!(stanza_type(&s), "chat" | "normal") {
                reroute.push(s);
            }
        }
    }
}

/// A stanza from the client: check, stamp, filter and route it.
async fn inbound(
    server: &Server,
    session: &Arc<SessionHandle>,
    mut stanza: Element,
) -> Result<(), End> {
    if !matches!(stanza.name(), "message" | "presence" | "iq") || !stanza.has_ns(ns::CLIENT) {
        return Err(StreamError::new(
            StreamCondition::UnsupportedStanzaType,
            format!(
                "<{} xmlns='{}'/> is not a stanza",
                stanza.name(),
                stanza.ns()
            ),
        )
        .into());
    }
    let me = &session.jid;
    if let Some(from) = stanza.get_attr("from") {
        let ok = Jid::new(from)
            .map(|f| f == me.clone() || f == me.to_bare())
            .unwrap_or(false);
        if !ok {
            return Err(StreamError::new(
                StreamCondition::InvalidFrom,
                format!("'from' must be your own address ({me}), not {from}"),
            )
            .into());
        }
    }
    stanza.put_attr("from", me.as_str());
    // An unparseable 'to' is answered by the router; normalise a good one.
    let to = match stanza.get_attr("to").map(Jid::new) {
        Some(Ok(j)) => {
            if stanza.get_attr("to") != Some(j.as_str()) {
                stanza.put_attr("to", j.as_str());
            }
            Some(j)
        }
        Some(Err(e)) => {
            // Answered here: an error "from" an address that does not parse would not
            // reach the client as presence (RFC 6120 §8.3.1 lets the server be the
            // sender, which an absent 'from' means).
            if !matches!(stanza_type(&stanza), "error" | "result") {
                let mut reply = StanzaError::new(
                    Condition::JidMalformed,
                    format!("the 'to' address is not a valid JID: {e}"),
                )
                .bounce(&stanza);
                reply.remove_attr("from");
                session.send(reply);
            }
            return Ok(());
        }
        None => None,
    };
    match server
        .registry()
        .filter(server, &stanza, Direction::Outbound)
    {
        Verdict::Pass => {}
        Verdict::Drop => return Ok(()),
        Verdict::Bounce(e) => {
            session.send(e.bounce(&stanza));
            return Ok(());
        }
    }
    match stanza.name() {
        // Boxed: their futures are large, and an idle session's task would otherwise hold
        // room for them all its life.
        "presence" => Box::pin(presence::outbound(server, session, to, stanza)).await,
        "iq" => Box::pin(iq(server, session, to, stanza)).await,
        _ => {
            let to = to.unwrap_or_else(|| {
                // RFC 6121 §8.1.1.1: a message with no 'to' is for the sender's bare JID.
                let bare = me.to_bare();
                stanza.put_attr("to", bare.as_str());
                Jid::from(bare)
            });
            server.route_to(to, stanza).await
        }
    }
    Ok(())
}

async fn iq(server: &Server, session: &Arc<SessionHandle>, to: Option<Jid>, stanza: Element) {
    let me = &session.jid;
    let Some(ty) = IqType::parse(stanza.get_attr("type")) else {
        let e = StanzaError::bad_request("an IQ needs a type: get, set, result or error");
        session.send(e.bounce(&stanza));
        return;
    };
    let own_account = match &to {
        None => true,
        Some(j) => j.is_bare() && j.to_bare() == me.to_bare(),
    };
    if !own_account {
        return server.route(stanza).await;
    }
    if matches!(ty, IqType::Result | IqType::Error) {
        return;
    }
    let to = to.unwrap_or_else(|| Jid::from(me.to_bare()));
    let reply = server
        .registry()
        .dispatch_iq(server, Address::Bare, Jid::from(me.clone()), to, ty, stanza)
        .await;
    session.send(reply);
}
