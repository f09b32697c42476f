//! Server-to-server authentication by certificate (SASL EXTERNAL, XEP-0178): a contest
//! LAN's own CA signs the certificates of `a.test` and `b.test`, both servers trust it
//! (`[s2s] ca_file`), and their links need no dialback. A certificate that does not name
//! the peer's domain, or that no trusted CA signed, leaves the peer with dialback.

use minidom::Element;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rookery_server::Config;
use rookery_server::s2s::Authentication;
use rookery_tests::TestServer;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// The LAN's CA and the certificates it issues, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, for a hand-written peer.
struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Contest LAN CA");
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn params(names: &[&str]) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params
    }

    /// A certificate for `names` signed by the CA; (certificate file, key file).
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = Self::params(names).signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{file}.pem")),
            self.dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// The same, in memory, signed by the CA or by the certificate itself.
    fn identity(&self, names: &[&str], self_signed: bool) -> Identity {
        let key = KeyPair::generate().unwrap();
        let params = Self::params(names);
        let cert = if self_signed {
            params.self_signed(&key).unwrap()
        } else {
            params.signed_by(&key, &self.issuer).unwrap()
        };
        Identity {
            certs: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// a.test and b.test federating over loopback, each configured by `setup` (which sees its
/// domain in `hosts`), with alice on a and bob on b.
async fn alice_and_bob(setup: impl Fn(&mut Config)) -> (TestServer, TestServer) {
    let (a, b) = TestServer::federated("a.test", "b.test", setup).await;
    a.add_user("alice@a.test", "a-pass").await;
    b.add_user("bob@b.test", "b-pass").await;
    (a, b)
}

/// Log in and send initial presence. The client takes any certificate: some servers here
/// show one that is not for their domain, and c2s is not what these tests are about.
async fn online(server: &TestServer, jid: &str, password: &str) -> rookery_client::Client {
    let mut config = server.client_config(jid, password);
    config.ca_pem = None;
    config.insecure = true;
    config.resource = Some("r".into());
    let mut c = rookery_client::Client::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{jid} logs in: {e}"));
    c.send_presence().await.unwrap();
    let me = c.jid().to_owned();
    c.recv_where(|e| e.name() == "presence" && e.attr("from") == Some(me.as_str()))
        .await
        .unwrap();
    c
}

/// Use the certificate at `files` and trust the LAN's CA.
fn certificate(c: &mut Config, pki: &Pki, files: (PathBuf, PathBuf)) {
    c.tls.cert = Some(files.0);
    c.tls.key = Some(files.1);
    c.s2s.ca_file = Some(pki.ca_file());
}

/// alice and bob write to each other; both messages arrive.
async fn alice_and_bob_talk(a: &TestServer, b: &TestServer) {
    let mut alice = online(a, "alice@a.test", "a-pass").await;
    let mut bob = online(b, "bob@b.test", "b-pass").await;
    alice
        .send_message("bob@b.test", "hello from a")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("alice@a.test/r"));
    assert_eq!(body(&m), "hello from a");
    bob.send_message("alice@a.test/r", "hello from b")
        .await
        .unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("bob@b.test/r"));
    assert_eq!(body(&m), "hello from b");
}

/// The body of a message, in `jabber:client` or (as a peer reads it) `jabber:server`.
fn body(m: &Element) -> String {
    m.children()
        .find(|c| c.name() == "body")
        .expect("a body")
        .text()
}

#[tokio::test]
async fn servers_with_certificates_from_a_trusted_ca_federate_without_dialback() {
    let pki = Pki::new();
    let (a_files, b_files) = (pki.issue("a", &["a.test"]), pki.issue("b", &["b.test"]));
    let (a, b) = alice_and_bob(|c| {
        // Strict: each side also validates the other's server certificate with the CA.
        c.s2s.accept_self_signed = false;
        let files = if c.hosts[0] == "a.test" {
            &a_files
        } else {
            &b_files
        };
        certificate(c, &pki, files.clone());
    })
    .await;

    alice_and_bob_talk(&a, &b).await;

    // Each link was authenticated by its certificate, not by dialback.
    let (a_s2s, b_s2s) = (a.server.s2s(), b.server.s2s());
    assert_eq!(
        a_s2s.authenticated_by("a.test", "b.test"),
        Some(Authentication::SaslExternal)
    );
    assert_eq!(
        b_s2s.authenticated_by("b.test", "a.test"),
        Some(Authentication::SaslExternal)
    );
}

#[tokio::test]
async fn a_certificate_for_another_domain_leaves_dialback_and_chat_still_works() {
    let pki = Pki::new();
    // a.test shows a certificate from the trusted CA, but for c.test.
    let (a_files, b_files) = (pki.issue("a", &["c.test"]), pki.issue("b", &["b.test"]));
    let (a, b) = alice_and_bob(|c| {
        // b must still reach a to check dialback keys: a's certificate is not a.test's.
        c.s2s.accept_self_signed = true;
        let files = if c.hosts[0] == "a.test" {
            &a_files
        } else {
            &b_files
        };
        certificate(c, &pki, files.clone());
    })
    .await;

    alice_and_bob_talk(&a, &b).await;

    // b did not take a's certificate for a.test: a proved itself with dialback. b's own
    // certificate is good, so its link to a needed none.
    assert_eq!(
        a.server.s2s().authenticated_by("a.test", "b.test"),
        Some(Authentication::Dialback)
    );
    assert_eq!(
        b.server.s2s().authenticated_by("b.test", "a.test"),
        Some(Authentication::SaslExternal)
    );
}

#[tokio::test]
async fn a_self_signed_server_uses_dialback_even_where_self_signed_certificates_are_accepted() {
    let pki = Pki::new();
    let b_files = pki.issue("b", &["b.test"]);
    let (a, b) = alice_and_bob(|c| {
        c.s2s.accept_self_signed = true;
        c.s2s.ca_file = Some(pki.ca_file());
        if c.hosts[0] == "b.test" {
            certificate(c, &pki, b_files.clone());
        }
        // a.test keeps the certificate it generates for itself.
    })
    .await;

    alice_and_bob_talk(&a, &b).await;

    assert_eq!(
        a.server.s2s().authenticated_by("a.test", "b.test"),
        Some(Authentication::Dialback)
    );
    assert_eq!(
        b.server.s2s().authenticated_by("b.test", "a.test"),
        Some(Authentication::SaslExternal)
    );
}

#[tokio::test]
async fn a_peer_is_told_why_its_certificate_does_not_authenticate_it() {
    let pki = Pki::new();
    let (_a, b) = alice_and_bob(|c| {
        let files = pki.issue(&c.hosts[0], &[&c.hosts[0]]);
        certificate(c, &pki, files);
    })
    .await;
    let addr = b.s2s.unwrap();

    // mallory claims a.test with a self-signed certificate for it: b does not offer
    // EXTERNAL, and refuses it when asked anyway.
    let forged = pki.identity(&["a.test"], true);
    let (mut mallory, features) = Peer::connect(addr, "a.test", "b.test", Some(forged)).await;
    assert!(!offers_external(&features), "{}", String::from(&features));
    mallory.auth_external("a.test").await;
    let failure = mallory.next().await.expect("an answer");
    assert!(failure.is("failure", SASL), "{}", String::from(&failure));
    assert!(failure.has_child("not-authorized", SASL));
    let text = failure.get_child("text", SASL).expect("a reason").text();
    assert!(
        text.contains("not issued by a CA this server trusts"),
        "{text}"
    );
    // The stream is not authenticated.
    mallory
        .send(b"<message from='alice@a.test/x' to='bob@b.test'><body>I am alice</body></message>")
        .await;
    let said = mallory.read_to_close().await;
    assert!(said.contains("<invalid-from"), "{said}");

    // A certificate from the trusted CA, but for c.test.
    let other = pki.identity(&["c.test"], false);
    let (mut mallory, features) = Peer::connect(addr, "a.test", "b.test", Some(other)).await;
    assert!(!offers_external(&features));
    mallory.auth_external("a.test").await;
    let failure = mallory.next().await.unwrap();
    assert!(
        failure.has_child("not-authorized", SASL),
        "{}",
        String::from(&failure)
    );
    let text = failure.get_child("text", SASL).unwrap().text();
    assert!(text.contains("not valid for a.test"), "{text}");

    // No certificate at all.
    let (mut mallory, _) = Peer::connect(addr, "a.test", "b.test", None).await;
    mallory.auth_external("=").await;
    let failure = mallory.next().await.unwrap();
    assert!(
        failure.has_child("not-authorized", SASL),
        "{}",
        String::from(&failure)
    );
    let text = failure.get_child("text", SASL).unwrap().text();
    assert!(text.contains("no certificate"), "{text}");
}

#[tokio::test]
async fn a_peer_with_a_good_certificate_is_authenticated_and_its_stanzas_delivered() {
    let pki = Pki::new();
    let (_a, b) = alice_and_bob(|c| {
        let files = pki.issue(&c.hosts[0], &[&c.hosts[0]]);
        certificate(c, &pki, files);
    })
    .await;
    let mut bob = online(&b, "bob@b.test", "b-pass").await;

    // A peer speaking for a.test with a.test's certificate: EXTERNAL is offered beside
    // dialback.
    let good = pki.identity(&["a.test"], false);
    let (mut peer, features) = Peer::connect(b.s2s.unwrap(), "a.test", "b.test", Some(good)).await;
    assert!(offers_external(&features), "{}", String::from(&features));
    assert!(features.has_child("dialback", "urn:xmpp:features:dialback"));

    // Asking for another domain than the stream's is refused; then it succeeds.
    peer.auth_external("c.test").await;
    let failure = peer.next().await.unwrap();
    assert!(
        failure.has_child("invalid-authzid", SASL),
        "{}",
        String::from(&failure)
    );
    peer.auth_external("a.test").await;
    let success = peer.next().await.unwrap();
    assert!(success.is("success", SASL), "{}", String::from(&success));

    // The stream restarts with nothing more to negotiate, and stanzas from a.test pass.
    let features = peer.open("a.test", "b.test").await;
    assert_eq!(
        features.children().count(),
        0,
        "{}",
        String::from(&features)
    );
    peer.send(b"<message from='alice@a.test/x' to='bob@b.test' type='chat'><body>by certificate</body></message>")
        .await;
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("alice@a.test/x"));
    assert_eq!(body(&m), "by certificate");
}

#[tokio::test]
async fn when_the_peer_refuses_external_the_link_falls_back_to_dialback() {
    let pki = Pki::new();
    let a_files = pki.issue("a", &["a.test"]);
    let (a, _b) = alice_and_bob(|c| {
        c.s2s.accept_self_signed = true;
        certificate(c, &pki, a_files.clone());
    })
    .await;
    let mut alice = online(&a, "alice@a.test", "a-pass").await;

    // refusing.test offers EXTERNAL, then refuses it; with dialback offered on the same
    // stream, a asks for dialback there. Without, it connects again for dialback.
    for dialback_offered in [true, false] {
        let domain = format!("refusing{}.test", u8::from(dialback_offered));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        a.server
            .s2s()
            .set_static_host(&domain, &listener.local_addr().unwrap().to_string());
        let identity = pki.identity(&[&domain], false);
        let d = domain.clone();
        let refusing = tokio::spawn(async move {
            refuse_external_then_accept_dialback(listener, &d, identity, dialback_offered).await
        });
        alice
            .send_message(&format!("carol@{domain}"), "do you read me?")
            .await
            .unwrap();
        let m = refusing.await.unwrap();
        assert_eq!(m.attr("from"), Some("alice@a.test/r"));
        assert_eq!(body(&m), "do you read me?");
        assert_eq!(
            a.server.s2s().authenticated_by("a.test", &domain),
            Some(Authentication::Dialback)
        );
    }
}

/// Play a receiving server that offers EXTERNAL and refuses it, then takes any dialback
/// key (it does not check it: the test is about the initiating side): the first message
/// it receives.
async fn refuse_external_then_accept_dialback(
    listener: TcpListener,
    domain: &str,
    identity: Identity,
    dialback_offered: bool,
) -> Element {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(identity.certs, identity.key)
    .unwrap();
    let config = Arc::new(config);
    let dialback = if dialback_offered {
        "<dialback xmlns='urn:xmpp:features:dialback'/>"
    } else {
        ""
    };
    let mut streams = 0;
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        streams += 1;
        let mut peer = Peer::new(Box::new(tcp));
        peer.expect_header().await;
        peer.send(receiving_header(domain, "s1").as_bytes()).await;
        peer.send(b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").await;
        assert_eq!(peer.next().await.unwrap().name(), "starttls");
        peer.send(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let plain = std::mem::replace(&mut peer.io, Box::new(tokio::io::empty()));
        let tls = tokio_rustls::TlsAcceptor::from(config.clone())
            .accept(plain)
            .await
            .unwrap();
        peer.io = Box::new(tls);
        peer.parser.reset();
        peer.expect_header().await;
        peer.send(receiving_header(domain, "s2").as_bytes()).await;
        let external = if streams == 1 {
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>"
        } else {
            ""
        };
        peer.send(format!("<stream:features>{external}{dialback}</stream:features>").as_bytes())
            .await;
        let mut e = peer.next().await.expect("a request");
        if e.is("auth", SASL) {
            assert_eq!(e.attr("mechanism"), Some("EXTERNAL"));
            peer.send(
                b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
            )
            .await;
            match peer.next().await {
                Some(next) => e = next,
                // It closed this stream to start another.
                None => continue,
            }
        }
        assert!(
            e.is("result", "jabber:server:dialback"),
            "{}",
            String::from(&e)
        );
        assert_eq!(e.attr("from"), Some("a.test"));
        assert_eq!(
            streams,
            if dialback_offered { 1 } else { 2 },
            "dialback on the same stream only when offered there"
        );
        peer.send(format!("<db:result from='{domain}' to='a.test' type='valid'/>").as_bytes())
            .await;
        return peer.next().await.expect("a message");
    }
}

fn receiving_header(from: &str, id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' id='{id}' version='1.0'>"
    )
}

fn offers_external(features: &Element) -> bool {
    features.get_child("mechanisms", SASL).is_some_and(|m| {
        m.children()
            .any(|c| c.name() == "mechanism" && c.text() == "EXTERNAL")
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A hand-written server stream, either end.
struct Peer {
    io: Box<dyn Io>,
    parser: rookery_xml::StreamParser,
    events: std::collections::VecDeque<rookery_xml::StreamEvent>,
    transcript: Vec<u8>,
}

impl Peer {
    fn new(io: Box<dyn Io>) -> Peer {
        Peer {
            io,
            parser: rookery_xml::StreamParser::new(Default::default()),
            events: Default::default(),
            transcript: Vec::new(),
        }
    }

    /// Connect as `from` to `to`, do STARTTLS (trusting any server certificate, showing
    /// `identity` if any): the stream and its features after TLS.
    async fn connect(
        addr: SocketAddr,
        from: &str,
        to: &str,
        identity: Option<Identity>,
    ) -> (Peer, Element) {
        let mut p = Peer::new(Box::new(TcpStream::connect(addr).await.unwrap()));
        let features = p.open(from, to).await;
        assert!(features.has_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
        p.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        assert_eq!(p.next().await.expect("proceed").name(), "proceed");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(rookery_client::accept_any_certificate(&provider));
        let config = match identity {
            Some(id) => builder.with_client_auth_cert(id.certs, id.key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let plain = std::mem::replace(&mut p.io, Box::new(tokio::io::empty()));
        let name = rustls::pki_types::ServerName::try_from(to.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, plain)
            .await
            .expect("TLS");
        p.io = Box::new(tls);
        let features = p.open(from, to).await;
        (p, features)
    }

    /// Open a (new) stream: the server's features.
    async fn open(&mut self, from: &str, to: &str) -> Element {
        self.parser.reset();
        self.events.clear();
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>"
        );
        self.send(header.as_bytes()).await;
        self.expect_header().await;
        let features = self.next().await.expect("features");
        assert_eq!(features.name(), "features", "{}", String::from(&features));
        features
    }

    /// `<auth mechanism='EXTERNAL'>` with `authzid` ("=" for none).
    async fn auth_external(&mut self, authzid: &str) {
        let data = match authzid {
            "=" => "=",
            "a.test" => "YS50ZXN0",
            "c.test" => "Yy50ZXN0",
            other => panic!("no base64 for {other} here"),
        };
        let auth = format!("<auth xmlns='{SASL}' mechanism='EXTERNAL'>{data}</auth>");
        self.send(auth.as_bytes()).await;
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.io.write_all(bytes).await;
        let _ = self.io.flush().await;
    }

    async fn event(&mut self) -> Option<rookery_xml::StreamEvent> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            let n = match tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut buf))
                .await
                .expect("nothing was said within 5 s")
            {
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

    async fn expect_header(&mut self) {
        match self.event().await {
            Some(rookery_xml::StreamEvent::Header(h)) => {
                assert_eq!(h.default_ns.as_deref(), Some("jabber:server"));
            }
            other => panic!("expected a header, got {other:?}"),
        }
    }

    /// The next element; `None` when the stream or the connection ends.
    async fn next(&mut self) -> Option<Element> {
        match self.event().await? {
            rookery_xml::StreamEvent::Stanza(e) => Some(e),
            _ => None,
        }
    }

    /// Everything said until the connection closed.
    async fn read_to_close(&mut self) -> String {
        while self.event().await.is_some() {}
        String::from_utf8_lossy(&self.transcript).into_owned()
    }
}
