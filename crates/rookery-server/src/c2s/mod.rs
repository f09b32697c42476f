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
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
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
        match tokio::time::timeout(timeout, Box::pin(conn.start_tls(&server))).await {
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
    // Boxed: the connection's task would otherwise hold room for negotiation all its life.
    let end = match Box::pin(negotiation::negotiate(&server, &mut conn)).await {
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

/// The size of each worker thread's read buffer: the most one read takes in.
const READ_SIZE: usize = 32 * 1024;
/// The most write buffer capacity a worker thread keeps between writes.
const WRITE_KEEP: usize = 64 * 1024;

thread_local! {
    /// Connections read into their worker thread's buffer and parse what came in at once,
    /// so a connection holds no read buffer of its own (only the parser's bytes of a stanza
    /// that is still arriving).
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_SIZE].into_boxed_slice());
    /// A write buffer to serialise into, lent to one write at a time; a connection holds
    /// one only while its write waits for the socket.
    static WRITE_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The stanzas of one batch, between the outbox and serialisation.
    static BATCH: RefCell<Vec<crate::sm::Outgoing>> = const { RefCell::new(Vec::new()) };
}

/// Borrow the thread's write buffer (empty), or a new one if it is lent out.
fn lend_write_buf() -> Vec<u8> {
    WRITE_BUF.with(|b| b.take())
}

/// Give a write buffer back for the next write on this thread.
fn return_write_buf(mut buf: Vec<u8>) {
    if buf.capacity() > WRITE_KEEP {
        return;
    }
    buf.clear();
    WRITE_BUF.with(|b| {
        let held = b.take();
        b.set(if held.capacity() >= buf.capacity() {
            held
        } else {
            buf
        });
    });
}

/// Stanzas serialised for one write to the client (see [`Conn::prepare_write`]).
pub(crate) struct PendingWrite(Vec<u8>);

impl PendingWrite {
    pub async fn send(self, conn: &mut Conn) -> std::io::Result<()> {
        let r = conn.send_raw(&self.0).await;
        return_write_buf(self.0);
        r
    }
}

/// One c2s connection's I/O state.
pub(crate) struct Conn {
    io: Box<dyn Io>,
    parser: StreamParser,
    /// Events parsed but not yet handed out: `events[next..]`.
    events: Vec<StreamEvent>,
    next: usize,
    /// When data last came in.
    read_at: Instant,
    pub peer: SocketAddr,
    pub secure: bool,
    pub bindings: ChannelBindings,
    /// Whether we have sent our stream header on the current stream.
    pub header_sent: bool,
    /// The domain the client asked for.
    pub host: String,
    /// The authenticated JID (bare, then full), for logs.
    pub jid: Option<String>,
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
            read_at: Instant::now(),
            peer,
            secure: false,
            bindings: ChannelBindings::default(),
            header_sent: false,
            host: String::new(),
            jid: None,
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
            let got = poll_fn(|cx| self.poll_read_and_parse(cx)).await?;
            if !got {
                return Ok(None);
            }
        }
    }

    /// When data last came in from the client.
    pub fn read_at(&self) -> Instant {
        self.read_at
    }

    /// Read into the thread's buffer and parse what came in, in one poll (the buffer is
    /// never held across a wait). `Ready(Ok(false))` at end of input.
    fn poll_read_and_parse(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, StreamError>> {
        READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            let mut rb = ReadBuf::new(&mut b[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    Poll::Ready(Ok(false))
                }
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    Poll::Ready(self.parser.eof().map(|()| false).map_err(Into::into))
                }
                Poll::Ready(Ok(())) => {
                    self.read_at = Instant::now();
                    let r = self.parser.feed(rb.filled(), &mut self.events);
                    Poll::Ready(r.map(|()| true).map_err(Into::into))
                }
            }
        })
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
        let mut buf = lend_write_buf();
        for item in items {
            item.write_to(&mut buf);
        }
        PendingWrite(buf).send(self).await
    }

    /// Take up to `max` stanzas from `outbox` and serialise them for one write; `None` when
    /// nothing is queued.
    pub fn prepare_write(&self, outbox: &crate::sm::Outbox, max: usize) -> Option<PendingWrite> {
        BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            if outbox.take(&mut batch, max) == 0 {
                return None;
            }
            let mut buf = lend_write_buf();
            for item in batch.drain(..) {
                item.write_to(&mut buf);
            }
            Some(PendingWrite(buf))
        })
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

#[cfg(test)]
mod tests {
    /// A connection's task is allocated at its full size for the connection's whole life,
    /// so an idle connection pays for the largest thing the task ever awaits in place.
    /// Negotiation, binding, IQs, presence and the end of a session are boxed for that
    /// (unboxed, the task took 3152 bytes in a debug build; 1920 with them boxed).
    #[tokio::test]
    async fn a_connection_task_holds_room_for_the_session_loop_only() {
        let dir = tempfile::tempdir().unwrap();
        let config = rookery_config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let server = crate::server::Server::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let task = super::handle(server, tcp, peer, false);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "a connection's task takes {size} bytes");
    }
}
