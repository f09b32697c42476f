//! External authentication: `auth.backend = "external"` with the shipped
//! `examples/extauth.py` (users in a file), and with small scripts that hang or crash.

use rookery_client::rookery_forms::NoteType;
use rookery_client::{Client, ClientError, CommandSession, Security};
use rookery_server::Config;
use rookery_server::admin::{self, AdminRequest, AdminTarget};
use rookery_tests::{TestServer, error_condition, stanza};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const ADMIN: &str = "http://jabber.org/protocol/admin#";

/// The example script shipped with Rookery.
fn example_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/extauth.py")
}

/// The script's users file, "user@server:password" per line.
struct Users {
    _dir: TempDir,
    path: PathBuf,
}

impl Users {
    fn new(lines: &str) -> Users {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, lines).unwrap();
        Users { _dir: dir, path }
    }

    /// The accounts in the file, as "user@server:password" lines.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn external(c: &mut Config, program: Vec<String>) {
    c.auth.backend = "external".into();
    c.auth.extauth_program = program;
    c.auth.extauth_timeout_secs = 2;
}

/// A server whose accounts are those of `users`, checked by the example script.
async fn server_with(users: &Users, f: impl FnOnce(&mut Config)) -> TestServer {
    let program = vec![
        "/usr/bin/python3".to_owned(),
        example_script().display().to_string(),
        users.path.display().to_string(),
    ];
    TestServer::start_with(|c| {
        external(c, program);
        f(c);
    })
    .await
}

async fn refused(s: &TestServer, jid: &str, password: &str) -> String {
    match Client::authenticate_only(s.client_config(jid, password)).await {
        Err(ClientError::Auth { condition, text }) => {
            assert!(!text.is_empty(), "a failure explains itself");
            condition
        }
        other => panic!("{jid}: expected an authentication failure, got {other:?}"),
    }
}

#[tokio::test]
async fn alice_logs_in_through_the_script_with_a_password_full_of_colons() {
    let users = Users::new("# the accounts\nalice@localhost:open:sesame::now:\n");
    let s = server_with(&users, |_| {}).await;
    let alice = s
        .login("alice@localhost", "open:sesame::now:", "laptop")
        .await;
    assert_eq!(alice.mechanism(), "PLAIN");
    assert!(alice.jid().starts_with("alice@localhost/laptop"));
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_not_authorized() {
    let users = Users::new("alice@localhost:open:sesame\n");
    let s = server_with(&users, |_| {}).await;
    assert_eq!(
        refused(&s, "alice@localhost", "open").await,
        "not-authorized"
    );
    assert_eq!(
        refused(&s, "alice@localhost", "open:sesame:").await,
        "not-authorized"
    );
    assert_eq!(
        refused(&s, "mallory@localhost", "open:sesame").await,
        "not-authorized"
    );
}

#[tokio::test]
async fn only_plain_is_offered_and_only_over_tls_even_on_loopback() {
    let users = Users::new("alice@localhost:wonderland\n");
    let s = server_with(&users, |c| c.auth.allow_plaintext_on_loopback = true).await;
    for mech in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"] {
        let mut c = s.client_config("alice@localhost", "wonderland");
        c.mechanism = Some(mech.into());
        match Client::authenticate_only(c).await {
            Err(ClientError::Auth { condition, .. }) => {
                assert_eq!(condition, "invalid-mechanism", "{mech}")
            }
            other => panic!("{mech}: expected invalid-mechanism, got {other:?}"),
        }
    }
    // Plaintext on loopback is allowed for the internal backend, never for this one:
    // the password would travel in the clear to the server.
    let mut c = s.client_config("alice@localhost", "wonderland");
    c.security = Security::Plain;
    let err = Client::authenticate_only(c).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Stream { condition, .. } if condition == "policy-violation")
            || matches!(&err, ClientError::Protocol(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn messages_reach_users_the_script_knows_even_before_their_first_login() {
    let users = Users::new("alice@localhost:a-pass\nbob@localhost:b-pass\n");
    let s = server_with(&users, |_| {}).await;
    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    // bob has never logged in: only the script knows him (isuser).
    alice.send_message("bob@localhost", "hello").await.unwrap();
    alice
        .send_message("nobody@localhost", "anyone?")
        .await
        .unwrap();
    let bounce = alice
        .recv_where(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await
        .unwrap();
    assert_eq!(bounce.attr("from"), Some("nobody@localhost"));
    assert_eq!(error_condition(&bounce), "service-unavailable");

    let mut bob = s.online("bob@localhost", "b-pass", "phone").await;
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "hello"
    );
}

/// Run an admin command to the end: execute, then complete with `fields`.
async fn run(c: &mut Client, name: &str, fields: &[(&str, &[&str])]) -> CommandSession {
    rookery_tests::run_command(c, "localhost", &format!("{ADMIN}{name}"), fields).await
}

fn errors(s: &CommandSession) -> Vec<&str> {
    s.notes
        .iter()
        .filter(|n| n.kind == NoteType::Error)
        .map(|n| n.text.as_str())
        .collect()
}

#[tokio::test]
async fn the_admin_commands_create_change_and_delete_accounts_through_the_script() {
    let users = Users::new("admin@localhost:admin-pass\nalice@localhost:a-pass\n");
    let s = server_with(&users, |_| {}).await;
    let mut admin = s.login("admin@localhost", "admin-pass", "console").await;

    // add-user is tryregister; the password keeps its colons.
    let done = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["carol@localhost"]),
            ("password", &["c:pass"]),
            ("password-verify", &["c:pass"]),
        ],
    )
    .await;
    assert!(errors(&done).is_empty(), "{done:?}");
    assert!(users.lines().contains(&"carol@localhost:c:pass".to_owned()));
    s.login("carol@localhost", "c:pass", "c").await;
    let again = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["carol@localhost"]),
            ("password", &["x"]),
            ("password-verify", &["x"]),
        ],
    )
    .await;
    assert!(errors(&again)[0].contains("already exists"), "{again:?}");

    // change-user-password is setpass.
    let done = run(
        &mut admin,
        "change-user-password",
        &[
            ("accountjid", &["alice@localhost"]),
            ("password", &["new:a"]),
        ],
    )
    .await;
    assert!(errors(&done).is_empty(), "{done:?}");
    assert!(users.lines().contains(&"alice@localhost:new:a".to_owned()));
    s.login("alice@localhost", "new:a", "a").await;
    assert_eq!(
        refused(&s, "alice@localhost", "a-pass").await,
        "not-authorized"
    );

    // delete-user is removeuser; the session ends too.
    let done = run(
        &mut admin,
        "delete-user",
        &[("accountjids", &["carol@localhost", "nobody@localhost"])],
    )
    .await;
    assert_eq!(errors(&done).len(), 1, "nobody@localhost: {done:?}");
    assert!(
        errors(&done)[0].contains("no user nobody@localhost"),
        "{done:?}"
    );
    assert!(!users.lines().iter().any(|l| l.starts_with("carol@")));
    assert_eq!(
        refused(&s, "carol@localhost", "c:pass").await,
        "not-authorized"
    );
}

#[tokio::test]
async fn the_cli_user_commands_use_the_script_with_or_without_a_running_server() {
    let users = Users::new("");
    let s = server_with(&users, |_| {}).await;
    // `rookery user add` while the server runs: over its admin socket, so its pool.
    let r = admin::execute(
        AdminTarget::Running(&s.server),
        AdminRequest::UserAdd {
            jid: "dave@localhost".into(),
            password: "d:1".into(),
        },
    )
    .await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(users.lines(), ["dave@localhost:d:1"]);

    // Without a running server the CLI starts the program itself for the command.
    let offline = |req| {
        admin::execute(
            AdminTarget::Offline {
                stores: s.server.stores(),
                config: &s.config,
            },
            req,
        )
    };
    let r = offline(AdminRequest::UserPasswd {
        jid: "dave@localhost".into(),
        password: "d:2".into(),
    })
    .await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(users.lines(), ["dave@localhost:d:2"]);
    s.login("dave@localhost", "d:2", "d").await;

    let r = offline(AdminRequest::UserPasswd {
        jid: "nobody@localhost".into(),
        password: "x".into(),
    })
    .await;
    assert!(!r.ok && r.message.contains("no user"), "{}", r.message);
    let r = offline(AdminRequest::UserDel {
        jid: "dave@localhost".into(),
    })
    .await;
    assert!(r.ok, "{}", r.message);
    assert!(users.lines().is_empty());
}

#[tokio::test]
async fn in_band_registration_goes_through_the_script() {
    let users = Users::new("");
    let s = server_with(&users, |c| c.auth.registration = true).await;
    let mut cfg = s.client_config("newbie@localhost", "fresh:pass");
    cfg.resource = Some("r".into());
    Client::register(cfg.clone()).await.expect("registration");
    assert_eq!(users.lines(), ["newbie@localhost:fresh:pass"]);
    let taken = Client::register(cfg.clone()).await.unwrap_err();
    assert!(taken.to_string().contains("conflict"), "{taken}");

    let mut newbie = Client::connect(cfg).await.expect("the new account logs in");
    let r = newbie
        .iq(stanza("<iq type='set'><query xmlns='jabber:iq:register'><username>newbie</username><password>newer</password></query></iq>"))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(users.lines(), ["newbie@localhost:newer"]);
    let r = newbie
        .iq(stanza(
            "<iq type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    assert!(users.lines().is_empty());
}

/// A script whose behaviour the test switches with a file: `ok` answers `auth` for
/// password "right" and `isuser` for anyone; `hang` never answers; `crash` exits on the
/// next request; `die` exits on the next request and as soon as it starts. Every start is
/// logged.
const FLAKY: &str = r#"
import os, struct, sys, time
log, mode_file = sys.argv[1], sys.argv[2]
def mode():
    with open(mode_file) as f:
        return f.read().strip()
with open(log, "a") as f:
    f.write("start %d\n" % os.getpid())
if mode() == "die":
    sys.exit(1)
while True:
    head = sys.stdin.buffer.read(2)
    if len(head) < 2:
        sys.exit(0)
    (size,) = struct.unpack(">H", head)
    fields = sys.stdin.buffer.read(size).decode().split(":", 3)
    m = mode()
    if m == "hang":
        time.sleep(3600)
    if m in ("crash", "die"):
        sys.exit(3)
    ok = fields[0] == "isuser" or (fields[0] == "auth" and fields[3] == "right")
    sys.stdout.buffer.write(struct.pack(">HH", 2, 1 if ok else 0))
    sys.stdout.buffer.flush()
"#;

struct Flaky {
    dir: TempDir,
}

impl Flaky {
    fn new(mode: &str) -> Flaky {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flaky.py"), FLAKY).unwrap();
        let f = Flaky { dir };
        f.set(mode);
        f
    }

    fn program(&self) -> Vec<String> {
        ["flaky.py", "starts.log", "mode"]
            .iter()
            .map(|name| self.dir.path().join(name).display().to_string())
            .fold(vec!["/usr/bin/python3".to_owned()], |mut v, p| {
                v.push(p);
                v
            })
    }

    fn set(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// How many times the script has started.
    fn starts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("starts.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Wait (at most 10 s) until the script has started `n` times.
    async fn started(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.starts() < n {
            assert!(
                Instant::now() < deadline,
                "{} starts, not {n}",
                self.starts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn flaky_server(flaky: &Flaky) -> TestServer {
    let program = flaky.program();
    TestServer::start_with(|c| {
        external(c, program);
        c.auth.extauth_timeout_secs = 1;
    })
    .await
}

#[tokio::test]
async fn a_hung_script_fails_the_login_within_the_timeout_and_is_restarted() {
    let flaky = Flaky::new("ok");
    let s = flaky_server(&flaky).await;
    s.login("alice@localhost", "right", "a").await;
    assert_eq!(flaky.starts(), 1);

    flaky.set("hang");
    let asked = Instant::now();
    assert_eq!(
        refused(&s, "alice@localhost", "right").await,
        "temporary-auth-failure"
    );
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "the login failed after {took:?}, the timeout is 1 s"
    );

    // The hung copy was killed and a new one started.
    flaky.set("ok");
    flaky.started(2).await;
    s.login("alice@localhost", "right", "again").await;
}

#[tokio::test]
async fn a_crashing_script_is_restarted_and_logins_fail_cleanly_until_it_works() {
    let flaky = Flaky::new("ok");
    let s = flaky_server(&flaky).await;
    flaky.started(1).await;

    // It dies on the request: this login fails, and the script is started again.
    flaky.set("crash");
    assert_eq!(
        refused(&s, "alice@localhost", "right").await,
        "temporary-auth-failure"
    );
    flaky.started(2).await;

    // Now it dies as soon as it starts: restarted again and again, more slowly each
    // time; logins fail at once meanwhile.
    flaky.set("die");
    assert_eq!(
        refused(&s, "alice@localhost", "right").await,
        "temporary-auth-failure"
    );
    flaky.started(5).await;
    let asked = Instant::now();
    assert_eq!(
        refused(&s, "alice@localhost", "right").await,
        "temporary-auth-failure"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    // Fixed: the next restart stays up and logins work again.
    flaky.set("ok");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Client::connect(s.client_config("alice@localhost", "right")).await {
            Ok(_) => break,
            Err(ClientError::Auth { condition, .. }) => {
                assert_eq!(condition, "temporary-auth-failure");
                assert!(Instant::now() < deadline, "the script was not restarted");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(flaky.starts() >= 6);
}
