//! Multi-user chat (XEP-0045) conversations: creating rooms, entering, talking,
//! administering, configuring, persistence and the errors of bad requests.

use minidom::Element;
use rookery_client::Client;
use rookery_tests::{TestServer, error_condition, stanza};

const MUC: &str = "http://jabber.org/protocol/muc";
const USER: &str = "http://jabber.org/protocol/muc#user";
const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const OWNER: &str = "http://jabber.org/protocol/muc#owner";
const ROOM: &str = "room@conference.localhost";

async fn server_with(users: &[&str]) -> TestServer {
    let s = TestServer::start().await;
    for u in users {
        s.add_user(&format!("{u}@localhost"), "pass").await;
    }
    s
}

async fn online(s: &TestServer, user: &str) -> Client {
    s.online(&format!("{user}@localhost"), "pass", "r").await
}

/// Status codes in a presence's `<x xmlns='muc#user'/>`.
fn codes(p: &Element) -> Vec<String> {
    p.get_child("x", USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>` of a MUC presence: (affiliation, role, jid).
fn item(p: &Element) -> (String, String, Option<String>) {
    let i = p
        .get_child("x", USER)
        .and_then(|x| x.get_child("item", USER))
        .expect("a muc#user item");
    (
        i.attr("affiliation").unwrap().to_owned(),
        i.attr("role").unwrap().to_owned(),
        i.attr("jid").map(str::to_owned),
    )
}

fn is_presence_from(from: &str) -> impl Fn(&Element) -> bool {
    let from = from.to_owned();
    move |e: &Element| e.name() == "presence" && e.attr("from") == Some(from.as_str())
}

/// Send a join presence to `room/nick` with `extra` inside `<x xmlns='muc'/>`.
async fn send_join(c: &mut Client, room: &str, nick: &str, extra: &str) {
    c.send(stanza(&format!(
        "<presence to='{room}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>"
    )))
    .await
    .unwrap();
}

/// Join and wait for the self-presence; returns it.
async fn join(c: &mut Client, room: &str, nick: &str) -> Element {
    send_join(c, room, nick, "").await;
    let from = format!("{room}/{nick}");
    c.recv_where(move |e| {
        e.name() == "presence"
            && (e.attr("type") == Some("error")
                || e.attr("from") == Some(from.as_str()) && codes(e).contains(&"110".to_owned()))
    })
    .await
    .unwrap()
}

/// Join and then read the subject message that ends the join sequence.
async fn enter(c: &mut Client, room: &str, nick: &str) -> Element {
    let p = join(c, room, nick).await;
    assert_ne!(p.attr("type"), Some("error"), "{}", String::from(&p));
    c.recv_where(|e| e.name() == "message" && e.get_child("subject", "jabber:client").is_some())
        .await
        .unwrap();
    p
}

/// `alice` creates `ROOM` as an instant room.
async fn create_instant(alice: &mut Client) {
    let p = join(alice, ROOM, "alice").await;
    let c = codes(&p);
    assert!(
        c.contains(&"201".into()) && c.contains(&"110".into()),
        "{c:?}"
    );
    assert_eq!(item(&p).0, "owner");
    assert_eq!(item(&p).1, "moderator");
    // The subject ends the entry, the creator's too (XEP-0045 §7.2.16).
    alice
        .recv_where(|e| e.name() == "message" && e.get_child("subject", "jabber:client").is_some())
        .await
        .unwrap();
    let r = alice
        .iq(stanza(&format!(
            "<iq type='set' to='{ROOM}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

async fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) -> Element {
    let mut x = String::from(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>",
    );
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    x.push_str("</x>");
    c.iq(stanza(&format!(
        "<iq type='set' to='{room}'><query xmlns='{OWNER}'>{x}</query></iq>"
    )))
    .await
    .unwrap()
}

async fn admin_set(c: &mut Client, items: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='{ROOM}'><query xmlns='{ADMIN}'>{items}</query></iq>"
    )))
    .await
    .unwrap()
}

#[tokio::test]
async fn alice_creates_a_room_bob_enters_and_they_talk() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    let mut bob = online(&s, "bob").await;
    create_instant(&mut alice).await;

    // Bob enters: he first sees alice, then himself, then the (empty) subject.
    send_join(&mut bob, ROOM, "bob", "").await;
    let first = bob.recv_where(|e| e.name() == "presence").await.unwrap();
    assert_eq!(first.attr("from"), Some("room@conference.localhost/alice"));
    assert_eq!(item(&first).0, "owner");
    assert_eq!(
        item(&first).2,
        None,
        "a semi-anonymous room hides real JIDs from participants"
    );
    let own = bob.recv_where(|e| e.name() == "presence").await.unwrap();
    assert_eq!(own.attr("from"), Some("room@conference.localhost/bob"));
    assert_eq!(codes(&own), ["110"]);
    assert_eq!(item(&own).1, "participant");
    let subject = bob.recv().await.unwrap();
    assert_eq!(subject.attr("type"), Some("groupchat"));
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .map(|s| s.text()),
        Some(String::new())
    );

    // Alice, a moderator, sees bob arrive with his real JID.
    let seen = alice
        .recv_where(is_presence_from("room@conference.localhost/bob"))
        .await
        .unwrap();
    assert_eq!(item(&seen).2.as_deref(), Some("bob@localhost/r"));

    // A groupchat message reaches everyone, the sender too, with the room's stanza-id.
    bob.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat' id='m1'><body>hello room</body></message>"
    )))
    .await
    .unwrap();
    for c in [&mut alice, &mut bob] {
        let m = c
            .recv_where(|e| e.name() == "message" && e.get_child("body", "jabber:client").is_some())
            .await
            .unwrap();
        assert_eq!(m.attr("from"), Some("room@conference.localhost/bob"));
        assert_eq!(m.attr("id"), Some("m1"));
        let sid = m
            .get_child("stanza-id", "urn:xmpp:sid:0")
            .expect("a stanza-id");
        assert_eq!(sid.attr("by"), Some(ROOM));
    }

    // A private message goes to one occupant, from the sender's occupant JID.
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}/bob' type='chat'><body>psst</body></message>"
        )))
        .await
        .unwrap();
    let pm = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(pm.attr("from"), Some("room@conference.localhost/alice"));
    assert_eq!(
        pm.get_child("body", "jabber:client").unwrap().text(),
        "psst"
    );

    // Bob leaves; alice sees him go, he sees his own exit (110).
    bob.send(stanza(&format!(
        "<presence to='{ROOM}/bob' type='unavailable'/>"
    )))
    .await
    .unwrap();
    let gone = alice
        .recv_where(is_presence_from("room@conference.localhost/bob"))
        .await
        .unwrap();
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(item(&gone).1, "none");
    let own = bob.recv_where(|e| e.name() == "presence").await.unwrap();
    assert!(codes(&own).contains(&"110".into()));
}

#[tokio::test]
async fn a_new_room_is_locked_until_its_owner_configures_it() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    let mut bob = online(&s, "bob").await;
    let p = join(&mut alice, ROOM, "alice").await;
    assert!(codes(&p).contains(&"201".into()));
    // Meanwhile nobody else gets in.
    let refused = join(&mut bob, ROOM, "bob").await;
    assert_eq!(error_condition(&refused), "item-not-found");
    // The owner asks for the form, and submits it: a reserved room.
    let form = alice
        .iq(stanza(&format!(
            "<iq type='get' to='{ROOM}'><query xmlns='{OWNER}'/></iq>"
        )))
        .await
        .unwrap();
    let x = form
        .get_child("query", OWNER)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .expect("a form");
    assert!(
        x.children()
            .any(|f| f.attr("var") == Some("muc#roomconfig_persistentroom"))
    );
    let r = configure(
        &mut alice,
        ROOM,
        &[("muc#roomconfig_roomname", "Contest room")],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    enter(&mut bob, ROOM, "bob").await;
    // Disco shows the name.
    let info = bob
        .iq(stanza(&format!(
            "<iq type='get' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )))
        .await
        .unwrap();
    let q = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(id.attr("category"), Some("conference"));
    assert_eq!(id.attr("name"), Some("Contest room"));
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        MUC,
        "muc_temporary",
        "muc_open",
        "muc_unmoderated",
        "muc_semianonymous",
        "muc_unsecured",
    ] {
        assert!(features.contains(&f), "{f} in {features:?}");
    }
}

#[tokio::test]
async fn history_subject_and_nick_changes() {
    let s = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    for i in 1..=3 {
        alice
            .send(stanza(&format!(
                "<message to='{ROOM}' type='groupchat'><body>line {i}</body></message>"
            )))
            .await
            .unwrap();
    }
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}' type='groupchat'><subject>Contest day</subject></message>"
        )))
        .await
        .unwrap();
    for _ in 0..4 {
        alice.recv_where(|e| e.name() == "message").await.unwrap();
    }

    // Bob asks for the last two messages only.
    let mut bob = online(&s, "bob").await;
    send_join(&mut bob, ROOM, "bob", "<history maxstanzas='2'/>").await;
    let mut bodies = Vec::new();
    let subject = loop {
        let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
        if let Some(sub) = m.get_child("subject", "jabber:client") {
            break (sub.text(), m.attr("from").map(str::to_owned));
        }
        assert!(
            m.get_child("delay", "urn:xmpp:delay").is_some(),
            "history is delayed"
        );
        bodies.push(m.get_child("body", "jabber:client").unwrap().text());
    };
    assert_eq!(bodies, ["line 2", "line 3"]);
    assert_eq!(
        subject,
        (
            "Contest day".into(),
            Some("room@conference.localhost/alice".into())
        )
    );

    // Carol wants no history at all.
    let mut carol = online(&s, "carol").await;
    send_join(&mut carol, ROOM, "carol", "<history maxchars='0'/>").await;
    let m = carol.recv_where(|e| e.name() == "message").await.unwrap();
    assert!(
        m.get_child("subject", "jabber:client").is_some(),
        "only the subject: {}",
        String::from(&m)
    );

    // A participant may not change the subject by default.
    bob.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat' id='s1'><subject>mine</subject></message>"
    )))
    .await
    .unwrap();
    let e = bob
        .recv_where(|e| e.attr("id") == Some("s1"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "forbidden");

    // Bob becomes "robert": everyone sees 303 with the new nick, then robert arrives.
    bob.send(stanza(&format!("<presence to='{ROOM}/robert'/>")))
        .await
        .unwrap();
    let out = alice
        .recv_where(|e| {
            is_presence_from("room@conference.localhost/bob")(e)
                && e.attr("type") == Some("unavailable")
        })
        .await
        .unwrap();
    assert!(codes(&out).contains(&"303".into()));
    let nick = out
        .get_child("x", USER)
        .unwrap()
        .get_child("item", USER)
        .unwrap()
        .attr("nick");
    assert_eq!(nick, Some("robert"));
    alice
        .recv_where(is_presence_from("room@conference.localhost/robert"))
        .await
        .unwrap();
    // Carol cannot take alice's nick.
    carol
        .send(stanza(&format!("<presence to='{ROOM}/alice'/>")))
        .await
        .unwrap();
    let e = carol
        .recv_where(|e| e.attr("type") == Some("error"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "conflict");
}

#[tokio::test]
async fn moderators_kick_admins_ban_and_members_only_rooms_keep_others_out() {
    let s = server_with(&["alice", "bob", "carol", "dave"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let mut bob = online(&s, "bob").await;
    enter(&mut bob, ROOM, "bob").await;
    let mut carol = online(&s, "carol").await;
    enter(&mut carol, ROOM, "carol").await;

    // A participant cannot kick.
    let r = admin_set(&mut bob, "<item nick='carol' role='none'/>").await;
    assert_eq!(error_condition(&r), "forbidden");

    // Alice makes bob an admin: he becomes a moderator, everyone sees it.
    let r = admin_set(
        &mut alice,
        "<item jid='bob@localhost' affiliation='admin'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let p = carol
        .recv_where(|e| {
            is_presence_from("room@conference.localhost/bob")(e) && item(e).0 == "admin"
        })
        .await
        .unwrap();
    assert_eq!(item(&p).1, "moderator");

    // Bob kicks carol, with a reason; she hears 307.
    let r = admin_set(
        &mut bob,
        "<item nick='carol' role='none'><reason>flooding</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let kicked = carol
        .recv_where(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await
        .unwrap();
    let c = codes(&kicked);
    assert!(
        c.contains(&"307".into()) && c.contains(&"110".into()),
        "{c:?}"
    );
    // An admin cannot kick the owner.
    let r = admin_set(&mut bob, "<item nick='alice' role='none'/>").await;
    assert_eq!(error_condition(&r), "not-allowed");
    // Nor can an admin make someone owner.
    let r = admin_set(
        &mut bob,
        "<item jid='carol@localhost' affiliation='owner'/>",
    )
    .await;
    assert_eq!(error_condition(&r), "not-allowed");

    // Bob bans carol; she cannot come back.
    let r = admin_set(
        &mut bob,
        "<item jid='carol@localhost' affiliation='outcast'><reason>spam</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let back = join(&mut carol, ROOM, "carol").await;
    assert_eq!(error_condition(&back), "forbidden");
    // The outcast list shows her.
    let list = bob
        .iq(stanza(&format!("<iq type='get' to='{ROOM}'><query xmlns='{ADMIN}'><item affiliation='outcast'/></query></iq>")))
        .await
        .unwrap();
    let jids: Vec<&str> = list
        .get_child("query", ADMIN)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid"))
        .collect();
    assert_eq!(jids, ["carol@localhost"]);

    // Members only: dave is not a member.
    let r = configure(&mut alice, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    assert_eq!(r.attr("type"), Some("result"));
    let mut dave = online(&s, "dave").await;
    let p = join(&mut dave, ROOM, "dave").await;
    assert_eq!(error_condition(&p), "registration-required");
    admin_set(
        &mut alice,
        "<item jid='dave@localhost' affiliation='member'/>",
    )
    .await;
    enter(&mut dave, ROOM, "dave").await;

    // The last owner cannot step down.
    let r = admin_set(
        &mut alice,
        "<item jid='alice@localhost' affiliation='member'/>",
    )
    .await;
    assert_eq!(error_condition(&r), "conflict");
}

#[tokio::test]
async fn a_persistent_room_survives_a_restart_with_its_affiliations_and_subject() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Jury"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    admin_set(
        &mut alice,
        "<item jid='bob@localhost' affiliation='member'/>",
    )
    .await;
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}' type='groupchat'><subject>Day 1</subject></message>"
        )))
        .await
        .unwrap();
    alice.recv_where(|e| e.name() == "message").await.unwrap();
    // Everyone leaves; the room stays.
    alice.close().await.unwrap();
    let s = s.restart().await;
    let mut bob = online(&s, "bob").await;
    let p = join(&mut bob, ROOM, "bob").await;
    assert_eq!(item(&p).0, "member", "{}", String::from(&p));
    let subject = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .unwrap()
            .text(),
        "Day 1"
    );
    let items = bob
        .iq(stanza("<iq type='get' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"))
        .await
        .unwrap();
    let rooms: Vec<(Option<&str>, Option<&str>)> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .map(|i| (i.attr("jid"), i.attr("name")))
        .collect();
    assert_eq!(rooms, [(Some(ROOM), Some("Jury"))]);
}

#[tokio::test]
async fn the_owner_destroys_the_room_and_occupants_are_told_where_to_go() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let mut bob = online(&s, "bob").await;
    enter(&mut bob, ROOM, "bob").await;
    let r = bob
        .iq(stanza(&format!(
            "<iq type='set' to='{ROOM}'><query xmlns='{OWNER}'><destroy/></query></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    let r = alice
        .iq(stanza(&format!(
            "<iq type='set' to='{ROOM}'><query xmlns='{OWNER}'><destroy jid='other@conference.localhost'><reason>moved</reason></destroy></query></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let p = bob
        .recv_where(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await
        .unwrap();
    let d = p
        .get_child("x", USER)
        .unwrap()
        .get_child("destroy", USER)
        .expect("<destroy/>");
    assert_eq!(d.attr("jid"), Some("other@conference.localhost"));
    assert_eq!(d.get_child("reason", USER).unwrap().text(), "moved");
    // The room is gone: a message to it bounces.
    bob.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat' id='x'><body>hi</body></message>"
    )))
    .await
    .unwrap();
    let e = bob.recv_where(|e| e.attr("id") == Some("x")).await.unwrap();
    assert_eq!(error_condition(&e), "item-not-found");
}

#[tokio::test]
async fn bad_requests_get_the_errors_of_the_xep() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let mut bob = online(&s, "bob").await;

    // No nick.
    bob.send(stanza(&format!(
        "<presence to='{ROOM}' id='p1'><x xmlns='{MUC}'/></presence>"
    )))
    .await
    .unwrap();
    let e = bob
        .recv_where(|e| e.attr("id") == Some("p1"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "jid-malformed");
    // A nick that is not a valid resource: the router refuses the address.
    let long = "n".repeat(1100);
    bob.send(stanza(&format!("<presence to='{ROOM}/{long}' id='p2'/>")))
        .await
        .unwrap();
    let e = bob
        .recv_where(|e| e.attr("id") == Some("p2"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "jid-malformed");
    // Speaking without entering.
    bob.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat' id='m1'><body>hi</body></message>"
    )))
    .await
    .unwrap();
    let e = bob
        .recv_where(|e| e.attr("id") == Some("m1"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "not-acceptable");
    // A private message to nobody.
    enter(&mut bob, ROOM, "bob").await;
    bob.send(stanza(&format!(
        "<message to='{ROOM}/nobody' type='chat' id='m2'><body>hi</body></message>"
    )))
    .await
    .unwrap();
    let e = bob
        .recv_where(|e| e.attr("id") == Some("m2"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "item-not-found");
    // An oversize subject (the owner may set subjects, but not this long).
    let long = "x".repeat(2000);
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}' type='groupchat' id='s'><subject>{long}</subject></message>"
        )))
        .await
        .unwrap();
    let e = alice
        .recv_where(|e| e.attr("id") == Some("s"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "not-acceptable");
    // A bad configuration value.
    let r = configure(&mut alice, ROOM, &[("muc#roomconfig_maxusers", "lots")]).await;
    assert_eq!(error_condition(&r), "not-acceptable");
    // A room password: wrong or missing is not-authorized.
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let mut carol = {
        s.add_user("carol@localhost", "pass").await;
        online(&s, "carol").await
    };
    let p = join(&mut carol, ROOM, "carol").await;
    assert_eq!(error_condition(&p), "not-authorized");
    send_join(&mut carol, ROOM, "carol", "<password>s3cret</password>").await;
    carol
        .recv_where(|e| e.name() == "presence" && codes(e).contains(&"110".into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_nonexistent_room_is_not_created_by_those_who_may_not_and_disconnects_leave() {
    let s = TestServer::start_with(|c| c.muc.create = "admins".into()).await;
    s.add_user("bob@localhost", "pass").await;
    s.add_user("admin@localhost", "pass").await;
    let mut bob = online(&s, "bob").await;
    let p = join(&mut bob, ROOM, "bob").await;
    assert_eq!(error_condition(&p), "not-allowed");
    // The admin may; bob then enters, and his disconnect takes him out of the room.
    let mut admin = online(&s, "admin").await;
    create_instant(&mut admin).await;
    enter(&mut bob, ROOM, "bob").await;
    admin
        .recv_where(is_presence_from("room@conference.localhost/bob"))
        .await
        .unwrap();
    bob.close().await.unwrap();
    let gone = admin
        .recv_where(is_presence_from("room@conference.localhost/bob"))
        .await
        .unwrap();
    assert_eq!(gone.attr("type"), Some("unavailable"));
}

#[tokio::test]
async fn invitations_are_passed_on_and_admins_invitations_admit_to_members_only_rooms() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    let mut bob = online(&s, "bob").await;
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}'><x xmlns='{USER}'><invite to='bob@localhost'><reason>join us</reason></invite></x></message>"
        )))
        .await
        .unwrap();
    let inv = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(inv.attr("from"), Some(ROOM));
    let i = inv
        .get_child("x", USER)
        .unwrap()
        .get_child("invite", USER)
        .unwrap();
    assert_eq!(i.attr("from"), Some("alice@localhost/r"));
    assert_eq!(i.get_child("reason", USER).unwrap().text(), "join us");
    let p = enter(&mut bob, ROOM, "bob").await;
    assert_eq!(item(&p).0, "member");
    // A direct invitation (XEP-0249) is an ordinary message between users.
    alice
        .send(stanza(&format!(
            "<message to='bob@localhost/r'><x xmlns='jabber:x:conference' jid='{ROOM}' reason='come'/></message>"
        )))
        .await
        .unwrap();
    let d = bob
        .recv_where(|e| e.get_child("x", "jabber:x:conference").is_some())
        .await
        .unwrap();
    assert_eq!(
        d.get_child("x", "jabber:x:conference").unwrap().attr("jid"),
        Some(ROOM)
    );
}

#[tokio::test]
async fn two_sessions_share_one_nick_and_both_receive() {
    let s = server_with(&["alice", "bob"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let mut phone = s.online("bob@localhost", "pass", "phone").await;
    let mut laptop = s.online("bob@localhost", "pass", "laptop").await;
    enter(&mut phone, ROOM, "bob").await;
    enter(&mut laptop, ROOM, "bob").await;
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}' type='groupchat'><body>both?</body></message>"
        )))
        .await
        .unwrap();
    for c in [&mut phone, &mut laptop] {
        let m = c
            .recv_where(|e| e.name() == "message" && e.get_child("body", "jabber:client").is_some())
            .await
            .unwrap();
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            "both?"
        );
    }
    // One session leaving keeps the nick in the room.
    phone
        .send(stanza(&format!(
            "<presence to='{ROOM}/bob' type='unavailable'/>"
        )))
        .await
        .unwrap();
    alice
        .send(stanza(&format!(
            "<message to='{ROOM}/bob' type='chat'><body>still there?</body></message>"
        )))
        .await
        .unwrap();
    let m = laptop
        .recv_where(|e| e.name() == "message" && e.attr("type") == Some("chat"))
        .await
        .unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "still there?"
    );
}

/// Run a command of the MUC service to the end, completing its form with `fields`.
async fn run_command(
    c: &mut Client,
    node: &str,
    fields: &[(&str, &[&str])],
) -> rookery_client::CommandSession {
    rookery_tests::run_command(c, "conference.localhost", node, fields).await
}

#[tokio::test]
async fn server_admins_list_rooms_set_affiliations_and_destroy_rooms_by_command() {
    let s = server_with(&["alice", "bob", "admin"]).await;
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    let mut admin = online(&s, "admin").await;

    // Only administrators see the commands.
    let mut bob = online(&s, "bob").await;
    let err = bob
        .execute("conference.localhost", "rookery:muc:list-rooms")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");

    let list = run_command(&mut admin, "rookery:muc:list-rooms", &[]).await;
    let form = list.form.expect("a result form");
    assert_eq!(form.items.len(), 1);
    assert!(form.items[0].iter().any(|f| f.values == [ROOM]));

    // Making bob an owner by command shows in the room at once.
    run_command(
        &mut admin,
        "rookery:muc:set-affiliation",
        &[
            ("room", &[ROOM]),
            ("jid", &["bob@localhost"]),
            ("affiliation", &["owner"]),
        ],
    )
    .await;
    let p = enter(&mut bob, ROOM, "bob").await;
    assert_eq!(item(&p).0, "owner");

    run_command(
        &mut admin,
        "rookery:muc:destroy-room",
        &[("room", &[ROOM]), ("reason", &["contest over"])],
    )
    .await;
    let gone = alice
        .recv_where(|e| {
            e.name() == "presence"
                && e.attr("type") == Some("unavailable")
                && codes(e).contains(&"110".into())
                || e.get_child("x", USER)
                    .and_then(|x| x.get_child("destroy", USER))
                    .is_some()
        })
        .await
        .unwrap();
    let d = gone
        .get_child("x", USER)
        .unwrap()
        .get_child("destroy", USER)
        .expect("<destroy/>");
    assert_eq!(d.get_child("reason", USER).unwrap().text(), "contest over");
}

#[tokio::test]
async fn an_affiliation_naming_a_shared_group_applies_to_its_members() {
    use rookery_server::admin::{AdminRequest, AdminTarget, execute};
    use rookery_server::modules::groups::GroupOp;
    let s = server_with(&["alice", "bob", "carol", "dave"]).await;
    for op in [
        GroupOp::Add {
            id: "halls".into(),
            name: Some("Halls".into()),
            show_in_roster: false,
        },
        GroupOp::MemberAdd {
            id: "halls".into(),
            jids: vec!["bob@localhost".into()],
        },
        GroupOp::Add {
            id: "jury".into(),
            name: Some("Jury".into()),
            show_in_roster: false,
        },
        GroupOp::MemberAdd {
            id: "jury".into(),
            jids: vec!["carol@localhost".into()],
        },
    ] {
        let r = execute(
            AdminTarget::Running(&s.server),
            AdminRequest::Group {
                host: "localhost".into(),
                op,
            },
        )
        .await;
        assert!(r.ok, "{}", r.message);
    }
    let mut alice = online(&s, "alice").await;
    create_instant(&mut alice).await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    let r = admin_set(
        &mut alice,
        "<item jid='halls@groups.localhost' affiliation='member'/><item jid='jury@groups.localhost' affiliation='admin'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));

    // Bob is a member through the Halls group, carol an admin (and moderator) through Jury.
    let mut bob = online(&s, "bob").await;
    let p = enter(&mut bob, ROOM, "bob").await;
    assert_eq!(
        (item(&p).0.as_str(), item(&p).1.as_str()),
        ("member", "participant")
    );
    let mut carol = online(&s, "carol").await;
    let p = enter(&mut carol, ROOM, "carol").await;
    assert_eq!(
        (item(&p).0.as_str(), item(&p).1.as_str()),
        ("admin", "moderator")
    );
    // Dave is in no group: the members-only room keeps him out.
    let mut dave = online(&s, "dave").await;
    let p = join(&mut dave, ROOM, "dave").await;
    assert_eq!(error_condition(&p), "registration-required");

    // Taking the Halls group's membership away removes bob at once (321).
    admin_set(
        &mut alice,
        "<item jid='halls@groups.localhost' affiliation='none'/>",
    )
    .await;
    let out = bob
        .recv_where(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await
        .unwrap();
    assert!(codes(&out).contains(&"321".into()), "{:?}", codes(&out));
}
