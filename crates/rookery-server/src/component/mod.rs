//! External components, XEP-0114 (`jabber:component:accept`): the listener and the
//! handshake; [`stream`] holds what happens once a component is connected.
//!
//! A component opens a stream whose `to` is its own name (a `[[component]]` of the
//! configuration), we answer with an unpredictable stream id, and it proves it knows the
//! secret with `<handshake>hex(SHA-1(id ‖ secret))</handshake>`. Then its domain becomes a
//! route of the router like MUC's: every stanza for the domain or an address under it goes
//! down the stream, and what the component sends is routed like any other stanza.
//!
//! Errors of the opening (RFC 6120 §4.9.1.1: our header, the error, the closing tag):
//! an unknown name is `host-unknown`, a name already connected `conflict`, another stream
//! namespace `invalid-namespace`, a wrong handshake `not-authorized` after the same delay
//! and per-address budget as failed client logins (`[auth] failure_delay_ms`,
//! `[limits] auth_failures_per_minute`).

pub(crate) mod stream;

pub use stream::ComponentLink;

use crate::c2s::{Conn, End, random_id};
use crate::error::{StanzaError, StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use minidom::Element;
use rookery_xml::{StreamEvent, StreamHeader};
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};

/// Accept component connections until shutdown; each runs in its own task.
pub async fn serve(server: Server, listener: TcpListener) {
    server.accept_loop(listener, "component", handle).await;
}

async fn handle(server: Server, tcp: TcpStream, peer: SocketAddr) {
    tracing::info!(%peer, "component connection opened");
    let mut conn = Conn::new(&server, Box::new(tcp), peer);
    let limit = Duration::from_secs(server.config().limits.handshake_timeout_secs.max(1));
    let end = match tokio::time::timeout(limit, handshake(&server, &mut conn)).await {
        Ok(Ok(link)) => stream::run(&server, &mut conn, link).await,
        Ok(Err(end)) => end,
        Err(_) => End::Stream(StreamError::new(
            StreamCondition::ConnectionTimeout,
            format!(
                "the handshake was not completed within {} seconds",
                limit.as_secs()
            ),
        )),
    };
    let reason = match &end {
        End::Closed => "peer closed the stream".to_owned(),
        End::Io(e) => format!("connection error: {e}"),
        End::Stream(e) => format!("stream error {}: {}", e.condition.as_str(), e.text),
    };
    match &end {
        End::Stream(e) => {
            if !conn.header_sent {
                let from = server.config().hosts[0].clone();
                let _ = send_header(&mut conn, &from, &random_id()).await;
            }
            conn.send_stream_error(e).await;
        }
        End::Closed => {
            let _ = conn.send_raw(b"</stream:stream>").await;
        }
        End::Io(_) => {}
    }
    let name = if conn.host.is_empty() {
        "-"
    } else {
        &conn.host
    };
    tracing::info!(%peer, component = name, reason, "component connection closed");
}

/// Our stream header: `from` the component's name, with the stream id, and (XEP-0114
/// predates RFC 6120) no version and no features.
async fn send_header(conn: &mut Conn, from: &str, id: &str) -> std::io::Result<()> {
    let header = rookery_xml::stream_header(ns::COMPONENT_ACCEPT, &[("from", from), ("id", id)]);
    conn.header_sent = true;
    conn.send_raw(header.as_bytes()).await
}

/// Read the component's header, answer it, check its handshake and register its route
/// ([`stream::run`] confirms the handshake).
async fn handshake(server: &Server, conn: &mut Conn) -> Result<Arc<ComponentLink>, End> {
    let header = match conn.next_event().await? {
        Some(StreamEvent::Header(h)) => h,
        Some(_) => {
            return Err(StreamError::new(
                StreamCondition::NotWellFormed,
                "expected a stream header",
            )
            .into());
        }
        None => return Err(End::Closed),
    };
    let (name, secret) = match check_header(server, &header) {
        Ok(c) => c,
        Err((e, known)) => {
            // The error's header comes from the name asked for when there is one to speak
            // for, else from the server's first host.
            let from = known.unwrap_or_else(|| server.config().hosts[0].clone());
            send_header(conn, &from, &random_id()).await?;
            return Err(e.into());
        }
    };
    conn.host = name.clone();
    let id = random_id();
    send_header(conn, &name, &id).await?;

    let e = next_element(conn).await?;
    if !e.is("handshake", ns::COMPONENT_ACCEPT) {
        return Err(StreamError::new(
            StreamCondition::NotAuthorized,
            format!("<{}/> was sent before the handshake", e.name()),
        )
        .into());
    }
    let started = Instant::now();
    let ip = conn.peer.ip();
    let delay = Duration::from_millis(server.config().auth.failure_delay_ms);
    if !server.auth_allowed(ip) {
        tracing::warn!(peer = %conn.peer, component = %name, "handshake refused: too many failures from this address");
        tokio::time::sleep(delay).await;
        return Err(StreamError::new(
            StreamCondition::PolicyViolation,
            "too many failed handshakes from your address; wait a minute and try again",
        )
        .into());
    }
    let given = e.text().trim().to_ascii_lowercase();
    let expected = handshake_digest(&id, &secret);
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        server.auth_failed(ip);
        tracing::warn!(peer = %conn.peer, component = %name, "component handshake failed");
        // A uniform delay makes guessing slow and hides timing differences.
        tokio::time::sleep(delay.saturating_sub(started.elapsed())).await;
        return Err(StreamError::new(
            StreamCondition::NotAuthorized,
            format!("the handshake does not match the secret configured for {name}"),
        )
        .into());
    }
    let queue = server.config().limits.outbound_queue;
    let link = Arc::new(ComponentLink::new(name.clone(), conn.peer, queue));
    // Checked again here: two connections may both have passed the header check.
    if !server.try_register_service(&name, link.clone()) {
        return Err(already_connected(&name).into());
    }
    tracing::info!(peer = %conn.peer, component = %name, "component connected");
    Ok(link)
}

/// The component's name and secret, or the error and (when the name is configured) the
/// name to send the error from.
fn check_header(
    server: &Server,
    h: &StreamHeader,
) -> Result<(String, String), (StreamError, Option<String>)> {
    let to = h.to.as_deref().map(str::to_lowercase);
    let configured = to
        .as_deref()
        .and_then(|to| server.config().components.iter().find(|c| c.name == to));
    let known = configured.map(|c| c.name.clone());
    if h.ns != ns::STREAMS || h.name != "stream" {
        let text = format!(
            "the root element must be <stream xmlns='{}'>, not <{} xmlns='{}'>",
            ns::STREAMS,
            h.name,
            h.ns
        );
        return Err((
            StreamError::new(StreamCondition::InvalidNamespace, text),
            known,
        ));
    }
    if h.default_ns.as_deref() != Some(ns::COMPONENT_ACCEPT) {
        let text = format!(
            "the stream's default namespace must be '{}' on the component port, not '{}'",
            ns::COMPONENT_ACCEPT,
            h.default_ns.as_deref().unwrap_or("")
        );
        return Err((
            StreamError::new(StreamCondition::InvalidNamespace, text),
            known,
        ));
    }
    let Some(c) = configured else {
        let text = match &to {
            None => "the stream header has no 'to': it must name the component".to_owned(),
            Some(to) => format!("{to} is not a component configured on this server"),
        };
        return Err((StreamError::new(StreamCondition::HostUnknown, text), None));
    };
    if server.service(&c.name).is_some() {
        return Err((already_connected(&c.name), known));
    }
    Ok((c.name.clone(), c.secret.clone()))
}

fn already_connected(name: &str) -> StreamError {
    StreamError::new(
        StreamCondition::Conflict,
        format!("the component {name} is already connected"),
    )
}

/// The next element of the stream, or how the stream ended.
async fn next_element(conn: &mut Conn) -> Result<Element, End> {
    match conn.next_event().await? {
        Some(StreamEvent::Stanza(e)) => Ok(e),
        Some(StreamEvent::End) | None => Err(End::Closed),
        Some(StreamEvent::Header(_)) => Err(StreamError::new(
            StreamCondition::NotWellFormed,
            "a second stream header was sent",
        )
        .into()),
    }
}

/// The handshake value (XEP-0114 §3): lower-case hex of SHA-1 over the stream id followed
/// by the secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `domain` is a configured component's name, connected or not.
pub fn is_configured(server: &Server, domain: &str) -> bool {
    server.config().components.iter().any(|c| c.name == domain)
}

/// A stanza for a configured component that is not connected: the domain is known, so
/// IQ requests and messages bounce `service-unavailable` (not `remote-server-not-found`);
/// presence is dropped (XEP-0114 leaves offline components' presence to the server).
pub async fn unavailable(server: &Server, domain: &str, stanza: &Element) {
    if stanza.name() == "presence" {
        return;
    }
    let err = StanzaError::service_unavailable(format!("the component {domain} is not connected"));
    server.bounce(stanza, err).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_handshake_is_hex_sha1_of_id_then_secret() {
        // SHA-1("abc"), FIPS 180-2 appendix A.1.
        assert_eq!(
            super::handshake_digest("ab", "c"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
