//! A small async XMPP client-to-server client (RFC 6120 / RFC 6121).
//!
//! [`Client::connect`] opens a TCP connection, secures it (STARTTLS, direct TLS per
//! XEP-0368, or — on loopback test set-ups only — nothing), authenticates with SASL
//! (SCRAM-SHA-256/1 with or without `-PLUS` channel binding, or PLAIN over TLS), binds a
//! resource and hands back a [`Client`] that sends and receives stanzas as
//! [`minidom::Element`]s.
//!
//! It is used by the `rookery` CLI, by the integration tests and by load tooling, so it
//! favours predictability: every wait is bounded by [`ClientConfig::timeout`], stanzas
//! that a caller is not waiting for are buffered in order, and every protocol failure
//! surfaces as a typed [`ClientError`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rookery_client::ClientError> {
//! use rookery_client::{Client, ClientConfig};
//! let mut config = ClientConfig::new("127.0.0.1:5222".parse().unwrap(), "alice@localhost", "pw");
//! config.ca_pem = Some(std::fs::read_to_string("ca.pem")?);
//! let mut alice = Client::connect(config).await?;
//! alice.send_presence().await?;
//! alice.send_message("bob@localhost", "hello").await?;
//! alice.close().await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adhoc;
mod mechanism;
mod negotiate;
mod tls;
mod xml;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rookery_xml::{StreamEvent, StreamParser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

pub use minidom::Element;
pub use rookery_forms;

pub use adhoc::{AdhocError, CommandItem, CommandSession};
pub use tls::accept_any_certificate;

/// XML namespaces the client deals with.
pub(crate) mod ns {
    /// The c2s stanza namespace.
    pub const CLIENT: &str = "jabber:client";
    /// The stream namespace (`stream:` prefix).
    pub const STREAMS: &str = "http://etherx.jabber.org/streams";
    /// Stream error conditions.
    pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// STARTTLS.
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// SASL.
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// XEP-0440 SASL channel-binding type capability.
    pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
    /// Resource binding.
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// RFC 3921 session establishment (legacy).
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    /// Stanza error conditions.
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// Roster.
    pub const ROSTER: &str = "jabber:iq:roster";
    /// XEP-0077 in-band registration.
    pub const REGISTER: &str = "jabber:iq:register";
    /// XEP-0077 stream feature.
    pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
}

/// How the connection is secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP, upgraded with STARTTLS before authentication (RFC 6120 §5).
    StartTls,
    /// TLS from the first byte (XEP-0368), offering ALPN `xmpp-client`.
    DirectTls,
    /// No TLS at all; only works when the server allows plaintext on loopback.
    Plain,
}

/// Everything needed to connect and log in.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// The bare JID to log in as, e.g. `alice@localhost`; its domain is used for the
    /// stream's `to` and as the TLS server name.
    pub jid: String,
    /// The account password.
    pub password: String,
    /// The resource to request; `None` lets the server generate one.
    pub resource: Option<String>,
    /// How to secure the connection.
    pub security: Security,
    /// PEM of extra CA certificates to trust (e.g. the server's generated `ca.pem`).
    /// If `None`, no roots are trusted, so TLS fails unless [`insecure`](Self::insecure).
    pub ca_pem: Option<String>,
    /// Accept any server certificate (for tests of hostile input only).
    pub insecure: bool,
    /// Force a SASL mechanism (`"SCRAM-SHA-256-PLUS"`, `"SCRAM-SHA-1"`, `"PLAIN"` ...),
    /// even one the server does not offer. `None` picks the best offered one:
    /// SCRAM-SHA-256-PLUS > SCRAM-SHA-1-PLUS > SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN (only
    /// over TLS).
    ///
    /// For `-PLUS` the channel binding is `tls-exporter` on TLS 1.3 (if the server lists
    /// it via XEP-0440, or lists nothing), else `tls-server-end-point` (SHA-256 of the
    /// server's leaf certificate).
    pub mechanism: Option<String>,
    /// Upper bound for every single wait (connect, handshake, each negotiation step,
    /// each `recv`); 10 s by default.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A configuration with STARTTLS, a server-generated resource, no trusted roots, the
    /// best offered mechanism and a 10 s timeout.
    pub fn new(addr: SocketAddr, jid: &str, password: &str) -> Self {
        ClientConfig {
            addr,
            jid: jid.to_owned(),
            password: password.to_owned(),
            resource: None,
            security: Security::StartTls,
            ca_pem: None,
            insecure: false,
            mechanism: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("jid", &self.jid)
            .field("password", &"<redacted>")
            .field("resource", &self.resource)
            .field("security", &self.security)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("insecure", &self.insecure)
            .field("mechanism", &self.mechanism)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// TLS could not be set up (handshake failure, untrusted certificate, no STARTTLS).
    #[error("tls: {0}")]
    Tls(String),
    /// The server sent `<stream:error>`: the condition element's name and its `<text/>`.
    #[error("stream error {condition}: {text}")]
    Stream {
        /// The defined condition, e.g. `not-authorized`.
        condition: String,
        /// The human-readable text, possibly empty.
        text: String,
    },
    /// SASL `<failure>`: the condition element's name and its `<text/>`.
    #[error("authentication failed ({condition}): {text}")]
    Auth {
        /// The defined condition, e.g. `not-authorized`.
        condition: String,
        /// The human-readable text, possibly empty.
        text: String,
    },
    /// Resource binding was refused or answered nonsensically.
    #[error("resource binding failed: {0}")]
    Bind(String),
    /// Nothing suitable arrived in time; the payload names what we waited for.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The server violated the protocol (or sent something we did not expect).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server closed the stream (`</stream:stream>` or end of input).
    #[error("the server closed the stream")]
    Closed,
}

/// The byte stream under the XML stream: TCP or TLS over TCP (or a test pipe).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
/// A boxed [`Io`].
pub(crate) type BoxIo = Box<dyn Io>;

/// A connected, authenticated and bound XMPP session.
pub struct Client {
    io: BoxIo,
    parser: StreamParser,
    /// Parsed but not yet consumed stream events.
    events: VecDeque<StreamEvent>,
    /// Stanzas received while waiting for something else, oldest first.
    pending: VecDeque<Element>,
    buf: Box<[u8]>,
    /// Set once the server's side of the stream is over (end tag, EOF, stream error).
    closed: bool,
    /// The bound full JID.
    jid: String,
    /// The SASL mechanism used.
    mechanism: String,
    timeout: Duration,
    next_id: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.jid)
            .field("mechanism", &self.mechanism)
            .field("pending", &self.pending.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect, secure the stream (STARTTLS or direct TLS, per the config), authenticate
    /// and bind a resource. Returns once the session is bound.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        negotiate::connect(&config, negotiate::Goal::Bind).await
    }

    /// Connect and authenticate but do not bind: `Ok(())` on SASL success. The connection
    /// is then closed. Meant for negative tests of authentication.
    pub async fn authenticate_only(config: ClientConfig) -> Result<(), ClientError> {
        let client = negotiate::connect(&config, negotiate::Goal::Authenticate).await?;
        client.shutdown().await;
        Ok(())
    }

    /// Create the account `config.jid` with `config.password` by XEP-0077 in-band
    /// registration on a secured but unauthenticated stream, then close the connection.
    /// A refusal is `Err(Protocol("registration refused: <condition>[: text]"))`.
    pub async fn register(config: ClientConfig) -> Result<(), ClientError> {
        let client = negotiate::connect(&config, negotiate::Goal::Register).await?;
        client.shutdown().await;
        Ok(())
    }

    /// The bound full JID (empty before binding).
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The SASL mechanism that was used.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// Serialise `stanza` (with `jabber:client` as the default namespace) and send it.
    pub async fn send(&mut self, stanza: Element) -> Result<(), ClientError> {
        let bytes = rookery_xml::serialize(&stanza, ns::CLIENT);
        self.send_raw(&bytes).await
    }

    /// Send raw bytes as they are (for tests that need malformed or unusual input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(jid = %self.jid, out = %String::from_utf8_lossy(bytes), "send");
        }
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| ClientError::Timeout("the socket to accept our data".into()))??;
        Ok(())
    }

    /// The next stanza from the server (buffered ones first).
    ///
    /// `Err(Stream{..})` if a stream error arrives, `Err(Closed)` at `</stream:stream>` or
    /// end of input, `Err(Timeout)` after the configured timeout.
    pub async fn recv(&mut self) -> Result<Element, ClientError> {
        if let Some(el) = self.pending.pop_front() {
            return Ok(el);
        }
        let deadline = Instant::now() + self.timeout;
        self.next_stanza_until(deadline, "a stanza").await
    }

    /// The next stanza matching `f`. Stanzas that do not match are kept and returned, in
    /// order, by later [`recv`](Self::recv) / `recv_where` calls. Waits at most the
    /// configured timeout in total.
    pub async fn recv_where(
        &mut self,
        f: impl Fn(&Element) -> bool,
    ) -> Result<Element, ClientError> {
        let deadline = Instant::now() + self.timeout;
        self.recv_where_until(deadline, "a matching stanza", f)
            .await
    }

    /// `Ok(())` if nothing arrives within `d`. Buffered stanzas count as something: the
    /// result is then `Err(Protocol("unexpected stanza: <...>"))` (the stanza stays
    /// buffered). Stream errors and the end of the stream are reported as such.
    pub async fn expect_silence(&mut self, d: Duration) -> Result<(), ClientError> {
        if let Some(el) = self.pending.front() {
            return Err(unexpected(el));
        }
        match self.next_stanza_until(Instant::now() + d, "silence").await {
            Ok(el) => {
                let err = unexpected(&el);
                self.pending.push_back(el);
                Err(err)
            }
            Err(ClientError::Timeout(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Send an `<iq/>` (an `id` is added if it has none) and wait for the `result` or
    /// `error` response with that id, which is returned either way. Other stanzas arriving
    /// meanwhile are buffered.
    pub async fn iq(&mut self, mut iq: Element) -> Result<Element, ClientError> {
        let id = match iq.attr("id") {
            Some(id) => id.to_owned(),
            None => {
                let id = self.fresh_id();
                xml::set_attr(&mut iq, "id", &id);
                id
            }
        };
        self.send(iq).await?;
        let deadline = Instant::now() + self.timeout;
        self.recv_where_until(deadline, &format!("the response to iq {id}"), |el| {
            is_iq_response(el, &id)
        })
        .await
    }

    /// Fetch the roster (RFC 6121 §2.2): returns the `<iq/>` response as is (`type='result'`
    /// with a `<query xmlns='jabber:iq:roster'/>`, or `type='error'`).
    pub async fn roster_get(&mut self) -> Result<Element, ClientError> {
        let iq = Element::builder("iq", ns::CLIENT)
            .attr(xml::name("type"), "get")
            .append(Element::bare("query", ns::ROSTER))
            .build();
        self.iq(iq).await
    }

    /// Send a `type='chat'` message with a `<body/>` to `to`.
    pub async fn send_message(&mut self, to: &str, body: &str) -> Result<(), ClientError> {
        let id = self.fresh_id();
        let message = Element::builder("message", ns::CLIENT)
            .attr(xml::name("to"), to)
            .attr(xml::name("type"), "chat")
            .attr(xml::name("id"), id)
            .append(Element::builder("body", ns::CLIENT).append(body))
            .build();
        self.send(message).await
    }

    /// Send initial presence (`<presence/>`).
    pub async fn send_presence(&mut self) -> Result<(), ClientError> {
        self.send(Element::bare("presence", ns::CLIENT)).await
    }

    /// Close the stream: send `</stream:stream>`, wait up to 2 s for the server's closing
    /// tag (discarding stanzas that arrive meanwhile) and close the socket.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if !self.closed {
            if let Err(e) = self.send_raw(b"</stream:stream>").await {
                return match e {
                    ClientError::Io(ref io) if is_disconnect(io) => Ok(()),
                    e => Err(e),
                };
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match tokio::time::timeout_at(deadline, self.next_event()).await {
                    Ok(Ok(StreamEvent::End)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(_)) => {}
                }
            }
        }
        let _ = self.io.shutdown().await;
        Ok(())
    }

    // ---- internals -------------------------------------------------------------------

    /// A client over an established byte stream, before any XML was exchanged.
    pub(crate) fn new_raw(io: BoxIo, timeout: Duration) -> Client {
        Client {
            io,
            parser: StreamParser::new(rookery_xml::Limits::default()),
            events: VecDeque::new(),
            pending: VecDeque::new(),
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            closed: false,
            jid: String::new(),
            mechanism: String::new(),
            timeout,
            next_id: 0,
        }
    }

    /// Start a new stream after TLS or SASL: the parser forgets the old one.
    pub(crate) fn restart_parser(&mut self) {
        self.parser.reset();
        self.events.clear();
    }

    /// Send `</stream:stream>` (best effort) and drop the connection without waiting.
    pub(crate) async fn shutdown(mut self) {
        if !self.closed {
            let _ = self.send_raw(b"</stream:stream>").await;
        }
        let _ = self.io.shutdown().await;
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("rk{}", self.next_id)
    }

    /// The next stream event, reading from the socket as needed. Cancel-safe: bytes are
    /// only consumed together with parsing them.
    pub(crate) async fn next_event(&mut self) -> Result<StreamEvent, ClientError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            let n = match self.io.read(&mut self.buf).await {
                Ok(n) => n,
                Err(e) => {
                    self.closed = true;
                    return Err(if is_disconnect(&e) {
                        ClientError::Closed
                    } else {
                        ClientError::Io(e)
                    });
                }
            };
            if n == 0 {
                self.closed = true;
                tracing::debug!(jid = %self.jid, "server closed the connection");
                return Err(ClientError::Closed);
            }
            if tracing::enabled!(tracing::Level::TRACE) {
                tracing::trace!(jid = %self.jid, r#in = %String::from_utf8_lossy(&self.buf[..n]), "recv");
            }
            let mut out = Vec::new();
            if let Err(e) = self.parser.feed(&self.buf[..n], &mut out) {
                self.closed = true;
                return Err(ClientError::Protocol(format!(
                    "bad XML from the server: {e}"
                )));
            }
            self.events.extend(out);
        }
    }

    /// The next top-level element of the current stream before `deadline`, with stream
    /// errors and the stream end turned into errors.
    pub(crate) async fn next_stanza_until(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<Element, ClientError> {
        let event = tokio::time::timeout_at(deadline, self.next_event())
            .await
            .map_err(|_| ClientError::Timeout(what.to_owned()))??;
        match event {
            StreamEvent::Stanza(el) => {
                if el.is("error", ns::STREAMS) {
                    self.closed = true;
                    Err(stream_error(&el))
                } else {
                    Ok(el)
                }
            }
            StreamEvent::End => {
                self.closed = true;
                Err(ClientError::Closed)
            }
            StreamEvent::Header(_) => Err(ClientError::Protocol(
                "unexpected stream header in the middle of a stream".into(),
            )),
        }
    }

    async fn recv_where_until(
        &mut self,
        deadline: Instant,
        what: &str,
        f: impl Fn(&Element) -> bool,
    ) -> Result<Element, ClientError> {
        if let Some(pos) = self.pending.iter().position(&f) {
            return Ok(self.pending.remove(pos).expect("position is in range"));
        }
        loop {
            let el = self.next_stanza_until(deadline, what).await?;
            if f(&el) {
                return Ok(el);
            }
            self.pending.push_back(el);
        }
    }
}

/// Whether `el` is the `result`/`error` response to the iq with `id`.
pub(crate) fn is_iq_response(el: &Element, id: &str) -> bool {
    el.name() == "iq"
        && el.attr("id") == Some(id)
        && matches!(el.attr("type"), Some("result") | Some("error"))
}

/// The `Protocol` error for a stanza that should not have arrived.
fn unexpected(el: &Element) -> ClientError {
    let xml = rookery_xml::serialize(el, ns::CLIENT);
    ClientError::Protocol(format!(
        "unexpected stanza: {}",
        String::from_utf8_lossy(&xml)
    ))
}

/// Map a `<stream:error/>` to [`ClientError::Stream`].
pub(crate) fn stream_error(el: &Element) -> ClientError {
    let condition = el
        .children()
        .find(|c| c.has_ns(ns::STREAM_ERRORS) && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned());
    let text = el
        .get_child("text", ns::STREAM_ERRORS)
        .map(|t| t.text())
        .unwrap_or_default();
    ClientError::Stream { condition, text }
}

/// Whether an I/O error just means the peer went away.
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected
    )
}

#[cfg(test)]
mod tests;
