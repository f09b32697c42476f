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

pub use minidom::Element;
pub use rookery_client;

/// A running server for one test.
pub struct TestServer {
    pub server: Server,
    /// STARTTLS c2s listener.
    pub c2s: SocketAddr,
    /// Direct-TLS c2s listener.
    pub c2s_tls: SocketAddr,
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
