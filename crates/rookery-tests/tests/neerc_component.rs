//! The NEERC contest service as an external XEP-0114 component (`rookery neerc-component`):
//! the server runs no contest service of its own; a component process with its own store
//! serves `neerc.localhost`, reads the room's affiliations with XEP-0045 admin queries and
//! the group's members with disco, and follows the room's occupants from its presence.

use std::time::Duration;

use rookery_server::neerc::external::{ExternalOptions, run};
use rookery_tests::contest::*;
use rookery_tests::{TestServer, error_condition, stanza};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NAME: &str = "neerc.localhost";
const SECRET: &str = "the contest component's secret";

/// A running component process (in this test's runtime).
struct Component {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Component {
    /// Start the component against `s`, keeping its tasks in `data`.
    fn start(s: &TestServer, data: &TempDir, secret: &str) -> Component {
        let opts = ExternalOptions {
            server: s.component_addr().to_string(),
            name: NAME.into(),
            secret: secret.into(),
            host: "localhost".into(),
            muc: "conference.localhost".into(),
            groups: "groups.localhost".into(),
        };
        let config = rookery_server::Config {
            data_dir: data.path().to_owned(),
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(opts, config, stop.clone()));
        Component { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// A contest of `halls` halls whose server lets the component serve it: the built-in
/// service is off, `neerc.localhost` is a configured component and an owner of the room.
async fn contest_for_component(halls: usize) -> (TestServer, rookery_client::Client) {
    let (s, mut admin) = contest_config(halls, |c| {
        c.neerc.enabled = false;
        c.components.push(rookery_config::Component {
            name: NAME.into(),
            secret: SECRET.into(),
        });
    })
    .await;
    let r = admin_set(
        &mut admin,
        &format!("<item jid='{NAME}' affiliation='owner'/>"),
    )
    .await;
    is_result(&r);
    (s, admin)
}

/// Wait until the component answers and has entered the room (its nick's presence).
async fn until_ready(admin: &mut rookery_client::Client) {
    admin
        .recv_where(|e| {
            e.name() == "presence"
                && e.attr("from") == Some(&format!("{ROOM}/NEERC service") as &str)
        })
        .await
        .expect("the component enters the room");
}

#[tokio::test]
async fn the_component_serves_the_contest_like_the_built_in_service() {
    let (s, mut admin) = contest_for_component(3).await;
    let data = TempDir::new().unwrap();
    let component = Component::start(&s, &data, SECRET);
    until_ready(&mut admin).await;

    // A hall entering the room gets the clock from the component.
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;

    // Users: the owner by their own entry, the halls by the group's.
    let expected = vec![
        user("admin", "Admins", "yes"),
        user("hall1", "Halls", "no"),
        user("hall2", "Halls", "no"),
        user("hall3", "Halls", "no"),
    ];
    assert_eq!(
        ask_users(&mut hall1, "neerc@neerc.localhost").await,
        expected
    );
    assert_eq!(ask_users(&mut admin, NAME).await, expected);

    // The jury creates a task; the hall in the room hears of it.
    create(
        &mut admin,
        "title='Check the printers' type='okfail'",
        "<status for='hall1' type='none'/><status for='hall2' type='none'/>",
    )
    .await;
    let (message, task) = next_change(&mut hall1).await;
    assert_eq!(message.attr("from"), Some("neerc@neerc.localhost"));
    assert_eq!(task.attr("title"), Some("Check the printers"));
    let id = task.attr("id").unwrap().to_owned();

    // The hall answers; the jury (in the room before the component came) hears of it.
    let r = set_status(&mut hall1, &id, "fail", "printer 3 is jammed").await;
    is_result(&r);
    let (_, created) = next_change(&mut admin).await;
    assert_eq!(created.attr("id"), Some(id.as_str()));
    let (_, task) = next_change(&mut admin).await;
    assert!(
        statuses(&task).contains(&st("hall1", "fail", Some("printer 3 is jammed"))),
        "{}",
        String::from(&task)
    );

    // Everyone sees the same board.
    let board = ask_tasks(&mut hall1).await;
    assert_eq!(board.len(), 1);

    // The server still refuses users' forged updates, with the service elsewhere.
    hall1
        .send(stanza(&format!(
            "<message to='{ROOM}' type='groupchat' id='spoof'><body>Task 'x' (1) changed</body>\
             <x xmlns='{NS_TASKS}'><task id='1' title='x' type='todo'/></x></message>"
        )))
        .await
        .unwrap();
    let e = hall1
        .recv_where(|e| e.attr("id") == Some("spoof"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "forbidden");
    component.stop().await;
}

#[tokio::test]
async fn tasks_survive_a_restart_of_the_component() {
    let (s, mut admin) = contest_for_component(2).await;
    let data = TempDir::new().unwrap();
    let component = Component::start(&s, &data, SECRET);
    until_ready(&mut admin).await;
    create(
        &mut admin,
        "title='Kept' type='todo'",
        "<status for='hall2' type='none'/>",
    )
    .await;
    component.stop().await;
    // It leaves the room as it stops.
    admin
        .recv_where(|e| {
            e.name() == "presence"
                && e.attr("type") == Some("unavailable")
                && e.attr("from") == Some(&format!("{ROOM}/NEERC service") as &str)
        })
        .await
        .expect("the component leaves the room");

    // While it is gone, its domain is unavailable.
    let r = admin
        .iq(stanza(&format!(
            "<iq type='get' to='{NAME}'><query xmlns='{NS_TASKS}'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");

    let component = Component::start(&s, &data, SECRET);
    until_ready(&mut admin).await;
    let mut hall2 = online(&s, "hall2").await;
    let board = ask_tasks(&mut hall2).await;
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].attr("title"), Some("Kept"));
    component.stop().await;
}

#[tokio::test]
async fn outsiders_are_refused_and_an_affiliation_change_shows_at_once() {
    let (s, mut admin) = contest_for_component(2).await;
    let data = TempDir::new().unwrap();
    let component = Component::start(&s, &data, SECRET);
    until_ready(&mut admin).await;

    let mut outsider = online(&s, "outsider").await;
    let r = outsider
        .iq(stanza(&format!(
            "<iq type='get' to='{NAME}'><query xmlns='{NS_USERS}'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");

    // hall1, in the room, becomes an admin: the component sees the presence change and
    // reads the affiliations again.
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;
    assert_eq!(
        ask_users(&mut hall1, NAME).await[1],
        user("hall1", "Halls", "no")
    );
    let r = admin_set(
        &mut admin,
        "<item jid='hall1@localhost' affiliation='admin'/>",
    )
    .await;
    is_result(&r);
    hall1
        .recv_where(|e| {
            e.name() == "presence"
                && e.get_child("x", USER)
                    .and_then(|x| x.get_child("item", USER))
                    .and_then(|i| i.attr("affiliation"))
                    == Some("admin")
        })
        .await
        .unwrap();
    // The component got the same presence; give its reading loop a moment.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = ask_users(&mut hall1, NAME).await;
        if seen.contains(&user("hall1", "Halls", "yes")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.contains(&user("hall1", "Halls", "yes")), "{seen:?}");
    component.stop().await;
}

#[tokio::test]
async fn without_a_place_in_the_room_the_component_says_what_to_do() {
    // No owner entry for the component this time.
    let (s, _admin) = contest_config(1, |c| {
        c.neerc.enabled = false;
        c.components.push(rookery_config::Component {
            name: NAME.into(),
            secret: SECRET.into(),
        });
    })
    .await;
    let data = TempDir::new().unwrap();
    let component = Component::start(&s, &data, SECRET);
    let mut hall1 = online(&s, "hall1").await;
    let mut answer = None;
    for _ in 0..100 {
        let r = hall1
            .iq(stanza(&format!(
                "<iq type='get' to='{NAME}'><query xmlns='{NS_USERS}'/></iq>"
            )))
            .await
            .unwrap();
        // service-unavailable until the component is connected.
        if r.attr("type") != Some("error") || error_condition(&r) != "service-unavailable" {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = answer.expect("the component connects");
    assert_eq!(error_condition(&r), "internal-server-error");
    let text = String::from(&r);
    assert!(
        text.contains("must make neerc.localhost an owner or admin"),
        "{text}"
    );
    component.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_stops_the_component_at_once() {
    let (s, _admin) = contest_for_component(1).await;
    let data = TempDir::new().unwrap();
    let component = Component::start(&s, &data, "not the secret");
    let outcome = tokio::time::timeout(Duration::from_secs(10), component.task)
        .await
        .expect("the component gives up")
        .unwrap();
    let e = format!("{:#}", outcome.expect_err("a wrong secret is an error"));
    assert!(e.contains("not-authorized"), "{e}");
}
