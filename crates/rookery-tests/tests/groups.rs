//! Shared groups: members of a group shown in rosters see each other and each other's
//! presence; administrators manage groups with ad-hoc commands and the admin interface.

use minidom::Element;
use rookery_client::rookery_forms::{DataForm, NoteType};
use rookery_client::{Client, CommandSession};
use rookery_server::admin::{self, AdminRequest, AdminResponse, AdminTarget};
use rookery_server::modules::groups::{self, GroupOp};
use rookery_tests::{TestServer, stanza};
use std::time::Duration;

const ROSTER: &str = "jabber:iq:roster";

async fn server() -> TestServer {
    let s = TestServer::start().await;
    for (jid, pw) in [
        ("admin@localhost", "admin-pass"),
        ("alice@localhost", "a-pass"),
        ("bob@localhost", "b-pass"),
        ("carol@localhost", "c-pass"),
    ] {
        s.add_user(jid, pw).await;
    }
    s
}

/// A `rookery group …` request to the running server, as the CLI sends it.
async fn group(s: &TestServer, op: GroupOp) -> AdminResponse {
    let r = admin::execute(
        AdminTarget::Running(&s.server),
        AdminRequest::Group {
            host: "localhost".into(),
            op,
        },
    )
    .await;
    assert!(r.ok, "{}", r.message);
    r
}

async fn create(s: &TestServer, id: &str, name: &str, shown: bool, members: &[&str]) {
    group(
        s,
        GroupOp::Add {
            id: id.into(),
            name: Some(name.into()),
            show_in_roster: shown,
        },
    )
    .await;
    if members.is_empty() {
        return;
    }
    group(
        s,
        GroupOp::MemberAdd {
            id: id.into(),
            jids: members.iter().map(|m| m.to_string()).collect(),
        },
    )
    .await;
}

/// One roster item as a client sees it.
#[derive(Debug, PartialEq)]
struct Item {
    jid: String,
    name: Option<String>,
    subscription: String,
    groups: Vec<String>,
}

fn item(e: &Element) -> Item {
    Item {
        jid: e.attr("jid").unwrap().to_owned(),
        name: e.attr("name").map(str::to_owned),
        subscription: e.attr("subscription").unwrap().to_owned(),
        groups: e
            .children()
            .filter(|g| g.is("group", ROSTER))
            .map(Element::text)
            .collect(),
    }
}

/// The roster (and its version) as a roster get returns it.
async fn roster(c: &mut Client) -> (String, Vec<Item>) {
    let r = c.roster_get().await.unwrap();
    let q = r.get_child("query", ROSTER).expect("a roster");
    (
        q.attr("ver").unwrap_or("").to_owned(),
        q.children().map(item).collect(),
    )
}

fn shared(jid: &str, groups: &[&str]) -> Item {
    Item {
        jid: jid.into(),
        name: None,
        subscription: "both".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn is_presence(ty: &'static str, from: &str) -> impl Fn(&Element) -> bool {
    let from = from.to_owned();
    move |e: &Element| {
        e.name() == "presence"
            && e.attr("type").unwrap_or("available") == ty
            && e.attr("from").is_some_and(|f| f.starts_with(&from))
    }
}

#[tokio::test]
async fn members_of_a_shown_group_see_each_other_and_each_others_presence() {
    let s = server().await;
    create(
        &s,
        "halls",
        "Halls",
        true,
        &["alice@localhost", "bob@localhost"],
    )
    .await;

    // Alice had bob in her roster already, under a name and a group of her own.
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    roster(&mut alice).await; // from now on she gets roster pushes
    let r = alice
        .iq(stanza(
            "<iq type='set'><query xmlns='jabber:iq:roster'>\
             <item jid='bob@localhost' name='Bobby'><group>Friends</group></item>\
             </query></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    // The push shows the stored item with the shared group merged in.
    let push = alice
        .recv_where(|e| e.name() == "iq" && e.attr("type") == Some("set"))
        .await
        .unwrap();
    let pushed = item(
        push.get_child("query", ROSTER)
            .unwrap()
            .get_child("item", ROSTER)
            .unwrap(),
    );
    assert_eq!(pushed.groups, ["Friends", "Halls"]);

    // Her roster: bob keeps his name and gains the group; carol is in no group with her.
    let (_, items) = roster(&mut alice).await;
    assert_eq!(
        items,
        vec![Item {
            jid: "bob@localhost".into(),
            name: Some("Bobby".into()),
            subscription: "both".into(),
            groups: vec!["Friends".into(), "Halls".into()],
        }]
    );

    // Bob logs in: he sees alice, both get each other's presence.
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    let (_, items) = roster(&mut bob).await;
    assert_eq!(items, vec![shared("alice@localhost", &["Halls"])]);
    bob.send_presence().await.unwrap();
    alice
        .recv_where(is_presence("available", "bob@localhost/b"))
        .await
        .expect("alice hears bob come online");
    bob.recv_where(is_presence("available", "alice@localhost/a"))
        .await
        .expect("bob hears alice's presence (the probe's answer)");

    // Carol, in no group, hears nothing and sees nobody.
    let mut carol = s.online("carol@localhost", "c-pass", "c").await;
    assert!(roster(&mut carol).await.1.is_empty());
    alice
        .send(stanza("<presence><show>away</show></presence>"))
        .await
        .unwrap();
    bob.recv_where(|e| {
        e.name() == "presence"
            && e.get_child("show", "jabber:client").map(Element::text) == Some("away".into())
    })
    .await
    .expect("bob hears alice's change");
    carol
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();

    // Bob leaves: alice hears it.
    bob.close().await.unwrap();
    alice
        .recv_where(is_presence("unavailable", "bob@localhost/b"))
        .await
        .expect("alice hears bob go");

    // None of this was written into the stored rosters.
    let (_, stored) = s
        .server
        .stores()
        .roster
        .roster("localhost", "bob")
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    let (_, stored) = s
        .server
        .stores()
        .roster
        .roster("localhost", "alice")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].groups, ["Friends"]);
    assert_eq!(stored[0].subscription.as_str(), "none");
}

#[tokio::test]
async fn a_group_not_shown_in_rosters_stays_out_of_them() {
    let s = server().await;
    create(
        &s,
        "jury",
        "Jury",
        false,
        &["alice@localhost", "bob@localhost"],
    )
    .await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    assert!(roster(&mut alice).await.1.is_empty());
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    assert!(roster(&mut bob).await.1.is_empty());
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .expect("no presence from bob");
}

#[tokio::test]
async fn the_next_login_sees_the_current_membership() {
    let s = server().await;
    create(&s, "halls", "Halls", true, &["alice@localhost"]).await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let (ver, items) = roster(&mut alice).await;
    assert!(items.is_empty());
    alice.close().await.unwrap();

    // Bob joins while alice is away; her cached roster version is then out of date.
    group(
        &s,
        GroupOp::MemberAdd {
            id: "halls".into(),
            jids: vec!["bob@localhost".into()],
        },
    )
    .await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let r = alice
        .iq(stanza(&format!(
            "<iq type='get'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>"
        )))
        .await
        .unwrap();
    let q = r
        .get_child("query", ROSTER)
        .expect("the whole roster again");
    let items: Vec<Item> = q.children().map(item).collect();
    assert_eq!(items, vec![shared("bob@localhost", &["Halls"])]);
    // With the current version nothing is sent.
    let ver = q.attr("ver").unwrap().to_owned();
    let r = alice
        .iq(stanza(&format!(
            "<iq type='get'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>"
        )))
        .await
        .unwrap();
    assert!(r.get_child("query", ROSTER).is_none(), "{r:?}");

    // A second shown group adds its name; hiding it takes it away again.
    create(
        &s,
        "staff",
        "Staff",
        true,
        &["alice@localhost", "bob@localhost"],
    )
    .await;
    let (_, items) = roster(&mut alice).await;
    assert_eq!(items, vec![shared("bob@localhost", &["Halls", "Staff"])]);
    group(&s, GroupOp::Del { id: "halls".into() }).await;
    let (_, items) = roster(&mut alice).await;
    assert_eq!(items, vec![shared("bob@localhost", &["Staff"])]);

    // A deleted account leaves its groups.
    let r = admin::execute(
        AdminTarget::Running(&s.server),
        AdminRequest::UserDel {
            jid: "bob@localhost".into(),
        },
    )
    .await;
    assert!(r.ok, "{}", r.message);
    assert!(roster(&mut alice).await.1.is_empty());
    let members = group(&s, GroupOp::Members { id: "staff".into() }).await;
    assert_eq!(members.items, ["alice@localhost"]);
}

#[tokio::test]
async fn group_jids_name_groups_that_other_features_expand() {
    let s = server().await;
    create(
        &s,
        "halls",
        "Halls",
        false,
        &["bob@localhost", "alice@localhost"],
    )
    .await;
    create(&s, "coaches", "Coaches", false, &["alice@localhost"]).await;

    let jid = groups::group_jid("localhost", "halls");
    assert_eq!(jid.as_str(), "halls@groups.localhost");
    assert_eq!(
        groups::parse_group_jid(&s.server, &jid),
        Some(("localhost".to_owned(), "halls".to_owned()))
    );
    let elsewhere = jid::BareJid::new("halls@groups.elsewhere.example").unwrap();
    assert_eq!(groups::parse_group_jid(&s.server, &elsewhere), None);
    let user = jid::BareJid::new("alice@localhost").unwrap();
    assert_eq!(groups::parse_group_jid(&s.server, &user), None);

    let members: Vec<String> = groups::members(&s.server, "localhost", "halls")
        .await
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(members, ["alice@localhost", "bob@localhost"]);
    assert!(
        groups::members(&s.server, "localhost", "nope")
            .await
            .is_empty()
    );
    let of: Vec<(String, String)> = groups::groups_of(&s.server, &user)
        .await
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    assert_eq!(
        of,
        [
            ("coaches".to_owned(), "Coaches".to_owned()),
            ("halls".to_owned(), "Halls".to_owned())
        ]
    );
}

/// Run a group command to the end: execute, then (if it asks) complete with `fields`.
async fn run(c: &mut Client, name: &str, fields: &[(&str, &[&str])]) -> CommandSession {
    rookery_tests::run_command(c, "localhost", &groups::node(name), fields).await
}

fn notes(s: &CommandSession, kind: NoteType) -> Vec<&str> {
    s.notes
        .iter()
        .filter(|n| n.kind == kind)
        .map(|n| n.text.as_str())
        .collect()
}

fn result(s: &CommandSession) -> &DataForm {
    s.form.as_ref().expect("a result form")
}

#[tokio::test]
async fn an_admin_manages_groups_with_adhoc_commands_and_others_may_not() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;

    let done = run(
        &mut admin,
        "create",
        &[
            ("id", &["Halls"]),
            ("name", &["Contest halls"]),
            ("show_in_roster", &["1"]),
        ],
    )
    .await;
    assert_eq!(
        notes(&done, NoteType::Info),
        ["created the group halls (Contest halls) on localhost"],
        "the id is nodeprepped"
    );
    let again = run(&mut admin, "create", &[("id", &["halls"])]).await;
    assert!(
        notes(&again, NoteType::Error)[0].contains("already exists"),
        "{again:?}"
    );
    let bad = run(&mut admin, "create", &[("id", &["no@good"])]).await;
    assert!(
        notes(&bad, NoteType::Error)[0].contains("not a valid group id"),
        "{bad:?}"
    );
    run(&mut admin, "create", &[("id", &["jury"])]).await;

    // The member form offers the existing groups.
    let session = admin
        .execute("localhost", &groups::node("add-members"))
        .await
        .unwrap();
    let options: Vec<&str> = session
        .form
        .as_ref()
        .unwrap()
        .field("id")
        .unwrap()
        .options
        .iter()
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(options, ["halls", "jury"]);
    let mut session = session;
    session.cancel(&mut admin).await.unwrap();

    let added = run(
        &mut admin,
        "add-members",
        &[
            ("id", &["halls"]),
            (
                "members",
                &["alice@localhost", "bob@localhost", "localhost"],
            ),
        ],
    )
    .await;
    assert_eq!(
        notes(&added, NoteType::Info),
        ["added to halls: alice@localhost, bob@localhost"]
    );
    assert_eq!(
        notes(&added, NoteType::Error).len(),
        1,
        "a domain is no member"
    );
    let again = run(
        &mut admin,
        "add-members",
        &[("id", &["halls"]), ("members", &["alice@localhost"])],
    )
    .await;
    assert_eq!(
        notes(&again, NoteType::Warn),
        ["already members: alice@localhost"]
    );

    let list = run(&mut admin, "list", &[]).await;
    let rows: Vec<Vec<&str>> = result(&list)
        .items
        .iter()
        .map(|row| row.iter().map(|f| f.values[0].as_str()).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["halls", "Contest halls", "1", "2"],
            vec!["jury", "jury", "0", "0"]
        ]
    );

    let members = run(&mut admin, "members", &[("id", &["halls"])]).await;
    assert_eq!(
        result(&members).field("members").unwrap().values,
        ["alice@localhost", "bob@localhost"]
    );

    let removed = run(
        &mut admin,
        "remove-members",
        &[("id", &["halls"]), ("members", &["bob@localhost"])],
    )
    .await;
    assert_eq!(
        notes(&removed, NoteType::Info),
        ["removed from halls: bob@localhost"]
    );
    let deleted = run(&mut admin, "delete", &[("id", &["jury"])]).await;
    assert_eq!(
        notes(&deleted, NoteType::Info),
        ["deleted the group jury on localhost"]
    );
    let list = group(&s, GroupOp::List).await;
    assert_eq!(list.items, ["halls\tContest halls\tshown"]);

    // Alice is no administrator: she neither sees nor runs the commands.
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let visible = alice.list_commands("localhost").await.unwrap();
    assert!(
        !visible
            .iter()
            .any(|c| c.node.starts_with(groups::NODE_PREFIX)),
        "{visible:?}"
    );
    for name in ["create", "list", "add-members"] {
        let e = alice
            .execute("localhost", &groups::node(name))
            .await
            .expect_err("refused");
        assert_eq!(
            e.stanza_error().expect("a stanza error").condition,
            "forbidden"
        );
    }
    let list = group(&s, GroupOp::List).await;
    assert_eq!(list.items.len(), 1, "nothing changed");
}

#[tokio::test]
async fn the_admin_interface_reports_mistakes() {
    let s = server().await;
    let fail = |op| {
        let s = &s;
        async move {
            admin::execute(
                AdminTarget::Running(&s.server),
                AdminRequest::Group {
                    host: "localhost".into(),
                    op,
                },
            )
            .await
        }
    };
    let r = fail(GroupOp::Members { id: "nope".into() }).await;
    assert!(
        !r.ok && r.message.contains("there is no group nope"),
        "{r:?}"
    );
    let r = fail(GroupOp::Add {
        id: "".into(),
        name: None,
        show_in_roster: false,
    })
    .await;
    assert!(!r.ok && r.message.contains("not a valid group id"), "{r:?}");
    create(&s, "halls", "Halls", true, &[]).await;
    let r = fail(GroupOp::MemberAdd {
        id: "halls".into(),
        jids: vec!["alice@localhost".into(), "not a jid@@".into()],
    })
    .await;
    assert!(!r.ok && r.message.contains("1 added to halls"), "{r:?}");
    let r = admin::execute(
        AdminTarget::Running(&s.server),
        AdminRequest::Group {
            host: "elsewhere.example".into(),
            op: GroupOp::List,
        },
    )
    .await;
    assert!(!r.ok && r.message.contains("does not serve"), "{r:?}");
}
