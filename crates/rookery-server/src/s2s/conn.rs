//! One server-to-server connection's byte I/O: the same framing and limits as client
//! streams (`rookery-xml`), TLS on either side of STARTTLS, and stream resets.

use crate::c2s::{End, Io};
use crate::error::{StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use minidom::Element;
use rookery_xml::{Limits, StreamEvent, StreamParser};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The read buffer's size.
const READ_BUF: usize = 8 * 1024;

/// A server-to-server stream, incoming or outgoing.
pub(super) struct S2sConn {
    io: Box<dyn Io>,
    parser: StreamParser,
    events: VecDeque<StreamEvent>,
    buf: Vec<u8>,
    pub peer: SocketAddr,
    /// Whether TLS is in place.
    pub secure: bool,
    /// Whether our header was sent on the current stream (a stream error needs one).
    pub header_sent: bool,
    /// The certificate chain the peer presented as a TLS client (incoming streams).
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl S2sConn {
    pub(super) fn new(server: &Server, io: Box<dyn Io>, peer: SocketAddr) -> Self {
        let l = &server.config().limits;
        let limits = Limits {
            max_stanza_bytes: l.max_stanza_size,
            max_depth: l.max_depth,
            max_attributes: l.max_attributes,
        };
        S2sConn {
            io,
            parser: StreamParser::new(limits),
            events: VecDeque::new(),
            buf: vec![0u8; READ_BUF],
            peer,
            secure: false,
            header_sent: false,
            peer_certificates: Vec::new(),
        }
    }

    /// The next parsed event; `Ok(None)` at end of input. Cancel-safe.
    pub(super) async fn next_event(&mut self) -> Result<Option<StreamEvent>, StreamError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            let n = match self.io.read(&mut self.buf).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "s2s read failed");
                    return Ok(None);
                }
            };
            if n == 0 {
                self.parser.eof()?;
                return Ok(None);
            }
            let mut out = Vec::new();
            self.parser.feed(&self.buf[..n], &mut out)?;
            self.events.extend(out);
        }
    }

    /// The next top-level element; the peer's close or a new header ends the stream.
    pub(super) async fn next_element(&mut self) -> Result<Element, End> {
        match self.next_event().await? {
            Some(StreamEvent::Stanza(e)) => Ok(e),
            Some(StreamEvent::End) | None => Err(End::Closed),
            Some(StreamEvent::Header(_)) => Err(StreamError::new(
                StreamCondition::NotWellFormed,
                "a second stream header was sent without a stream reset",
            )
            .into()),
        }
    }

    /// The peer's stream header, or how the stream ended.
    pub(super) async fn next_header(&mut self) -> Result<rookery_xml::StreamHeader, End> {
        match self.next_event().await? {
            Some(StreamEvent::Header(h)) => Ok(h),
            Some(StreamEvent::End) | None => Err(End::Closed),
            Some(StreamEvent::Stanza(e)) => Err(StreamError::new(
                StreamCondition::NotWellFormed,
                format!("expected a stream header, got <{}/>", e.name()),
            )
            .into()),
        }
    }

    pub(super) async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Send stanzas in one write. They are `jabber:client` inside the server and written
    /// without a namespace declaration, so on the wire they take the stream's
    /// (`jabber:server`).
    pub(super) async fn send_stanzas(&mut self, stanzas: &[Element]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for s in stanzas {
            rookery_xml::serialize_into(s, ns::CLIENT, &mut buf);
        }
        self.send_raw(&buf).await
    }

    /// Our stream header (`from` and `to` as given), declaring the dialback prefix.
    pub(super) async fn send_header(
        &mut self,
        from: &str,
        to: Option<&str>,
        id: Option<&str>,
    ) -> std::io::Result<()> {
        let mut attrs = vec![("xmlns:db", super::NS_DIALBACK), ("from", from)];
        if let Some(to) = to {
            attrs.push(("to", to));
        }
        if let Some(id) = id {
            attrs.push(("id", id));
        }
        attrs.push(("version", "1.0"));
        attrs.push(("xml:lang", "en"));
        let header = rookery_xml::stream_header(super::NS_SERVER, &attrs);
        self.header_sent = true;
        self.send_raw(header.as_bytes()).await
    }

    /// Send a stream error and close the stream (RFC 6120 §4.9.1); `from` speaks for us
    /// in the header when none was sent yet.
    pub(super) async fn send_stream_error(&mut self, from: &str, e: &StreamError) {
        if !self.header_sent {
            let _ = self.send_header(from, None, None).await;
        }
        let mut out = e.to_xml();
        out.push_str("</stream:stream>");
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_raw(out.as_bytes())).await;
    }

    /// Close our side: `</stream:stream>` and the connection.
    pub(super) async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.send_raw(b"</stream:stream>").await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }

    /// The receiving side of STARTTLS: our certificate, as on client streams, and the
    /// peer's if it has one (kept for SASL EXTERNAL).
    pub(super) async fn accept_tls(&mut self, server: &Server) -> std::io::Result<()> {
        let config = server
            .s2s()
            .tls_server()
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let stream = tokio_rustls::TlsAcceptor::from(config)
            .accept(plain)
            .await?;
        if let Some(chain) = stream.get_ref().1.peer_certificates() {
            self.peer_certificates = chain.to_vec();
        }
        self.io = Box::new(stream);
        self.secure = true;
        Ok(())
    }

    /// The initiating side of STARTTLS, checking the peer's certificate for `domain`
    /// (unless `[s2s] accept_self_signed`) and presenting ours if asked.
    pub(super) async fn connect_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        domain: &str,
    ) -> std::io::Result<()> {
        let name = rustls_pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| std::io::Error::other(format!("{domain} is not a DNS name: {e}")))?;
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, plain)
            .await?;
        self.io = Box::new(stream);
        self.secure = true;
        Ok(())
    }

    /// Forget the current stream: a new header is expected.
    pub(super) fn reset(&mut self) {
        self.parser.reset();
        self.events.clear();
        self.header_sent = false;
    }
}
