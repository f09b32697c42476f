//! The integration-test harness: a real server on `127.0.0.1:0` with a temporary data
//! directory (a real SQLite file, real TLS), and clients that talk to it over TCP.
//!
//! Tests live in `tests/` and read like conversations: "alice sends …, bob receives …".

use rookery_client::{Client, ClientConfig, Security};
use rookery_server::{Config, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod contest;
pub mod prosody;

pub use minidom::Element;
pub use rookery_client;

/// A running server for one test.
pub struct TestServer {
    pub server: Server,
    /// STARTTLS c2s listener.
    pub c2s: SocketAddr,
    /// Direct-TLS c2s listener.
    pub c2s_tls: SocketAddr,
    /// The XEP-0114 component listener, when components are configured.
    pub component: Option<SocketAddr>,
    /// The server-to-server listener, when federation is on (see [`TestServer::federated`]).
    pub s2s: Option<SocketAddr>,
    /// The generated CA certificate, PEM, for clients to trust.
    pub ca_pem: String,
    pub config: Config,
    dir: TempDir,
}

fn base_config(dir: &TempDir) -> Config {
    let mut c = Config {
        hosts: vec!["localhost".into(), "example.test".into()],
        admins: vec!["admin@localhost".into()],
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    c.listen.c2s = Some("127.0.0.1:0".parse().unwrap());
    c.listen.c2s_tls = Some("127.0.0.1:0".parse().unwrap());
    c.listen.component = Some("127.0.0.1:0".parse().unwrap());
    // No federation unless a test asks for it (`TestServer::federated`).
    c.listen.s2s = None;
    c.auth.failure_delay_ms = 50;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Start with the test defaults changed by `f`.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = base_config(&dir);
        f(&mut config);
        Self::boot(config, dir).await
    }

    async fn boot(config: Config, dir: TempDir) -> TestServer {
        let server = Server::open(config.clone()).await.expect("server opens");
        let listening = server.start().await.expect("server starts");
        let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap_or_default();
        TestServer {
            server,
            c2s: listening.c2s.expect("c2s listener"),
            c2s_tls: listening.c2s_tls.expect("c2s_tls listener"),
            component: listening.component,
            s2s: listening.s2s,
            ca_pem,
            config,
            dir,
        }
    }

    /// Stop the server and start a new one on the same data directory (new ports).
    pub async fn restart(self) -> TestServer {
        self.server.shutdown().await;
        let TestServer { config, dir, .. } = self;
        Self::boot(config, dir).await
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Create an account through the admin commands, as `rookery user add` does.
    pub async fn add_user(&self, jid: &str, password: &str) {
        let r = rookery_server::admin::execute(
            rookery_server::admin::AdminTarget::Running(&self.server),
            rookery_server::admin::AdminRequest::UserAdd {
                jid: jid.into(),
                password: password.into(),
            },
        )
        .await;
        assert!(r.ok, "creating {jid}: {}", r.message);
    }

    /// Client settings for a STARTTLS login that trusts the server's CA.
    pub fn client_config(&self, jid: &str, password: &str) -> ClientConfig {
        let mut c = ClientConfig::new(self.c2s, jid, password);
        c.security = Security::StartTls;
        c.ca_pem = Some(self.ca_pem.clone());
        c.timeout = Duration::from_secs(5);
        c
    }

    /// Log in over STARTTLS with the best mechanism, bound to `resource`.
    pub async fn login(&self, jid: &str, password: &str, resource: &str) -> Client {
        let mut c = self.client_config(jid, password);
        c.resource = Some(resource.into());
        Client::connect(c)
            .await
            .unwrap_or_else(|e| panic!("{jid} logs in: {e}"))
    }

    /// Log in, send initial presence and wait for its echo (RFC 6121 §4.2.2), so that what
    /// the client receives next is what others send.
    pub async fn online(&self, jid: &str, password: &str, resource: &str) -> Client {
        let mut c = self.login(jid, password, resource).await;
        c.send_presence().await.expect("initial presence");
        let me = c.jid().to_owned();
        c.recv_where(|e| e.name() == "presence" && e.attr("from") == Some(me.as_str()))
            .await
            .expect("own presence comes back");
        c
    }

    /// A raw TCP connection to the STARTTLS port, for hostile input.
    pub async fn raw(&self) -> Raw {
        Raw(TcpStream::connect(self.c2s).await.expect("connect"))
    }
}

/// A raw TCP connection.
pub struct Raw(pub TcpStream);

impl Raw {
    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may have closed already; what it said is read by `read_to_close`.
        let _ = self.0.write_all(bytes).await;
    }

    /// Everything the server sends until it closes the connection (at most 5 s).
    pub async fn read_to_close(&mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.0.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => panic!(
                    "the server did not close the connection; it sent: {}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The opening a client sends on the c2s port.
pub fn client_header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>"
    )
}

/// The condition of an error reply, after checking that it is one and that it explains
/// itself with a non-empty `<text/>`.
pub fn error_condition(e: &Element) -> String {
    assert_eq!(e.attr("type"), Some("error"), "{}", String::from(e));
    let err = e.get_child("error", "jabber:client").expect("an <error/>");
    let cond = err
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .expect("a condition");
    assert!(
        err.children()
            .any(|c| c.name() == "text" && !c.text().is_empty()),
        "errors explain themselves: {}",
        String::from(e)
    );
    cond.name().to_owned()
}

/// Build an element from XML text with `jabber:client` as the default namespace.
pub fn stanza(xml: &str) -> Element {
    let wrapped =
        if xml.contains("xmlns='jabber:client'") || xml.contains("xmlns=\"jabber:client\"") {
            xml.to_owned()
        } else {
            // Insert the default namespace on the root element.
            let end = xml.find(['>', ' ', '/']).unwrap_or(xml.len());
            format!("{} xmlns='jabber:client'{}", &xml[..end], &xml[end..])
        };
    wrapped
        .parse()
        .unwrap_or_else(|e| panic!("bad test XML {xml}: {e}"))
}

/// The side of an external component (XEP-0114), written out by hand so tests see
/// every byte: the handshake, then stanzas in `jabber:component:accept`.
pub struct ComponentStream {
    tcp: TcpStream,
    parser: rookery_xml::StreamParser,
    events: std::collections::VecDeque<rookery_xml::StreamEvent>,
    /// Everything the server sent since the handshake (or since the connection opened,
    /// until it succeeds), for checking stream errors.
    transcript: Vec<u8>,
}

/// The namespace of a component's stream.
pub const COMPONENT_NS: &str = "jabber:component:accept";

impl TestServer {
    /// Connect a component named `name` with `secret`; panics if the server refuses it.
    pub async fn component(&self, name: &str, secret: &str) -> ComponentStream {
        match ComponentStream::connect(self.component_addr(), name, secret).await {
            Ok(c) => c,
            Err(said) => panic!("component {name} was refused: {said}"),
        }
    }

    /// The component listener's address (components must be configured).
    pub fn component_addr(&self) -> SocketAddr {
        self.component
            .expect("no component listener: configure a [[component]]")
    }

    /// A raw TCP connection to the component port.
    pub async fn raw_component(&self) -> Raw {
        Raw(TcpStream::connect(self.component_addr())
            .await
            .expect("connect"))
    }
}

/// The opening a component sends: its own name in `to`, no version.
pub fn component_header(name: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NS}' xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>"
    )
}

impl ComponentStream {
    /// Open the stream and do the handshake. On refusal, everything the server sent until
    /// it closed the connection.
    pub async fn connect(
        addr: SocketAddr,
        name: &str,
        secret: &str,
    ) -> Result<ComponentStream, String> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut c = ComponentStream {
            tcp,
            parser: rookery_xml::StreamParser::new(rookery_xml::Limits::default()),
            events: Default::default(),
            transcript: Vec::new(),
        };
        c.send_raw(component_header(name).as_bytes()).await;
        let id = match c.next_event().await {
            Some(rookery_xml::StreamEvent::Header(h)) => h.id.unwrap_or_default(),
            _ => return Err(c.read_to_close().await),
        };
        let digest = rookery_server::component::handshake_digest(&id, secret);
        c.send_raw(format!("<handshake>{digest}</handshake>").as_bytes())
            .await;
        match c.next_event().await {
            Some(rookery_xml::StreamEvent::Stanza(e)) if e.is("handshake", COMPONENT_NS) => {
                c.transcript.clear();
                Ok(c)
            }
            _ => Err(c.read_to_close().await),
        }
    }

    /// Send a stanza. One built in `jabber:client` (e.g. with [`stanza`]) is written without
    /// a namespace, so it takes the stream's, as a component's stanzas do.
    pub async fn send(&mut self, stanza: &Element) {
        let bytes = rookery_xml::serialize(stanza, "jabber:client");
        self.send_raw(&bytes).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The server may have closed already; what it said is read by `read_to_close`.
        let _ = self.tcp.write_all(bytes).await;
    }

    /// The next stanza (panics after 5 s, or if the stream ends).
    pub async fn recv(&mut self) -> Element {
        match tokio::time::timeout(Duration::from_secs(5), self.next_event()).await {
            Ok(Some(rookery_xml::StreamEvent::Stanza(e))) => e,
            Ok(other) => panic!(
                "the component expected a stanza, got {other:?}; the server sent: {}",
                String::from_utf8_lossy(&self.transcript)
            ),
            Err(_) => panic!("the component received nothing within 5 s"),
        }
    }

    /// Nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(ev) = tokio::time::timeout(d, self.next_event()).await {
            panic!("the component expected silence, got {ev:?}");
        }
    }

    /// Everything the server sent (since the handshake) until it closed the connection.
    pub async fn read_to_close(&mut self) -> String {
        let mut buf = [0u8; 8192];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.transcript.extend_from_slice(&buf[..n]),
                Err(_) => panic!(
                    "the server did not close the component's connection; it sent: {}",
                    String::from_utf8_lossy(&self.transcript)
                ),
            }
        }
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    /// Close the stream and wait until the server closes its side.
    pub async fn close(mut self) -> String {
        self.send_raw(b"</stream:stream>").await;
        self.read_to_close().await
    }

    /// The next event, or `None` when the connection ends or the input is malformed.
    async fn next_event(&mut self) -> Option<rookery_xml::StreamEvent> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            let n = match self.tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            self.transcript.extend_from_slice(&buf[..n]);
            let mut out = Vec::new();
            let ok = self.parser.feed(&buf[..n], &mut out).is_ok();
            self.events.extend(out);
            if !ok && self.events.is_empty() {
                return None;
            }
        }
    }
}

/// Run the ad-hoc command `node` of `to` to its end as `c`, completing its form (if it
/// shows one) with `fields`; panics unless it completes.
pub async fn run_command(
    c: &mut Client,
    to: &str,
    node: &str,
    fields: &[(&str, &[&str])],
) -> rookery_client::CommandSession {
    let mut session = c
        .execute(to, node)
        .await
        .unwrap_or_else(|e| panic!("{node}: {e}"));
    if session.is_executing() {
        let mut form = session.form.clone().expect("a form").to_submission();
        for (var, values) in fields {
            form = form.set(var, values);
        }
        session
            .complete(c, Some(form))
            .await
            .unwrap_or_else(|e| panic!("{node}: {e}"));
    }
    assert!(session.is_completed(), "{node}: {session:?}");
    session
}

impl TestServer {
    /// Two servers federating over loopback: the first serves only `domain_a`, the second
    /// only `domain_b`; each has a server-to-server listener on a free port, knows the
    /// other's address (as `[s2s.hosts]` would say) and accepts its self-signed
    /// certificate. `f` changes both configurations.
    pub async fn federated(
        domain_a: &str,
        domain_b: &str,
        f: impl Fn(&mut Config),
    ) -> (TestServer, TestServer) {
        let configure = |domain: &str| {
            let domain = domain.to_owned();
            let f = &f;
            move |c: &mut Config| {
                c.hosts = vec![domain.clone()];
                c.admins = vec![format!("admin@{domain}")];
                c.listen.s2s = Some("127.0.0.1:0".parse().unwrap());
                c.s2s.accept_self_signed = true;
                f(c)
            }
        };
        let a = TestServer::start_with(configure(domain_a)).await;
        let b = TestServer::start_with(configure(domain_b)).await;
        let (a_addr, b_addr) = (a.s2s.expect("s2s listener"), b.s2s.expect("s2s listener"));
        a.server
            .s2s()
            .set_static_host(domain_b, &b_addr.to_string());
        b.server
            .s2s()
            .set_static_host(domain_a, &a_addr.to_string());
        (a, b)
    }
}
