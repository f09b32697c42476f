//! A contest for the NEERC service's tests: accounts, the `Halls` group, the contest room,
//! and the queries and broadcasts of the protocol (protocols.md part A).

use minidom::Element;
use rookery_client::Client;
use rookery_server::admin::{AdminRequest, AdminTarget, execute};
use rookery_server::modules::groups::GroupOp;

use crate::{TestServer, stanza};

pub const NS: &str = "http://neerc.ifmo.ru/protocol/neerc";
pub const NS_USERS: &str = "http://neerc.ifmo.ru/protocol/neerc#users";
pub const NS_TASKS: &str = "http://neerc.ifmo.ru/protocol/neerc#tasks";
pub const NS_TASK: &str = "http://neerc.ifmo.ru/protocol/neerc#task";
pub const NS_TASKSTATUS: &str = "http://neerc.ifmo.ru/protocol/neerc#taskstatus";
pub const NS_PING: &str = "http://neerc.ifmo.ru/protocol/neerc#ping";
pub const NS_CLOCK: &str = "http://neerc.ifmo.ru/protocol/neerc#clock";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const USER: &str = "http://jabber.org/protocol/muc#user";
pub const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const ROOM: &str = "neerc@conference.localhost";

pub fn ns(fragment: &str) -> String {
    format!("{NS}#{fragment}")
}

pub async fn online(s: &TestServer, user: &str) -> Client {
    s.online(&format!("{user}@localhost"), "pass", "r").await
}

pub fn is_result(e: &Element) {
    assert_eq!(e.attr("type"), Some("result"), "{}", String::from(e));
}

/// Enter `room` with `nick` and read everything up to the subject that ends the join, and
/// the contest clock the service tells every newcomer (it comes through the service's own
/// queue, so before or after the room's answers).
pub async fn enter(c: &mut Client, room: &str, nick: &str) {
    c.send(stanza(&format!(
        "<presence to='{room}/{nick}'><x xmlns='{MUC}'/></presence>"
    )))
    .await
    .unwrap();
    let (mut subject, mut clock) = (false, false);
    while !(subject && clock) {
        let e = c.recv().await.unwrap();
        if e.name() == "message" {
            subject |= e.get_child("subject", "jabber:client").is_some();
            clock |= e.get_child("x", NS_CLOCK).is_some();
        }
    }
}

pub async fn admin_set(c: &mut Client, items: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='{ROOM}'><query xmlns='{ADMIN}'>{items}</query></iq>"
    )))
    .await
    .unwrap()
}

pub async fn group(s: &TestServer, op: GroupOp) {
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

/// A contest: accounts `admin`, `hall1`..`hall<halls>` and `outsider`; the `Halls` group of
/// the halls; the persistent room `neerc` that `admin` owns, with the group as member.
/// Returns the server and `admin` (online, in the room).
pub async fn contest_with(halls: usize, lax: bool) -> (TestServer, Client) {
    contest_config(halls, |c| c.neerc.lax_status = lax).await
}

/// [`contest_with`] on a server configured by `f`.
pub async fn contest_config(
    halls: usize,
    f: impl FnOnce(&mut rookery_server::Config),
) -> (TestServer, Client) {
    let s = TestServer::start_with(f).await;
    s.add_user("admin@localhost", "pass").await;
    s.add_user("outsider@localhost", "pass").await;
    let mut names = Vec::new();
    for i in 1..=halls {
        s.add_user(&format!("hall{i}@localhost"), "pass").await;
        names.push(format!("hall{i}@localhost"));
    }
    group(
        &s,
        GroupOp::Add {
            id: "halls".into(),
            name: Some("Halls".into()),
            show_in_roster: false,
        },
    )
    .await;
    group(
        &s,
        GroupOp::MemberAdd {
            id: "halls".into(),
            jids: names,
        },
    )
    .await;
    let mut admin = online(&s, "admin").await;
    admin
        .send(stanza(&format!(
            "<presence to='{ROOM}/admin'><x xmlns='{MUC}'/></presence>"
        )))
        .await
        .unwrap();
    admin
        .recv_where(|e| e.name() == "presence" && e.get_child("x", USER).is_some())
        .await
        .unwrap();
    let r = admin
        .iq(stanza(&format!(
            "<iq type='set' to='{ROOM}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>"
        )))
        .await
        .unwrap();
    is_result(&r);
    let r = admin_set(
        &mut admin,
        "<item jid='halls@groups.localhost' affiliation='member'/>",
    )
    .await;
    is_result(&r);
    (s, admin)
}

pub async fn contest(halls: usize) -> (TestServer, Client) {
    contest_with(halls, false).await
}

/// `(name, group, power)` of a `#users` answer.
pub fn users(r: &Element) -> Vec<(String, String, String)> {
    is_result(r);
    r.get_child("query", NS_USERS)
        .expect("the users query")
        .children()
        .map(|u| {
            assert_eq!(u.name(), "user");
            (
                u.attr("name").unwrap().to_owned(),
                u.attr("group").unwrap().to_owned(),
                u.attr("power").unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn user(name: &str, group: &str, power: &str) -> (String, String, String) {
    (name.into(), group.into(), power.into())
}

pub async fn ask_users(c: &mut Client, to: &str) -> Vec<(String, String, String)> {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='{to}'><query xmlns='{}'/></iq>",
            ns("users")
        )))
        .await
        .unwrap();
    users(&r)
}

/// The tasks of a `#tasks` answer (or of an `<x/>` broadcast), as elements.
pub fn task_list(r: &Element) -> Vec<Element> {
    is_result(r);
    r.get_child("query", NS_TASKS)
        .expect("the tasks query")
        .children()
        .cloned()
        .collect()
}

pub async fn ask_tasks(c: &mut Client) -> Vec<Element> {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{}'/></iq>",
            ns("tasks")
        )))
        .await
        .unwrap();
    task_list(&r)
}

/// `(for, type, value)` of a task's statuses.
pub fn statuses(task: &Element) -> Vec<(String, String, Option<String>)> {
    task.children()
        .filter(|c| c.name() == "status")
        .map(|s| {
            (
                s.attr("for").unwrap().to_owned(),
                s.attr("type").unwrap().to_owned(),
                s.attr("value").map(str::to_owned),
            )
        })
        .collect()
}

pub fn st(who: &str, ty: &str, value: Option<&str>) -> (String, String, Option<String>) {
    (who.into(), ty.into(), value.map(str::to_owned))
}

/// Create a task as `c` (power); returns the stored task from the answer.
pub async fn create(c: &mut Client, attrs: &str, statuses: &str) -> Element {
    let r = c
        .iq(stanza(&format!(
            "<iq type='set' to='neerc.localhost'><task xmlns='{}' {attrs}>{statuses}</task></iq>",
            ns("task")
        )))
        .await
        .unwrap();
    is_result(&r);
    r.get_child("task", NS_TASK)
        .expect("the stored task")
        .clone()
}

pub async fn set_status(c: &mut Client, id: &str, ty: &str, value: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='neerc.localhost'><taskstatus xmlns='{}' id='{id}' type='{ty}' value=\"{value}\"/></iq>",
        ns("taskstatus")
    )))
    .await
    .unwrap()
}

/// The next task broadcast `c` receives: the message and its `<task/>`.
pub async fn next_change(c: &mut Client) -> (Element, Element) {
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
