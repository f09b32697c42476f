//! Client-to-server streams (RFC 6120): the listener, a connection's byte I/O, and the
//! steps of a stream's life — negotiation ([`negotiation`]) then the bound session
//! ([`session`]).
//!
//! One task per connection. The connection is generic over its byte stream (`Box<dyn Io>`),
//! so STARTTLS swaps the stream in place and tests can use any duplex pipe.

mod negotiation;
mod session;

use crate::error::{StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use rookery_sasl::ChannelBindings;
use rookery_xml::{Limits, StreamEvent, StreamParser};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream a connection can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Accept connections until shutdown; each runs in its own task.
pub async fn serve(server: Server, listener: TcpListener, direct_tls: bool) {
    server
        .accept_loop(listener, "c2s", move |s, tcp, peer| {
            handle(s, tcp, peer, direct_tls)
        })
        .await;
}

async fn handle(server: Server, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    tracing::info!(%peer, tls = direct_tls, "c2s connection opened");
    let mut conn = Conn::new(&server, Box::new(tcp), peer);
    if direct_tls {
        let timeout = Duration::from_secs(server.config().limits.handshake_timeout_secs.max(1));
        match tokio::time::timeout(timeout, conn.start_tls(&server)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "c2s connection closed: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "c2s connection closed: TLS handshake timed out");
                return;
            }
        }
    }
    let end = match negotiation::negotiate(&server, &mut conn).await {
        Ok(authenticated) => session::run(&server, &mut conn, authenticated).await,
        Err(end) => end,
    };
    let reason = match &end {
        End::Closed => "peer closed the stream".to_owned(),
        End::Io(e) => format!("connection error: {e}"),
        End::Stream(e) => format!("stream error {}: {}", e.condition.as_str(), e.text),
    };
    if let End::Stream(e) = &end {
        conn.send_stream_error(e).await;
    } else if !matches!(end, End::Io(_)) {
        let _ = conn.send_raw(b"</stream:stream>").await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.io.shutdown()).await;
    tracing::info!(%peer, jid = conn.jid.as_deref().unwrap_or("-"), reason, "c2s connection closed");
}

/// Why a stream ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer sent `</stream:stream>` or closed the connection.
    Closed,
    Io(std::io::Error),
    Stream(StreamError),
}

impl From<StreamError> for End {
    fn from(e: StreamError) -> Self {
        End::Stream(e)
    }
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> Self {
        End::Io(e)
    }
}

/// The read buffer's size on a quiet connection, and its largest size.
const READ_MIN: usize = 512;
const READ_MAX: usize = 32 * 1024;
/// The most write buffer capacity kept between writes.
const WRITE_KEEP: usize = 2048;

/// One c2s connection's I/O state.
pub(crate) struct Conn {
    io: Box<dyn Io>,
    parser: StreamParser,
    /// Events parsed but not yet handed out: `events[next..]`.
    events: Vec<StreamEvent>,
    next: usize,
    /// The read buffer: small while the client is quiet, grown while it sends a lot.
    buf: Vec<u8>,
    pub peer: SocketAddr,
    pub secure: bool,
    pub bindings: ChannelBindings,
    /// Whether we have sent our stream header on the current stream.
    pub header_sent: bool,
    /// The domain the client asked for.
    pub host: String,
    /// The authenticated JID (bare, then full), for logs.
    pub jid: Option<String>,
    write_buf: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(server: &Server, io: Box<dyn Io>, peer: SocketAddr) -> Self {
        let l = &server.config().limits;
        let limits = Limits {
            max_stanza_bytes: l.max_stanza_size,
            max_depth: l.max_depth,
            max_attributes: l.max_attributes,
        };
        Conn {
            io,
            parser: StreamParser::new(limits),
            events: Vec::new(),
            next: 0,
            buf: vec![0u8; READ_MIN],
            peer,
            secure: false,
            bindings: ChannelBindings::default(),
            header_sent: false,
            host: String::new(),
            jid: None,
            write_buf: Vec::new(),
        }
    }

    /// The next parsed event; `Ok(None)` at end of input. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<Option<StreamEvent>, StreamError> {
        loop {
            if self.next < self.events.len() {
                let ev = std::mem::replace(&mut self.events[self.next], StreamEvent::End);
                self.next += 1;
                if self.next == self.events.len() {
                    // Freed rather than kept: a quiet connection then holds no event buffer.
                    self.events = Vec::new();
                    self.next = 0;
                }
                return Ok(Some(ev));
            }
            let n = match self.io.read(&mut self.buf).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    return Ok(None);
                }
            };
            if n == 0 {
                self.parser.eof()?;
                return Ok(None);
            }
            self.parser.feed(&self.buf[..n], &mut self.events)?;
            self.resize_buf(n);
        }
    }

    /// Grow the read buffer when a read filled it (the client is sending a lot), and
    /// shrink it back once reads are small again, so a quiet connection holds little.
    fn resize_buf(&mut self, n: usize) {
        let len = self.buf.len();
        if n == len && len < READ_MAX {
            self.buf = vec![0u8; (len * 4).min(READ_MAX)];
        } else if n <= READ_MIN / 2 && len > READ_MIN {
            self.buf = vec![0u8; READ_MIN];
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Serialise and send queued stanzas in one write.
    pub async fn send_outgoing(
        &mut self,
        items: impl IntoIterator<Item = crate::sm::Outgoing>,
    ) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.write_buf);
        buf.clear();
        for item in items {
            match item {
                crate::sm::Outgoing::Stanza(s) => {
                    rookery_xml::serialize_into(&s, ns::CLIENT, &mut buf)
                }
                crate::sm::Outgoing::Prepared(p, to) => p.write_to(&to, &mut buf),
            }
        }
        let r = self.send_raw(&buf).await;
        buf.clear();
        if buf.capacity() > WRITE_KEEP {
            buf = Vec::new();
        }
        self.write_buf = buf;
        r
    }

    pub async fn send_stanza(&mut self, s: minidom::Element) -> std::io::Result<()> {
        self.send_outgoing([crate::sm::Outgoing::Stanza(s)]).await
    }

    /// Our stream header for the current stream.
    pub async fn send_header(&mut self) -> std::io::Result<()> {
        let id = random_id();
        let from = if self.host.is_empty() {
            "localhost".to_owned()
        } else {
            self.host.clone()
        };
        let header = rookery_xml::stream_header(
            ns::CLIENT,
            &[
                ("id", &id),
                ("from", &from),
                ("version", "1.0"),
                ("xml:lang", "en"),
            ],
        );
        self.header_sent = true;
        self.send_raw(header.as_bytes()).await
    }

    /// Send a stream error and close the stream (RFC 6120 §4.9.1): a header first if we
    /// have not sent one yet.
    pub async fn send_stream_error(&mut self, e: &StreamError) {
        if !self.header_sent {
            let _ = self.send_header().await;
        }
        let mut out = e.to_xml();
        out.push_str("</stream:stream>");
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_raw(out.as_bytes())).await;
    }

    /// Run the TLS handshake over the current stream and switch to it (STARTTLS or direct TLS).
    pub async fn start_tls(&mut self, server: &Server) -> std::io::Result<()> {
        let tls = server
            .tls()
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let stream = tls.acceptor.accept(plain).await?;
        let (_, conn) = stream.get_ref();
        let mut bindings = ChannelBindings {
            tls_server_end_point: Some(tls.end_point_hash.clone()),
            tls_exporter: None,
        };
        // tls-exporter is only safe on TLS 1.3 (or 1.2 with EMS, which we don't rely on).
        if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut ekm = [0u8; 32];
            if conn
                .export_keying_material(&mut ekm, b"EXPORTER-Channel-Binding", None)
                .is_ok()
            {
                bindings.tls_exporter = Some(ekm.to_vec());
            }
        }
        self.bindings = bindings;
        self.secure = true;
        self.io = Box::new(stream);
        Ok(())
    }

    /// Forget the current stream: a new header is expected (after STARTTLS and SASL).
    pub fn reset(&mut self) {
        self.parser.reset();
        self.events.clear();
        self.next = 0;
        self.header_sent = false;
    }
}

/// An unguessable identifier (stream ids, generated resources).
pub fn random_id() -> String {
    let bytes: [u8; 12] = rand::random();
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn policy(text: impl Into<String>) -> StreamError {
    StreamError::new(StreamCondition::PolicyViolation, text)
}
