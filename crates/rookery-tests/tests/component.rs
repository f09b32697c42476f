//! External components (XEP-0114): the handshake and its refusals, an echo component
//! answering a real client, IQs both ways, what happens once it is gone, the addresses
//! it may use, discovery, and a component that stops reading.

use rookery_tests::{
    COMPONENT_NS, ComponentStream, Element, TestServer, component_header, error_condition, stanza,
};
use std::time::{Duration, Instant};

const ECHO: &str = "echo.localhost";
const SECRET: &str = "the echo component's secret";

/// A server with the echo component configured, and alice.
async fn with_echo() -> TestServer {
    with_echo_and(|_| {}).await
}

async fn with_echo_and(f: impl FnOnce(&mut rookery_server::Config)) -> TestServer {
    let s = TestServer::start_with(|c| {
        c.components.push(rookery_config::Component {
            name: ECHO.into(),
            secret: SECRET.into(),
        });
        f(c);
    })
    .await;
    s.add_user("alice@localhost", "a-pass").await;
    s
}

fn assert_stream_error(reply: &str, condition: &str) {
    assert!(
        reply.contains(&format!(
            "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        )),
        "expected stream error {condition}, got: {reply}"
    );
    assert!(
        reply.contains("<text ")
            && !reply.contains(
                "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'></text>"
            ),
        "a stream error explains itself: {reply}"
    );
    assert!(
        reply.ends_with("</stream:stream>"),
        "the stream is closed: {reply}"
    );
}

/// The component's side of an echo service (the seed's `mod_echo`): the next message it
/// receives goes back to its sender, from the address it was sent to.
async fn echo_one_message(component: &mut ComponentStream) -> Element {
    let m = component.recv().await;
    assert!(m.is("message", COMPONENT_NS), "{}", String::from(&m));
    let body = m.get_child("body", COMPONENT_NS).unwrap().text();
    let reply = stanza(&format!(
        "<message from='{}' to='{}' type='chat'><body>{body}</body></message>",
        m.attr("to").unwrap(),
        m.attr("from").unwrap(),
    ));
    component.send(&reply).await;
    m
}

fn body(m: &Element) -> String {
    m.get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_echo_component_answers_a_client() {
    let s = with_echo().await;
    let mut echo = s.component(ECHO, SECRET).await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;

    alice.send_message(ECHO, "hello echo").await.unwrap();
    let received = echo_one_message(&mut echo).await;
    assert_eq!(
        received.attr("from"),
        Some("alice@localhost/laptop"),
        "the component sees the sender's full JID"
    );
    assert_eq!(received.attr("to"), Some(ECHO));

    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "hello echo");
    assert_eq!(m.attr("from"), Some(ECHO));
    assert_eq!(m.attr("to"), Some("alice@localhost/laptop"));

    // Any address under the component's domain is the component's.
    alice
        .send_message("bot@echo.localhost/x", "and again")
        .await
        .unwrap();
    echo_one_message(&mut echo).await;
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "and again");
    assert_eq!(m.attr("from"), Some("bot@echo.localhost/x"));
}

#[tokio::test]
async fn a_client_iq_reaches_the_component_and_its_answer_comes_back() {
    let s = with_echo().await;
    let mut echo = s.component(ECHO, SECRET).await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;

    let ask = tokio::spawn(async move {
        let r = alice
            .iq(stanza(&format!(
                "<iq type='get' id='v1' to='{ECHO}'><query xmlns='jabber:iq:version'/></iq>"
            )))
            .await
            .unwrap();
        (alice, r)
    });
    let iq = echo.recv().await;
    assert!(iq.is("iq", COMPONENT_NS));
    assert_eq!(iq.attr("type"), Some("get"));
    assert_eq!(iq.attr("from"), Some("alice@localhost/laptop"));
    assert!(iq.has_child("query", "jabber:iq:version"));
    echo.send(&stanza(&format!(
        "<iq type='result' id='v1' from='{ECHO}' to='alice@localhost/laptop'>\
         <query xmlns='jabber:iq:version'><name>echo</name><version>1</version></query></iq>"
    )))
    .await;

    let (mut alice, r) = ask.await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("from"), Some(ECHO));
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "echo"
    );

    // The component asks alice's server something, and gets its answer.
    echo.send(&stanza(&format!(
        "<iq type='get' id='p1' from='{ECHO}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    )))
    .await;
    let pong = echo.recv().await;
    assert!(pong.is("iq", COMPONENT_NS));
    assert_eq!(pong.attr("type"), Some("result"));
    assert_eq!(pong.attr("id"), Some("p1"));
    assert_eq!(pong.attr("from"), Some("localhost"));
    alice
        .expect_silence(Duration::from_millis(100))
        .await
        .unwrap();
}

#[tokio::test]
async fn once_the_component_is_gone_its_domain_is_unavailable() {
    let s = with_echo().await;
    let echo = s.component(ECHO, SECRET).await;
    let closing = echo.close().await;
    assert!(closing.ends_with("</stream:stream>"), "{closing}");

    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let r = alice
        .iq(stanza(&format!(
            "<iq type='get' to='{ECHO}'><query xmlns='jabber:iq:version'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
    assert_eq!(r.attr("from"), Some(ECHO));

    alice
        .send_message("bot@echo.localhost", "anyone?")
        .await
        .unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(error_condition(&m), "service-unavailable");

    // Presence to it is dropped without an answer.
    alice
        .send(stanza(&format!("<presence to='{ECHO}'/>")))
        .await
        .unwrap();
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();

    // A domain that is no component at all is another matter.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='nowhere.localhost'><query xmlns='jabber:iq:version'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "remote-server-not-found");

    // It may come back.
    let mut echo = s.component(ECHO, SECRET).await;
    alice.send_message(ECHO, "back?").await.unwrap();
    echo_one_message(&mut echo).await;
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "back?");
}

#[tokio::test]
async fn an_unknown_name_is_host_unknown() {
    let s = with_echo().await;
    let mut raw = s.raw_component().await;
    raw.send(component_header("nobody.localhost").as_bytes())
        .await;
    let reply = raw.read_to_close().await;
    assert!(
        reply.contains("xmlns='jabber:component:accept'"),
        "the error comes on a component stream: {reply}"
    );
    assert_stream_error(&reply, "host-unknown");
}

#[tokio::test]
async fn a_second_connection_for_a_connected_name_is_a_conflict() {
    let s = with_echo().await;
    let mut first = s.component(ECHO, SECRET).await;
    let refused = ComponentStream::connect(s.component_addr(), ECHO, SECRET)
        .await
        .err()
        .expect("the second connection is refused");
    assert_stream_error(&refused, "conflict");

    // The first one is still the component.
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    alice.send_message(ECHO, "still there?").await.unwrap();
    echo_one_message(&mut first).await;
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(body(&m), "still there?");
}

#[tokio::test]
async fn a_wrong_secret_is_not_authorized_after_a_delay_and_failures_are_limited() {
    let s = with_echo_and(|c| {
        c.auth.failure_delay_ms = 200;
        c.limits.auth_failures_per_minute = 2;
    })
    .await;
    for _ in 0..2 {
        let started = Instant::now();
        let refused = ComponentStream::connect(s.component_addr(), ECHO, "guess")
            .await
            .err()
            .expect("a wrong secret is refused");
        assert_stream_error(&refused, "not-authorized");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "failures are answered after the configured delay"
        );
    }
    // Over the address's budget, even the right secret is not tried.
    let refused = ComponentStream::connect(s.component_addr(), ECHO, SECRET)
        .await
        .err()
        .expect("the address is over its budget");
    assert_stream_error(&refused, "policy-violation");
    assert!(s.server.service(ECHO).is_none());
}

#[tokio::test]
async fn a_client_namespace_on_the_component_port_is_invalid_namespace() {
    let s = with_echo().await;
    let mut raw = s.raw_component().await;
    raw.send(
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{ECHO}'>"
        )
        .as_bytes(),
    )
    .await;
    assert_stream_error(&raw.read_to_close().await, "invalid-namespace");
}

#[tokio::test]
async fn a_stanza_before_the_handshake_is_not_authorized() {
    let s = with_echo().await;
    let mut raw = s.raw_component().await;
    let mut bytes = component_header(ECHO).into_bytes();
    bytes.extend_from_slice(
        format!("<message from='{ECHO}' to='alice@localhost'><body>hi</body></message>").as_bytes(),
    );
    raw.send(&bytes).await;
    assert_stream_error(&raw.read_to_close().await, "not-authorized");
}

#[tokio::test]
async fn a_from_outside_the_component_domain_is_refused() {
    let s = with_echo().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;

    let mut echo = s.component(ECHO, SECRET).await;
    echo.send(&stanza(
        "<message from='admin@localhost' to='alice@localhost' type='chat'><body>I am the admin</body></message>",
    ))
    .await;
    assert_stream_error(&echo.read_to_close().await, "invalid-from");
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .expect("the forged message never arrives");
    assert!(
        s.server.service(ECHO).is_none(),
        "the route is gone with the stream"
    );

    // No 'from' at all is improper addressing.
    let mut echo = s.component(ECHO, SECRET).await;
    echo.send(&stanza(
        "<message to='alice@localhost' type='chat'><body>who am I?</body></message>",
    ))
    .await;
    assert_stream_error(&echo.read_to_close().await, "improper-addressing");
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
}

#[tokio::test]
async fn disco_items_list_the_connected_component() {
    let s = with_echo().await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    let items = |r: &Element| -> Vec<String> {
        r.get_child("query", "http://jabber.org/protocol/disco#items")
            .unwrap()
            .children()
            .filter_map(|i| i.attr("jid").map(str::to_owned))
            .collect()
    };
    let disco = || {
        stanza(
            "<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        )
    };

    let r = alice.iq(disco()).await.unwrap();
    assert!(
        !items(&r).contains(&ECHO.to_owned()),
        "not listed while disconnected"
    );

    let echo = s.component(ECHO, SECRET).await;
    let r = alice.iq(disco()).await.unwrap();
    assert!(items(&r).contains(&ECHO.to_owned()), "{:?}", items(&r));

    echo.close().await;
    let r = alice.iq(disco()).await.unwrap();
    assert!(!items(&r).contains(&ECHO.to_owned()));
}

#[tokio::test]
async fn a_component_that_does_not_read_is_disconnected() {
    let s = with_echo_and(|c| c.limits.outbound_queue = 10).await;
    let mut echo = s.component(ECHO, SECRET).await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;

    // The component reads nothing while alice sends far more than the socket buffers and
    // its queue hold: it is disconnected, and alice hears that it is unavailable.
    let big = "x".repeat(100_000);
    for _ in 0..200 {
        alice.send_message(ECHO, &big).await.unwrap();
    }
    let bounced = alice
        .recv_where(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await
        .expect("messages bounce once the queue is full");
    assert_eq!(error_condition(&bounced), "service-unavailable");

    assert_stream_error(&echo.read_to_close().await, "policy-violation");
    assert!(s.server.service(ECHO).is_none());
}
