//! The built-in modules, each in a short conversation with the server.

use rookery_tests::{TestServer, stanza};

const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

async fn alice_and_bob() -> TestServer {
    let s = TestServer::start().await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    s
}

fn error_condition(reply: &minidom::Element) -> String {
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    let e = reply.get_child("error", "jabber:client").unwrap();
    e.children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap()
}

#[tokio::test]
async fn disco_info_lists_what_the_modules_registered() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await
        .unwrap();
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let identity = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(identity.attr("category"), Some("server"));
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "urn:xmpp:ping",
        "jabber:iq:version",
        "urn:xmpp:time",
        "jabber:iq:last",
        "vcard-temp",
        "urn:xmpp:blocking",
        "msgoffline",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    assert!(
        !features.contains(&"jabber:iq:register"),
        "registration is off by default"
    );

    let r = alice
        .iq(stanza("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn an_unknown_namespace_gets_service_unavailable_and_an_empty_iq_bad_request() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><nope xmlns='urn:example:nope'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
    let r = alice
        .iq(stanza("<iq type='get' to='localhost'/>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "bad-request");
}

#[tokio::test]
async fn ping_version_time_and_uptime() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
        ))
        .await
        .unwrap();
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "Rookery"
    );
    assert!(
        q.get_child("os", "jabber:iq:version").is_none(),
        "the OS is not told by default"
    );
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><time xmlns='urn:xmpp:time'/></iq>",
        ))
        .await
        .unwrap();
    let utc = r
        .get_child("time", "urn:xmpp:time")
        .unwrap()
        .get_child("utc", "urn:xmpp:time")
        .unwrap()
        .text();
    assert!(utc.ends_with('Z') && utc.len() == 24, "{utc}");
    let r = alice
        .iq(stanza(
            "<iq type='get' to='localhost'><query xmlns='jabber:iq:last'/></iq>",
        ))
        .await
        .unwrap();
    assert!(
        r.get_child("query", "jabber:iq:last")
            .unwrap()
            .attr("seconds")
            .is_some()
    );
}

#[tokio::test]
async fn last_activity_of_a_user_is_for_subscribers_only() {
    let s = alice_and_bob().await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    bob.send(stanza(
        "<presence type='unavailable'><status>gone fishing</status></presence>",
    ))
    .await
    .unwrap();
    bob.close().await.unwrap();
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza(
            "<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    // Bob may ask about himself.
    let mut bob = s.login("bob@localhost", "b-pass", "b2").await;
    let r = bob
        .iq(stanza(
            "<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

/// What a user's `jabber:iq:last` query answers: (seconds, text).
async fn last_activity(c: &mut rookery_client::Client, of: &str) -> (u64, String) {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='{of}'><query xmlns='jabber:iq:last'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let q = r.get_child("query", "jabber:iq:last").unwrap();
    (q.attr("seconds").unwrap().parse().unwrap(), q.text())
}

#[tokio::test]
async fn last_activity_is_seen_at_once_and_kept_across_a_restart() {
    let s = alice_and_bob().await;
    let bob = s.online("bob@localhost", "b-pass", "b").await;
    bob.close().await.unwrap();
    // Asked at once, before the server writes it to the store.
    let mut bob = s.login("bob@localhost", "b-pass", "b2").await;
    let (seconds, text) = last_activity(&mut bob, "bob@localhost").await;
    assert!(seconds < 60, "{seconds}");
    assert_eq!(text, "logged out");
    // A client that says why it goes: its status is the text (XEP-0012 §4).
    bob.send(stanza("<presence/>")).await.unwrap();
    bob.send(stanza(
        "<presence type='unavailable'><status>gone fishing</status></presence>",
    ))
    .await
    .unwrap();
    bob.close().await.unwrap();
    let mut bob = s.login("bob@localhost", "b-pass", "b3").await;
    assert_eq!(
        last_activity(&mut bob, "bob@localhost").await.1,
        "gone fishing"
    );
    // The restart ends this session: the server writes that end on its way out.
    let s = s.restart().await;
    let mut bob = s.login("bob@localhost", "b-pass", "b4").await;
    let (seconds, text) = last_activity(&mut bob, "bob@localhost").await;
    assert!(seconds < 60, "{seconds}");
    assert_eq!(text, "the server is shutting down");
}

#[tokio::test]
async fn vcards_are_public_and_only_their_owner_changes_them() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza(
            "<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    let r = bob
        .iq(stanza(
            "<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
        ))
        .await
        .unwrap();
    let fnm = r
        .get_child("vCard", "vcard-temp")
        .unwrap()
        .get_child("FN", "vcard-temp")
        .unwrap()
        .text();
    assert_eq!(fnm, "Alice Liddell");
    let r = bob
        .iq(stanza("<iq type='set' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    // Nobody's vCard is empty, not an error.
    let r = bob
        .iq(stanza("<iq type='get'><vCard xmlns='vcard-temp'/></iq>"))
        .await
        .unwrap();
    assert!(r.get_child("vCard", "vcard-temp").is_some());
}

#[tokio::test]
async fn private_xml_storage_round_trips_and_survives_restart() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><color>blue</color></prefs></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let r = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:private'><x xmlns='jabber:iq:private'/></query></iq>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "not-allowed");
    drop(alice);
    let s = s.restart().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza("<iq type='get'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>"))
        .await
        .unwrap();
    let prefs = r
        .get_child("query", "jabber:iq:private")
        .unwrap()
        .get_child("prefs", "urn:example:prefs")
        .unwrap();
    assert_eq!(
        prefs
            .get_child("color", "urn:example:prefs")
            .unwrap()
            .text(),
        "blue"
    );
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    let r = bob
        .iq(stanza("<iq type='get' to='alice@localhost'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
}

#[tokio::test]
async fn blocking_a_contact_stops_their_messages_both_ways() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    let r = alice
        .iq(stanza(
            "<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(
        r.get_child("blocklist", "urn:xmpp:blocking")
            .unwrap()
            .children()
            .count(),
        0
    );
    let r = alice
        .iq(stanza("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    // The push reaches alice, who fetched the list.
    alice
        .recv_where(|e| e.name() == "iq" && e.has_child("block", "urn:xmpp:blocking"))
        .await
        .unwrap();

    bob.send(stanza(
        "<message to='alice@localhost' id='b1' type='chat'><body>hey</body></message>",
    ))
    .await
    .unwrap();
    let err = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(error_condition(&err), "service-unavailable");

    alice
        .send(stanza(
            "<message to='bob@localhost' id='a1' type='chat'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let err = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(error_condition(&err), "not-acceptable");
    assert!(
        err.get_child("error", "jabber:client")
            .unwrap()
            .has_child("blocked", "urn:xmpp:blocking:errors")
    );

    let r = alice
        .iq(stanza(
            "<iq type='set'><unblock xmlns='urn:xmpp:blocking'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    bob.send_message("alice@localhost", "again").await.unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "again"
    );
}

#[tokio::test]
async fn in_band_registration_when_enabled() {
    let s = TestServer::start_with(|c| c.auth.registration = true).await;
    let mut raw_cfg = s.client_config("newbie@localhost", "fresh-pass");
    raw_cfg.resource = Some("r".into());
    rookery_client::Client::register(raw_cfg.clone())
        .await
        .expect("registration");
    let mut c = rookery_client::Client::connect(raw_cfg)
        .await
        .expect("the new account logs in");
    // Change the password in-band, then remove the account.
    let r = c
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:register'><username>newbie</username><password>newer</password></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let r = c
        .iq(stanza(
            "<iq type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let gone = s.client_config("newbie@localhost", "newer");
    assert!(
        rookery_client::Client::authenticate_only(gone)
            .await
            .is_err()
    );
}
