//! A light client codec: just enough XMPP to log in and exchange messages, with no XML
//! tree. Replies are found by scanning for the closing tags we expect, which is cheap and
//! works with any server's serialisation (quote style, prefixes, attribute order).
//!
//! A connection runs over plaintext TCP, over TLS negotiated with STARTTLS (RFC 6120 §5),
//! or over TLS from the first byte (XEP-0368 direct TLS): see [`TlsMode`]. Everything after
//! the TLS handshake (SASL, binding, messages) is the same code on any of them.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rookery_sasl::{HashAlgo, ScramClient};
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Where to connect and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The XMPP domain (`localhost`), also the TLS server name.
    pub domain: String,
    /// Local source addresses to spread connections over (127.0.0.x), for more than one
    /// address's worth of ephemeral ports.
    pub sources: Vec<IpAddr>,
    pub mechanism: Mechanism,
    /// Plaintext, STARTTLS or direct TLS.
    pub tls: TlsMode,
    pub timeout: Duration,
}

/// The SASL mechanism to log in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mechanism {
    ScramSha1,
    ScramSha256,
    Plain,
}

impl Mechanism {
    pub fn parse(s: &str) -> Option<Mechanism> {
        Some(match s.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-1" => Mechanism::ScramSha1,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "PLAIN" => Mechanism::Plain,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::Plain => "PLAIN",
        }
    }
}

/// How a connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext TCP (the servers allow it on loopback for benchmarks).
    #[default]
    None,
    /// Plaintext stream header, `<starttls/>`, `<proceed/>`, TLS handshake, new stream.
    StartTls,
    /// TLS from the first byte (XEP-0368), with ALPN `xmpp-client`.
    Direct,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => TlsMode::None,
            "starttls" => TlsMode::StartTls,
            "direct" => TlsMode::Direct,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Direct => "direct",
        }
    }
}

// --- TLS -------------------------------------------------------------------------------

/// The generator's TLS client settings, built once per process (one for STARTTLS, one with
/// ALPN for direct TLS).
///
/// BENCHMARK-ONLY CHOICES, never fit for a real client:
/// - any server certificate is accepted (`rookery_client::accept_any_certificate`): the servers run on
///   loopback with self-signed or private-CA certificates made for the run;
/// - session resumption is off, so every connection pays for a full handshake, as
///   thousands of distinct clients would;
/// - key exchange is limited to X25519 (then P-256), so every server, whatever its TLS
///   library prefers, does the same key-exchange work (no post-quantum hybrid for some and
///   not for others). The negotiated parameters are reported ([`Conn::tls_info`]).
fn tls_connector(alpn: bool) -> TlsConnector {
    static STARTTLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static DIRECT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let cell = if alpn { &DIRECT } else { &STARTTLS };
    TlsConnector::from(cell.get_or_init(|| Arc::new(tls_config(alpn))).clone())
}

fn tls_config(alpn: bool) -> rustls::ClientConfig {
    use rustls::crypto::aws_lc_rs::{self as provider, kx_group};
    let mut crypto = provider::default_provider();
    crypto.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    // Any certificate, but handshake signatures still checked: the same cryptographic work
    // as a real client, and a broken server handshake still fails.
    let verifier = rookery_client::accept_any_certificate(&crypto);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto))
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    if alpn {
        config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    }
    config
}

/// A connection's byte stream: plaintext TCP or TLS over TCP.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The sending half of a split connection. Flush after writing: over TLS, a write may
/// leave encrypted bytes buffered when the socket is full.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

// --- the codec -------------------------------------------------------------------------

/// One connection (logged in, once [`Conn::login`] returns it).
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    pub jid: String,
    timeout: Duration,
}

fn header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Where the start tag `<name` (followed by whitespace, `/` or `>`) first occurs.
fn find_tag(hay: &[u8], name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(at) = find(&hay[from..], open.as_bytes()) {
        let at = from + at;
        match hay.get(at + open.len()) {
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>') => return Some(at),
            Some(_) => from = at + 1,
            // Not known yet whether this is the tag: wait for more input.
            None => return None,
        }
    }
    None
}

/// The text between the first `>` after `open` and the next `<`.
fn text_after(hay: &[u8], open: &[u8]) -> Option<String> {
    let at = find(hay, open)?;
    let rest = &hay[at..];
    let gt = rest.iter().position(|b| *b == b'>')?;
    let body = &rest[gt + 1..];
    let end = body.iter().position(|b| *b == b'<')?;
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// Leave the choice of a bound socket's port to `connect` (`IP_BIND_ADDRESS_NO_PORT`),
/// which picks one free for the whole address pair. Binding to port 0 otherwise searches
/// for a port no socket holds at all, a search that grew with every connection held: at
/// ~15 000 it took ~5 ms of the generator's CPU per connection.
fn bind_address_no_port(sock: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and an option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Conn {
    /// Connect from the `n`th source address; with direct TLS, also do the TLS handshake.
    pub async fn connect(t: &Target, n: usize) -> Result<Conn> {
        let stream = if t.sources.is_empty() {
            TcpStream::connect(t.addr).await?
        } else {
            let src = t.sources[n % t.sources.len()];
            let sock = if t.addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            bind_address_no_port(&sock)?;
            sock.bind(SocketAddr::new(src, 0))?;
            sock.connect(t.addr).await?
        };
        stream.set_nodelay(true)?;
        let c = Conn {
            stream: Stream::Tcp(stream),
            buf: Vec::with_capacity(4096),
            start: 0,
            jid: String::new(),
            timeout: t.timeout,
        };
        if t.tls == TlsMode::Direct {
            return c.start_tls(&t.domain, true).await;
        }
        Ok(c)
    }

    /// Run the TLS handshake on this (plaintext) connection.
    async fn start_tls(mut self, domain: &str, alpn: bool) -> Result<Conn> {
        if self.start != self.buf.len() {
            bail!(
                "the server sent more after <proceed/>: {}",
                String::from_utf8_lossy(&self.buf[self.start..])
            );
        }
        self.buf.clear();
        self.start = 0;
        let Stream::Tcp(tcp) = self.stream else {
            bail!("TLS is already established");
        };
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| anyhow!("{domain:?} is not a valid TLS server name: {e}"))?;
        let tls = tokio::time::timeout(self.timeout, tls_connector(alpn).connect(name, tcp))
            .await
            .map_err(|_| anyhow!("timed out in the TLS handshake"))?
            .context("TLS handshake")?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(self)
    }

    /// Open the XMPP stream up to the features that offer SASL: header and features, and
    /// with STARTTLS, `<starttls/>`, the handshake and the restarted stream (RFC 6120 §5.3.3).
    pub async fn open(t: &Target, n: usize) -> Result<Conn> {
        let mut c = Conn::connect(t, n).await?;
        c.send(header(&t.domain).as_bytes()).await?;
        c.read_until(b"</stream:features>")
            .await
            .context("stream features")?;
        if t.tls == TlsMode::StartTls {
            c = c.starttls(&t.domain).await?;
            c.send(header(&t.domain).as_bytes()).await?;
            c.read_until(b"</stream:features>")
                .await
                .context("stream features after STARTTLS")?;
        }
        Ok(c)
    }

    /// `<starttls/>`, `<proceed/>`, TLS handshake (the stream header was sent and the
    /// features read).
    async fn starttls(mut self, domain: &str) -> Result<Conn> {
        self.send(format!("<starttls xmlns='{NS_TLS}'/>").as_bytes())
            .await?;
        let (which, got) = self
            .read_element(&["proceed", "failure"])
            .await
            .context("STARTTLS")?;
        if which != 0 {
            bail!(
                "the server refused STARTTLS: {}",
                String::from_utf8_lossy(&got)
            );
        }
        self.start_tls(domain, false).await
    }

    /// Only the TLS part of a login: connect and handshake (for STARTTLS: stream header,
    /// features, `<starttls/>`, `<proceed/>`, handshake). Close it with [`Conn::shutdown`].
    pub async fn tls_handshake(t: &Target, n: usize) -> Result<Conn> {
        match t.tls {
            TlsMode::None => bail!("a TLS handshake needs --tls starttls or --tls direct"),
            TlsMode::Direct => Conn::connect(t, n).await,
            TlsMode::StartTls => {
                let mut c = Conn::connect(t, n).await?;
                c.send(header(&t.domain).as_bytes()).await?;
                c.read_until(b"</stream:features>")
                    .await
                    .context("stream features")?;
                c.starttls(&t.domain).await
            }
        }
    }

    /// The negotiated TLS version, cipher suite and key exchange group, if on TLS.
    pub fn tls_info(&self) -> Option<String> {
        let Stream::Tls(s) = &self.stream else {
            return None;
        };
        let (_, c) = s.get_ref();
        Some(format!(
            "{} {} {}",
            c.protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            c.negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            c.negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
        ))
    }

    /// Connect, authenticate, bind a resource: a ready session.
    pub async fn login(t: &Target, n: usize, user: &str, password: &str) -> Result<Conn> {
        let mut c = Conn::open(t, n).await?;
        match t.mechanism {
            Mechanism::Plain => {
                let msg = B64.encode(format!("\0{user}\0{password}"));
                c.send(
                    format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{msg}</auth>").as_bytes(),
                )
                .await?;
                c.expect_success().await?;
            }
            m => {
                let hash = if m == Mechanism::ScramSha1 {
                    HashAlgo::Sha1
                } else {
                    HashAlgo::Sha256
                };
                // No channel binding ("n,,"): plain SCRAM works the same over TLS.
                let mut scram = ScramClient::new(hash, user, password, None);
                let first = B64.encode(scram.client_first());
                c.send(
                    format!(
                        "<auth xmlns='{NS_SASL}' mechanism='{}'>{first}</auth>",
                        m.name()
                    )
                    .as_bytes(),
                )
                .await?;
                let challenge = c.read_sasl().await?;
                let server_first = B64.decode(challenge.trim())?;
                let fin = scram
                    .client_final(&server_first)
                    .map_err(|e| anyhow!("SCRAM: {e}"))?;
                c.send(
                    format!("<response xmlns='{NS_SASL}'>{}</response>", B64.encode(fin))
                        .as_bytes(),
                )
                .await?;
                c.expect_success().await?;
            }
        }
        c.send(header(&t.domain).as_bytes()).await?;
        c.read_until(b"</stream:features>")
            .await
            .context("features after authentication")?;
        c.send(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>").await?;
        let reply = c.read_until(b"</iq>").await.context("resource binding")?;
        c.jid = text_after(&reply, b"<jid").ok_or_else(|| anyhow!("no JID bound"))?;
        Ok(c)
    }

    async fn expect_success(&mut self) -> Result<()> {
        let (which, got) = self.read_element(&["success", "failure"]).await?;
        if which != 0 {
            bail!("authentication failed: {}", String::from_utf8_lossy(&got));
        }
        Ok(())
    }

    /// The first complete element named one of `names` (`<name …/>` or
    /// `<name …>…</name>`), skipping what comes before it: which name, and its bytes.
    pub async fn read_element(&mut self, names: &[&str]) -> Result<(usize, Vec<u8>)> {
        loop {
            let hay = &self.buf[self.start..];
            let first = names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| find_tag(hay, n).map(|at| (at, i)))
                .min();
            if let Some((at, i)) = first {
                let rest = &hay[at..];
                if let Some(gt) = rest.iter().position(|b| *b == b'>') {
                    let end = if rest[gt - 1] == b'/' {
                        Some(gt + 1)
                    } else {
                        let close = format!("</{}>", names[i]);
                        find(rest, close.as_bytes()).map(|e| e + close.len())
                    };
                    if let Some(end) = end {
                        let out = rest[..end].to_vec();
                        self.start += at + end;
                        return Ok((i, out));
                    }
                }
            }
            self.fill().await?;
        }
    }

    async fn read_sasl(&mut self) -> Result<String> {
        let got = self
            .read_until(b"</challenge>")
            .await
            .context("SASL challenge")?;
        text_after(&got, b"<challenge").ok_or_else(|| anyhow!("empty challenge"))
    }

    async fn fill(&mut self) -> Result<()> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 65536 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
            .await
            .map_err(|_| anyhow!("timed out waiting for the server"))??;
        if n == 0 {
            bail!(
                "the server closed the connection: {}",
                String::from_utf8_lossy(&self.buf[self.start..])
            );
        }
        let new = self.buf.len().saturating_sub(16).max(self.start);
        self.buf.extend_from_slice(&chunk[..n]);
        // Only the new bytes (and a few before) can complete a stream error.
        if find(&self.buf[new..], b"</stream:error>").is_some()
            && find(&self.buf[self.start..], b"<stream:error").is_some()
        {
            bail!(
                "stream error: {}",
                String::from_utf8_lossy(&self.buf[self.start..])
            );
        }
        Ok(())
    }

    /// Everything up to and including `pat`.
    pub async fn read_until(&mut self, pat: &[u8]) -> Result<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.buf[self.start..], pat) {
                let end = self.start + at + pat.len();
                let out = self.buf[self.start..end].to_vec();
                self.start = end;
                return Ok(out);
            }
            self.fill().await?;
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Send initial presence and make sure the server has handled it (a ping round trip).
    pub async fn available(&mut self) -> Result<()> {
        self.send(b"<presence/><iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await?;
        self.wait_for_iq("sync").await
    }

    /// Skip everything up to the end of the IQ reply with this id (`<iq …/>` or
    /// `<iq …>…</iq>`, whatever the quoting).
    pub async fn wait_for_iq(&mut self, id: &str) -> Result<()> {
        self.iq_reply(id).await.map(|_| ())
    }

    /// Skip everything up to the end of the IQ reply with this id and return it, from its
    /// start tag to `/>` or `</iq>`: enough to tell a result from an error.
    pub async fn iq_reply(&mut self, id: &str) -> Result<Vec<u8>> {
        let pats = [format!("id='{id}'"), format!("id=\"{id}\"")];
        let overlap = pats[0].len() + "</iq>".len();
        // What was searched already (offsets from `self.start`, which a fill keeps valid),
        // so a large reply arriving in many reads is scanned once, not once per read.
        let mut searched: usize = 0;
        let mut found = None;
        loop {
            let hay = &self.buf[self.start..];
            if found.is_none() {
                let from = searched.saturating_sub(overlap);
                found = pats
                    .iter()
                    .filter_map(|p| find(&hay[from..], p.as_bytes()))
                    .min()
                    .map(|at| at + from);
            }
            if let Some(at) = found {
                // The attributes before the id belong to the reply too (type may come first).
                let tag = hay[..at].iter().rposition(|b| *b == b'<').unwrap_or(at);
                let rest = &hay[at..];
                if let Some(gt) = rest.iter().position(|b| *b == b'>') {
                    let end = if gt > 0 && rest[gt - 1] == b'/' {
                        Some(gt + 1)
                    } else {
                        let from = searched.saturating_sub(overlap).max(at) - at;
                        find(&rest[from..], b"</iq>").map(|e| from + e + b"</iq>".len())
                    };
                    if let Some(end) = end {
                        let out = hay[tag..at + end].to_vec();
                        self.start += at + end;
                        return Ok(out);
                    }
                }
            }
            searched = hay.len();
            self.fill().await?;
        }
    }

    /// Close the stream politely: `</stream:stream>`, the server's, then the transport
    /// (TLS close_notify and FIN).
    pub async fn close(mut self) -> Result<()> {
        self.send(b"</stream:stream>").await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.read_until(b"</stream:stream>"))
            .await;
        self.shutdown().await
    }

    /// End the transport without closing an XMPP stream (after [`Conn::tls_handshake`]):
    /// TLS close_notify and FIN, then wait (at most 2 s) for the server to close its side,
    /// so the server has done all its work for this connection when this returns.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
        let mut chunk = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(n) = self.stream.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// Split into a reader of message bodies and a writer.
    pub fn split(self) -> (Reader, Writer) {
        let buf = self.buf[self.start..].to_vec();
        let (r, w): (Box<dyn AsyncRead + Send + Unpin>, Writer) = match self.stream {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r), Box::new(w))
            }
        };
        (Reader { r, buf }, w)
    }
}

/// Reads `<message>` stanzas and hands out their bodies.
pub struct Reader {
    r: Box<dyn AsyncRead + Send + Unpin>,
    buf: Vec<u8>,
}

impl Reader {
    /// The bodies of the complete messages received so far, waiting for at least one.
    /// `Ok(false)` when the stream ended.
    pub async fn bodies(&mut self, out: &mut Vec<String>) -> Result<bool> {
        loop {
            let mut consumed = 0;
            while let Some(end) = find(&self.buf[consumed..], b"</message>") {
                let stanza = &self.buf[consumed..consumed + end];
                if let Some(b) = text_after(stanza, b"<body") {
                    out.push(b);
                }
                consumed += end + b"</message>".len();
            }
            if consumed > 0 {
                self.buf.drain(..consumed);
            }
            if !out.is_empty() {
                return Ok(true);
            }
            let mut chunk = [0u8; 65536];
            let n = self.r.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A chat message whose body carries the send time.
pub fn message(to: &str, id: u64, sent_us: u64) -> String {
    format!("<message to='{to}' type='chat' id='m{id}'><body>{sent_us}</body></message>")
}

/// A groupchat message to a room whose body carries the send time and the message's
/// sequence number (`SENT_US SEQ`).
pub fn groupchat(room: &str, seq: u64, sent_us: u64) -> String {
    format!(
        "<message to='{room}' type='groupchat' id='g{seq}'><body>{sent_us} {seq}</body></message>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_only_whole() {
        assert_eq!(
            find_tag(b"<proceeds/><proceed xmlns='x'/>", "proceed"),
            Some(11)
        );
        assert_eq!(find_tag(b"<success>", "success"), Some(0));
        assert_eq!(find_tag(b"<success", "success"), None);
        assert_eq!(find_tag(b"<failure/>", "success"), None);
    }

    #[test]
    fn tls_modes_parse() {
        for m in [TlsMode::None, TlsMode::StartTls, TlsMode::Direct] {
            assert_eq!(TlsMode::parse(m.name()), Some(m));
        }
        assert_eq!(TlsMode::parse("STARTTLS"), Some(TlsMode::StartTls));
        assert_eq!(TlsMode::parse("tls"), None);
    }

    #[test]
    fn tls_settings_build() {
        let c = tls_config(true);
        assert_eq!(c.alpn_protocols, vec![b"xmpp-client".to_vec()]);
        assert!(tls_config(false).alpn_protocols.is_empty());
    }
}
