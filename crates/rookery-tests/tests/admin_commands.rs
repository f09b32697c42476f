//! Every XEP-0133 command, run by an administrator over TCP, and its effect checked.

use rookery_client::rookery_forms::{DataForm, NoteType};
use rookery_client::{ClientError, CommandSession};
use rookery_server::server::Exit;
use rookery_tests::{TestServer, stanza};
use std::time::Duration;

const ADMIN: &str = "http://jabber.org/protocol/admin#";

async fn server() -> TestServer {
    let s = TestServer::start().await;
    s.add_user("admin@localhost", "admin-pass").await;
    s.add_user("alice@localhost", "a-pass").await;
    s.add_user("bob@localhost", "b-pass").await;
    s
}

/// Run a command to the end: execute, then (if it asks) complete with `fields`.
async fn run(
    c: &mut rookery_client::Client,
    name: &str,
    fields: &[(&str, &[&str])],
) -> CommandSession {
    let node = if name.contains(':') {
        name.to_owned()
    } else {
        format!("{ADMIN}{name}")
    };
    rookery_tests::run_command(c, "localhost", &node, fields).await
}

fn errors(s: &CommandSession) -> Vec<&str> {
    s.notes
        .iter()
        .filter(|n| n.kind == NoteType::Error)
        .map(|n| n.text.as_str())
        .collect()
}

fn result(s: &CommandSession) -> &DataForm {
    s.form.as_ref().expect("a result form")
}

fn values<'a>(s: &'a CommandSession, var: &str) -> Vec<&'a str> {
    result(s)
        .field(var)
        .map(|f| f.values.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_user_added_by_command_can_log_in_and_mistakes_are_reported() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let done = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["carol@localhost"]),
            ("password", &["c-pass"]),
            ("password-verify", &["c-pass"]),
            ("email", &["carol@example.com"]),
        ],
    )
    .await;
    assert!(errors(&done).is_empty(), "{done:?}");
    s.login("carol@localhost", "c-pass", "c").await;

    let exists = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["carol@localhost"]),
            ("password", &["x"]),
            ("password-verify", &["x"]),
        ],
    )
    .await;
    assert!(errors(&exists)[0].contains("already exists"), "{exists:?}");
    let mismatch = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["dave@localhost"]),
            ("password", &["x"]),
            ("password-verify", &["y"]),
        ],
    )
    .await;
    assert!(errors(&mismatch)[0].contains("do not match"));
    let foreign = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["eve@elsewhere.example"]),
            ("password", &["x"]),
            ("password-verify", &["x"]),
        ],
    )
    .await;
    assert!(errors(&foreign)[0].contains("does not serve"));
}

#[tokio::test]
async fn deleting_a_user_ends_their_session_and_their_account() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    let done = run(
        &mut admin,
        "delete-user",
        &[("accountjids", &["bob@localhost", "nobody@localhost"])],
    )
    .await;
    assert!(
        done.notes
            .iter()
            .any(|n| n.text.contains("deleted: bob@localhost")),
        "{done:?}"
    );
    assert_eq!(
        errors(&done).len(),
        1,
        "nobody@localhost does not exist: {done:?}"
    );
    assert!(matches!(bob.recv().await, Err(ClientError::Stream { .. })));
    let mut c = s.client_config("bob@localhost", "b-pass");
    c.resource = Some("again".into());
    assert!(rookery_client::Client::connect(c).await.is_err());
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_until_re_enabled() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    run(
        &mut admin,
        "disable-user",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    match bob.recv().await {
        Err(ClientError::Stream { condition, .. }) => assert_eq!(condition, "not-authorized"),
        other => panic!("bob's session should end: {other:?}"),
    }
    let err = rookery_client::Client::connect(s.client_config("bob@localhost", "b-pass"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("account-disabled"), "{err}");

    let n = run(&mut admin, "get-disabled-users-num", &[]).await;
    assert_eq!(values(&n, "disabledusersnum"), ["1"]);
    let list = run(
        &mut admin,
        "get-disabled-users-list",
        &[("max_items", &["25"])],
    )
    .await;
    assert_eq!(values(&list, "disableduserjids"), ["bob@localhost"]);

    run(
        &mut admin,
        "reenable-user",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    s.login("bob@localhost", "b-pass", "b").await;
    let n = run(&mut admin, "get-disabled-users-num", &[]).await;
    assert_eq!(values(&n, "disabledusersnum"), ["0"]);
}

#[tokio::test]
async fn end_user_session_ends_one_resource_or_all() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut phone = s.login("bob@localhost", "b-pass", "phone").await;
    let mut laptop = s.login("bob@localhost", "b-pass", "laptop").await;
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["bob@localhost/phone"])],
    )
    .await;
    assert!(matches!(
        phone.recv().await,
        Err(ClientError::Stream { .. })
    ));
    // The laptop is still there.
    let r = laptop
        .iq(stanza(
            "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    assert!(matches!(
        laptop.recv().await,
        Err(ClientError::Stream { .. })
    ));
    let none = run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    assert!(errors(&none)[0].contains("no such session"));
}

#[tokio::test]
async fn a_changed_password_is_the_one_that_works() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    run(
        &mut admin,
        "change-user-password",
        &[
            ("accountjid", &["bob@localhost"]),
            ("password", &["new-pass"]),
        ],
    )
    .await;
    s.login("bob@localhost", "new-pass", "b").await;
    assert!(
        rookery_client::Client::connect(s.client_config("bob@localhost", "b-pass"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn roster_last_login_and_statistics_of_a_user() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let _alice2 = s.login("alice@localhost", "a-pass", "b").await;
    let set = alice
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>"))
        .await
        .unwrap();
    assert_eq!(set.attr("type"), Some("result"));

    let roster = run(
        &mut admin,
        "get-user-roster",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    let rows = &result(&roster).items;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]
            .iter()
            .find(|f| f.var.as_deref() == Some("jid"))
            .unwrap()
            .value(),
        Some("bob@localhost")
    );
    assert_eq!(
        rows[0]
            .iter()
            .find(|f| f.var.as_deref() == Some("groups"))
            .unwrap()
            .value(),
        Some("Friends")
    );
    assert!(
        roster
            .other
            .iter()
            .any(|e| e.name() == "query" && e.ns() == "jabber:iq:roster")
    );

    let last = run(
        &mut admin,
        "get-user-lastlogin",
        &[("accountjids", &["alice@localhost", "bob@localhost"])],
    )
    .await;
    let rows = &result(&last).items;
    let when = |i: usize| {
        rows[i]
            .iter()
            .find(|f| f.var.as_deref() == Some("lastlogin"))
            .unwrap()
            .value()
            .unwrap()
            .to_owned()
    };
    assert!(
        when(0).starts_with("20") && when(0).ends_with('Z'),
        "{}",
        when(0)
    );
    assert_eq!(when(1), "never");

    let stats = run(
        &mut admin,
        "user-stats",
        &[("accountjid", &["alice@localhost"])],
    )
    .await;
    assert_eq!(values(&stats, "rostersize"), ["1"]);
    assert_eq!(values(&stats, "onlineresources"), ["2"]);
    assert_eq!(values(&stats, "ipaddresses"), ["127.0.0.1"]);
}

#[tokio::test]
async fn counts_and_lists_of_users() {
    let s = TestServer::start_with(|c| c.limits.idle_user_secs = 1).await;
    for u in ["admin", "alice", "bob", "carol"] {
        s.add_user(&format!("{u}@localhost"), "pw").await;
    }
    let mut admin = s.login("admin@localhost", "pw", "a").await;
    let mut alice = s.online("alice@localhost", "pw", "a").await;
    let _bob = s.login("bob@localhost", "pw", "b").await;

    let n = run(&mut admin, "get-registered-users-num", &[]).await;
    assert_eq!(values(&n, "registeredusersnum"), ["4"]);
    let list = run(
        &mut admin,
        "get-registered-users-list",
        &[("max_items", &["25"])],
    )
    .await;
    assert_eq!(
        values(&list, "registereduserjids"),
        [
            "admin@localhost",
            "alice@localhost",
            "bob@localhost",
            "carol@localhost"
        ]
    );
    let online = run(&mut admin, "get-online-users-num", &[]).await;
    assert_eq!(values(&online, "onlineusersnum"), ["3"]);
    let online = run(
        &mut admin,
        "get-online-users-list",
        &[("max_items", &["none"])],
    )
    .await;
    assert_eq!(
        values(&online, "onlineuserjids"),
        ["admin@localhost", "alice@localhost", "bob@localhost"]
    );

    // After a quiet second everyone is idle; alice speaks and is active again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    alice
        .iq(stanza(
            "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    let active = run(&mut admin, "get-active-users", &[("max_items", &["25"])]).await;
    // The admin is active too: running the command is activity.
    assert_eq!(
        values(&active, "activeuserjids"),
        ["admin@localhost", "alice@localhost"]
    );
    let idle = run(&mut admin, "get-idle-users", &[("max_items", &["25"])]).await;
    assert_eq!(values(&idle, "idleuserjids"), ["bob@localhost"]);
    let n = run(&mut admin, "get-idle-users-num", &[]).await;
    assert_eq!(values(&n, "idleusersnum"), ["1"]);
    let n = run(&mut admin, "get-active-users-num", &[]).await;
    assert_eq!(values(&n, "activeusersnum"), ["2"]);
}

#[tokio::test]
async fn an_announcement_reaches_available_resources_only() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let mut bob_unavailable = s.login("bob@localhost", "b-pass", "b").await;
    let done = run(
        &mut admin,
        "announce",
        &[
            ("subject", &["Hello"]),
            ("announcement", &["Lunch is served", "in hall B"]),
        ],
    )
    .await;
    assert!(
        done.notes[0].text.contains("1 online resources"),
        "{done:?}"
    );
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("localhost"));
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Lunch is served\nin hall B"
    );
    assert_eq!(
        m.get_child("subject", "jabber:client").unwrap().text(),
        "Hello"
    );
    bob_unavailable
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_message_of_the_day_is_sent_now_and_once_at_next_login() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    run(
        &mut admin,
        "set-motd",
        &[("motd", &["Contest starts at 10:00"])],
    )
    .await;
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Contest starts at 10:00"
    );
    drop(alice);

    // Bob was offline: he gets it when he comes online, once.
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Contest starts at 10:00"
    );
    drop(bob);
    let mut bob = s.online("bob@localhost", "b-pass", "b2").await;
    bob.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    // Alice saw it already.
    let mut alice = s.online("alice@localhost", "a-pass", "a2").await;
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();

    // edit-motd offers the current text, and a new text is news for everybody.
    let session = admin
        .execute("localhost", &format!("{ADMIN}edit-motd"))
        .await
        .unwrap();
    assert_eq!(
        session.form.as_ref().unwrap().value("motd"),
        Some("Contest starts at 10:00")
    );
    session.clone().cancel(&mut admin).await.unwrap();
    run(
        &mut admin,
        "edit-motd",
        &[("motd", &["Contest starts at 11:00"])],
    )
    .await;
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Contest starts at 11:00"
    );

    run(&mut admin, "delete-motd", &[]).await;
    s.add_user("carol@localhost", "c-pass").await;
    let mut carol = s.online("carol@localhost", "c-pass", "c").await;
    carol
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

#[tokio::test]
async fn new_users_get_the_welcome_message_until_it_is_deleted() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    run(
        &mut admin,
        "set-welcome",
        &[("welcome", &["Welcome to the contest!"])],
    )
    .await;
    run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["carol@localhost"]),
            ("password", &["c"]),
            ("password-verify", &["c"]),
        ],
    )
    .await;
    let mut carol = s.online("carol@localhost", "c", "c").await;
    let m = carol.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Welcome to the contest!"
    );

    run(&mut admin, "delete-welcome", &[]).await;
    run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["dave@localhost"]),
            ("password", &["d"]),
            ("password-verify", &["d"]),
        ],
    )
    .await;
    let mut dave = s.online("dave@localhost", "d", "d").await;
    dave.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

#[tokio::test]
async fn administrators_can_be_added_and_removed_at_run_time() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    assert!(
        bob.execute("localhost", &format!("{ADMIN}add-user"))
            .await
            .is_err()
    );

    let session = admin
        .execute("localhost", &format!("{ADMIN}edit-admin"))
        .await
        .unwrap();
    assert_eq!(
        session
            .form
            .as_ref()
            .unwrap()
            .field("adminjids")
            .unwrap()
            .values,
        ["admin@localhost"]
    );
    session.clone().cancel(&mut admin).await.unwrap();
    // Removing the configured admin is refused with a warning; bob becomes one.
    let done = run(
        &mut admin,
        "edit-admin",
        &[("adminjids", &["bob@localhost"])],
    )
    .await;
    assert!(
        done.notes
            .iter()
            .any(|n| n.kind == NoteType::Warn && n.text.contains("configuration file")),
        "{done:?}"
    );
    bob.execute("localhost", &format!("{ADMIN}add-user"))
        .await
        .unwrap();

    // The list survives a restart.
    drop(bob);
    drop(admin);
    let s = s.restart().await;
    let mut bob = s.login("bob@localhost", "b-pass", "b").await;
    bob.execute("localhost", &format!("{ADMIN}add-user"))
        .await
        .unwrap();
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    run(
        &mut admin,
        "edit-admin",
        &[("adminjids", &["admin@localhost"])],
    )
    .await;
    assert!(
        bob.execute("localhost", &format!("{ADMIN}add-user"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_and_restart_announce_then_ask_the_server_to_stop() {
    for (name, exit) in [("shutdown", Exit::Shutdown), ("restart", Exit::Restart)] {
        let s = server().await;
        let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
        let mut alice = s.online("alice@localhost", "a-pass", "a").await;
        let done = run(
            &mut admin,
            name,
            &[
                ("delay", &["0"]),
                ("announcement", &["Back in five minutes"]),
            ],
        )
        .await;
        assert!(errors(&done).is_empty());
        let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            "Back in five minutes"
        );
        let asked = tokio::time::timeout(Duration::from_secs(5), s.server.exit_requested()).await;
        assert_eq!(asked.unwrap(), exit);
        // Only global administrators may.
        let mut bob = s.login("bob@localhost", "b-pass", "b").await;
        assert!(
            bob.execute("localhost", &format!("{ADMIN}{name}"))
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_blacklisted_domain_is_cut_off() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    run(
        &mut admin,
        "edit-blacklist",
        &[("blacklistjids", &["evil.example"])],
    )
    .await;
    alice
        .send(stanza(
            "<message to='someone@evil.example' id='m1' type='chat'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let bounce = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(bounce.attr("type"), Some("error"));
    assert!(String::from(&bounce).contains("not-allowed"), "{bounce:?}");

    // The whitelist: with one entry, other remote domains are refused; local users not.
    run(&mut admin, "edit-blacklist", &[("blacklistjids", &[])]).await;
    run(
        &mut admin,
        "edit-whitelist",
        &[("whitelistjids", &["friends.example"])],
    )
    .await;
    alice
        .send(stanza(
            "<message to='x@other.example' id='m2' type='chat'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let bounce = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert!(String::from(&bounce).contains("not-allowed"), "{bounce:?}");
    alice
        .send(stanza(
            "<message to='x@friends.example' id='m3' type='chat'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let bounce = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert!(
        String::from(&bounce).contains("remote-server-not-found"),
        "{bounce:?}"
    );
    let mut bob = s.online("bob@localhost", "b-pass", "b").await;
    alice
        .send_message("bob@localhost", "still here")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "still here"
    );
}

#[tokio::test]
async fn ping_uptime_statistics_sessions_and_reload() {
    let s = server().await;
    let mut admin = s.login("admin@localhost", "admin-pass", "a").await;
    let mut alice = s.online("alice@localhost", "a-pass", "a").await;
    let pong = run(&mut alice, "urn:rookery:admin#ping", &[]).await;
    assert_eq!(pong.notes[0].text, "pong from localhost");
    assert!(
        alice
            .execute("localhost", "urn:rookery:admin#stats")
            .await
            .is_err()
    );

    let up = run(&mut admin, "urn:rookery:admin#uptime", &[]).await;
    assert!(values(&up, "uptime")[0].parse::<u64>().is_ok());
    let stats = run(&mut admin, "urn:rookery:admin#stats", &[]).await;
    assert_eq!(values(&stats, "registered@localhost"), ["3"]);
    assert_eq!(values(&stats, "sessions"), ["2"]);
    assert!(values(&stats, "rss_kib")[0].parse::<u64>().unwrap() > 0);
    let sessions = run(&mut admin, "urn:rookery:admin#sessions", &[]).await;
    let table = result(&sessions);
    assert_eq!(table.items.len(), 2);
    let row = table
        .items
        .iter()
        .find(|r| r[0].value() == Some("alice@localhost/a"))
        .unwrap();
    assert!(row[1].value().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(row[3].value(), Some("available"));

    // Without a configuration file there is nothing to reload.
    let r = run(&mut admin, "urn:rookery:admin#reload", &[]).await;
    assert_eq!(r.notes[0].kind, NoteType::Warn);
    // With one, a new administrator takes effect at once and other changes are named.
    let path = s.data_dir().join("rookery.toml");
    std::fs::write(&path, "hosts = [\"localhost\", \"example.test\"]\nadmins = [\"admin@localhost\", \"alice@localhost\"]\n[limits]\nmax_depth = 20\n").unwrap();
    s.server.set_config_path(Some(path.clone()));
    let r = run(&mut admin, "urn:rookery:admin#reload", &[]).await;
    assert!(
        r.notes.iter().any(|n| n.text.contains("alice@localhost")),
        "{r:?}"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.kind == NoteType::Warn && n.text.contains("limits")),
        "{r:?}"
    );
    alice
        .execute("localhost", &format!("{ADMIN}add-user"))
        .await
        .unwrap();
    std::fs::write(&path, "hosts = [\"localhost\"\n").unwrap();
    let r = run(&mut admin, "urn:rookery:admin#reload", &[]).await;
    assert_eq!(r.notes[0].kind, NoteType::Error, "{r:?}");
}
