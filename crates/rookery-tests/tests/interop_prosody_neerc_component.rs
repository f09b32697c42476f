//! Interoperability with Prosody (Debian's package) of the NEERC contest service as an
//! external XEP-0114 component (`rookery neerc-component`).
//!
//! A Prosody started by the test serves `contest.test` (c2s on a free port of 127.0.0.1,
//! no federation), its MUC at `conference.contest.test`, and accepts the component
//! `neerc.contest.test` on another free port of 127.0.0.1. The jury creates the contest
//! room in Prosody's MUC, makes the halls its members and the component its owner (so that
//! it may read the affiliation lists and sees the occupants' real JIDs); the component,
//! run in this process, then serves the room as it does on rookery: the clock for a
//! newcomer, `#users` from Prosody's affiliation lists (Prosody has no groups), tasks and
//! their broadcasts to the occupants it follows from the room's presence, `forbidden` for
//! whoever is not affiliated, and after a restart the occupants found again.
//!
//! Every account uses rookery's test client over plaintext with SCRAM-SHA-1, which
//! Prosody allows when told to. Without Prosody the test is skipped (it fails under `CI`,
//! where `.ci/run` installs it).

use minidom::Element;
use rookery_client::Client;
use rookery_server::neerc::external::{ExternalOptions, run};
use rookery_tests::contest::{
    ADMIN, MUC, NS_CLOCK, NS_TASK, NS_TASKS, NS_TASKSTATUS, NS_USERS, OWNER, USER, is_result, st,
    statuses, task_list, user, users,
};
use rookery_tests::prosody::{self, Prosody, Setup, condition, online};
use rookery_tests::{error_condition, stanza};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const HOST: &str = "contest.test";
const MUC_DOMAIN: &str = "conference.contest.test";
const COMPONENT: &str = "neerc.contest.test";
const SECRET: &str = "the contest component's secret";
const ROOM: &str = "neerc@conference.contest.test";
/// The service's address for the room (the local part names the room).
const SERVICE: &str = "neerc@neerc.contest.test";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PASSWORD: &str = "pass";

#[tokio::test(flavor = "multi_thread")]
async fn the_contest_component_serves_a_room_of_prosody() {
    if prosody::skip(prosody::missing()) {
        return;
    }
    let component_port = prosody::free_port_on(LOOPBACK);
    let prosody = tokio::task::spawn_blocking(move || start_prosody(component_port))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    // The jury makes the room: members-only, the halls members, the component an owner.
    let mut jury1 = online(prosody.client("jury1@contest.test", PASSWORD, "desk")).await;
    create_room(&mut jury1).await;
    for (jid, affiliation) in [
        ("hall1@contest.test", "member"),
        ("hall2@contest.test", "member"),
        (COMPONENT, "owner"),
    ] {
        let r = admin_set(&mut jury1, jid, affiliation).await;
        is_result(&r);
    }

    // The component connects to Prosody and enters the room.
    let data = TempDir::new().unwrap();
    let component = Component::start(SocketAddr::new(LOOPBACK, component_port), &data);
    until_entered(&mut jury1).await;

    // A hall entering the room gets the contest clock from the component.
    let mut hall1 = online(prosody.client("hall1@contest.test", PASSWORD, "phone")).await;
    let clock = enter(&mut hall1, "hall1").await;
    assert_eq!(clock.attr("from"), Some(SERVICE));
    assert_eq!(clock.attr("type"), Some("headline"));

    // Users from Prosody's affiliation lists: the owner has power, the members do not;
    // with no groups, their groups are Admins and Users. The component is not a user.
    let expected = vec![
        user("jury1", "Admins", "yes"),
        user("hall1", "Users", "no"),
        user("hall2", "Users", "no"),
    ];
    assert_eq!(ask_users(&mut hall1, SERVICE).await, expected);
    assert_eq!(ask_users(&mut jury1, COMPONENT).await, expected);

    // The jury creates a task; the hall in the room hears of it.
    let created = create_task(
        &mut jury1,
        "title='Check the printers' type='todo'",
        "<status for='hall1' type='none'/>",
    )
    .await;
    let id = created.attr("id").expect("the task's id").to_owned();
    let (message, task) = next_change(&mut hall1).await;
    assert_eq!(message.attr("from"), Some(SERVICE));
    assert_eq!(message.attr("type"), Some("headline"));
    assert_eq!(task.attr("id"), Some(id.as_str()));
    assert_eq!(task.attr("title"), Some("Check the printers"));
    assert_eq!(statuses(&task), vec![st("hall1", "none", None)]);

    // The hall starts it; the jury, in the room, hears of both changes.
    let r = set_status(&mut hall1, &id, "running", "on my way").await;
    is_result(&r);
    let (_, task) = next_change(&mut jury1).await;
    assert_eq!(task.attr("id"), Some(id.as_str()), "the creation");
    let (_, task) = next_change(&mut jury1).await;
    assert_eq!(task.attr("id"), Some(id.as_str()));
    assert!(
        statuses(&task).contains(&st("hall1", "running", Some("on my way"))),
        "{}",
        String::from(&task)
    );
    let (_, task) = next_change(&mut hall1).await;
    assert!(statuses(&task).contains(&st("hall1", "running", Some("on my way"))));

    // A member sees the same board, in the room or not.
    let mut hall2 = online(prosody.client("hall2@contest.test", PASSWORD, "phone")).await;
    let board = ask_tasks(&mut hall2).await;
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].attr("title"), Some("Check the printers"));

    // Someone with no affiliation may not enter the room, nor use the service.
    let mut outsider = online(prosody.client("outsider@contest.test", PASSWORD, "r")).await;
    outsider
        .send(stanza(&format!(
            "<presence to='{ROOM}/outsider'><x xmlns='{MUC}'/></presence>"
        )))
        .await
        .unwrap();
    let p = outsider
        .recv_where(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await
        .expect("the members-only room refuses the outsider");
    assert_eq!(condition(&p), "registration-required");
    for query in [NS_USERS, NS_TASKS] {
        let r = outsider
            .iq(stanza(&format!(
                "<iq type='get' to='{SERVICE}'><query xmlns='{query}'/></iq>"
            )))
            .await
            .unwrap();
        assert_eq!(error_condition(&r), "forbidden", "{query}");
    }

    // The component restarts. Its occupant usually outlives it in Prosody (nothing tells
    // Prosody that it left), which then takes the new entry for a client out of sync and
    // sends it the room's occupants again: either way the component learns whom to tell
    // of the next change.
    component.stop().await;
    let component = Component::start(SocketAddr::new(LOOPBACK, component_port), &data);
    until_entered(&mut jury1).await;
    create_task(
        &mut jury1,
        "title='After the restart' type='todo'",
        "<status for='hall2' type='none'/>",
    )
    .await;
    let (_, task) = next_change(&mut hall1).await;
    assert_eq!(task.attr("title"), Some("After the restart"));
    assert_eq!(ask_tasks(&mut hall2).await.len(), 2);
    component.stop().await;
}

/// Wait until `c`, in the room, sees the component (its nick) there.
async fn until_entered(c: &mut Client) {
    let from = format!("{ROOM}/NEERC service");
    let p = c
        .recv_where(|e| {
            e.name() == "presence"
                && e.attr("from") == Some(from.as_str())
                && e.attr("type").is_none()
        })
        .await
        .expect("the component enters the room");
    assert_eq!(
        muc_item(&p).and_then(|i| i.attr("affiliation")),
        Some("owner"),
        "{}",
        String::from(&p)
    );
}

// --- the setup -------------------------------------------------------------------------

/// A Prosody serving contest.test with its MUC and the component's port; returns once
/// both its ports accept connections.
fn start_prosody(component_port: u16) -> Prosody {
    let users = [
        ("jury1@contest.test", PASSWORD),
        ("hall1@contest.test", PASSWORD),
        ("hall2@contest.test", PASSWORD),
        ("outsider@contest.test", PASSWORD),
    ];
    Prosody::start(
        Setup {
            c2s_ip: LOOPBACK,
            users: &users,
            listening: &[SocketAddr::new(LOOPBACK, component_port)],
        },
        |dir, c2s| config(dir, c2s, component_port),
    )
}

/// Prosody's configuration: contest.test on 127.0.0.1 without TLS, its MUC, and the
/// component on `component_port` of 127.0.0.1; no federation.
fn config(dir: &Path, c2s: u16, component_port: u16) -> String {
    let global = prosody::global_config(dir, LOOPBACK, c2s);
    format!(
        r#"{global}
-- interop_prosody_neerc_component: the contest service as a component.
component_ports = {{ {component_port} }}
component_interfaces = {{ "127.0.0.1" }}

modules_enabled = {{
	"roster";
	"saslauth";
	"disco";
	"ping";
	"posix";
}}
modules_disabled = {{ "s2s" }}

VirtualHost "{HOST}"

Component "{MUC_DOMAIN}" "muc"

Component "{COMPONENT}"
component_secret = "{SECRET}"
"#
    )
}

/// The component (in this test's runtime), as `rookery neerc-component` runs it.
struct Component {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Component {
    fn start(server: SocketAddr, data: &TempDir) -> Component {
        let opts = ExternalOptions {
            server: server.to_string(),
            name: COMPONENT.into(),
            secret: SECRET.into(),
            host: HOST.into(),
            muc: MUC_DOMAIN.into(),
            groups: format!("groups.{HOST}"),
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

// --- the room --------------------------------------------------------------------------

/// The `<item/>` of a room's presence.
fn muc_item(p: &Element) -> Option<&Element> {
    p.get_child("x", USER)
        .and_then(|x| x.get_child("item", USER))
}

/// Whether a room's presence is the receiver's own (status 110).
fn is_own(p: &Element) -> bool {
    p.get_child("x", USER).is_some_and(|x| {
        x.children()
            .any(|s| s.name() == "status" && s.attr("code") == Some("110"))
    })
}

/// jury1 creates the room and configures it: persistent and members-only, which also
/// unlocks it (XEP-0045 §10.1).
async fn create_room(jury1: &mut Client) {
    jury1
        .send(stanza(&format!(
            "<presence to='{ROOM}/jury1'><x xmlns='{MUC}'/></presence>"
        )))
        .await
        .unwrap();
    let p = jury1
        .recv_where(|e| e.name() == "presence" && is_own(e))
        .await
        .expect("jury1 enters the room");
    assert_ne!(p.attr("type"), Some("error"), "{}", String::from(&p));
    assert_eq!(
        muc_item(&p).and_then(|i| i.attr("affiliation")),
        Some("owner")
    );
    let r = jury1
        .iq(stanza(&format!(
            "<iq type='set' to='{ROOM}'><query xmlns='{OWNER}'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
             <field var='muc#roomconfig_membersonly'><value>1</value></field>\
             </x></query></iq>"
        )))
        .await
        .unwrap();
    is_result(&r);
}

async fn admin_set(c: &mut Client, jid: &str, affiliation: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='{ROOM}'><query xmlns='{ADMIN}'><item jid='{jid}' affiliation='{affiliation}'/></query></iq>"
    )))
    .await
    .unwrap()
}

/// Enter the room with `nick` and wait for the own presence and the contest clock the
/// component tells every newcomer; returns the clock's message.
async fn enter(c: &mut Client, nick: &str) -> Element {
    c.send(stanza(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='{MUC}'/></presence>"
    )))
    .await
    .unwrap();
    let p = c
        .recv_where(|e| e.name() == "presence" && is_own(e))
        .await
        .unwrap_or_else(|e| panic!("{nick} enters the room: {e}"));
    assert_ne!(p.attr("type"), Some("error"), "{}", String::from(&p));
    c.recv_where(|e| e.name() == "message" && e.get_child("x", NS_CLOCK).is_some())
        .await
        .unwrap_or_else(|e| panic!("{nick} gets the clock: {e}"))
}

// --- the protocol ----------------------------------------------------------------------

async fn ask_users(c: &mut Client, to: &str) -> Vec<(String, String, String)> {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='{to}'><query xmlns='{NS_USERS}'/></iq>"
        )))
        .await
        .unwrap();
    users(&r)
}

async fn ask_tasks(c: &mut Client) -> Vec<Element> {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='{SERVICE}'><query xmlns='{NS_TASKS}'/></iq>"
        )))
        .await
        .unwrap();
    task_list(&r)
}

/// Create a task; returns the stored task from the answer.
async fn create_task(c: &mut Client, attrs: &str, statuses: &str) -> Element {
    let r = c
        .iq(stanza(&format!(
            "<iq type='set' to='{SERVICE}'><task xmlns='{NS_TASK}' {attrs}>{statuses}</task></iq>"
        )))
        .await
        .unwrap();
    is_result(&r);
    r.get_child("task", NS_TASK)
        .expect("the stored task")
        .clone()
}

async fn set_status(c: &mut Client, id: &str, ty: &str, value: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='{SERVICE}'><taskstatus xmlns='{NS_TASKSTATUS}' id='{id}' type='{ty}' value=\"{value}\"/></iq>"
    )))
    .await
    .unwrap()
}

/// The next task broadcast `c` receives: the message and its `<task/>`.
async fn next_change(c: &mut Client) -> (Element, Element) {
    let m = c
        .recv_where(|e| e.name() == "message" && e.get_child("x", NS_TASKS).is_some())
        .await
        .unwrap();
    let task = m
        .get_child("x", NS_TASKS)
        .unwrap()
        .get_child("task", NS_TASKS)
        .expect("a task in the broadcast")
        .clone();
    (m, task)
}
