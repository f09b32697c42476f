//! XEP-0050 ad-hoc commands: discovery, sessions, every action and every error, over TCP.

use rookery_client::adhoc::{AdhocError, CommandCondition};
use rookery_client::rookery_forms::{Action, Command, DataForm, Field, Status};
use rookery_server::adhoc::{CommandDef, On, Permission, Reply, immediate, wizard};
use rookery_server::module::{Module, ModuleContext};
use rookery_tests::{TestServer, stanza};

const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const WIZARD: &str = "urn:test:wizard";

/// A module with a two-stage command and one that only bob may run.
struct TestCommands;

impl Module for TestCommands {
    fn name(&self) -> &'static str {
        "test_commands"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        let stage1 = DataForm::form("Who are you?")
            .with_field(Field::text_single("name", "Your name").required());
        let stage2 = DataForm::form("Pick a colour").with_field(
            Field::list_single("colour", "Colour", &[("Red", "red"), ("Blue", "blue")]).required(),
        );
        m.command(CommandDef::new(
            On::Hosts,
            WIZARD,
            "Two-stage wizard",
            Permission::LocalUser,
            wizard(vec![stage1, stage2], |_req, values| async move {
                let name = values[0].str("name").unwrap_or_default().to_owned();
                let colour = values[1].str("colour").unwrap_or_default().to_owned();
                Ok(Reply::completed().info(format!("{name} likes {colour}")))
            }),
        ));
        m.command(CommandDef::new(
            On::Hosts,
            "urn:test:bob-only",
            "Only for bob",
            Permission::custom(|_, from, _| from.node().map(|n| n.as_str()) == Some("bob")),
            immediate(|_req| async { Ok(Reply::completed().info("hello bob")) }),
        ));
    }
}

async fn server_with(f: impl FnOnce(&mut rookery_server::Config)) -> TestServer {
    let s = TestServer::start_with(f).await;
    s.server.load_module(&TestCommands);
    s.add_user("admin@localhost", "admin-pass").await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    s
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// The stanza error of a refused request.
fn refused(r: Result<impl std::fmt::Debug, AdhocError>) -> rookery_client::adhoc::StanzaError {
    match r {
        Err(AdhocError::Stanza(e)) => e,
        other => panic!("expected a stanza error, got {other:?}"),
    }
}

fn submit(name: &str) -> DataForm {
    DataForm::submit().set("name", &[name])
}

#[tokio::test]
async fn the_command_list_depends_on_who_asks() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;

    // The server advertises the commands feature.
    let info = alice
        .iq(stanza("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await
        .unwrap();
    let q = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(
        q.children()
            .any(|f| f.attr("var") == Some("http://jabber.org/protocol/commands"))
    );

    let nodes = |items: Vec<rookery_client::CommandItem>| -> Vec<String> {
        items.into_iter().map(|i| i.node).collect()
    };
    let for_admin = nodes(admin.list_commands("localhost").await.unwrap());
    let for_alice = nodes(alice.list_commands("localhost").await.unwrap());
    let for_bob = nodes(bob.list_commands("localhost").await.unwrap());
    assert!(for_admin.contains(&ADD_USER.to_owned()), "{for_admin:?}");
    assert!(for_admin.len() > 30, "all XEP-0133 commands: {for_admin:?}");
    let mut sorted = for_admin.clone();
    sorted.sort();
    assert_eq!(for_admin, sorted, "listed in node order");
    assert!(!for_alice.contains(&ADD_USER.to_owned()), "{for_alice:?}");
    assert!(for_alice.contains(&WIZARD.to_owned()));
    assert!(for_alice.contains(&"urn:rookery:admin#ping".to_owned()));
    assert!(!for_alice.contains(&"urn:test:bob-only".to_owned()));
    assert!(for_bob.contains(&"urn:test:bob-only".to_owned()));

    // disco#info on a command node: identity and features for those allowed, forbidden
    // for the others.
    let ask = format!(
        "<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='{ADD_USER}'/></iq>"
    );
    let r = admin.iq(stanza(&ask)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(id.attr("category"), Some("automation"));
    assert_eq!(id.attr("type"), Some("command-node"));
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    assert!(features.contains(&"jabber:x:data"), "{features:?}");
    let r = alice.iq(stanza(&ask)).await.unwrap();
    assert_eq!(r.attr("type"), Some("error"));
    assert!(String::from(&r).contains("forbidden"), "{r:?}");
}

#[tokio::test]
async fn a_two_stage_command_goes_forward_back_and_completes() {
    let s = server().await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;

    let mut session = alice.execute("localhost", WIZARD).await.unwrap();
    assert!(session.is_executing());
    assert_eq!(
        session.allowed_actions(),
        vec![Action::Next, Action::Cancel]
    );
    assert_eq!(session.default_action(), Some(Action::Next));
    assert_eq!(
        session.form.as_ref().unwrap().title.as_deref(),
        Some("Who are you?")
    );

    // There is no stage before the first.
    let e = refused(session.prev(&mut alice).await);
    assert_eq!(e.condition, "bad-request");
    assert_eq!(e.command_condition, Some(CommandCondition::BadAction));
    // Nor may the first stage be completed.
    let e = refused(session.complete(&mut alice, Some(submit("Alice"))).await);
    assert_eq!(e.command_condition, Some(CommandCondition::BadAction));

    session
        .next(&mut alice, Some(submit("Alice")))
        .await
        .unwrap();
    assert_eq!(
        session.form.as_ref().unwrap().title.as_deref(),
        Some("Pick a colour")
    );
    assert_eq!(
        session.allowed_actions(),
        vec![Action::Prev, Action::Complete, Action::Cancel]
    );
    assert_eq!(session.default_action(), Some(Action::Complete));

    // Back to the first stage, which remembers the name.
    session.prev(&mut alice).await.unwrap();
    assert_eq!(session.form.as_ref().unwrap().value("name"), Some("Alice"));
    session
        .next(&mut alice, Some(submit("Alicia")))
        .await
        .unwrap();

    // `execute` means the stage's default action: complete.
    let colour = DataForm::submit().set("colour", &["blue"]);
    session
        .execute_default(&mut alice, Some(colour))
        .await
        .unwrap();
    assert!(session.is_completed());
    assert_eq!(session.notes[0].text, "Alicia likes blue");

    // The ended session cannot be continued.
    let mut again = Command::request(WIZARD, Action::Next);
    again.sessionid = session.sessionid.clone();
    let e = refused(alice.send_command("localhost", &again).await);
    assert_eq!(e.condition, "not-allowed");
    assert_eq!(e.command_condition, Some(CommandCondition::SessionExpired));
}

#[tokio::test]
async fn a_bad_submission_is_explained_and_the_stage_can_be_fixed() {
    let s = server().await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let mut session = alice.execute("localhost", WIZARD).await.unwrap();

    let e = refused(session.next(&mut alice, Some(DataForm::submit())).await);
    assert_eq!(e.condition, "bad-request");
    assert_eq!(e.command_condition, Some(CommandCondition::BadPayload));
    assert!(e.text.unwrap().contains("'Your name' (name) is required"));
    let e = refused(session.next(&mut alice, None).await);
    assert_eq!(e.command_condition, Some(CommandCondition::BadPayload));

    session
        .next(&mut alice, Some(submit("Alice")))
        .await
        .unwrap();
    let e = refused(
        session
            .complete(
                &mut alice,
                Some(DataForm::submit().set("colour", &["green"])),
            )
            .await,
    );
    assert!(
        e.text
            .unwrap()
            .contains("'green' is not one of the options (red, blue)")
    );
    session
        .complete(&mut alice, Some(DataForm::submit().set("colour", &["red"])))
        .await
        .unwrap();
    assert!(session.is_completed());
}

#[tokio::test]
async fn cancel_ends_the_session_for_good() {
    let s = server().await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let mut session = alice.execute("localhost", WIZARD).await.unwrap();
    session.cancel(&mut alice).await.unwrap();
    assert!(session.is_canceled());

    let mut again = Command::request(WIZARD, Action::Next);
    again.sessionid = session.sessionid.clone();
    again.form = Some(submit("Alice"));
    let e = refused(alice.send_command("localhost", &again).await);
    assert_eq!(e.command_condition, Some(CommandCondition::SessionExpired));
    assert_eq!(e.error_type, "cancel");
}

#[tokio::test]
async fn sessions_belong_to_their_requester_and_node() {
    let s = server().await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let mut alice2 = s.login("alice@localhost", "a-pass", "other").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    let session = alice.execute("localhost", WIZARD).await.unwrap();

    let mut steal = Command::request(WIZARD, Action::Next);
    steal.sessionid = session.sessionid.clone();
    steal.form = Some(submit("Mallory"));
    for thief in [&mut bob, &mut alice2] {
        let e = refused(thief.send_command("localhost", &steal).await);
        assert_eq!(e.command_condition, Some(CommandCondition::BadSessionid));
    }
    // Same id, another node.
    let mut other_node = steal.clone();
    other_node.node = "urn:rookery:admin#ping".into();
    let e = refused(alice.send_command("localhost", &other_node).await);
    assert_eq!(e.command_condition, Some(CommandCondition::BadSessionid));
    // An id nobody issued.
    let mut made_up = steal.clone();
    made_up.sessionid = Some("0123456789abcdef".into());
    let e = refused(alice.send_command("localhost", &made_up).await);
    assert_eq!(e.command_condition, Some(CommandCondition::BadSessionid));
    // A continuing action with no id at all.
    let e = refused(
        alice
            .send_command("localhost", &Command::request(WIZARD, Action::Next))
            .await,
    );
    assert_eq!(e.command_condition, Some(CommandCondition::BadSessionid));

    // The owner still can go on.
    let mut mine = Command::request(WIZARD, Action::Next);
    mine.sessionid = session.sessionid.clone();
    mine.form = Some(submit("Alice"));
    let reply = alice.send_command("localhost", &mine).await.unwrap();
    assert_eq!(reply.status, Some(Status::Executing));
}

#[tokio::test]
async fn protocol_errors_get_their_conditions() {
    let s = server().await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;

    let r = alice
        .iq(stanza(&format!("<iq type='set' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='{WIZARD}' action='jump'/></iq>")))
        .await
        .unwrap();
    let e = rookery_client::adhoc::StanzaError::from_iq(&r).unwrap();
    assert_eq!(
        (e.error_type.as_str(), e.condition.as_str()),
        ("modify", "bad-request")
    );
    assert_eq!(e.command_condition, Some(CommandCondition::MalformedAction));

    let r = alice
        .iq(stanza(&format!("<iq type='get' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='{WIZARD}'/></iq>")))
        .await
        .unwrap();
    let e = rookery_client::adhoc::StanzaError::from_iq(&r).unwrap();
    assert_eq!(e.condition, "bad-request");
    assert!(e.text.unwrap().contains("'set'"));

    let e = refused(alice.execute("bob@localhost", WIZARD).await);
    assert_eq!(
        (e.error_type.as_str(), e.condition.as_str()),
        ("cancel", "feature-not-implemented")
    );

    let e = refused(alice.execute("localhost", "urn:no-such-command").await);
    assert_eq!(
        (e.error_type.as_str(), e.condition.as_str()),
        ("cancel", "item-not-found")
    );

    let e = refused(alice.execute("localhost", ADD_USER).await);
    assert_eq!(e.condition, "forbidden");
    assert!(e.text.is_some());

    let e = refused(alice.execute("localhost", "urn:test:bob-only").await);
    assert_eq!(e.condition, "forbidden");
}

#[tokio::test]
async fn idle_sessions_expire_and_each_requester_has_a_cap() {
    let s = server_with(|c| {
        c.limits.adhoc_session_secs = 1;
        c.limits.adhoc_sessions_per_user = 2;
    })
    .await;
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let first = alice.execute("localhost", WIZARD).await.unwrap();
    let _second = alice.execute("localhost", WIZARD).await.unwrap();
    let e = refused(alice.execute("localhost", WIZARD).await);
    assert_eq!(e.condition, "not-allowed");
    assert!(e.text.unwrap().contains("2 command sessions open"));
    // Bob has his own allowance.
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    bob.execute("localhost", WIZARD).await.unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut late = Command::request(WIZARD, Action::Next);
    late.sessionid = first.sessionid.clone();
    late.form = Some(submit("Alice"));
    let e = refused(alice.send_command("localhost", &late).await);
    assert_eq!(e.command_condition, Some(CommandCondition::SessionExpired));
    // Expired sessions no longer count against the cap.
    alice.execute("localhost", WIZARD).await.unwrap();
}

/// A service with its own route (as MUC and NEERC are): its commands live on its JID.
struct Service;

#[async_trait::async_trait]
impl rookery_server::router::Route for Service {
    async fn route(&self, server: &rookery_server::Server, stanza: minidom::Element) {
        if let Some(reply) = rookery_server::adhoc::service_iq(server, &stanza).await {
            server.route(reply).await;
        }
    }
}

#[tokio::test]
async fn a_service_offers_commands_on_its_own_jid() {
    let s = server().await;
    s.server
        .register_service("svc.localhost", std::sync::Arc::new(Service));
    s.server.registry().add_command(
        "test_service",
        CommandDef::new(
            On::Jid("svc.localhost".into()),
            "urn:test:svc-hello",
            "Say hello",
            Permission::Any,
            immediate(|req| async move {
                Ok(Reply::completed().info(format!("hello from {}", req.to)))
            }),
        ),
    );
    let mut alice = s.login("alice@localhost", "a-pass", "a").await;
    let on_service: Vec<String> = alice
        .list_commands("svc.localhost")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.node)
        .collect();
    assert_eq!(on_service, ["urn:test:svc-hello"]);
    // The server's own list does not show it, and the service shows none of the server's.
    let on_host = alice.list_commands("localhost").await.unwrap();
    assert!(on_host.iter().all(|i| i.node != "urn:test:svc-hello"));
    let done = alice
        .execute("svc.localhost", "urn:test:svc-hello")
        .await
        .unwrap();
    assert_eq!(done.notes[0].text, "hello from svc.localhost");
    let e = refused(alice.execute("svc.localhost", ADD_USER).await);
    assert_eq!(e.condition, "item-not-found");
}
