//! Hostile and broken input: each gets the RFC 6120 stream error with a text, and the
//! server closes the stream cleanly and keeps serving others.

use rookery_tests::{TestServer, client_header};

/// Send `bytes` after the given header and return what the server said until it closed.
async fn conversation(s: &TestServer, bytes: &[u8]) -> String {
    let mut raw = s.raw().await;
    raw.send(bytes).await;
    raw.read_to_close().await
}

fn assert_stream_error(reply: &str, condition: &str) {
    assert!(
        reply.contains(&format!(
            "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        )),
        "expected stream error {condition}, got: {reply}"
    );
    assert!(
        reply.contains("<text "),
        "a stream error explains itself: {reply}"
    );
    assert!(
        reply.ends_with("</stream:stream>"),
        "the stream is closed: {reply}"
    );
}

#[tokio::test]
async fn garbage_instead_of_xml_is_not_well_formed() {
    let s = TestServer::start().await;
    let reply = conversation(&s, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").await;
    assert_stream_error(&reply, "not-well-formed");
}

#[tokio::test]
async fn a_doctype_is_refused() {
    let s = TestServer::start().await;
    let reply = conversation(
        &s,
        b"<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    )
    .await;
    assert_stream_error(&reply, "not-well-formed");
}

#[tokio::test]
async fn an_unbound_prefix_is_not_well_formed() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<foo:bar/>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "not-well-formed");
}

#[tokio::test]
async fn an_undeclared_entity_is_not_well_formed() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message><body>&boom;</body></message>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "not-well-formed");
}

#[tokio::test]
async fn invalid_utf8_is_not_well_formed() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "not-well-formed");
}

#[tokio::test]
async fn an_oversize_stanza_is_a_policy_violation_before_it_ends() {
    let s = TestServer::start_with(|c| c.limits.max_stanza_size = 16 * 1024).await;
    let mut raw = s.raw().await;
    raw.send(client_header("localhost").as_bytes()).await;
    raw.send(b"<message><body>").await;
    // Never finish the stanza: the server must cut us off once the limit is passed.
    let chunk = vec![b'a'; 4096];
    for _ in 0..8 {
        raw.send(&chunk).await;
    }
    let reply = raw.read_to_close().await;
    assert_stream_error(&reply, "policy-violation");
}

#[tokio::test]
async fn deep_nesting_is_a_policy_violation() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message>");
    for _ in 0..200 {
        bytes.extend_from_slice(b"<a>");
    }
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "policy-violation");
}

#[tokio::test]
async fn too_many_attributes_is_a_policy_violation() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message ");
    for i in 0..500 {
        bytes.extend_from_slice(format!("a{i}='x' ").as_bytes());
    }
    bytes.extend_from_slice(b"/>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "policy-violation");
}

#[tokio::test]
async fn a_wrong_stream_namespace_is_invalid_namespace() {
    let s = TestServer::start().await;
    let reply = conversation(
        &s,
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    )
    .await;
    assert_stream_error(&reply, "invalid-namespace");
    let reply = conversation(
        &s,
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>",
    )
    .await;
    assert_stream_error(&reply, "invalid-namespace");
}

#[tokio::test]
async fn an_unknown_host_is_host_unknown() {
    let s = TestServer::start().await;
    let reply = conversation(&s, client_header("not-served.example").as_bytes()).await;
    assert_stream_error(&reply, "host-unknown");
    assert!(
        reply.starts_with("<?xml"),
        "a header is sent before the error: {reply}"
    );
}

#[tokio::test]
async fn an_old_version_is_unsupported_version() {
    let s = TestServer::start().await;
    let reply = conversation(
        &s,
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>",
    )
    .await;
    assert_stream_error(&reply, "unsupported-version");
}

#[tokio::test]
async fn a_stanza_before_starttls_is_refused() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message to='alice@localhost'><body>hi</body></message>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "policy-violation");
}

#[tokio::test]
async fn a_stanza_before_authentication_is_not_authorized() {
    let s = TestServer::start_with(|c| c.auth.allow_plaintext_on_loopback = true).await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"<message to='alice@localhost'><body>hi</body></message>");
    let reply = conversation(&s, &bytes).await;
    assert_stream_error(&reply, "not-authorized");
}

#[tokio::test]
async fn the_client_closing_its_stream_gets_ours_closed_too() {
    let s = TestServer::start().await;
    let mut bytes = client_header("localhost").into_bytes();
    bytes.extend_from_slice(b"</stream:stream>");
    let reply = conversation(&s, &bytes).await;
    assert!(reply.ends_with("</stream:stream>"), "{reply}");
    assert!(!reply.contains("stream:error"), "{reply}");
}

#[tokio::test]
async fn utf8_split_across_reads_is_fine_and_others_are_unaffected() {
    let s = TestServer::start_with(|c| c.auth.allow_plaintext_on_loopback = true).await;
    s.add_user("alice@localhost", "pw").await;
    s.add_user("bob@localhost", "pw").await;
    let mut bob = {
        let mut c = s.client_config("bob@localhost", "pw");
        c.security = rookery_client::Security::Plain;
        c.resource = Some("b".into());
        let mut c = rookery_client::Client::connect(c).await.unwrap();
        c.send_presence().await.unwrap();
        c
    };
    let mut alice = {
        let mut c = s.client_config("alice@localhost", "pw");
        c.security = rookery_client::Security::Plain;
        rookery_client::Client::connect(c).await.unwrap()
    };
    // A body with multi-byte characters, sent one byte at a time.
    let msg = "<message to='bob@localhost' type='chat'><body>Привет ☃ 😀</body></message>";
    for b in msg.as_bytes() {
        alice.send_raw(&[*b]).await.unwrap();
    }
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Привет ☃ 😀"
    );

    // A hostile connection next to them changes nothing for them.
    let reply = conversation(&s, b"\x00\x01garbage").await;
    assert!(reply.contains("not-well-formed"), "{reply}");
    alice
        .send_message("bob@localhost", "still here")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "still here"
    );
}
