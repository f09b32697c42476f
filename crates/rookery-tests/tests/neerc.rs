//! NEERC contest service conversations (protocols.md part A): the jury and the halls of a
//! contest room ask for users and tasks, the jury creates, reassigns and removes tasks, the
//! halls change their statuses, and every change reaches the room's occupants.
//!
//! The seed 003 examples are sent as written, except for two annotations XMPP does not
//! allow on the wire: the `<!-- … -->` comment of the creation example (RFC 6120 §11.1
//! forbids comments) and the `from="hall2"` of the status example (the server stamps the
//! sender's address itself).

use std::time::Duration;

use minidom::Element;
use rookery_client::Client;
use rookery_server::modules::groups::GroupOp;
use rookery_tests::{error_condition, stanza};

use rookery_tests::contest::*;

// ---------------------------------------------------------------------------
// Seed 003, as written
// ---------------------------------------------------------------------------

#[tokio::test]
async fn seed_users_query_lists_the_admin_and_the_halls() {
    let (s, mut admin) = contest(7).await;
    let mut hall2 = online(&s, "hall2").await;
    let r = hall2
        .iq(stanza(
            r#"<iq type="get" to="neerc.localhost">
<query xmlns="http://neerc.ifmo.ru/protocol/neerc#users" />
</iq>"#,
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("from"), Some("neerc.localhost"));
    assert_eq!(r.attr("to"), Some("hall2@localhost/r"));
    let mut expected = vec![user("admin", "Admins", "yes")];
    for i in 1..=7 {
        expected.push(user(&format!("hall{i}"), "Halls", "no"));
    }
    assert_eq!(users(&r), expected);
    // The room-scoped JID the Swing client uses answers the same.
    assert_eq!(
        ask_users(&mut admin, "neerc@neerc.localhost").await,
        expected
    );
}

#[tokio::test]
async fn seed_task_conversation_create_list_status_and_remove() {
    let (s, mut admin) = contest(3).await;
    let mut hall2 = online(&s, "hall2").await;
    enter(&mut hall2, ROOM, "hall2").await;

    // The jury creates a task with no id: the answer is the stored task with its new id.
    let r = admin
        .iq(stanza(
            r#"<iq type="set" to="neerc.localhost">
<task xmlns="http://neerc.ifmo.ru/protocol/neerc#task" title="Do some work" type="todo">
<status for="hall1" type="none" />
<status for="hall2" type="running" />
<status for="hall3" type="success" />
</task>
</iq>"#,
        ))
        .await
        .unwrap();
    is_result(&r);
    let created = r.get_child("task", NS_TASK).expect("the stored task");
    let id = created.attr("id").expect("a new id").to_owned();
    assert_eq!(created.attr("title"), Some("Do some work"));
    assert_eq!(created.attr("type"), Some("todo"));
    let stamp: i64 = created.attr("timestamp").unwrap().parse().unwrap();
    assert!(stamp > 1_600_000_000_000, "creation time in ms: {stamp}");
    assert_eq!(
        statuses(created),
        [
            st("hall1", "none", None),
            st("hall2", "running", None),
            st("hall3", "success", None)
        ]
    );

    // Every occupant hears of it: a headline from the room's service JID.
    for c in [&mut admin, &mut hall2] {
        let (m, task) = next_change(c).await;
        assert_eq!(m.attr("type"), Some("headline"));
        assert_eq!(m.attr("from"), Some("neerc@neerc.localhost"));
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            format!("Task 'Do some work' ({id}) changed")
        );
        assert_eq!(task.attr("id"), Some(id.as_str()));
        assert_eq!(statuses(&task).len(), 3);
    }

    // The other tasks of the seed's list, under the ids it shows, and the halls' answers.
    create(
        &mut admin,
        "id='12346' title='You here?' type='confirm'",
        "<status for='hall1' type='none'/><status for='hall2' type='none'/>",
    )
    .await;
    create(
        &mut admin,
        "id='12347' title='Wallpapers set?' type='okfail'",
        "<status for='hall1' type='none'/><status for='hall2' type='none'/><status for='hall3' type='none'/>",
    )
    .await;
    create(
        &mut admin,
        "id='12348' title='???' type='question'",
        "<status for='hall1' type='none'/><status for='hall2' type='none'/>",
    )
    .await;
    let mut hall3 = online(&s, "hall3").await;
    is_result(&set_status(&mut hall2, "12346", "success", "").await);
    is_result(&set_status(&mut hall2, "12347", "success", "").await);
    is_result(&set_status(&mut hall3, "12347", "fail", "none of 'em").await);
    is_result(&set_status(&mut hall2, "12348", "success", "42").await);

    // The list, as in the seed: by creation time, statuses with values where given.
    let r = admin
        .iq(stanza(
            r#"<iq type="get" to="neerc.localhost">
<query xmlns="http://neerc.ifmo.ru/protocol/neerc#tasks" />
</iq>"#,
        ))
        .await
        .unwrap();
    let list = task_list(&r);
    let summary: Vec<(&str, &str, &str)> = list
        .iter()
        .map(|t| {
            (
                t.attr("id").unwrap(),
                t.attr("title").unwrap(),
                t.attr("type").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (id.as_str(), "Do some work", "todo"),
            ("12346", "You here?", "confirm"),
            ("12347", "Wallpapers set?", "okfail"),
            ("12348", "???", "question")
        ]
    );
    assert_eq!(
        statuses(&list[2]),
        [
            st("hall1", "none", None),
            st("hall2", "success", None),
            st("hall3", "fail", Some("none of 'em"))
        ]
    );
    assert_eq!(
        statuses(&list[3]),
        [
            st("hall1", "none", None),
            st("hall2", "success", Some("42"))
        ]
    );

    // hall2 finishes the running task (the seed's last request, with our id).
    let r = hall2
        .iq(stanza(&format!(
            r#"<iq type="set" to="neerc.localhost">
<taskstatus xmlns="http://neerc.ifmo.ru/protocol/neerc#taskstatus" id="{id}" type="success" value="done" />
</iq>"#
        )))
        .await
        .unwrap();
    is_result(&r);
    let echo = r.get_child("taskstatus", NS_TASKSTATUS).expect("echo");
    assert_eq!(echo.attr("value"), Some("done"));
    // hall2 saw the broadcasts of the four creations and four status changes before it.
    let mut last = None;
    for _ in 0..8 {
        last = Some(next_change(&mut hall2).await);
    }
    let (_, task) = last.unwrap();
    assert_eq!(task.attr("id"), Some(id.as_str()));
    assert_eq!(statuses(&task)[1], st("hall2", "success", Some("done")));

    // The jury removes a task, as the seed writes it.
    let r = admin
        .iq(stanza(
            r#"<iq type="set" to="neerc.localhost">
<task xmlns="http://neerc.ifmo.ru/protocol/neerc#task" id="12346" type="remove" />
</iq>"#,
        ))
        .await
        .unwrap();
    is_result(&r);
    let (m, task) = next_change(&mut hall2).await;
    assert_eq!(task.attr("type"), Some("remove"));
    assert_eq!(task.attr("id"), Some("12346"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Task 'You here?' (12346) changed"
    );
    let ids: Vec<String> = ask_tasks(&mut hall2)
        .await
        .iter()
        .map(|t| t.attr("id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, [id.as_str(), "12347", "12348"]);
}

#[tokio::test]
async fn the_original_client_sends_everything_as_get_and_is_answered() {
    let (s, mut admin) = contest(1).await;
    let r = admin
        .iq(stanza(&format!(
            "<iq type='get' to='neerc@neerc.localhost'><task xmlns='{}' title='Print statements' type='todo'><status for='hall1' type='none'/></task></iq>",
            ns("task")
        )))
        .await
        .unwrap();
    is_result(&r);
    let id = r
        .get_child("task", NS_TASK)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    let mut hall1 = online(&s, "hall1").await;
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='get' to='neerc@neerc.localhost'><taskstatus xmlns='{}' id='{id}' type='running' value=''/></iq>",
            ns("taskstatus")
        )))
        .await
        .unwrap();
    is_result(&r);
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{}'/></iq>",
            ns("ping")
        )))
        .await
        .unwrap();
    is_result(&r);
    assert!(r.get_child("query", NS_PING).is_some(), "echoed");
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{}'/></iq>",
            ns("clock")
        )))
        .await
        .unwrap();
    is_result(&r);
    let clock = r
        .get_child("query", NS_CLOCK)
        .and_then(|q| q.get_child("clock", NS_CLOCK))
        .expect("a clock");
    assert_eq!(clock.attr("status"), Some("0"), "no clock configured");
    assert_eq!(clock.attr("time"), Some("0"));
    assert_eq!(clock.attr("total"), Some("0"));
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_refusal_says_why_and_echoes_the_request() {
    let (s, mut admin) = contest(2).await;
    let mut hall1 = online(&s, "hall1").await;
    let mut outsider = online(&s, "outsider").await;
    let task = create(
        &mut admin,
        "title='Wallpapers set?' type='okfail'",
        "<status for='hall2' type='none'/>",
    )
    .await;
    let id = task.attr("id").unwrap().to_owned();

    let ask = |to: &str, payload: &str| stanza(&format!("<iq type='get' to='{to}'>{payload}</iq>"));
    let users_q = format!("<query xmlns='{}'/>", ns("users"));

    // No such MUC room: service-unavailable.
    let r = hall1
        .iq(ask("nosuch@neerc.localhost", &users_q))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
    assert!(
        r.get_child("query", NS_USERS).is_some(),
        "errors echo the request"
    );
    // Not affiliated: forbidden, even for an unknown query (the room is checked first).
    let r = outsider.iq(ask("neerc.localhost", &users_q)).await.unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    let r = outsider
        .iq(ask(
            "neerc.localhost",
            &format!("<query xmlns='{}'/>", ns("nope")),
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    // An unknown query of the protocol, or another namespace: service-unavailable.
    let r = hall1
        .iq(ask(
            "neerc.localhost",
            &format!("<query xmlns='{}'/>", ns("nope")),
        ))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
    let r = hall1
        .iq(ask("neerc.localhost", "<query xmlns='jabber:iq:version'/>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "service-unavailable");
    // No child at all: bad-request, never silence.
    let r = hall1
        .iq(stanza("<iq type='get' to='neerc.localhost'/>"))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    // A hall may not create tasks.
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='set' to='neerc.localhost'><task xmlns='{}' title='Mine' type='todo'/></iq>",
            ns("task")
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "forbidden");
    assert!(r.get_child("task", NS_TASK).is_some());
    // Unknown task, and a task that is not hall1's.
    let r = set_status(&mut hall1, "999", "success", "").await;
    assert_eq!(error_condition(&r), "item-not-found");
    assert!(r.get_child("taskstatus", NS_TASKSTATUS).is_some());
    let r = set_status(&mut hall1, &id, "success", "").await;
    assert_eq!(error_condition(&r), "forbidden");
    // Jury mistakes: no id to remove, no title, unknown type or status.
    let task_iq = |attrs: &str| {
        stanza(&format!(
            "<iq type='set' to='neerc.localhost'><task xmlns='{}' {attrs}/></iq>",
            ns("task")
        ))
    };
    let r = admin.iq(task_iq("type='remove'")).await.unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    let r = admin.iq(task_iq("type='todo'")).await.unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    let r = admin.iq(task_iq("title='x' type='poll'")).await.unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    let r = admin
        .iq(stanza(&format!(
            "<iq type='set' to='neerc.localhost'><task xmlns='{}' title='x' type='todo'><status for='hall1' type='done'/></task></iq>",
            ns("task")
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    // Removing an unknown task: item-not-found, and nobody is told anything.
    enter(&mut hall1, ROOM, "hall1").await;
    let r = admin.iq(task_iq("id='4242' type='remove'")).await.unwrap();
    assert_eq!(error_condition(&r), "item-not-found");
    hall1
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    // A taskstatus without an id or a type.
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='set' to='neerc.localhost'><taskstatus xmlns='{}' type='success'/></iq>",
            ns("taskstatus")
        )))
        .await
        .unwrap();
    assert_eq!(error_condition(&r), "bad-request");
    // An outcast is refused.
    admin_set(
        &mut admin,
        "<item jid='hall1@localhost' affiliation='outcast'/>",
    )
    .await;
    let r = hall1.iq(ask("neerc.localhost", &users_q)).await.unwrap();
    assert_eq!(error_condition(&r), "forbidden");
}

#[tokio::test]
async fn disco_shows_the_service_and_its_rooms() {
    let (_s, mut admin) = contest(1).await;
    let info = |to: &str| {
        stanza(&format!(
            "<iq type='get' to='{to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
    };
    let r = admin.iq(info("neerc.localhost")).await.unwrap();
    is_result(&r);
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type"), id.attr("name")),
        (Some("component"), Some("generic"), Some("NEERC service"))
    );
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in ["users", "tasks", "task", "taskstatus", "ping"] {
        assert!(features.contains(&ns(f).as_str()), "{f}: {features:?}");
    }
    assert!(features.contains(&"http://jabber.org/protocol/disco#info"));
    let r = admin.iq(info("neerc@neerc.localhost")).await.unwrap();
    is_result(&r);
    let id = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .expect("rooms have an identity too");
    assert_eq!(id.attr("category"), Some("component"));
    let r = admin.iq(info("nosuch@neerc.localhost")).await.unwrap();
    assert_eq!(error_condition(&r), "item-not-found");
    // XEP-0199 ping to the service is answered.
    let r = admin
        .iq(stanza(
            "<iq type='get' to='neerc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    is_result(&r);
}

// ---------------------------------------------------------------------------
// Users, live
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_affiliation_change_shows_at_the_next_users_query() {
    let (s, mut admin) = contest(3).await;
    s.add_user("guest@localhost", "pass").await;
    // hall10 sorts after hall3 (natural order).
    s.add_user("hall10@localhost", "pass").await;
    group(
        &s,
        GroupOp::MemberAdd {
            id: "halls".into(),
            jids: vec!["hall10@localhost".into()],
        },
    )
    .await;
    assert_eq!(
        ask_users(&mut admin, "neerc.localhost").await,
        [
            user("admin", "Admins", "yes"),
            user("hall1", "Halls", "no"),
            user("hall2", "Halls", "no"),
            user("hall3", "Halls", "no"),
            user("hall10", "Halls", "no"),
        ]
    );
    // hall1 becomes an admin directly: power, and still shown in its group; hall2 is
    // banned; a guest becomes a member on their own.
    let r = admin_set(
        &mut admin,
        "<item jid='hall1@localhost' affiliation='admin'/><item jid='hall2@localhost' affiliation='outcast'/><item jid='guest@localhost' affiliation='member'/>",
    )
    .await;
    is_result(&r);
    assert_eq!(
        ask_users(&mut admin, "neerc.localhost").await,
        [
            user("admin", "Admins", "yes"),
            user("hall1", "Halls", "yes"),
            user("guest", "Users", "no"),
            user("hall3", "Halls", "no"),
            user("hall10", "Halls", "no"),
        ]
    );
    // And the new admin may now create tasks.
    let mut hall1 = online(&s, "hall1").await;
    create(&mut hall1, "title='Check printers' type='confirm'", "").await;
}

// ---------------------------------------------------------------------------
// Broadcasts, persistence, concurrency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn broadcasts_reach_every_occupant_session_in_commit_order() {
    let (s, mut admin) = contest(2).await;
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;
    // A second session of hall1 in the room under the same nick.
    let mut hall1b = s.online("hall1@localhost", "pass", "second").await;
    enter(&mut hall1b, ROOM, "hall1").await;
    // hall2 is not in the room: it hears nothing.
    let mut hall2 = online(&s, "hall2").await;

    // The jury fires five creations without waiting for answers.
    for i in 1..=5 {
        admin
            .send(stanza(&format!(
                "<iq type='set' id='t{i}' to='neerc.localhost'><task xmlns='{}' title='Task {i}' type='confirm'><status for='hall1' type='none'/></task></iq>",
                ns("task")
            )))
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for i in 1..=5 {
        let want = format!("t{i}");
        let r = admin
            .recv_where(|e| e.name() == "iq" && e.attr("id") == Some(want.as_str()))
            .await
            .unwrap();
        is_result(&r);
        ids.push(
            r.get_child("task", NS_TASK)
                .unwrap()
                .attr("id")
                .unwrap()
                .to_owned(),
        );
    }
    for c in [&mut hall1, &mut hall1b, &mut admin] {
        let mut seen = Vec::new();
        for _ in 1..=5 {
            let (m, task) = next_change(c).await;
            assert_eq!(m.attr("type"), Some("headline"));
            seen.push(task.attr("id").unwrap().to_owned());
        }
        assert_eq!(seen, ids, "in the order the changes were committed");
    }
    hall2
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

#[tokio::test]
async fn tasks_survive_a_restart_with_their_time_and_statuses() {
    let (s, mut admin) = contest(2).await;
    let task = create(
        &mut admin,
        "title='Wallpapers set?' type='okfail'",
        "<status for='hall1' type='none'/><status for='hall2' type='none'/>",
    )
    .await;
    let id = task.attr("id").unwrap().to_owned();
    let stamp = task.attr("timestamp").unwrap().to_owned();
    let mut hall2 = online(&s, "hall2").await;
    is_result(&set_status(&mut hall2, &id, "fail", "no glue").await);
    drop(hall2);
    drop(admin);

    let s = s.restart().await;
    let mut hall1 = online(&s, "hall1").await;
    let list = ask_tasks(&mut hall1).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attr("id"), Some(id.as_str()));
    assert_eq!(list[0].attr("timestamp"), Some(stamp.as_str()));
    assert_eq!(
        statuses(&list[0]),
        [
            st("hall1", "none", None),
            st("hall2", "fail", Some("no glue"))
        ]
    );
    // The next new task gets a fresh id.
    let mut admin = online(&s, "admin").await;
    let next = create(&mut admin, "title='Next' type='todo'", "").await;
    assert_ne!(next.attr("id"), Some(id.as_str()));
    // The audit log has every change, with who made it.
    let log = s
        .server
        .stores()
        .tasks
        .task_log("neerc.localhost", "neerc", 10)
        .await
        .unwrap();
    let entries: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("create", "admin@localhost"),
            ("status", "hall2@localhost"),
            ("create", "admin@localhost")
        ]
    );
}

#[tokio::test]
async fn reassigning_keeps_the_creation_time() {
    let (_s, mut admin) = contest(2).await;
    let task = create(
        &mut admin,
        "title='Print statements' type='todo'",
        "<status for='hall1' type='none'/>",
    )
    .await;
    let id = task.attr("id").unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = create(
        &mut admin,
        &format!("id='{id}' title='Print statements for hall 2' type='todo'"),
        "<status for='hall1' type='running'/><status for='hall2' type='none'/>",
    )
    .await;
    assert_eq!(again.attr("timestamp"), task.attr("timestamp"));
    assert_eq!(
        statuses(&again),
        [st("hall1", "running", None), st("hall2", "none", None)]
    );
    let list = ask_tasks(&mut admin).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attr("title"), Some("Print statements for hall 2"));
}

#[tokio::test]
async fn halls_updating_at_once_lose_nothing() {
    let (s, mut admin) = contest(6).await;
    let mut assign = String::new();
    for i in 1..=6 {
        assign.push_str(&format!("<status for='hall{i}' type='none'/>"));
    }
    let id = create(&mut admin, "title='Wallpapers set?' type='okfail'", &assign)
        .await
        .attr("id")
        .unwrap()
        .to_owned();
    let mut halls = Vec::new();
    for i in 1..=6 {
        halls.push(online(&s, &format!("hall{i}")).await);
    }
    // Everyone answers at the same moment.
    let answers = answer_all_at_once(&mut halls, &id).await;
    for r in &answers {
        is_result(r);
    }
    let list = ask_tasks(&mut admin).await;
    let mut got = statuses(&list[0]);
    got.sort();
    let mut want: Vec<_> = (1..=6)
        .map(|i| {
            if i % 2 == 0 {
                st(&format!("hall{i}"), "success", None)
            } else {
                st(
                    &format!("hall{i}"),
                    "fail",
                    Some(&format!("hall{i} has none")),
                )
            }
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// Each hall sends its status (even: success, odd: fail with a reason) at once, then all
/// answers are collected.
async fn answer_all_at_once(halls: &mut [Client], id: &str) -> Vec<Element> {
    for (n, c) in halls.iter_mut().enumerate() {
        let i = n + 1;
        let (ty, value) = if i % 2 == 0 {
            ("success".to_owned(), String::new())
        } else {
            ("fail".to_owned(), format!("hall{i} has none"))
        };
        c.send(stanza(&format!(
            "<iq type='set' id='c{i}' to='neerc.localhost'><taskstatus xmlns='{}' id='{id}' type='{ty}' value='{value}'/></iq>",
            ns("taskstatus")
        )))
        .await
        .unwrap();
    }
    let mut out = Vec::new();
    for (n, c) in halls.iter_mut().enumerate() {
        let want = format!("c{}", n + 1);
        out.push(
            c.recv_where(|e| e.name() == "iq" && e.attr("id") == Some(want.as_str()))
                .await
                .unwrap(),
        );
    }
    out
}

// ---------------------------------------------------------------------------
// The status state machine
// ---------------------------------------------------------------------------

#[tokio::test]
async fn statuses_follow_the_task_state_machine() {
    let (s, mut admin) = contest(1).await;
    let mut hall1 = online(&s, "hall1").await;
    let me = "<status for='hall1' type='none'/>";
    let todo = create(&mut admin, "title='Do some work' type='todo'", me).await;
    let confirm = create(&mut admin, "title='You here?' type='confirm'", me).await;
    let question = create(&mut admin, "title='???' type='question'", me).await;
    let todofail = create(&mut admin, "title='Print' type='todofail'", me).await;
    let [todo, confirm, question, todofail] =
        [todo, confirm, question, todofail].map(|t| t.attr("id").unwrap().to_owned());

    // (task, status, value, expected: None = accepted, Some(condition))
    let steps: &[(&str, &str, &str, Option<&str>)] = &[
        // todo: start before done; done only while running; start again from success.
        (&todo, "success", "", Some("not-acceptable")),
        (&todo, "running", "", None),
        (&todo, "running", "", Some("not-acceptable")),
        (&todo, "fail", "broken", Some("not-acceptable")),
        (&todo, "success", "", None),
        (&todo, "running", "", None),
        // confirm: done toggles between success and acknowledged.
        (&confirm, "running", "", Some("not-acceptable")),
        (&confirm, "success", "", None),
        (&confirm, "acknowledged", "", None),
        (&confirm, "success", "", None),
        // question: answered, and answered again; never "none" by oneself.
        (&question, "success", "41", None),
        (&question, "success", "42", None),
        (&question, "none", "", Some("not-acceptable")),
        // todofail: fail at any time.
        (&todofail, "fail", "no paper", None),
        (&todofail, "running", "", None),
        (&todofail, "success", "", None),
        // Not a status at all.
        (&todo, "done", "", Some("bad-request")),
    ];
    for (task, ty, value, expected) in steps {
        let r = set_status(&mut hall1, task, ty, value).await;
        match expected {
            None => is_result(&r),
            Some(cond) => assert_eq!(
                &error_condition(&r),
                cond,
                "{task} -> {ty}: {}",
                String::from(&r)
            ),
        }
    }
    let list = ask_tasks(&mut hall1).await;
    let mine: Vec<(String, String, Option<String>)> =
        list.iter().map(|t| statuses(t).remove(0)).collect();
    assert_eq!(
        mine,
        [
            st("hall1", "running", None),
            st("hall1", "success", None),
            st("hall1", "success", Some("42")),
            st("hall1", "success", None)
        ]
    );
    // Power users change others' statuses only by replacing the task.
    let r = set_status(&mut admin, &todo, "success", "").await;
    assert_eq!(error_condition(&r), "forbidden");
}

#[tokio::test]
async fn lax_mode_accepts_any_status_like_the_original() {
    let (s, mut admin) = contest_with(1, true).await;
    let mut hall1 = online(&s, "hall1").await;
    let id = create(
        &mut admin,
        "title='Anything' type='poll'",
        "<status for='hall1' type='whatever'/>",
    )
    .await
    .attr("id")
    .unwrap()
    .to_owned();
    is_result(&set_status(&mut hall1, &id, "success", "").await);
    is_result(&set_status(&mut hall1, &id, "none", "").await);
    is_result(&set_status(&mut hall1, &id, "maybe", "later").await);
    let list = ask_tasks(&mut hall1).await;
    assert_eq!(statuses(&list[0]), [st("hall1", "maybe", Some("later"))]);
    // Access rules still hold.
    let mut outsider = online(&s, "outsider").await;
    let r = set_status(&mut outsider, &id, "success", "").await;
    assert_eq!(error_condition(&r), "forbidden");
}

#[tokio::test]
async fn users_cannot_send_task_or_clock_updates_as_if_from_the_service() {
    let (s, mut admin) = contest(1).await;
    let mut hall = online(&s, "hall1").await;
    enter(&mut hall, ROOM, "hall1").await;
    // To the room, and straight to another user: refused, not relayed.
    for (to, ty) in [(ROOM, "groupchat"), ("admin@localhost/r", "chat")] {
        hall.send(stanza(&format!(
            "<message to='{to}' type='{ty}' id='spoof'><body>Task 'x' (1) changed</body>\
             <x xmlns='{NS_TASKS}'><task id='1' title='x' type='todo'/></x></message>"
        )))
        .await
        .unwrap();
        let e = hall
            .recv_where(|e| e.attr("id") == Some("spoof"))
            .await
            .unwrap();
        assert_eq!(error_condition(&e), "forbidden");
    }
    hall.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat' id='clock'><x xmlns='{NS_CLOCK}'><clock time='0' total='1' status='2'/></x></message>"
    )))
    .await
    .unwrap();
    let e = hall
        .recv_where(|e| e.attr("id") == Some("clock"))
        .await
        .unwrap();
    assert_eq!(error_condition(&e), "forbidden");
    // What the admin receives up to hall1's next ordinary message carries no update.
    hall.send(stanza(&format!(
        "<message to='{ROOM}' type='groupchat'><body>end</body></message>"
    )))
    .await
    .unwrap();
    loop {
        let e = admin.recv().await.unwrap();
        assert!(
            e.get_child("x", NS_TASKS).is_none() && e.get_child("x", NS_CLOCK).is_none(),
            "{}",
            String::from(&e)
        );
        if e.get_child("body", "jabber:client")
            .is_some_and(|b| b.text() == "end")
        {
            break;
        }
    }
}
