//! Incoming server-to-server streams (RFC 6120, XEP-0220 as the receiving and as the
//! authoritative server).
//!
//! A peer opens a `jabber:server` stream to one of our domains; we require STARTTLS, then
//! offer dialback, and SASL EXTERNAL when the peer's TLS client certificate validates for
//! the domain its header names (`sasl.rs`). On that stream the peer may:
//! - authenticate with `<auth mechanism='EXTERNAL'/>`: on `<success/>` the stream restarts
//!   and stanzas for the pair (its domain, our domain) may flow;
//! - ask to be accepted as a domain (`<db:result from='them' to='us'>KEY</db:result>`): we
//!   check the key with its authoritative server on a connection of our own and answer
//!   `valid` or `invalid`; only then may stanzas for that (their domain, our domain) pair
//!   flow on this stream;
//! - ask us, as the authoritative server, whether a key is ours (`<db:verify/>`);
//! - send stanzas, each of which must carry a `from` in a verified domain and a `to` in
//!   the domain it was verified for, else the stream ends with `invalid-from` (RFC 6120
//!   §4.9.3.10) or `improper-addressing` (§4.9.3.7).
//!
//! Accepted stanzas move from `jabber:server` to `jabber:client`, the namespace stanzas
//! have inside the server, and are routed like any other.

use super::conn::S2sConn;
use super::outgoing::Failure;
use super::{NS_DIALBACK, NS_SERVER, dialback, sasl};
use crate::c2s::{End, random_id};
use crate::error::{StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use crate::xml::ElementExt;
use jid::Jid;
use minidom::{Element, Node};
use rookery_xml::{StreamEvent, StreamHeader};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Dialback checks one stream may have under way at once.
const MAX_PENDING: usize = 8;
/// Domain pairs one stream may have verified.
const MAX_PAIRS: usize = 256;
/// Most dialback checks one stream may ask for (each makes us connect somewhere).
const MAX_ATTEMPTS: usize = 2 * MAX_PAIRS;
/// Failed SASL attempts one stream may make (RFC 6120 §6.4.5: at least 2, at most 5).
const MAX_SASL_FAILURES: usize = 3;

/// Accept server-to-server connections until shutdown; each runs in its own task.
pub(crate) async fn serve(server: Server, listener: TcpListener) {
    server.accept_loop(listener, "s2s", handle).await;
}

/// The outcome of one dialback check: (their domain, our domain, verdict).
type Verdict = (String, String, Result<bool, Failure>);

/// What one incoming stream knows.
struct Incoming {
    /// Our domain the peer opened the stream to.
    local: String,
    /// The id of our current stream header (dialback keys are bound to it).
    id: String,
    /// Verified (their domain, our domain) pairs.
    verified: HashSet<(String, String)>,
    /// Dialback checks under way.
    pending: HashSet<(String, String)>,
    /// Dialback checks asked for on this stream, in all.
    attempts: usize,
    /// The peer's domain, as its current stream header says.
    remote: Option<String>,
    /// The peer's domain once SASL EXTERNAL authenticated it.
    sasl: Option<String>,
    /// Failed SASL attempts.
    sasl_failures: usize,
}

async fn handle(server: Server, tcp: TcpStream, peer: SocketAddr) {
    tracing::debug!(%peer, "s2s connection opened");
    let mut conn = S2sConn::new(&server, Box::new(tcp), peer);
    let mut st = Incoming {
        local: server.config().hosts[0].clone(),
        id: String::new(),
        verified: HashSet::new(),
        pending: HashSet::new(),
        attempts: 0,
        remote: None,
        sasl: None,
        sasl_failures: 0,
    };
    let end = run(&server, &mut conn, &mut st).await;
    let reason = super::describe(&end);
    match &end {
        End::Stream(e) => conn.send_stream_error(&st.local, e).await,
        End::Closed => conn.close().await,
        End::Io(_) => {}
    }
    let pairs: Vec<String> = st.verified.iter().map(|(r, _)| r.clone()).collect();
    tracing::info!(%peer, remote = ?pairs, reason, "s2s incoming stream closed");
}

async fn run(server: &Server, conn: &mut S2sConn, st: &mut Incoming) -> End {
    let handshake = Duration::from_secs(server.config().limits.handshake_timeout_secs.max(1));
    match tokio::time::timeout(handshake, negotiate(server, conn, st)).await {
        Ok(Ok(())) => {}
        Ok(Err(end)) => return end,
        Err(_) => {
            return End::Stream(StreamError::new(
                StreamCondition::ConnectionTimeout,
                format!(
                    "STARTTLS was not completed within {} s",
                    handshake.as_secs()
                ),
            ));
        }
    }
    let idle_secs = server.config().s2s.idle_timeout_secs;
    let idle = Duration::from_secs(if idle_secs == 0 {
        365 * 24 * 3600
    } else {
        idle_secs
    });
    let auth_deadline = Instant::now() + handshake;
    let verify_limit = Duration::from_secs(server.config().s2s.connect_timeout_secs.max(1));
    let mut last = Instant::now();
    let (tx, mut rx) = mpsc::channel::<Verdict>(MAX_PENDING);
    let shutdown = server.shutdown_token().cancelled();
    tokio::pin!(shutdown);
    loop {
        // Until a pair is verified (and while none is being checked: a check has a
        // deadline of its own), the stream has `handshake_timeout_secs` to authenticate.
        let deadline = if !st.verified.is_empty() {
            last + idle
        } else if st.pending.is_empty() {
            auth_deadline.min(last + idle)
        } else {
            // A check may take its own time, but checks do not extend the deadline forever.
            (auth_deadline + verify_limit).min(last + idle)
        };
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                return End::Stream(StreamError::shutdown());
            }
            Some((remote, local, verdict)) = rx.recv() => {
                if let Err(e) = answer_result(conn, st, remote, local, verdict).await {
                    return e;
                }
            }
            ev = conn.next_event() => {
                last = Instant::now();
                let e = match ev {
                    Ok(Some(StreamEvent::Stanza(e))) => e,
                    Ok(Some(StreamEvent::End)) | Ok(None) => return End::Closed,
                    Ok(Some(StreamEvent::Header(_))) => {
                        return End::Stream(StreamError::new(StreamCondition::NotWellFormed, "a second stream header was sent"));
                    }
                    Err(e) => return End::Stream(e),
                };
                if let Err(end) = element(server, conn, st, &tx, e).await {
                    return end;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if st.verified.is_empty() && st.pending.is_empty() && Instant::now() >= auth_deadline {
                    return End::Stream(StreamError::new(
                        StreamCondition::ConnectionTimeout,
                        format!("no domain was authenticated within {} s", handshake.as_secs()),
                    ));
                }
                if Instant::now() >= last + idle {
                    return End::Closed;
                }
            }
        }
    }
}

/// Header, STARTTLS (required), then the header and features of the secured stream.
async fn negotiate(server: &Server, conn: &mut S2sConn, st: &mut Incoming) -> Result<(), End> {
    loop {
        let header = conn.next_header().await?;
        let (local, remote) = check_header(server, &header)?;
        st.local = local;
        st.id = random_id();
        conn.send_header(&st.local, remote.as_deref(), Some(&st.id))
            .await?;
        if conn.secure {
            st.remote = remote;
            let external = st.sasl.is_none() && offer_external(server, conn, st);
            let features = sasl::features(external, st.sasl.is_some());
            conn.send_raw(features.as_bytes()).await?;
            return Ok(());
        }
        if server.tls().is_none() {
            return Err(StreamError::new(
                StreamCondition::InternalServerError,
                "this server has no TLS certificate, which server-to-server streams require",
            )
            .into());
        }
        let features = format!(
            "<stream:features><starttls xmlns='{}'><required/></starttls></stream:features>",
            ns::TLS
        );
        conn.send_raw(features.as_bytes()).await?;
        let e = conn.next_element().await?;
        if !e.is("starttls", ns::TLS) {
            return Err(StreamError::new(
                StreamCondition::PolicyViolation,
                format!(
                    "STARTTLS is required before anything else on this server, not <{}/>",
                    e.name()
                ),
            )
            .into());
        }
        conn.send_raw(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes())
            .await?;
        conn.accept_tls(server).await?;
        conn.reset();
    }
}

/// Whether to offer SASL EXTERNAL: the peer's certificate validates for its domain.
fn offer_external(server: &Server, conn: &S2sConn, st: &Incoming) -> bool {
    let (Some(remote), false) = (&st.remote, conn.peer_certificates.is_empty()) else {
        return false;
    };
    match server
        .s2s()
        .check_certificate(&conn.peer_certificates, remote)
    {
        Ok(()) => true,
        Err(why) => {
            tracing::debug!(peer = %conn.peer, %remote, reason = %why, "s2s peer's certificate does not authenticate it; not offering SASL EXTERNAL");
            false
        }
    }
}

/// Our domain the stream is for, and the peer's domain if it said.
fn check_header(server: &Server, h: &StreamHeader) -> Result<(String, Option<String>), End> {
    if h.ns != ns::STREAMS || h.name != "stream" {
        return Err(StreamError::new(
            StreamCondition::InvalidNamespace,
            format!(
                "the root element must be <stream xmlns='{}'>, not <{} xmlns='{}'>",
                ns::STREAMS,
                h.name,
                h.ns
            ),
        )
        .into());
    }
    if h.default_ns.as_deref() != Some(NS_SERVER) {
        return Err(StreamError::new(
            StreamCondition::InvalidNamespace,
            format!(
                "the stream's default namespace must be '{NS_SERVER}' on the server-to-server port"
            ),
        )
        .into());
    }
    let Some(to) = h.to.as_deref().map(str::to_lowercase) else {
        return Err(StreamError::new(
            StreamCondition::HostUnknown,
            "the stream header has no 'to': it must name one of our domains",
        )
        .into());
    };
    if !is_ours(server, &to) {
        return Err(StreamError::new(
            StreamCondition::HostUnknown,
            format!("this server does not serve {to}"),
        )
        .into());
    }
    if !h.version.as_deref().is_some_and(|v| v.starts_with("1.")) {
        return Err(StreamError::new(
            StreamCondition::UnsupportedVersion,
            "server-to-server streams need version 1.0 (STARTTLS is required)",
        )
        .into());
    }
    let from = h.from.as_deref().map(str::to_lowercase);
    Ok((to, from))
}

/// Whether `domain` is hosted here or a service of ours.
fn is_ours(server: &Server, domain: &str) -> bool {
    // A configured component is ours even while it is not connected: no peer may speak
    // for it (its JIDs are trusted, e.g. to read groups).
    server.serves_host(domain)
        || server.service(domain).is_some()
        || crate::component::is_configured(server, domain)
}

/// A domain as sent in a dialback element or a stanza: a valid domain-only JID, not ours.
fn remote_domain(server: &Server, s: Option<&str>) -> Result<String, StreamError> {
    let s = s.unwrap_or("");
    match Jid::new(s) {
        Ok(j) if j.node().is_none() && j.resource().is_none() && !is_ours(server, j.domain()) => {
            Ok(j.domain().to_string())
        }
        _ => Err(StreamError::new(
            StreamCondition::InvalidFrom,
            format!("'{s}' is not a remote domain"),
        )),
    }
}

async fn element(
    server: &Server,
    conn: &mut S2sConn,
    st: &mut Incoming,
    tx: &mpsc::Sender<Verdict>,
    e: Element,
) -> Result<(), End> {
    if e.is("result", NS_DIALBACK) {
        return dialback_result(server, conn, st, tx, e).await;
    }
    if e.is("verify", NS_DIALBACK) {
        return dialback_verify(server, conn, e).await;
    }
    if e.is("auth", ns::SASL) {
        return sasl_auth(server, conn, st, e).await;
    }
    if e.is("error", ns::STREAMS) {
        tracing::info!(peer = %conn.peer, error = %super::stream_error_text(&e), "s2s peer sent a stream error");
        return Err(End::Closed);
    }
    if matches!(e.name(), "message" | "presence" | "iq") && e.has_ns(NS_SERVER) {
        return stanza(server, st, e).await.map_err(End::Stream);
    }
    Err(StreamError::new(
        StreamCondition::UnsupportedStanzaType,
        format!("<{} xmlns='{}'/> is not a stanza", e.name(), e.ns()),
    )
    .into())
}

/// `<auth mechanism='EXTERNAL'>`: the peer's certificate must validate for the domain it
/// asks for; on success the stream restarts, authenticated for (that domain, our domain).
async fn sasl_auth(
    server: &Server,
    conn: &mut S2sConn,
    st: &mut Incoming,
    e: Element,
) -> Result<(), End> {
    let verdict = if st.sasl.is_some() {
        Err(sasl::Refusal::new(
            "not-authorized",
            "this stream is authenticated already",
        ))
    } else {
        sasl::requested_domain(&e, st.remote.as_deref()).and_then(|domain| {
            let domain = remote_domain(server, Some(&domain)).map_err(|_| {
                sasl::Refusal::new(
                    "invalid-authzid",
                    format!("'{domain}' is not a remote domain"),
                )
            })?;
            server
                .s2s()
                .check_certificate(&conn.peer_certificates, &domain)
                .map(|()| domain.clone())
                .map_err(|why| {
                    sasl::Refusal::new(
                        "not-authorized",
                        format!("the TLS certificate does not authenticate {domain}: {why}"),
                    )
                })
        })
    };
    let domain = match verdict {
        Ok(domain) => domain,
        Err(refusal) => {
            tracing::info!(peer = %conn.peer, remote = ?st.remote, reason = %refusal.text, "s2s SASL EXTERNAL refused");
            conn.send_raw(refusal.to_xml().as_bytes()).await?;
            st.sasl_failures += 1;
            if st.sasl_failures >= MAX_SASL_FAILURES {
                return Err(StreamError::new(
                    StreamCondition::NotAuthorized,
                    "too many failed authentication attempts",
                )
                .into());
            }
            return Ok(());
        }
    };
    conn.send_raw(sasl::success().as_bytes()).await?;
    tracing::info!(peer = %conn.peer, remote = %domain, local = %st.local, "s2s peer verified (SASL EXTERNAL)");
    st.verified.insert((domain.clone(), st.local.clone()));
    st.sasl = Some(domain);
    // RFC 6120 §6.4.6: the peer opens a new stream at once.
    conn.reset();
    let handshake = Duration::from_secs(server.config().limits.handshake_timeout_secs.max(1));
    match tokio::time::timeout(handshake, negotiate(server, conn, st)).await {
        Ok(r) => r,
        Err(_) => Err(StreamError::new(
            StreamCondition::ConnectionTimeout,
            "the stream was not restarted after SASL",
        )
        .into()),
    }
}

/// `<db:result from='them' to='us'>KEY</db:result>`: check the key with their
/// authoritative server, in the background.
async fn dialback_result(
    server: &Server,
    conn: &mut S2sConn,
    st: &mut Incoming,
    tx: &mpsc::Sender<Verdict>,
    e: Element,
) -> Result<(), End> {
    let remote = remote_domain(server, e.get_attr("from"))?;
    let local = e.get_attr("to").unwrap_or("").to_lowercase();
    if !is_ours(server, &local) {
        let reply = dialback_error(
            &local,
            &remote,
            "item-not-found",
            "not a domain of this server",
        );
        conn.send_raw(reply.as_bytes()).await?;
        return Ok(());
    }
    let pair = (remote, local);
    if st.verified.contains(&pair) {
        let reply = dialback::element("result", &pair.1, &pair.0, None, Some("valid"), None);
        conn.send_raw(reply.as_bytes()).await?;
        return Ok(());
    }
    if st.pending.contains(&pair) {
        return Ok(());
    }
    st.attempts += 1;
    if st.pending.len() >= MAX_PENDING
        || st.verified.len() >= MAX_PAIRS
        || st.attempts > MAX_ATTEMPTS
    {
        return Err(StreamError::new(
            StreamCondition::PolicyViolation,
            "too many domains asked to be verified on one stream",
        )
        .into());
    }
    st.pending.insert(pair.clone());
    let key = e.text();
    let id = st.id.clone();
    let (s, tx) = (server.clone(), tx.clone());
    let limit = Duration::from_secs(server.config().s2s.connect_timeout_secs.max(1));
    server.spawn(async move {
        let (remote, local) = pair;
        let verdict = match tokio::time::timeout(
            limit,
            dialback::verify(&s, &local, &remote, &id, key.trim()),
        )
        .await
        {
            Ok(v) => v,
            Err(_) => Err(Failure::timeout(format!(
                "{remote}'s authoritative server did not answer within {} s",
                limit.as_secs()
            ))),
        };
        let _ = tx.send((remote, local, verdict)).await;
    });
    Ok(())
}

/// Tell the peer how its dialback request ended.
async fn answer_result(
    conn: &mut S2sConn,
    st: &mut Incoming,
    remote: String,
    local: String,
    verdict: Result<bool, Failure>,
) -> Result<(), End> {
    let pair = (remote, local);
    st.pending.remove(&pair);
    let (remote, local) = (&pair.0, &pair.1);
    let reply = match &verdict {
        Ok(true) => {
            tracing::info!(peer = %conn.peer, %remote, %local, "s2s peer verified (dialback)");
            dialback::element("result", local, remote, None, Some("valid"), None)
        }
        Ok(false) => {
            tracing::warn!(peer = %conn.peer, %remote, %local, "s2s dialback key refused by the authoritative server");
            dialback::element("result", local, remote, None, Some("invalid"), None)
        }
        Err(f) => {
            // The details (addresses, ports, TLS errors) stay in our log: told to the
            // peer they would make dialback a probe of any host and port.
            tracing::info!(peer = %conn.peer, %remote, reason = %f.text, "s2s dialback could not be checked");
            dialback_error(
                local,
                remote,
                f.condition.as_str(),
                &format!("the key could not be checked with {remote}'s authoritative server"),
            )
        }
    };
    conn.send_raw(reply.as_bytes()).await?;
    if verdict.is_ok_and(|v| v) {
        st.verified.insert(pair);
    }
    Ok(())
}

/// `<db:result type='error'/>` with a stanza error condition (XEP-0220 §2.4).
fn dialback_error(local: &str, remote: &str, condition: &str, text: &str) -> String {
    use crate::xml::escape;
    format!(
        "<db:result from='{}' to='{}' type='error'><error type='cancel'><{condition} xmlns='{}'/>\
         <text xmlns='{}' xml:lang='en'>{}</text></error></db:result>",
        escape(local),
        escape(remote),
        ns::STANZA_ERRORS,
        ns::STANZA_ERRORS,
        escape(text)
    )
}

/// `<db:verify from='them' to='us' id='…'>KEY</db:verify>`: as the authoritative
/// server, say whether we made that key.
async fn dialback_verify(server: &Server, conn: &mut S2sConn, e: Element) -> Result<(), End> {
    let receiving = e.get_attr("from").unwrap_or("").to_lowercase();
    let originating = e.get_attr("to").unwrap_or("").to_lowercase();
    let id = e.get_attr("id").unwrap_or("");
    let valid = is_ours(server, &originating)
        && !id.is_empty()
        && dialback::check(
            server.s2s().secret(),
            &receiving,
            &originating,
            id,
            &e.text(),
        );
    let reply = dialback::element(
        "verify",
        &originating,
        &receiving,
        Some(id),
        Some(if valid { "valid" } else { "invalid" }),
        None,
    );
    conn.send_raw(reply.as_bytes()).await?;
    Ok(())
}

/// A stanza from the peer: check its addresses against the verified pairs and route it.
async fn stanza(server: &Server, st: &Incoming, mut e: Element) -> Result<(), StreamError> {
    let (Some(from), Some(to)) = (e.get_attr("from"), e.get_attr("to")) else {
        return Err(StreamError::new(
            StreamCondition::ImproperAddressing,
            "every stanza between servers needs a 'from' and a 'to'",
        ));
    };
    let from_jid = Jid::new(from).map_err(|err| {
        StreamError::new(
            StreamCondition::InvalidFrom,
            format!("'from' is not a valid address: {err}"),
        )
    })?;
    // A malformed 'to' is the router's to answer (jid-malformed), but the pair needs a
    // domain: take what precedes any '/' after the '@'.
    let to_domain = match Jid::new(to) {
        Ok(j) => j.domain().to_string(),
        Err(_) => {
            let bare = to.split('/').next().unwrap_or("");
            bare.rsplit('@').next().unwrap_or("").to_lowercase()
        }
    };
    let pair = (from_jid.domain().to_string(), to_domain);
    if !st.verified.contains(&pair) {
        return Err(StreamError::new(
            StreamCondition::InvalidFrom,
            format!(
                "{} is not authenticated to send to {} on this stream (dialback first)",
                pair.0, pair.1
            ),
        ));
    }
    if from != from_jid.as_str() {
        e.put_attr("from", from_jid.as_str());
    }
    into_client_ns(&mut e);
    server.route(e).await;
    Ok(())
}

/// Move every element in `jabber:server` to `jabber:client`.
fn into_client_ns(e: &mut Element) {
    if e.has_ns(NS_SERVER) {
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
    fn server_namespace_becomes_the_client_one() {
        let xml = "<message xmlns='jabber:server' from='a@a.test' to='b@b.test'>\
                   <body>hi</body><x xmlns='urn:x'><iq xmlns='jabber:server'/></x></message>";
        let mut e: Element = xml.parse().unwrap();
        into_client_ns(&mut e);
        assert!(e.is("message", ns::CLIENT));
        assert_eq!(e.get_child("body", ns::CLIENT).unwrap().text(), "hi");
        let x = e.get_child("x", "urn:x").unwrap();
        assert!(x.get_child("iq", ns::CLIENT).is_some());
    }
}
