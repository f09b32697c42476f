//! A light client codec: just enough XMPP to log in and exchange messages, with no XML
//! tree. Replies are found by scanning for the closing tags we expect, which is cheap and
//! works with any server's serialisation (quote style, prefixes, attribute order).

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rookery_sasl::{HashAlgo, ScramClient};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where to connect and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The XMPP domain (`localhost`).
    pub domain: String,
    /// Local source addresses to spread connections over (127.0.0.x), for more than one
    /// address's worth of ephemeral ports.
    pub sources: Vec<IpAddr>,
    pub mechanism: Mechanism,
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

/// One logged-in connection.
pub struct Conn {
    stream: TcpStream,
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
    hay.windows(needle.len()).position(|w| w == needle)
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

impl Conn {
    /// Connect from the `n`th source address.
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
            sock.bind(SocketAddr::new(src, 0))?;
            sock.connect(t.addr).await?
        };
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            start: 0,
            jid: String::new(),
            timeout: t.timeout,
        })
    }

    /// Connect, authenticate, bind a resource: a ready session.
    pub async fn login(t: &Target, n: usize, user: &str, password: &str) -> Result<Conn> {
        let mut c = Conn::connect(t, n).await?;
        c.send(header(&t.domain).as_bytes()).await?;
        c.read_until(b"</stream:features>")
            .await
            .context("stream features")?;
        match t.mechanism {
            Mechanism::Plain => {
                let msg = B64.encode(format!("\0{user}\0{password}"));
                c.send(
                    format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")
                        .as_bytes(),
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
                let mut scram = ScramClient::new(hash, user, password, None);
                let first = B64.encode(scram.client_first());
                c.send(
                    format!(
                        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{first}</auth>",
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
                    format!(
                        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                        B64.encode(fin)
                    )
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
        // `<success .../>` or `<success>…</success>`; a failure ends with `</failure>`.
        loop {
            if let Some(at) = find(&self.buf[self.start..], b"<success") {
                let from = self.start + at;
                let rest = &self.buf[from..];
                let end = if let Some(e) = find(rest, b"/>").filter(|e| !rest[..*e].contains(&b'>'))
                {
                    e + 2
                } else if let Some(e) = find(rest, b"</success>") {
                    e + b"</success>".len()
                } else {
                    self.fill().await?;
                    continue;
                };
                self.start = from + end;
                return Ok(());
            }
            if let Some(at) = find(&self.buf[self.start..], b"</failure>") {
                let text =
                    String::from_utf8_lossy(&self.buf[self.start..self.start + at]).into_owned();
                bail!("authentication failed: {text}");
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
        self.buf.extend_from_slice(&chunk[..n]);
        if find(&self.buf[self.start..], b"<stream:error").is_some()
            && find(&self.buf[self.start..], b"</stream:error>").is_some()
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
        let pats = [format!("id='{id}'"), format!("id=\"{id}\"")];
        loop {
            let hay = &self.buf[self.start..];
            if let Some(at) = pats.iter().filter_map(|p| find(hay, p.as_bytes())).min() {
                let rest = &hay[at..];
                if let Some(gt) = rest.iter().position(|b| *b == b'>') {
                    if gt > 0 && rest[gt - 1] == b'/' {
                        self.start += at + gt + 1;
                        return Ok(());
                    }
                    if let Some(e) = find(rest, b"</iq>") {
                        self.start += at + e + b"</iq>".len();
                        return Ok(());
                    }
                }
            }
            self.fill().await?;
        }
    }

    /// Close the stream politely.
    pub async fn close(mut self) -> Result<()> {
        self.send(b"</stream:stream>").await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.read_until(b"</stream:stream>"))
            .await;
        Ok(())
    }

    /// Split into a reader of message bodies and a writer.
    pub fn split(self) -> (Reader, tokio::net::tcp::OwnedWriteHalf) {
        let (r, w) = self.stream.into_split();
        (
            Reader {
                r,
                buf: self.buf[self.start..].to_vec(),
            },
            w,
        )
    }
}

/// Reads `<message>` stanzas and hands out their bodies.
pub struct Reader {
    r: tokio::net::tcp::OwnedReadHalf,
    buf: Vec<u8>,
}

impl Reader {
    /// The bodies of the complete messages received so far, waiting for at least one.
    /// `Ok(None)` when the stream ended.
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
