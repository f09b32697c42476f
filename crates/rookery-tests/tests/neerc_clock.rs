//! The contest clock and scheduled tasks (protocols.md A.10, A.11): the jury sets the clock
//! (or the contest system's clock file does), every occupant hears of it, newcomers get
//! it on entering, and scheduled tasks go live when the clock reaches them. The clock is
//! driven by the test (jury commands and file writes), never by waiting for time to pass.

use std::time::Duration;

use minidom::Element;
use rookery_client::Client;
use rookery_tests::contest::*;
use rookery_tests::{error_condition, run_command, stanza};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// The jury sets the clock with a `#clock` set.
async fn set_clock(c: &mut Client, time: i64, total: i64, status: &str) -> Element {
    c.iq(stanza(&format!(
        "<iq type='set' to='neerc.localhost'><query xmlns='{NS_CLOCK}'>\
         <clock time='{time}' total='{total}' status='{status}'/></query></iq>"
    )))
    .await
    .unwrap()
}

/// The next clock announcement `c` receives: `(time, total, status)`.
async fn next_clock(c: &mut Client) -> (i64, i64, String) {
    let m = c
        .recv_where(|e| e.name() == "message" && e.get_child("x", NS_CLOCK).is_some())
        .await
        .unwrap();
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(m.attr("from"), Some("neerc@neerc.localhost"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "The clock is ticking"
    );
    clock_of(m.get_child("x", NS_CLOCK).unwrap())
}

fn clock_of(parent: &Element) -> (i64, i64, String) {
    let c = parent
        .children()
        .find(|c| c.name() == "clock")
        .expect("a clock");
    (
        c.attr("time").unwrap().parse().unwrap(),
        c.attr("total").unwrap().parse().unwrap(),
        c.attr("status").unwrap().to_owned(),
    )
}

/// Everything the service queued for `c` before now has arrived: its answer to a ping
/// comes through the same ordered queue as its broadcasts.
async fn settle(c: &mut Client) {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{NS_PING}'/></iq>"
        )))
        .await
        .unwrap();
    is_result(&r);
}

/// No task broadcast is waiting for `c`.
async fn no_task_news(c: &mut Client) {
    settle(c).await;
    while c.expect_silence(Duration::ZERO).await.is_err() {
        let e = c.recv().await.unwrap();
        assert!(
            e.get_child("x", NS_TASKS).is_none(),
            "unexpected task broadcast: {}",
            String::from(&e)
        );
    }
}

async fn tasks_with_scheduled(c: &mut Client) -> Vec<Element> {
    let r = c
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{NS_TASKS}' scheduled='include'/></iq>"
        )))
        .await
        .unwrap();
    task_list(&r)
}

#[tokio::test]
async fn a_scheduled_task_goes_live_when_the_contest_clock_reaches_it() {
    let (s, mut admin) = contest(2).await;
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;

    // The jury schedules "start+10": stored with its schedule, not announced, not live.
    let t = create(
        &mut admin,
        "title='Collect printouts' type='todo' schedule='start' schedule-time='600000'",
        "<status for='hall1' type='none'/>",
    )
    .await;
    assert_eq!(t.attr("schedule"), Some("start"));
    assert_eq!(t.attr("schedule-time"), Some("600000"));
    assert_eq!(t.attr("confirm"), Some("no"));
    let id = t.attr("id").unwrap().to_owned();
    no_task_news(&mut hall1).await;
    assert!(
        ask_tasks(&mut hall1).await.is_empty(),
        "hidden from legacy lists"
    );
    assert!(
        tasks_with_scheduled(&mut hall1).await.is_empty(),
        "halls never see scheduled tasks"
    );
    assert!(ask_tasks(&mut admin).await.is_empty());
    let listed = tasks_with_scheduled(&mut admin).await;
    assert_eq!(listed.len(), 1, "the jury sees it when asking for it");
    assert_eq!(listed[0].attr("schedule"), Some("start"));
    let r = set_status(&mut hall1, &id, "running", "").await;
    assert_eq!(error_condition(&r), "not-acceptable");

    // Before the contest, and at 9 minutes, nothing fires; everyone hears the clock.
    is_result(&set_clock(&mut admin, 0, 5 * HOUR, "1").await);
    assert_eq!(next_clock(&mut hall1).await, (0, 5 * HOUR, "1".into()));
    is_result(&set_clock(&mut admin, 9 * MIN, 5 * HOUR, "2").await);
    let (time, _, status) = next_clock(&mut hall1).await;
    assert_eq!(status, "2");
    assert!((9 * MIN..10 * MIN).contains(&time), "{time}");
    no_task_news(&mut hall1).await;

    // At 10 minutes it goes live, and the room hears of it like a new task.
    is_result(&set_clock(&mut admin, 10 * MIN, 5 * HOUR, "2").await);
    next_clock(&mut hall1).await;
    let (m, live) = next_change(&mut hall1).await;
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(live.attr("id"), Some(id.as_str()));
    assert_eq!(live.attr("schedule"), None);
    assert_eq!(statuses(&live), [st("hall1", "none", None)]);
    assert_eq!(ask_tasks(&mut hall1).await.len(), 1);
    is_result(&set_status(&mut hall1, &id, "running", "").await);

    // The #clock query tells the running time.
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{NS_CLOCK}'/></iq>"
        )))
        .await
        .unwrap();
    is_result(&r);
    let (time, total, status) = clock_of(r.get_child("query", NS_CLOCK).unwrap());
    assert!(time >= 10 * MIN && total == 5 * HOUR && status == "2");

    // Halls may not set the clock; bad clocks are refused.
    let r = set_clock(&mut hall1, 0, 0, "2").await;
    assert_eq!(error_condition(&r), "forbidden");
    let r = set_clock(&mut admin, -5, 0, "2").await;
    assert_eq!(error_condition(&r), "bad-request");
    let r = set_clock(&mut admin, 0, 0, "LATE").await;
    assert_eq!(error_condition(&r), "bad-request");
}

#[tokio::test]
async fn a_task_needing_confirmation_is_announced_to_the_jury_and_activated_by_command() {
    let (s, mut admin) = contest(1).await;
    let mut hall1 = online(&s, "hall1").await;
    enter(&mut hall1, ROOM, "hall1").await;
    // "end-60", to confirm.
    let t = create(
        &mut admin,
        "title='Freeze the scoreboard?' type='confirm' schedule='end' schedule-time='-3600000' confirm='yes'",
        "<status for='hall1' type='none'/>",
    )
    .await;
    let id = t.attr("id").unwrap().to_owned();

    // A missing clock (status 0) is not a start: nothing fires, unlike in the original.
    is_result(&set_clock(&mut admin, 5 * HOUR, 5 * HOUR, "0").await);
    no_task_news(&mut hall1).await;
    // An hour before the end the jury is told, the halls are not.
    is_result(&set_clock(&mut admin, 4 * HOUR, 5 * HOUR, "2").await);
    let due = admin
        .recv_where(|e| {
            e.name() == "message"
                && e.get_child("body", "jabber:client")
                    .is_some_and(|b| b.text().contains("is due"))
        })
        .await
        .unwrap();
    assert_eq!(due.attr("type"), Some("headline"));
    assert!(
        due.get_child("x", NS_TASKS).is_none(),
        "not a live task yet"
    );
    no_task_news(&mut hall1).await;
    assert!(ask_tasks(&mut hall1).await.is_empty());

    // A jury member activates it with an ad-hoc command; now the room hears of it.
    let done = run_command(
        &mut admin,
        "neerc@neerc.localhost",
        "neerc:activate",
        &[("task", &[id.as_str()])],
    )
    .await;
    assert!(done.notes[0].text.contains("is live"), "{:?}", done.notes);
    let (_, live) = next_change(&mut hall1).await;
    assert_eq!(live.attr("id"), Some(id.as_str()));
    assert_eq!(live.attr("schedule"), None);
    // Activating it again is refused.
    let err = admin
        .execute("neerc@neerc.localhost", "neerc:activate")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("item-not-found"), "{err}");
}

#[tokio::test]
async fn scheduled_tasks_survive_a_restart_and_fire_afterwards() {
    let (s, mut admin) = contest(1).await;
    create(
        &mut admin,
        "title='Lunch' type='confirm' schedule='start' schedule-time='7200000'",
        "<status for='hall1' type='none'/>",
    )
    .await;
    drop(admin);
    let s = s.restart().await;
    let mut admin = online(&s, "admin").await;
    enter(&mut admin, ROOM, "admin").await;
    let listed = tasks_with_scheduled(&mut admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attr("schedule-time"), Some("7200000"));
    is_result(&set_clock(&mut admin, 2 * HOUR, 5 * HOUR, "3").await);
    let (_, live) = next_change(&mut admin).await;
    assert_eq!(live.attr("title"), Some("Lunch"));
}

#[tokio::test]
async fn the_clock_file_reaches_the_room_and_newcomers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clock.xml");
    let path = file.clone();
    let (s, mut admin) = contest_config(1, move |c| {
        c.neerc.clock_file = Some(path);
        c.neerc.clock_poll_ms = 20;
    })
    .await;

    // The contest system writes the file: the room hears the clock.
    std::fs::write(
        &file,
        "<?xml version='1.0'?><clock time='60000' length='18000000' status='RUNNING'/>",
    )
    .unwrap();
    let (time, total, status) = next_clock(&mut admin).await;
    assert_eq!((total, status.as_str()), (18_000_000, "2"));
    assert!(time >= 60_000, "{time}");

    // A newcomer gets the clock on entering.
    let mut hall1 = online(&s, "hall1").await;
    hall1
        .send(stanza(&format!(
            "<presence to='{ROOM}/hall1'><x xmlns='{MUC}'/></presence>"
        )))
        .await
        .unwrap();
    let (_, total, status) = next_clock(&mut hall1).await;
    assert_eq!((total, status.as_str()), (18_000_000, "2"));

    // With a file, the jury cannot set the clock.
    let r = set_clock(&mut admin, 0, 0, "1").await;
    assert_eq!(error_condition(&r), "not-allowed");

    // A half-written file is skipped and read again once it is whole.
    std::fs::write(&file, "<clock time='120000' len").unwrap();
    std::fs::write(
        &file,
        "<clock time='120000' length='18000000' status='PAUSED'/>",
    )
    .unwrap();
    assert_eq!(
        next_clock(&mut hall1).await,
        (120_000, 18_000_000, "3".into())
    );

    // The file is gone: no clock.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(next_clock(&mut hall1).await.2, "0");
    let r = hall1
        .iq(stanza(&format!(
            "<iq type='get' to='neerc.localhost'><query xmlns='{NS_CLOCK}'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(clock_of(r.get_child("query", NS_CLOCK).unwrap()).2, "0");
}
