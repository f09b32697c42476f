//! Presence subscriptions (RFC 6121 §3) in every order, with roster pushes and presence.

use minidom::Element;
use rookery_tests::{TestServer, stanza};

const ROSTER: &str = "jabber:iq:roster";

async fn alice_and_bob() -> TestServer {
    let s = TestServer::start().await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    s
}

fn presence(ty: &str, to: &str) -> Element {
    stanza(&format!("<presence type='{ty}' to='{to}'/>"))
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

/// The roster push for `contact`, returning (subscription, ask).
async fn push_for(c: &mut rookery_client::Client, contact: &str) -> (String, Option<String>) {
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
    // Acknowledge the push as a client should.
    let id = iq.attr("id").unwrap_or("").to_owned();
    c.send(stanza(&format!("<iq type='result' id='{id}'/>")))
        .await
        .unwrap();
    let item = iq
        .get_child("query", ROSTER)
        .unwrap()
        .get_child("item", ROSTER)
        .unwrap();
    (
        item.attr("subscription").unwrap().to_owned(),
        item.attr("ask").map(str::to_owned),
    )
}

async fn roster_item(
    c: &mut rookery_client::Client,
    contact: &str,
) -> Option<(String, Option<String>)> {
    let r = c
        .iq(stanza(
            "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>",
        ))
        .await
        .unwrap();
    let q = r.get_child("query", ROSTER)?;
    q.children()
        .find(|i| i.attr("jid") == Some(contact))
        .map(|i| {
            (
                i.attr("subscription").unwrap().to_owned(),
                i.attr("ask").map(str::to_owned),
            )
        })
}

#[tokio::test]
async fn alice_subscribes_and_bob_approves_while_both_are_online() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    // Both become interested in roster pushes.
    roster_item(&mut alice, "bob@localhost").await;
    roster_item(&mut bob, "alice@localhost").await;

    alice
        .send(presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    assert_eq!(
        push_for(&mut alice, "bob@localhost").await,
        ("none".into(), Some("subscribe".into()))
    );
    let req = bob
        .recv_where(is_presence("subscribe", "alice@localhost"))
        .await
        .unwrap();
    assert_eq!(
        req.attr("from"),
        Some("alice@localhost"),
        "requests come from the bare JID"
    );

    bob.send(presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    assert_eq!(
        push_for(&mut bob, "alice@localhost").await,
        ("from".into(), None)
    );
    alice
        .recv_where(is_presence("subscribed", "bob@localhost"))
        .await
        .unwrap();
    assert_eq!(
        push_for(&mut alice, "bob@localhost").await,
        ("to".into(), None)
    );
    // And alice now sees bob's presence.
    let p = alice
        .recv_where(is_presence("available", "bob@localhost"))
        .await
        .unwrap();
    assert_eq!(p.attr("from"), Some("bob@localhost/b"));

    // When bob goes offline, alice hears it.
    bob.close().await.unwrap();
    alice
        .recv_where(is_presence("unavailable", "bob@localhost/b"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_request_to_an_offline_user_waits_for_their_next_login() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    alice
        .send(presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    alice
        .iq(stanza("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .await
        .unwrap();

    let s = s.restart().await; // pending-in survives a restart
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    bob.send_presence().await.unwrap();
    bob.recv_where(is_presence("subscribe", "alice@localhost"))
        .await
        .unwrap();
    bob.send(presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("subscribed", "bob@localhost"))
        .await
        .unwrap();
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("to".into(), None))
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("from".into(), None))
    );
}

#[tokio::test]
async fn a_pre_approved_request_is_accepted_by_the_server() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    // Bob approves before alice asks (RFC 6121 §3.4).
    bob.send(presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    bob.iq(stanza("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .await
        .unwrap();

    alice
        .send(presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("subscribed", "bob@localhost"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("available", "bob@localhost"))
        .await
        .unwrap();
    // Bob was never asked.
    bob.send(stanza(
        "<message to='bob@localhost/b'><body>marker</body></message>",
    ))
    .await
    .unwrap();
    let first = bob.recv_where(|e| e.name() != "iq").await.unwrap();
    assert_eq!(
        first.name(),
        "message",
        "bob saw no subscription request: {first:?}"
    );
}

#[tokio::test]
async fn mutual_subscription_then_both_cancel() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;

    alice
        .send(presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("subscribe", "alice@localhost"))
        .await
        .unwrap();
    bob.send(presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    bob.send(presence("subscribe", "alice@localhost"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    alice
        .send(presence("subscribed", "bob@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("both".into(), None))
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("both".into(), None))
    );

    // Alice stops receiving bob's presence.
    alice
        .send(presence("unsubscribe", "bob@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("unsubscribe", "alice@localhost"))
        .await
        .unwrap();
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("from".into(), None))
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("to".into(), None))
    );

    // Bob cancels alice's subscription to him... he has none; alice cancels bob's.
    alice
        .send(presence("unsubscribed", "bob@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("unsubscribed", "alice@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("unavailable", "alice@localhost/a"))
        .await
        .unwrap();
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("none".into(), None))
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("none".into(), None))
    );
}

#[tokio::test]
async fn removing_a_contact_cancels_both_directions() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    alice
        .send(presence("subscribe", "bob@localhost"))
        .await
        .unwrap();
    bob.recv_where(is_presence("subscribe", "alice@localhost"))
        .await
        .unwrap();
    bob.send(presence("subscribed", "alice@localhost"))
        .await
        .unwrap();
    alice
        .recv_where(is_presence("subscribed", "bob@localhost"))
        .await
        .unwrap();

    let r = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    bob.recv_where(is_presence("unsubscribe", "alice@localhost"))
        .await
        .unwrap();
    assert_eq!(roster_item(&mut alice, "bob@localhost").await, None);
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("none".into(), None))
    );
}

#[tokio::test]
async fn roster_set_names_and_groups_and_versioning() {
    let s = alice_and_bob().await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let first = alice
        .iq(stanza(
            "<iq type='get'><query xmlns='jabber:iq:roster' ver=''/></iq>",
        ))
        .await
        .unwrap();
    let ver0 = first
        .get_child("query", ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();
    alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'><group>Friends</group><group>Work</group></item></query></iq>"))
        .await
        .unwrap();
    let r = alice
        .iq(stanza(&format!(
            "<iq type='get'><query xmlns='jabber:iq:roster' ver='{ver0}'/></iq>"
        )))
        .await
        .unwrap();
    let q = r
        .get_child("query", ROSTER)
        .expect("a changed roster comes back whole");
    let ver1 = q.attr("ver").unwrap().to_owned();
    assert_ne!(ver0, ver1);
    let item = q.get_child("item", ROSTER).unwrap();
    assert_eq!(item.attr("name"), Some("Bobby"));
    let groups: Vec<String> = item.children().map(|g| g.text()).collect();
    assert_eq!(groups, ["Friends", "Work"]);
    // An unchanged roster is not sent again (RFC 6121 §2.6.3).
    let r = alice
        .iq(stanza(&format!(
            "<iq type='get'><query xmlns='jabber:iq:roster' ver='{ver1}'/></iq>"
        )))
        .await
        .unwrap();
    assert!(r.get_child("query", ROSTER).is_none());

    // Bad sets are refused with a reason.
    let r = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group>A</group><group>A</group></item></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("error"));
    let r = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='a@b'/><item jid='c@d'/></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("error"));
}
