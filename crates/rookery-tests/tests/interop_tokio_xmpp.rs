//! Interoperability with tokio-xmpp 6 (the xmpp-rs client): it logs in over STARTTLS with
//! SCRAM-SHA-256-PLUS (tls-exporter) and chats with our client. tokio-xmpp trusts the
//! system roots, so `SSL_CERT_FILE` points at the test CA; this file is its own test
//! process, so the variable touches nothing else.

use futures::StreamExt;
use rookery_tests::TestServer;
use std::time::Duration;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event};

#[tokio::test]
async fn tokio_xmpp_logs_in_with_scram_plus_and_chats() {
    let _ = tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let s = TestServer::start_with(|c| c.auth.allow_plain = false).await;
    s.add_user("alice@localhost", "wonderland").await;
    s.add_user("bob@localhost", "builder").await;
    let ca = s.data_dir().join("ca.pem");
    // SAFETY of intent: set before any TLS client in this process reads it.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };

    let mut bob = s.online("bob@localhost", "builder", "desk").await;

    let jid: BareJid = "alice@localhost".parse().unwrap();
    let mut alice = Client::new_starttls(
        jid,
        "wonderland",
        DnsConfig::addr(&s.c2s.to_string()),
        Timeouts::tight(),
    );
    let online = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = alice.next().await {
            if let Event::Online { bound_jid, .. } = ev {
                return Some(bound_jid);
            }
        }
        None
    })
    .await
    .expect("tokio-xmpp comes online (it silently retries on failure)")
    .expect("online event");
    assert_eq!(online.to_bare().as_str(), "alice@localhost");

    let mut msg = Message::new(Some("bob@localhost".parse().unwrap()));
    msg.type_ = MessageType::Chat;
    msg.bodies
        .insert(Default::default(), "hello from tokio-xmpp".into());
    alice.send_stanza(msg.into()).await.unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "hello from tokio-xmpp"
    );

    bob.send_message(online.as_str(), "hello back")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = alice.next().await {
            if let Some(m) = ev.into_stanza().and_then(|st| Message::try_from(st).ok())
                && let Some(b) = m.bodies.values().next()
            {
                return b.clone();
            }
        }
        String::new()
    })
    .await
    .expect("alice receives bob's answer");
    assert_eq!(got, "hello back");
    alice.send_end().await.unwrap();
}
