//! Two users chatting, offline delivery, and RFC 6121 §8 delivery rules with several
//! resources.

use rookery_tests::{TestServer, stanza};
use std::time::Duration;

async fn alice_and_bob() -> TestServer {
    let s = TestServer::start().await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    s
}

fn body(m: &minidom::Element) -> String {
    m.get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test]
async fn alice_and_bob_chat() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let mut bob = s.online("bob@localhost", "b-pass", "phone").await;

    alice
        .send_message("bob@localhost", "Hi Bob!")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "Hi Bob!");
    assert_eq!(
        m.attr("from"),
        Some("alice@localhost/laptop"),
        "the server stamps the full JID"
    );

    bob.send_message("alice@localhost/laptop", "Hello Alice")
        .await
        .unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "Hello Alice");
    assert_eq!(m.attr("from"), Some("bob@localhost/phone"));
}

#[tokio::test]
async fn a_message_to_an_offline_user_arrives_at_the_next_login() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    alice.send_message("bob@localhost", "one").await.unwrap();
    alice.send_message("bob@localhost", "two").await.unwrap();
    alice
        .send_message("bob@localhost/gone", "three")
        .await
        .unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .expect("no error comes back");

    let mut bob = s.online("bob@localhost", "b-pass", "phone").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
        assert!(
            m.get_child("delay", "urn:xmpp:delay").is_some(),
            "offline messages carry a delay stamp"
        );
        got.push(body(&m));
    }
    assert_eq!(got, ["one", "two", "three"], "in the order they were sent");
    bob.close().await.unwrap();

    // Delivered messages are gone from storage: at the next login the first message bob
    // sees is a new one.
    let mut bob = s.online("bob@localhost", "b-pass", "phone").await;
    alice
        .send_message("bob@localhost/phone", "four")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "four", "nothing is delivered twice");
}

#[tokio::test]
async fn a_message_to_a_user_that_does_not_exist_bounces() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    alice
        .send(stanza(
            "<message to='nobody@localhost' id='m1' type='chat'><body>hello?</body></message>",
        ))
        .await
        .unwrap();
    let err = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(err.attr("type"), Some("error"));
    assert_eq!(err.attr("id"), Some("m1"));
    let e = err.get_child("error", "jabber:client").unwrap();
    assert!(e.has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn a_message_to_a_remote_domain_bounces_remote_server_not_found() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    alice
        .send(stanza(
            "<message to='carol@elsewhere.example' id='r1'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let err = alice.recv_where(|e| e.name() == "message").await.unwrap();
    let e = err.get_child("error", "jabber:client").unwrap();
    assert!(e.has_child(
        "remote-server-not-found",
        "urn:ietf:params:xml:ns:xmpp-stanzas"
    ));
}

#[tokio::test]
async fn a_bare_jid_message_goes_to_the_highest_priority_resource() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let mut bob_low = s.login("bob@localhost", "b-pass", "low").await;
    bob_low
        .send(stanza("<presence><priority>1</priority></presence>"))
        .await
        .unwrap();
    let mut bob_high = s.login("bob@localhost", "b-pass", "high").await;
    bob_high
        .send(stanza("<presence><priority>5</priority></presence>"))
        .await
        .unwrap();
    let mut bob_away = s.login("bob@localhost", "b-pass", "negative").await;
    bob_away
        .send(stanza("<presence><priority>-1</priority></presence>"))
        .await
        .unwrap();
    // Let the presences settle: each resource sees its own.
    for c in [&mut bob_low, &mut bob_high, &mut bob_away] {
        let me = c.jid().to_owned();
        c.recv_where(|e| e.name() == "presence" && e.attr("from") == Some(me.as_str()))
            .await
            .unwrap();
    }

    alice
        .send_message("bob@localhost", "to the best one")
        .await
        .unwrap();
    let m = bob_high
        .recv_where(|e| e.name() == "message")
        .await
        .unwrap();
    assert_eq!(body(&m), "to the best one");
    // The others got nothing: the first message each sees is the one sent to it directly.
    alice
        .send_message("bob@localhost/low", "direct-low")
        .await
        .unwrap();
    alice
        .send_message("bob@localhost/negative", "direct-negative")
        .await
        .unwrap();
    let m = bob_low.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "direct-low");
    let m = bob_away
        .recv_where(|e| e.name() == "message")
        .await
        .unwrap();
    assert_eq!(
        body(&m),
        "direct-negative",
        "a full JID reaches a negative-priority resource"
    );
}

#[tokio::test]
async fn only_negative_priority_resources_means_offline_storage() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let mut bob = s.login("bob@localhost", "b-pass", "away").await;
    bob.send(stanza("<presence><priority>-5</priority></presence>"))
        .await
        .unwrap();
    bob.recv_where(|e| e.name() == "presence").await.unwrap();
    alice.send_message("bob@localhost", "later").await.unwrap();
    alice
        .send_message("bob@localhost/away", "marker")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        body(&m),
        "marker",
        "the bare-JID message did not go to the away resource"
    );
    bob.close().await.unwrap();
    let mut bob = s.online("bob@localhost", "b-pass", "desk").await;
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "later");
}

#[tokio::test]
async fn an_iq_to_a_missing_resource_gets_service_unavailable() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let reply = alice
        .iq(stanza(
            "<iq type='get' to='bob@localhost/nowhere' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(reply.attr("type"), Some("error"));
    let e = reply.get_child("error", "jabber:client").unwrap();
    assert!(e.has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn an_iq_between_resources_is_delivered_and_answered() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let mut bob = s.online("bob@localhost", "b-pass", "phone").await;
    alice
        .send(stanza("<iq type='get' to='bob@localhost/phone' id='v1'><query xmlns='jabber:iq:version'/></iq>"))
        .await
        .unwrap();
    let q = bob.recv_where(|e| e.name() == "iq").await.unwrap();
    assert_eq!(q.attr("from"), Some("alice@localhost/laptop"));
    bob.send(stanza("<iq type='result' to='alice@localhost/laptop' id='v1'><query xmlns='jabber:iq:version'><name>bobclient</name></query></iq>"))
        .await
        .unwrap();
    let r = alice.recv_where(|e| e.name() == "iq").await.unwrap();
    assert_eq!(r.attr("id"), Some("v1"));
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn spoofing_another_from_address_ends_the_stream() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    alice
        .send(stanza(
            "<message from='bob@localhost/phone' to='alice@localhost'><body>x</body></message>",
        ))
        .await
        .unwrap();
    match alice.recv_where(|e| e.name() == "message").await {
        Err(rookery_client::ClientError::Stream { condition, .. }) => {
            assert_eq!(condition, "invalid-from")
        }
        other => panic!("expected invalid-from, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_without_blocking_the_sender() {
    let s = TestServer::start_with(|c| c.limits.outbound_queue = 20).await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    // Bob logs in and never reads again.
    let _bob = s.online("bob@localhost", "b-pass", "stuck").await;
    let bob_jid: jid::BareJid = "bob@localhost".parse().unwrap();
    let big = "x".repeat(60_000);
    let started = std::time::Instant::now();
    let mut sent = 0;
    while !s.server.sm().resources(&bob_jid).is_empty() {
        assert!(sent < 2_000, "bob's session was never ended");
        alice
            .send_message("bob@localhost/stuck", &big)
            .await
            .unwrap();
        sent += 1;
    }
    // Alice was never blocked: the server still answers her at once.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    assert!(started.elapsed() < Duration::from_secs(30));
}
