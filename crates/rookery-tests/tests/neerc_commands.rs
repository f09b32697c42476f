//! Running a contest from a stock client: the ad-hoc commands of `room@neerc.<host>`. The
//! jury creates, assigns and removes tasks and sets the clock; halls set their status and
//! answer questions; everyone sees the board and the clock; every change still reaches the
//! room as the protocol's broadcast, so the original client's users see it too.

use rookery_tests::Element;
use rookery_tests::contest::*;
use rookery_tests::rookery_client::Client;
use rookery_tests::rookery_client::rookery_forms::DataForm;
use rookery_tests::run_command;

const SERVICE: &str = "neerc@neerc.localhost";

/// The values of column `var` in a result form's rows.
fn column(form: &DataForm, var: &str) -> Vec<String> {
    form.items
        .iter()
        .map(|row| {
            row.iter()
                .find(|f| f.var.as_deref() == Some(var))
                .map(|f| f.values.join("\n"))
                .unwrap_or_default()
        })
        .collect()
}

/// The next broadcast about the task titled `title`, skipping others.
async fn change_titled(c: &mut Client, title: &str) -> Element {
    change_where(c, |t| t.attr("title") == Some(title)).await
}

/// The next task broadcast matching `f`, skipping others.
async fn change_where(c: &mut Client, f: impl Fn(&Element) -> bool) -> Element {
    loop {
        let (_, task) = next_change(c).await;
        if f(&task) {
            return task;
        }
    }
}

#[tokio::test]
async fn a_contest_runs_from_ad_hoc_commands() {
    let (s, mut admin) = contest(2).await;
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;
    let mut hall2 = online(&s, "hall2").await;
    enter(&mut hall2, ROOM, "hall2").await;

    // The room's service lists its commands.
    let items = admin
        .iq(rookery_tests::stanza(&format!(
            "<iq type='get' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>"
        )))
        .await
        .unwrap();
    let nodes: Vec<&str> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node"))
        .collect();
    for node in ["neerc:board", "neerc:create", "neerc:status", "neerc:clock"] {
        assert!(nodes.contains(&node), "{node} in {nodes:?}");
    }

    // The jury creates a task for the Halls group: the group is expanded to its members.
    let done = run_command(
        &mut admin,
        SERVICE,
        "neerc:create",
        &[
            ("title", &["Wallpapers set?"]),
            ("type", &["todofail"]),
            ("assignees", &["Halls"]),
        ],
    )
    .await;
    assert!(done.notes[0].text.contains("created"), "{:?}", done.notes);
    let (m, task) = next_change(&mut hall1).await;
    assert_eq!(m.attr("from"), Some(SERVICE));
    assert_eq!(task.attr("title"), Some("Wallpapers set?"));
    assert_eq!(
        statuses(&task),
        [st("hall1", "none", None), st("hall2", "none", None)]
    );
    let id = task.attr("id").unwrap().to_owned();
    next_change(&mut admin).await;

    // A hall starts it; the jury sees the change.
    run_command(
        &mut hall1,
        SERVICE,
        "neerc:status",
        &[("task", &[id.as_str()]), ("action", &["start"])],
    )
    .await;
    let (_, task) = next_change(&mut admin).await;
    assert_eq!(statuses(&task)[0], st("hall1", "running", None));
    // Failing with a reason keeps the reason.
    run_command(
        &mut hall2,
        SERVICE,
        "neerc:status",
        &[
            ("task", &[id.as_str()]),
            ("action", &["fail"]),
            ("value", &["no wallpapers left"]),
        ],
    )
    .await;
    let (_, task) = next_change(&mut admin).await;
    assert_eq!(
        statuses(&task)[1],
        st("hall2", "fail", Some("no wallpapers left"))
    );

    // Halls cannot create tasks; an unknown assignee is an error, not dropped.
    let err = hall1.execute(SERVICE, "neerc:create").await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    let mut session = admin.execute(SERVICE, "neerc:create").await.unwrap();
    let form = session
        .form
        .clone()
        .unwrap()
        .to_submission()
        .set("title", &["x"])
        .set("assignees", &["hall1, hall9"]);
    let err = session.complete(&mut admin, Some(form)).await.unwrap_err();
    assert!(err.to_string().contains("hall9"), "{err}");

    // A question, answered by command.
    run_command(
        &mut admin,
        SERVICE,
        "neerc:create",
        &[
            ("title", &["How many printers work?"]),
            ("type", &["question"]),
            ("assignees", &["hall1"]),
        ],
    )
    .await;
    let q = change_titled(&mut hall1, "How many printers work?").await;
    let qid = q.attr("id").unwrap().to_owned();
    change_titled(&mut admin, "How many printers work?").await;
    run_command(
        &mut hall1,
        SERVICE,
        "neerc:answer",
        &[("task", &[qid.as_str()]), ("value", &["3"])],
    )
    .await;
    let (_, q) = next_change(&mut admin).await;
    assert_eq!(statuses(&q), [st("hall1", "success", Some("3"))]);

    // The board: the jury sees every task with a summary, a hall its own status.
    let board = run_command(&mut admin, SERVICE, "neerc:board", &[]).await;
    let form = board.form.unwrap();
    assert_eq!(column(&form, "id"), [id.clone(), qid.clone()]);
    assert_eq!(column(&form, "statuses")[0], "1 running, 1 fail");
    let board = run_command(&mut hall2, SERVICE, "neerc:board", &[]).await;
    let form = board.form.unwrap();
    assert_eq!(column(&form, "id"), [id.as_str()]);
    assert_eq!(column(&form, "status"), ["fail"]);

    // The jury sets the clock; everyone hears it and can ask for it.
    run_command(
        &mut admin,
        SERVICE,
        "neerc:set-clock",
        &[
            ("status", &["RUNNING"]),
            ("time", &["0:30:00"]),
            ("total", &["5:00:00"]),
        ],
    )
    .await;
    let m = hall2
        .recv_where(|e| e.name() == "message" && e.get_child("x", NS_CLOCK).is_some())
        .await
        .unwrap();
    let clock = m
        .get_child("x", NS_CLOCK)
        .unwrap()
        .get_child("clock", NS_CLOCK)
        .unwrap();
    assert_eq!(clock.attr("status"), Some("2"));
    assert_eq!(clock.attr("total"), Some("18000000"));
    let shown = run_command(&mut hall2, SERVICE, "neerc:clock", &[]).await;
    let form = shown.form.unwrap();
    assert_eq!(form.value("status"), Some("running"));
    assert_eq!(form.value("total"), Some("5:00:00"));

    // The jury adds an assignee, then removes the task.
    run_command(
        &mut admin,
        SERVICE,
        "neerc:assign",
        &[("task", &[qid.as_str()]), ("assignees", &["hall2"])],
    )
    .await;
    let q = change_where(&mut hall2, |t| {
        t.attr("id") == Some(qid.as_str()) && statuses(t).len() == 2
    })
    .await;
    assert_eq!(
        statuses(&q),
        [st("hall1", "success", Some("3")), st("hall2", "none", None)]
    );
    run_command(
        &mut admin,
        SERVICE,
        "neerc:remove",
        &[("task", &[id.as_str()])],
    )
    .await;
    let gone = change_titled(&mut hall1, "Wallpapers set?").await;
    assert_eq!(gone.attr("type"), Some("remove"));
    assert_eq!(gone.attr("id"), Some(id.as_str()));

    // Someone outside the room may not use the commands.
    let mut outsider = online(&s, "outsider").await;
    let err = outsider.execute(SERVICE, "neerc:board").await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
}
