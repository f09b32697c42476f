//! Tests against a scripted in-process fake server over a `tokio::io::duplex` pipe.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>";
const BIND_FEATURES: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    </stream:features>";

/// The server end of the pipe, with a tiny "read until this appears" helper.
struct Fake {
    io: BoxIo,
    seen: String,
}

impl Fake {
    /// Read until `needle` has arrived; returns everything up to and including it and
    /// keeps the rest for the next call.
    async fn expect(&mut self, needle: &str) -> String {
        loop {
            if let Some(pos) = self.seen.find(needle) {
                let end = pos + needle.len();
                let head = self.seen[..end].to_owned();
                self.seen.drain(..end);
                return head;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut buf))
                .await
                .expect("fake server timed out")
                .unwrap();
            assert!(
                n > 0,
                "client hung up while we waited for {needle:?}: {}",
                self.seen
            );
            self.seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    }

    async fn send(&mut self, s: &str) {
        self.io.write_all(s.as_bytes()).await.unwrap();
    }

    /// Read the client's header and answer with ours and `features`.
    async fn open_stream(&mut self, features: &str) {
        let header = self.expect("xml:lang='en'>").await;
        assert!(header.contains("to='localhost'"), "{header}");
        self.send(HEADER).await;
        self.send(features).await;
    }

    /// The base64 payload of the next `<name ...>payload</name>` from the client.
    async fn sasl_payload(&mut self, name: &str) -> Vec<u8> {
        let close = format!("</{name}>");
        let got = self.expect(&close).await;
        let start = got.rfind(&format!("<{name}")).expect("element start");
        let inner = &got[start..got.len() - close.len()];
        let text = &inner[inner.find('>').unwrap() + 1..];
        if text == "=" {
            Vec::new()
        } else {
            BASE64.decode(text).unwrap()
        }
    }
}

fn config(mechanism: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new("127.0.0.1:1".parse().unwrap(), "alice@localhost", "s3cret");
    c.security = Security::Plain;
    c.mechanism = mechanism.map(str::to_owned);
    c.timeout = Duration::from_secs(5);
    c
}

fn pipe() -> (BoxIo, Fake) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Box::new(a),
        Fake {
            io: Box::new(b),
            seen: String::new(),
        },
    )
}

/// A server script that accepts PLAIN and binds `alice@localhost/r1`, leaving the
/// stream open for the caller.
async fn plain_login(fake: &mut Fake) {
    fake.open_stream(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    )
    .await;
    let auth = fake.sasl_payload("auth").await;
    assert_eq!(auth, b"\0alice\0s3cret");
    fake.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    fake.open_stream(BIND_FEATURES).await;
    let bind = fake.expect("</iq>").await;
    assert!(
        bind.contains("id='bind1'") || bind.contains("id=\"bind1\""),
        "{bind}"
    );
    fake.send(
        "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@localhost/r1</jid></bind></iq>",
    )
    .await;
}

async fn logged_in() -> (Client, Fake) {
    let (io, mut fake) = pipe();
    let cfg = config(Some("PLAIN"));
    let (client, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
        plain_login(&mut fake)
    );
    (client.unwrap(), fake)
}

#[tokio::test]
async fn forced_plain_login_and_bind() {
    let (client, _fake) = logged_in().await;
    assert_eq!(client.jid(), "alice@localhost/r1");
    assert_eq!(client.mechanism(), "PLAIN");
}

#[tokio::test]
async fn plain_is_not_chosen_without_tls() {
    let (io, mut fake) = pipe();
    let cfg = config(None);
    let server = async {
        fake.open_stream(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
        server
    );
    match res {
        Err(ClientError::Protocol(m)) => assert!(m.contains("PLAIN needs TLS"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn sasl_failure_maps_to_auth_error() {
    let (io, mut fake) = pipe();
    let cfg = config(Some("PLAIN"));
    let server = async {
        fake.open_stream(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
        fake.sasl_payload("auth").await;
        fake.send(
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>\
             <text xml:lang='en'>wrong password</text></failure>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Authenticate),
        server
    );
    match res {
        Err(ClientError::Auth { condition, text }) => {
            assert_eq!(condition, "not-authorized");
            assert_eq!(text, "wrong password");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn stream_error_during_negotiation() {
    let (io, mut fake) = pipe();
    let cfg = config(None);
    let server = async {
        fake.expect("xml:lang='en'>").await;
        fake.send(HEADER).await;
        fake.send(
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text>\
             </stream:error></stream:stream>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
        server
    );
    match res {
        Err(ClientError::Stream { condition, text }) => {
            assert_eq!(condition, "host-unknown");
            assert_eq!(text, "no such host");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn bind_error() {
    let (io, mut fake) = pipe();
    let mut cfg = config(Some("PLAIN"));
    cfg.resource = Some("desk".into());
    let server = async {
        fake.open_stream(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
        fake.sasl_payload("auth").await;
        fake.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        fake.open_stream(BIND_FEATURES).await;
        let bind = fake.expect("</iq>").await;
        assert!(bind.contains("<resource>desk</resource>"), "{bind}");
        fake.send(
            "<iq type='error' id='bind1'><error type='cancel'>\
             <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
        server
    );
    match res {
        Err(ClientError::Bind(m)) => assert_eq!(m, "not-allowed"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn recv_where_buffers_in_order_and_iq_matches_ids() {
    let (mut client, mut fake) = logged_in().await;
    fake.send("<message id='m1'><body>one</body></message>")
        .await;
    fake.send("<presence id='p1'/>").await;
    fake.send("<message id='m2'><body>two</body></message>")
        .await;
    let p = client
        .recv_where(|el| el.name() == "presence")
        .await
        .unwrap();
    assert_eq!(p.attr("id"), Some("p1"));
    assert!(
        client
            .expect_silence(Duration::from_millis(50))
            .await
            .is_err()
    );

    let client_side = async {
        let reply = client.roster_get().await.unwrap();
        assert_eq!(reply.attr("type"), Some("result"));
        assert!(reply.has_child("query", ns::ROSTER));
        client
    };
    let server_side = async {
        let iq = fake.expect("</iq>").await;
        assert!(iq.contains("jabber:iq:roster"), "{iq}");
        let id = iq
            .split("id='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_owned();
        fake.send("<message id='m3'/>").await;
        fake.send(&format!(
            "<iq type='result' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
        ))
        .await;
    };
    let (mut client, ()) = tokio::join!(client_side, server_side);
    for want in ["m1", "m2", "m3"] {
        let el = client.recv().await.unwrap();
        assert_eq!(el.attr("id"), Some(want));
        assert_eq!(el.ns(), "jabber:client");
    }
    client
        .expect_silence(Duration::from_millis(50))
        .await
        .unwrap();
}

#[tokio::test]
async fn recv_times_out_and_stream_error_then_closed() {
    let (mut client, mut fake) = logged_in().await;
    client.timeout = Duration::from_millis(50);
    assert!(matches!(client.recv().await, Err(ClientError::Timeout(_))));
    fake.send(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
         </stream:stream>",
    )
    .await;
    match client.recv().await {
        Err(ClientError::Stream { condition, text }) => {
            assert_eq!(condition, "conflict");
            assert_eq!(text, "");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(client.recv().await, Err(ClientError::Closed)));
    client.close().await.unwrap();
}

#[tokio::test]
async fn messages_presence_and_close() {
    let (mut client, mut fake) = logged_in().await;
    client.send_presence().await.unwrap();
    client
        .send_message("bob@localhost", "hi <there> & 'you'")
        .await
        .unwrap();
    let sent = fake.expect("</message>").await;
    assert!(sent.contains("<presence"), "{sent}");
    assert!(sent.contains("to='bob@localhost'") || sent.contains("to=\"bob@localhost\""));
    assert!(sent.contains("hi &lt;there&gt; &amp;"), "{sent}");
    let server = async {
        fake.expect("</stream:stream>").await;
        fake.send("</stream:stream>").await;
    };
    let (res, ()) = tokio::join!(client.close(), server);
    res.unwrap();
}

#[tokio::test]
async fn eof_is_closed() {
    let (mut client, fake) = logged_in().await;
    drop(fake);
    assert!(matches!(client.recv().await, Err(ClientError::Closed)));
}

/// How the fake SCRAM server ends the exchange.
#[derive(Clone, Copy, PartialEq)]
enum ScramEnding {
    /// `v=` in `<success/>` (RFC 6120 style).
    InSuccess,
    /// `v=` in a final `<challenge/>`, then an empty `<success/>` (older servers).
    InChallenge,
    /// A forged server signature in `<success/>`.
    Forged,
    /// An empty `<success/>` without ever sending `v=`.
    Missing,
}

/// A server script for SCRAM-SHA-256 with `s3cret` as alice's password.
async fn scram_login(fake: &mut Fake, ending: ScramEnding) {
    use rookery_sasl::{ChannelBindings, HashAlgo, ScramKeys, ScramServer};
    fake.open_stream(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
         <mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>",
    )
    .await;
    let client_first = fake.sasl_payload("auth").await;
    assert!(
        client_first.starts_with(b"n,,n=alice,r="),
        "{client_first:?}"
    );
    let mut server = ScramServer::new(HashAlgo::Sha256, false, false, ChannelBindings::default());
    let first = server.client_first(&client_first).unwrap();
    assert_eq!(first.username, "alice");
    let keys = ScramKeys::generate(HashAlgo::Sha256, "s3cret", 4096).unwrap();
    let server_first = server.server_first(Some(keys));
    fake.send(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        BASE64.encode(server_first)
    ))
    .await;
    let client_final = fake.sasl_payload("response").await;
    let server_final = server.client_final(&client_final).unwrap();
    match ending {
        ScramEnding::InSuccess => {
            fake.send(&format!(
                "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
                BASE64.encode(&server_final)
            ))
            .await
        }
        ScramEnding::InChallenge => {
            fake.send(&format!(
                "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                BASE64.encode(&server_final)
            ))
            .await;
            assert!(fake.sasl_payload("response").await.is_empty());
            fake.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
                .await;
        }
        ScramEnding::Forged => {
            fake.send(&format!(
                "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
                BASE64.encode(format!("v={}", BASE64.encode([7u8; 32])))
            ))
            .await
        }
        ScramEnding::Missing => {
            fake.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
                .await
        }
    }
}

#[tokio::test]
async fn scram_sha_256_happy_path_then_bind_generated_resource() {
    for ending in [ScramEnding::InSuccess, ScramEnding::InChallenge] {
        let (io, mut fake) = pipe();
        let cfg = config(None);
        let server = async {
            scram_login(&mut fake, ending).await;
            fake.open_stream(
                "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
                 <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
                 </stream:features>",
            )
            .await;
            let bind = fake.expect("</iq>").await;
            assert!(!bind.contains("<resource"), "{bind}");
            fake.send(
                "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <jid>alice@localhost/gen-123</jid></bind></iq>",
            )
            .await;
        };
        let (res, ()) = tokio::join!(
            negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
            server
        );
        let client = res.unwrap();
        assert_eq!(client.mechanism(), "SCRAM-SHA-256");
        assert_eq!(client.jid(), "alice@localhost/gen-123");
    }
}

#[tokio::test]
async fn mandatory_session_is_established() {
    let (io, mut fake) = pipe();
    let cfg = config(None);
    let server = async {
        scram_login(&mut fake, ScramEnding::InSuccess).await;
        fake.open_stream(
            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>",
        )
        .await;
        fake.expect("</iq>").await;
        fake.send(
            "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>alice@localhost/x</jid></bind></iq>",
        )
        .await;
        let session = fake.expect("</iq>").await;
        assert!(
            session.contains("urn:ietf:params:xml:ns:xmpp-session"),
            "{session}"
        );
        fake.send("<iq type='result' id='sess1'/>").await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Bind),
        server
    );
    assert_eq!(res.unwrap().jid(), "alice@localhost/x");
}

#[tokio::test]
async fn scram_server_must_prove_the_password() {
    for ending in [ScramEnding::Forged, ScramEnding::Missing] {
        let (io, mut fake) = pipe();
        let cfg = config(None);
        let (res, ()) = tokio::join!(
            negotiate::negotiate_over(io, &cfg, negotiate::Goal::Authenticate),
            scram_login(&mut fake, ending)
        );
        match res {
            Err(ClientError::Protocol(m)) => assert!(m.contains("server"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn scram_authenticate_only() {
    let (io, mut fake) = pipe();
    let cfg = config(Some("scram-sha-256"));
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Authenticate),
        scram_login(&mut fake, ScramEnding::InSuccess)
    );
    let client = res.unwrap();
    assert_eq!(client.mechanism(), "SCRAM-SHA-256");
    assert_eq!(client.jid(), "");
}

#[tokio::test]
async fn forced_plus_without_tls_is_refused_locally() {
    let (io, mut fake) = pipe();
    let cfg = config(Some("SCRAM-SHA-256-PLUS"));
    let server = async {
        fake.open_stream(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-256-PLUS</mechanism></mechanisms></stream:features>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Authenticate),
        server
    );
    assert!(matches!(res, Err(ClientError::Protocol(_))), "{res:?}");
}

#[tokio::test]
async fn unknown_forced_mechanism_is_still_tried() {
    let (io, mut fake) = pipe();
    let cfg = config(Some("X-UNKNOWN"));
    let server = async {
        fake.open_stream(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
        let auth = fake.expect("</auth>").await;
        assert!(auth.contains("X-UNKNOWN"), "{auth}");
        fake.send(
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>",
        )
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Authenticate),
        server
    );
    match res {
        Err(ClientError::Auth { condition, text }) => {
            assert_eq!(condition, "invalid-mechanism");
            assert_eq!(text, "");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn in_band_registration() {
    let (io, mut fake) = pipe();
    let cfg = config(None);
    let server = async {
        fake.open_stream(
            "<stream:features><register xmlns='http://jabber.org/features/iq-register'/>\
             </stream:features>",
        )
        .await;
        let get = fake.expect("</iq>").await;
        assert!(get.contains("type='get'"), "{get}");
        let id = get
            .split("id='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_owned();
        fake.send(&format!(
            "<iq type='result' id='{id}'><query xmlns='jabber:iq:register'>\
             <instructions>hi</instructions><username/><password/></query></iq>"
        ))
        .await;
        let set = fake.expect("</iq>").await;
        assert!(
            set.contains("<username>alice</username><password>s3cret</password>"),
            "{set}"
        );
        let id = set
            .split("id='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_owned();
        fake.send(&format!(
            "<iq type='error' id='{id}'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>taken</text></error></iq>"
        ))
        .await;
    };
    let (res, ()) = tokio::join!(
        negotiate::negotiate_over(io, &cfg, negotiate::Goal::Register),
        server
    );
    match res {
        Err(ClientError::Protocol(m)) => assert_eq!(m, "registration refused: conflict: taken"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn stream_error_text_and_condition() {
    let el: Element = "<error xmlns='http://etherx.jabber.org/streams'>\
        <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text>\
        <system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"
        .parse()
        .unwrap();
    match stream_error(&el) {
        ClientError::Stream { condition, text } => {
            assert_eq!(condition, "system-shutdown");
            assert_eq!(text, "bye");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn config_debug_hides_password() {
    let c = ClientConfig::new("127.0.0.1:5222".parse().unwrap(), "a@b", "hunter2");
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(c.security, Security::StartTls);
    assert_eq!(c.timeout, Duration::from_secs(10));
}

/// Tests over real TCP with TLS (STARTTLS and direct TLS) and SCRAM-*-PLUS.
mod tls {
    use std::sync::Arc;

    use rookery_sasl::{ChannelBindings, HashAlgo, ScramKeys, ScramServer};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use sha2::{Digest, Sha256};
    use tokio::net::TcpListener;

    use super::*;

    struct Cert {
        der: CertificateDer<'static>,
        key: Vec<u8>,
        pem: String,
    }

    fn cert() -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        Cert {
            der: ck.cert.der().clone(),
            key: ck.signing_key.serialize_der(),
            pem: ck.cert.pem(),
        }
    }

    /// How the fake TLS server behaves.
    #[derive(Clone, Copy)]
    struct Script {
        tls13: bool,
        direct: bool,
        /// Advertise XEP-0440 with only tls-server-end-point.
        xep0440_end_point_only: bool,
    }

    fn acceptor(cert: &Cert, tls13: bool) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS12]
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Serve one connection: (STARTTLS), SCRAM-SHA-256-PLUS, bind. Returns the gs2
    /// header the client used.
    async fn serve(listener: TcpListener, cert: Cert, script: Script) -> Option<String> {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = acceptor(&cert, script.tls13);
        let mut fake = Fake {
            io: Box::new(tcp),
            seen: String::new(),
        };
        let tls = if script.direct {
            acceptor.accept(fake.io).await
        } else {
            fake.open_stream(
                "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
                 <required/></starttls></stream:features>",
            )
            .await;
            fake.expect("<starttls").await;
            fake.expect(">").await;
            fake.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await;
            fake.seen.clear();
            acceptor.accept(fake.io).await
        };
        let tls = match tls {
            Ok(tls) => tls,
            Err(_) => return None, // the client rejected our certificate
        };
        let (_, conn) = tls.get_ref();
        let mut bindings = ChannelBindings {
            tls_exporter: None,
            tls_server_end_point: Some(Sha256::digest(cert.der.as_ref()).to_vec()),
        };
        if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let ekm = conn
                .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                .unwrap();
            bindings.tls_exporter = Some(ekm.to_vec());
        }
        let mut fake = Fake {
            io: Box::new(tls),
            seen: String::new(),
        };
        let cb = if script.xep0440_end_point_only {
            "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
             <channel-binding type='tls-server-end-point'/></sasl-channel-binding>"
        } else {
            ""
        };
        fake.open_stream(&format!(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>\
             <mechanism>PLAIN</mechanism></mechanisms>{cb}</stream:features>"
        ))
        .await;
        let client_first = fake.sasl_payload("auth").await;
        let gs2 = String::from_utf8_lossy(&client_first)
            .split(",,")
            .next()
            .unwrap()
            .to_owned();
        let mut server = ScramServer::new(HashAlgo::Sha256, true, true, bindings);
        server.client_first(&client_first).unwrap();
        let keys = ScramKeys::generate(HashAlgo::Sha256, "s3cret", 4096).unwrap();
        let server_first = server.server_first(Some(keys));
        fake.send(&format!(
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
            BASE64.encode(server_first)
        ))
        .await;
        let client_final = fake.sasl_payload("response").await;
        match server.client_final(&client_final) {
            Ok(server_final) => {
                fake.send(&format!(
                    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
                    BASE64.encode(server_final)
                ))
                .await
            }
            Err(e) => panic!("channel binding mismatch for {gs2}: {e}"),
        }
        fake.open_stream(BIND_FEATURES).await;
        fake.expect("</iq>").await;
        fake.send(
            "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>alice@localhost/tls</jid></bind></iq>",
        )
        .await;
        fake.expect("</stream:stream>").await;
        fake.send("</stream:stream>").await;
        Some(gs2)
    }

    /// Connect to a fake server following `script`; `trust` puts its certificate in
    /// `ca_pem`, `insecure` sets [`ClientConfig::insecure`]. Returns the client's result
    /// and the gs2 header the server saw.
    async fn run(
        script: Script,
        trust: bool,
        insecure: bool,
    ) -> (Result<(), ClientError>, Option<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cert = cert();
        let mut cfg =
            ClientConfig::new(listener.local_addr().unwrap(), "alice@localhost", "s3cret");
        cfg.timeout = Duration::from_secs(5);
        cfg.insecure = insecure;
        cfg.security = if script.direct {
            Security::DirectTls
        } else {
            Security::StartTls
        };
        if trust {
            cfg.ca_pem = Some(cert.pem.clone());
        }
        let server = tokio::spawn(serve(listener, cert, script));
        let res = match Client::connect(cfg).await {
            Ok(client) => {
                assert_eq!(client.jid(), "alice@localhost/tls");
                assert_eq!(client.mechanism(), "SCRAM-SHA-256-PLUS");
                client.close().await
            }
            Err(e) => Err(e),
        };
        (res, server.await.unwrap())
    }

    #[tokio::test]
    async fn starttls_tls13_uses_tls_exporter() {
        let script = Script {
            tls13: true,
            direct: false,
            xep0440_end_point_only: false,
        };
        let (res, gs2) = run(script, true, false).await;
        res.unwrap();
        assert_eq!(gs2.as_deref(), Some("p=tls-exporter"));
    }

    #[tokio::test]
    async fn starttls_tls12_uses_tls_server_end_point() {
        let script = Script {
            tls13: false,
            direct: false,
            xep0440_end_point_only: false,
        };
        let (res, gs2) = run(script, true, false).await;
        res.unwrap();
        assert_eq!(gs2.as_deref(), Some("p=tls-server-end-point"));
    }

    #[tokio::test]
    async fn direct_tls_follows_xep_0440() {
        let script = Script {
            tls13: true,
            direct: true,
            xep0440_end_point_only: true,
        };
        let (res, gs2) = run(script, true, false).await;
        res.unwrap();
        assert_eq!(gs2.as_deref(), Some("p=tls-server-end-point"));
    }

    #[tokio::test]
    async fn untrusted_certificate_is_a_tls_error() {
        let script = Script {
            tls13: true,
            direct: false,
            xep0440_end_point_only: false,
        };
        let (res, gs2) = run(script, false, false).await;
        assert!(matches!(res, Err(ClientError::Tls(_))), "{res:?}");
        assert_eq!(gs2, None);
    }

    #[tokio::test]
    async fn insecure_accepts_any_certificate() {
        let script = Script {
            tls13: false,
            direct: true,
            xep0440_end_point_only: false,
        };
        let (res, gs2) = run(script, false, true).await;
        res.unwrap();
        assert_eq!(gs2.as_deref(), Some("p=tls-server-end-point"));
    }
}

#[test]
fn client_can_move_between_tasks() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Client>();
    assert_send::<ClientError>();
}
