//! Server-to-server federation: two servers on loopback, `a.test` and `b.test`, each
//! reaching the other through its static host map, over STARTTLS with self-signed
//! certificates accepted and dialback (XEP-0220) as proof of identity.

use minidom::Element;
use rookery_tests::{TestServer, error_condition, stanza};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const ROSTER: &str = "jabber:iq:roster";

/// a.test with alice, b.test with bob.
async fn alice_and_bob() -> (TestServer, TestServer) {
    let (a, b) = TestServer::federated("a.test", "b.test", |_| {}).await;
    a.add_user("alice@a.test", "a-pass").await;
    b.add_user("bob@b.test", "b-pass").await;
    (a, b)
}

fn is_presence(ty: &str, from: &str) -> impl Fn(&Element) -> bool {
    let (ty, from) = (ty.to_owned(), from.to_owned());
    move |e: &Element| {
        e.name() == "presence"
            && e.attr("type").unwrap_or("available") == ty
            && e.attr("from")
                .is_some_and(|f| f == from || f.starts_with(&format!("{from}/")))
    }
}

/// The subscription state of `contact` in the next roster push for it (acknowledged).
async fn push_for(c: &mut rookery_client::Client, contact: &str) -> String {
    let contact = contact.to_owned();
    let iq = c
        .recv_where(move |e| {
            e.name() == "iq"
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .and_then(|i| i.attr("jid"))
                    == Some(contact.as_str())
        })
        .await
        .expect("roster push");
    let id = iq.attr("id").unwrap_or("").to_owned();
    c.send(stanza(&format!("<iq type='result' id='{id}'/>")))
        .await
        .unwrap();
    let item = iq
        .get_child("query", ROSTER)
        .unwrap()
        .get_child("item", ROSTER)
        .unwrap();
    item.attr("subscription").unwrap().to_owned()
}

/// The subscription state of `contact` in `c`'s roster (fetched).
async fn subscription(c: &mut rookery_client::Client, contact: &str) -> String {
    let r = c.roster_get().await.unwrap();
    let q = r.get_child("query", ROSTER).expect("a roster");
    q.children()
        .find(|i| i.attr("jid") == Some(contact))
        .and_then(|i| i.attr("subscription"))
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test]
async fn alice_and_bob_chat_across_servers() {
    let (a, b) = alice_and_bob().await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;

    // alice writes to bob's bare JID on the other server.
    alice
        .send_message("bob@b.test", "hello from a")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("alice@a.test/laptop"));
    assert_eq!(m.attr("type"), Some("chat"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "hello from a"
    );

    // bob answers her full JID; the answer travels on b's own link to a.
    bob.send_message("alice@a.test/laptop", "hello from b")
        .await
        .unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("bob@b.test/phone"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "hello from b"
    );

    // Both links are authenticated now, and later messages reuse them.
    assert_eq!(a.server.s2s().connected("a.test"), vec!["b.test"]);
    assert_eq!(b.server.s2s().connected("b.test"), vec!["a.test"]);
    for i in 0..20 {
        alice
            .send_message("bob@b.test", &format!("n{i}"))
            .await
            .unwrap();
    }
    for i in 0..20 {
        let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            format!("n{i}"),
            "messages arrive in order"
        );
    }
}

#[tokio::test]
async fn a_message_sent_while_the_link_is_set_up_waits_for_it_and_offline_storage_works() {
    let (a, b) = alice_and_bob().await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    // bob is offline: b stores the message; several sent at once queue on the new link.
    for i in 0..3 {
        alice
            .send_message("bob@b.test", &format!("m{i}"))
            .await
            .unwrap();
    }
    alice
        .expect_silence(Duration::from_millis(500))
        .await
        .expect("no bounce for an offline user of a remote server");
    let mut bob = b.login("bob@b.test", "b-pass", "phone").await;
    bob.send_presence().await.unwrap();
    for i in 0..3 {
        let m = bob
            .recv_where(|e| e.name() == "message")
            .await
            .expect("offline message");
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            format!("m{i}")
        );
    }
}

#[tokio::test]
async fn iqs_reach_the_remote_server_and_a_remote_users_resource() {
    let (a, b) = alice_and_bob().await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;

    // alice asks b.test itself for its software version.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='b.test'><query xmlns='jabber:iq:version'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("from"), Some("b.test"));
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "Rookery"
    );

    // ... and pings it (XEP-0199).
    let r = alice
        .iq(stanza(
            "<iq type='get' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));

    // alice pings bob's resource; bob's client answers.
    alice
        .send(stanza(
            "<iq type='get' id='p1' to='bob@b.test/phone'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    let ping = bob.recv_where(|e| e.name() == "iq").await.unwrap();
    assert_eq!(ping.attr("from"), Some("alice@a.test/laptop"));
    assert_eq!(ping.attr("id"), Some("p1"));
    assert!(ping.has_child("ping", "urn:xmpp:ping"));
    bob.send(stanza(
        "<iq type='result' id='p1' to='alice@a.test/laptop'/>",
    ))
    .await
    .unwrap();
    let pong = alice
        .recv_where(|e| e.name() == "iq" && e.attr("id") == Some("p1"))
        .await
        .unwrap();
    assert_eq!(pong.attr("type"), Some("result"));
    assert_eq!(pong.attr("from"), Some("bob@b.test/phone"));

    // A resource that is not online answers service-unavailable, from b.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='bob@b.test/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
}

#[tokio::test]
async fn alice_and_bob_subscribe_to_each_other_across_servers_then_presence_flows() {
    let (a, b) = alice_and_bob().await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    alice.roster_get().await.unwrap();
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;
    bob.roster_get().await.unwrap();

    // alice asks to see bob's presence.
    alice
        .send(stanza("<presence type='subscribe' to='bob@b.test'/>"))
        .await
        .unwrap();
    assert_eq!(push_for(&mut alice, "bob@b.test").await, "none");
    let request = bob
        .recv_where(is_presence("subscribe", "alice@a.test"))
        .await
        .unwrap();
    assert_eq!(request.attr("from"), Some("alice@a.test"));

    // bob approves: alice's roster says "to", and bob's presence reaches her.
    bob.send(stanza("<presence type='subscribed' to='alice@a.test'/>"))
        .await
        .unwrap();
    assert_eq!(push_for(&mut bob, "alice@a.test").await, "from");
    assert_eq!(push_for(&mut alice, "bob@b.test").await, "to");
    alice
        .recv_where(is_presence("available", "bob@b.test"))
        .await
        .expect("bob's presence after the approval");

    // bob asks back, and alice approves.
    bob.send(stanza("<presence type='subscribe' to='alice@a.test'/>"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("subscribe", "bob@b.test"))
        .await
        .unwrap();
    alice
        .send(stanza("<presence type='subscribed' to='bob@b.test'/>"))
        .await
        .unwrap();
    bob.recv_where(is_presence("subscribed", "alice@a.test"))
        .await
        .unwrap();
    bob.recv_where(is_presence("available", "alice@a.test"))
        .await
        .expect("alice's presence after the approval");
    assert_eq!(subscription(&mut alice, "bob@b.test").await, "both");
    assert_eq!(subscription(&mut bob, "alice@a.test").await, "both");

    // Presence changes now flow both ways.
    alice
        .send(stanza("<presence><show>away</show></presence>"))
        .await
        .unwrap();
    let p = bob
        .recv_where(is_presence("available", "alice@a.test"))
        .await
        .unwrap();
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
    bob.send(stanza("<presence type='unavailable'/>"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("unavailable", "bob@b.test"))
        .await
        .expect("bob going offline");

    // A new session of bob's probes alice's presence on a, which answers.
    let mut bob2 = b.login("bob@b.test", "b-pass", "tablet").await;
    bob2.roster_get().await.unwrap();
    bob2.send_presence().await.unwrap();
    let p = bob2
        .recv_where(is_presence("available", "alice@a.test"))
        .await
        .expect("the probe answered across servers");
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
}

/// A free port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

#[tokio::test]
async fn an_unreachable_domain_bounces_remote_server_not_found_at_once() {
    let (a, _b) = alice_and_bob().await;
    a.server
        .s2s()
        .set_static_host("c.test", &closed_port().await.to_string());
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;

    let started = Instant::now();
    alice
        .send(stanza(
            "<message to='carol@c.test' id='m1' type='chat'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let bounce = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(bounce.attr("id"), Some("m1"));
    assert_eq!(bounce.attr("from"), Some("carol@c.test"));
    assert_eq!(error_condition(&bounce), "remote-server-not-found");
    assert!(started.elapsed() < Duration::from_secs(2));

    // While the backoff lasts, IQs bounce at once too, with the same reason.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='c.test'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "remote-server-not-found");
    let text = String::from(&r);
    assert!(text.contains("cannot connect to c.test"), "{text}");
}

#[tokio::test]
async fn a_server_that_never_answers_bounces_remote_server_timeout() {
    let (a, _b) = TestServer::federated("a.test", "b.test", |c| {
        c.s2s.connect_timeout_secs = 1;
    })
    .await;
    a.add_user("alice@a.test", "a-pass").await;
    // Accepts connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.server
        .s2s()
        .set_static_host("mute.test", &silent.local_addr().unwrap().to_string());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    let started = Instant::now();
    for i in 0..2 {
        alice
            .send(stanza(&format!(
                "<message to='dave@mute.test' id='t{i}'><body>hi</body></message>"
            )))
            .await
            .unwrap();
    }
    for i in 0..2 {
        let bounce = alice.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(bounce.attr("id"), Some(format!("t{i}").as_str()));
        assert_eq!(error_condition(&bounce), "remote-server-timeout");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    hold.abort();
}

#[tokio::test]
async fn an_idle_link_is_closed_and_the_next_stanza_opens_a_new_one() {
    let (a, b) = TestServer::federated("a.test", "b.test", |c| {
        c.s2s.idle_timeout_secs = 1;
    })
    .await;
    a.add_user("alice@a.test", "a-pass").await;
    b.add_user("bob@b.test", "b-pass").await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;
    alice.send_message("bob@b.test", "one").await.unwrap();
    bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(a.server.s2s().connected("a.test"), vec!["b.test"]);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.server.s2s().connected("a.test").is_empty() {
        assert!(Instant::now() < deadline, "the idle link was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.send_message("bob@b.test", "two").await.unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "two");
}

/// A hand-written peer: opens a server stream, does STARTTLS (trusting anything) and then
/// sends whatever the test says.
struct FakePeer {
    io: Box<dyn Io>,
    parser: rookery_xml::StreamParser,
    events: std::collections::VecDeque<rookery_xml::StreamEvent>,
    transcript: Vec<u8>,
    /// The id of the server's last stream header.
    id: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn server_header(from: &str, to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>"
    )
}

impl FakePeer {
    async fn connect(addr: SocketAddr, from: &str, to: &str) -> FakePeer {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut p = FakePeer {
            io: Box::new(tcp),
            parser: rookery_xml::StreamParser::new(Default::default()),
            events: Default::default(),
            transcript: Vec::new(),
            id: String::new(),
        };
        p.open(from, to).await;
        let features = p.next().await.expect("features");
        assert!(
            features.has_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls"),
            "{}",
            String::from(&features)
        );
        p.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let proceed = p.next().await.expect("proceed");
        assert_eq!(proceed.name(), "proceed");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(rookery_client::accept_any_certificate(&provider))
            .with_no_client_auth();
        let plain = std::mem::replace(&mut p.io, Box::new(tokio::io::empty()));
        let name = rustls::pki_types::ServerName::try_from(to.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, plain)
            .await
            .expect("TLS");
        p.io = Box::new(tls);
        p.parser.reset();
        p.events.clear();
        p.open(from, to).await;
        let features = p.next().await.expect("features after TLS");
        assert!(
            features.has_child("dialback", "urn:xmpp:features:dialback"),
            "{}",
            String::from(&features)
        );
        p
    }

    async fn open(&mut self, from: &str, to: &str) {
        self.send(server_header(from, to).as_bytes()).await;
        match self.event().await {
            Some(rookery_xml::StreamEvent::Header(h)) => self.id = h.id.unwrap_or_default(),
            other => panic!("expected a header, got {other:?}"),
        }
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
                .expect("the server said nothing within 5 s")
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

    async fn next(&mut self) -> Option<Element> {
        match self.event().await? {
            rookery_xml::StreamEvent::Stanza(e) => Some(e),
            _ => None,
        }
    }

    /// Everything the server sent until it closed the connection.
    async fn read_to_close(&mut self) -> String {
        while self.event().await.is_some() {}
        String::from_utf8_lossy(&self.transcript).into_owned()
    }
}

#[tokio::test]
async fn a_peer_that_did_not_verify_its_domain_is_refused() {
    let (_a, b) = alice_and_bob().await;
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;
    let addr = b.s2s.unwrap();

    // mallory claims to be a.test without dialback at all.
    let mut mallory = FakePeer::connect(addr, "a.test", "b.test").await;
    mallory
        .send(b"<message from='alice@a.test/x' to='bob@b.test' type='chat'><body>I am alice</body></message>")
        .await;
    let said = mallory.read_to_close().await;
    assert!(said.contains("<invalid-from"), "{said}");
    assert!(said.contains("not authenticated"), "{said}");

    // ... then with a made-up dialback key: b asks a, a says it is not its key.
    let mut mallory = FakePeer::connect(addr, "a.test", "b.test").await;
    mallory
        .send(b"<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = mallory.next().await.expect("a dialback answer");
    assert_eq!(answer.name(), "result");
    assert_eq!(
        answer.attr("type"),
        Some("invalid"),
        "{}",
        String::from(&answer)
    );
    mallory
        .send(b"<message from='alice@a.test/x' to='bob@b.test' type='chat'><body>I am alice</body></message>")
        .await;
    let said = mallory.read_to_close().await;
    assert!(said.contains("<invalid-from"), "{said}");

    bob.expect_silence(Duration::from_millis(300))
        .await
        .expect("bob heard nothing from mallory");
}

#[tokio::test]
async fn a_verified_peer_cannot_send_from_another_domain() {
    let (a, b) = alice_and_bob().await;
    let mut alice = a.online("alice@a.test", "a-pass", "laptop").await;
    let mut bob = b.online("bob@b.test", "b-pass", "phone").await;
    alice.send_message("bob@b.test", "hi").await.unwrap();
    bob.recv_where(|e| e.name() == "message").await.unwrap();

    // A peer that passes dialback as evil.test (b checks with evil.test's authoritative
    // server, which is this test's own listener and says "valid") still cannot speak
    // for a.test.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    b.server
        .s2s()
        .set_static_host("evil.test", &evil.local_addr().unwrap().to_string());
    let authoritative = tokio::spawn(async move {
        let (tcp, _) = evil.accept().await.unwrap();
        answer_verify_valid(tcp).await;
    });
    let mut mallory = FakePeer::connect(b.s2s.unwrap(), "evil.test", "b.test").await;
    mallory
        .send(b"<db:result from='evil.test' to='b.test'>any-key</db:result>")
        .await;
    let answer = mallory.next().await.expect("a dialback answer");
    assert_eq!(
        answer.attr("type"),
        Some("valid"),
        "{}",
        String::from(&answer)
    );
    authoritative.await.unwrap();

    // Stanzas from evil.test pass...
    mallory
        .send(b"<message from='m@evil.test/x' to='bob@b.test' type='chat'><body>from evil</body></message>")
        .await;
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("m@evil.test/x"));
    // ... stanzas from a.test end the stream.
    mallory
        .send(b"<message from='alice@a.test/x' to='bob@b.test' type='chat'><body>I am alice</body></message>")
        .await;
    let said = mallory.read_to_close().await;
    assert!(said.contains("<invalid-from"), "{said}");
    bob.expect_silence(Duration::from_millis(300))
        .await
        .expect("the forged stanza was not delivered");
}

/// Play evil.test's authoritative server for the one verification stream b opens: offer
/// STARTTLS (with a throwaway certificate), then say every key is valid.
async fn answer_verify_valid(tcp: TcpStream) {
    let key = throwaway_cert();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(key.0, key.1)
    .unwrap();
    let mut peer = ServerSide {
        io: Box::new(tcp),
        parser: rookery_xml::StreamParser::new(Default::default()),
        events: Default::default(),
    };
    // Plain stream: offer STARTTLS.
    peer.expect_header().await;
    peer.send(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='evil.test' id='e1' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").await;
    let e = peer.next().await.unwrap();
    assert_eq!(e.name(), "starttls");
    peer.send(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let plain = std::mem::replace(&mut peer.io, Box::new(tokio::io::empty()));
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config))
        .accept(plain)
        .await
        .unwrap();
    peer.io = Box::new(tls);
    peer.parser.reset();
    peer.expect_header().await;
    peer.send(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='evil.test' id='e2' version='1.0'><stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>").await;
    let verify = peer.next().await.unwrap();
    assert_eq!(verify.name(), "verify");
    assert_eq!(verify.attr("from"), Some("b.test"));
    assert_eq!(verify.attr("to"), Some("evil.test"));
    let id = verify.attr("id").unwrap();
    peer.send(
        format!("<db:verify from='evil.test' to='b.test' id='{id}' type='valid'/>").as_bytes(),
    )
    .await;
    // The verifier closes its stream.
    while peer.event().await.is_some() {}
}

/// A throwaway certificate for evil.test, made the way a server without `[tls]` makes
/// its own.
fn throwaway_cert() -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rookery_server::Config {
        hosts: vec!["evil.test".into()],
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    config.listen.s2s = None;
    rookery_server::tls::setup(&config).expect("a certificate");
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.path().join("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.path().join("key.pem")).unwrap();
    (certs, key)
}

/// The receiving end of a server stream, for playing an authoritative server.
struct ServerSide {
    io: Box<dyn Io>,
    parser: rookery_xml::StreamParser,
    events: std::collections::VecDeque<rookery_xml::StreamEvent>,
}

impl ServerSide {
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
                .ok()?
            {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
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

    async fn next(&mut self) -> Option<Element> {
        match self.event().await? {
            rookery_xml::StreamEvent::Stanza(e) => Some(e),
            _ => None,
        }
    }
}
