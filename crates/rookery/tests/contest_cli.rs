//! `rookery contest init` and `rookery neerc …` as a contest's organisers use them: the
//! contest is set up on the data directory (or through a running server), the halls log
//! in with the credentials it printed, and the jury's scripted task changes reach the
//! halls in the room as the jury's own would.

use minidom::Element;
use rookery_client::{Client, ClientConfig, Security};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rookery");
const NS_USERS: &str = "http://neerc.ifmo.ru/protocol/neerc#users";
const NS_TASKS: &str = "http://neerc.ifmo.ru/protocol/neerc#tasks";
const MUC: &str = "http://jabber.org/protocol/muc";

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("rookery.toml");
    std::fs::write(
        &path,
        format!(
            "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[listen]\nc2s = \"127.0.0.1:0\"\ns2s = false\nc2s_tls = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Runs `rookery --config CONFIG ARGS…`: (success, stdout, stderr).
fn rookery(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rookery");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must succeed; returns its stdout lines.
fn ok(config: &Path, args: &[&str]) -> Vec<String> {
    let (ok, out, err) = rookery(config, args);
    assert!(ok, "rookery {args:?}: {out}{err}");
    out.lines().map(str::to_owned).collect()
}

/// Runs a command that must fail; returns its stderr.
fn refused(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = rookery(config, args);
    assert!(!ok, "rookery {args:?} succeeded: {out}{err}");
    err
}

/// The (user, password) pairs of a credentials CSV, after checking its header.
fn credentials(csv: &str) -> Vec<(String, String)> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user,jid,password"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            assert_eq!(f[1], format!("{}@localhost", f[0]));
            assert_eq!(f[2].len(), 20, "{l}");
            assert!(f[2].chars().all(|c| c.is_ascii_alphanumeric()), "{l}");
            (f[0].to_owned(), f[2].to_owned())
        })
        .collect()
}

fn password<'a>(creds: &'a [(String, String)], user: &str) -> &'a str {
    &creds.iter().find(|(u, _)| u == user).unwrap().1
}

/// A `rookery serve` child process and its c2s address.
struct Served {
    child: Child,
    c2s: SocketAddr,
    ca_pem: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path, data: &Path) -> Served {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rookery serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut c2s = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(addr) = line.trim().strip_prefix("c2s (STARTTLS)") {
            c2s = Some(addr.trim().parse().unwrap());
        }
        if line.trim().starts_with("data directory") {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Served {
        child,
        c2s: c2s.expect("serve prints its c2s address"),
        ca_pem: std::fs::read_to_string(data.join("ca.pem")).unwrap(),
    }
}

async fn login(s: &Served, user: &str, pw: &str) -> Client {
    let jid = format!("{user}@localhost");
    let mut c = ClientConfig::new(s.c2s, &jid, pw);
    c.security = Security::StartTls;
    c.ca_pem = Some(s.ca_pem.clone());
    c.timeout = Duration::from_secs(5);
    Client::connect(c)
        .await
        .unwrap_or_else(|e| panic!("{jid} logs in: {e}"))
}

fn stanza(xml: &str) -> Element {
    xml.parse()
        .unwrap_or_else(|e| panic!("bad test XML {xml}: {e}"))
}

/// `#users` of the room `neerc`: (name, group, power) in the service's order.
async fn users(c: &mut Client) -> Vec<(String, String, String)> {
    let r = c
        .iq(stanza(&format!(
            "<iq xmlns='jabber:client' type='get' to='neerc@neerc.localhost'><query xmlns='{NS_USERS}'/></iq>"
        )))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    r.get_child("query", NS_USERS)
        .unwrap()
        .children()
        .map(|u| {
            let a = |n: &str| u.attr(n).unwrap_or_default().to_owned();
            (a("name"), a("group"), a("power"))
        })
        .collect()
}

/// Enter the room `neerc` as `nick` and read everything up to the subject.
async fn enter(c: &mut Client, nick: &str) {
    c.send(stanza(&format!(
        "<presence xmlns='jabber:client' to='neerc@conference.localhost/{nick}'><x xmlns='{MUC}'/></presence>"
    )))
    .await
    .unwrap();
    loop {
        let e = c.recv().await.unwrap();
        assert_ne!(e.attr("type"), Some("error"), "{}", String::from(&e));
        if e.name() == "message" && e.get_child("subject", "jabber:client").is_some() {
            break;
        }
    }
}

/// The next task broadcast: (body, the `<task/>`).
async fn broadcast(c: &mut Client) -> (String, Element) {
    let m = c
        .recv_where(|e| e.name() == "message" && e.get_child("x", NS_TASKS).is_some())
        .await
        .unwrap();
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(m.attr("from"), Some("neerc@neerc.localhost"));
    let body = m.get_child("body", "jabber:client").unwrap().text();
    let task = m
        .get_child("x", NS_TASKS)
        .unwrap()
        .get_child("task", NS_TASKS)
        .unwrap()
        .clone();
    (body, task)
}

/// No task broadcast arrives for a moment (other stanzas, such as the clock, may).
async fn no_task_broadcast(c: &mut Client) {
    while c.expect_silence(Duration::from_millis(200)).await.is_err() {
        let e = c.recv().await.unwrap();
        assert!(e.get_child("x", NS_TASKS).is_none(), "{}", String::from(&e));
    }
}

fn statuses(task: &Element) -> Vec<(String, String)> {
    task.children()
        .map(|s| {
            (
                s.attr("for").unwrap().to_owned(),
                s.attr("type").unwrap().to_owned(),
            )
        })
        .collect()
}

fn power(name: &str, group: &str, power: bool) -> (String, String, String) {
    let p = if power { "yes" } else { "no" };
    (name.to_owned(), group.to_owned(), p.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contest_set_up_on_the_data_directory_runs_with_scripted_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let creds_file = dir.path().join("creds.csv");
    let creds_arg = creds_file.to_str().unwrap();

    // The organiser sets the contest up before the server runs.
    let err = refused(&config, &["neerc", "tasks"]);
    assert!(err.contains("the server is not running"), "{err}");
    let (good, out, err) = rookery(
        &config,
        &[
            "contest", "init", "--halls", "3", "--jury", "2", "--out", creds_arg,
        ],
    );
    assert!(good, "{out}{err}");
    assert!(out.is_empty(), "credentials go to the file only: {out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&creds_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let creds = credentials(&std::fs::read_to_string(&creds_file).unwrap());
    let names: Vec<&str> = creds.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(names, ["jury1", "jury2", "hall1", "hall2", "hall3"]);

    // Running it again never overwrites the credentials, and keeps existing accounts.
    let err = refused(
        &config,
        &["contest", "init", "--halls", "3", "--out", creds_arg],
    );
    assert!(err.contains("never overwritten"), "{err}");
    let (good, out, err) = rookery(&config, &["contest", "init", "--halls", "4"]);
    assert!(good, "{err}");
    let more = credentials(&out);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].0, "hall4");
    assert!(err.contains("kept 4 existing accounts"), "{err}");
    let err = refused(&config, &["contest", "init", "--halls", "0"]);
    assert!(err.contains("--halls"), "{err}");
    let err = refused(
        &config,
        &[
            "contest",
            "init",
            "--halls",
            "2",
            "--host",
            "elsewhere.example",
        ],
    );
    assert!(err.contains("does not serve"), "{err}");

    let served = serve(&config, &dir.path().join("data"));

    // hall1 logs in with the password it was given and sees who is who.
    let mut hall1 = login(&served, "hall1", password(&creds, "hall1")).await;
    assert_eq!(
        users(&mut hall1).await,
        [
            power("jury1", "Jury", true),
            power("jury2", "Jury", true),
            power("hall1", "Halls", false),
            power("hall2", "Halls", false),
            power("hall3", "Halls", false),
            power("hall4", "Halls", false),
        ]
    );
    enter(&mut hall1, "hall1").await;

    // The jury's script adds a task: hall1 hears of it as from the jury's client.
    let lines = ok(
        &config,
        &[
            "neerc",
            "add",
            "--type",
            "todo",
            "--title",
            "Check the printers",
            "--to",
            "HALL1,halls",
        ],
    );
    assert_eq!(lines[0], "1\ttodo\tCheck the printers");
    let (body, task) = broadcast(&mut hall1).await;
    assert_eq!(body, "Task 'Check the printers' (1) changed");
    assert_eq!(task.attr("id"), Some("1"));
    assert_eq!(task.attr("type"), Some("todo"));
    assert_eq!(
        statuses(&task),
        ["hall1", "hall2", "hall3", "hall4"].map(|h| (h.to_owned(), "none".to_owned()))
    );

    ok(
        &config,
        &[
            "neerc",
            "status",
            "1",
            "--assignee",
            "hall2",
            "--status",
            "running",
        ],
    );
    let (_, task) = broadcast(&mut hall1).await;
    assert_eq!(
        statuses(&task)[1],
        ("hall2".to_owned(), "running".to_owned())
    );
    // The state machine applies: a todo is started before it is done.
    let err = refused(
        &config,
        &[
            "neerc",
            "status",
            "1",
            "--assignee",
            "hall3",
            "--status",
            "success",
        ],
    );
    assert!(err.contains("cannot go from none to success"), "{err}");
    let err = refused(
        &config,
        &["neerc", "add", "--title", "T", "--to", "hall1,hal2"],
    );
    assert!(
        err.contains("not a user or group of the room neerc: hal2"),
        "{err}"
    );
    let err = refused(&config, &["neerc", "--room", "nope", "tasks"]);
    assert!(
        err.contains("there is no chat room nope@conference.localhost"),
        "{err}"
    );

    // A file of task lines: a bad one imports nothing and names every bad line.
    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        "@todo hall1 Fine\n@todo hall1,hal9 Typo\nnot a task\n",
    )
    .unwrap();
    let err = refused(&config, &["neerc", "import", bad.to_str().unwrap()]);
    assert!(err.contains("2 bad lines; nothing was imported"), "{err}");
    let (_, out, _) = rookery(&config, &["neerc", "import", bad.to_str().unwrap()]);
    assert!(out.contains("line 2: unknown assignee hal9"), "{out}");
    assert!(
        out.contains("line 3: a task line starts with @type"),
        "{out}"
    );

    let good = dir.path().join("tasks.txt");
    std::fs::write(
        &good,
        "# before the contest\n\n@confirm Wallpapers set?\n@q hall1,Jury How many teams?\n@todo halls end-60! Collect the balloons\n",
    )
    .unwrap();
    let lines = ok(
        &config,
        &["neerc", "--room", "neerc", "import", good.to_str().unwrap()],
    );
    assert_eq!(
        lines,
        [
            "line 3: task 2",
            "line 4: task 3",
            "line 5: task 4 (scheduled end-60!)"
        ]
    );
    // Live tasks are broadcast (the scheduled one is not, until it goes live).
    let (body, task) = broadcast(&mut hall1).await;
    assert_eq!(body, "Task 'Wallpapers set?' (2) changed");
    assert!(statuses(&task).is_empty());
    let (_, task) = broadcast(&mut hall1).await;
    assert_eq!(task.attr("type"), Some("question"));
    assert_eq!(
        statuses(&task),
        ["hall1", "jury1", "jury2"].map(|h| (h.to_owned(), "none".to_owned()))
    );

    ok(&config, &["neerc", "remove", "2"]);
    let (_, task) = broadcast(&mut hall1).await;
    assert_eq!(
        (task.attr("id"), task.attr("type")),
        (Some("2"), Some("remove"))
    );
    no_task_broadcast(&mut hall1).await;

    let board = ok(&config, &["neerc", "tasks"]);
    assert_eq!(
        board,
        [
            "1\ttodo\tCheck the printers",
            "\thall1\tnone",
            "\thall2\trunning",
            "\thall3\tnone",
            "\thall4\tnone",
            "3\tquestion\tHow many teams?",
            "\thall1\tnone",
            "\tjury1\tnone",
            "\tjury2\tnone",
            "4\ttodo\tCollect the balloons\tend-60!",
            "\thall1\tnone",
            "\thall2\tnone",
            "\thall3\tnone",
            "\thall4\tnone",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contest_set_up_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let served = serve(&config, &dir.path().join("data"));
    let (good, out, err) = rookery(
        &config,
        &["contest", "init", "--halls", "2", "--format", "xep0227"],
    );
    assert!(good, "{out}{err}");
    assert!(
        out.contains("<server-data xmlns='urn:xmpp:pie:0'>"),
        "{out}"
    );
    let pw = |user: &str| {
        let start = out
            .find(&format!("<user name='{user}' password='"))
            .unwrap();
        out[start..].split('\'').nth(3).unwrap().to_owned()
    };
    let mut jury1 = login(&served, "jury1", &pw("jury1")).await;
    assert_eq!(
        users(&mut jury1).await,
        [
            power("jury1", "Jury", true),
            power("hall1", "Halls", false),
            power("hall2", "Halls", false),
        ]
    );
    // The room is there at once, and the contest service serves it.
    enter(&mut jury1, "jury1").await;
    let mut hall2 = login(&served, "hall2", &pw("hall2")).await;
    enter(&mut hall2, "hall2").await;
    ok(
        &config,
        &[
            "neerc", "add", "--type", "ok", "--title", "Ready?", "--to", "Halls",
        ],
    );
    let (_, task) = broadcast(&mut hall2).await;
    assert_eq!(task.attr("type"), Some("confirm"));
    let (body, _) = broadcast(&mut jury1).await;
    assert_eq!(body, "Task 'Ready?' (1) changed");
    ok(
        &config,
        &[
            "neerc",
            "status",
            "1",
            "--assignee",
            "hall2",
            "--status",
            "success",
        ],
    );
    let (_, task) = broadcast(&mut hall2).await;
    assert_eq!(
        statuses(&task),
        [("hall1", "none"), ("hall2", "success")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // A hall more, while the room is in use: the new hall gets in, the others stay.
    let (good, out, err) = rookery(&config, &["contest", "init", "--halls", "3"]);
    assert!(good, "{out}{err}");
    assert!(
        err.contains("set up the room neerc@conference.localhost"),
        "{err}"
    );
    let more = credentials(&out);
    assert_eq!(more[0].0, "hall3");
    let mut hall3 = login(&served, "hall3", &more[0].1).await;
    enter(&mut hall3, "hall3").await;
    assert_eq!(users(&mut hall3).await.len(), 4);
    ok(
        &config,
        &["neerc", "add", "--title", "Welcome", "--to", "hall3"],
    );
    let (body, _) = broadcast(&mut hall2).await;
    assert_eq!(body, "Task 'Welcome' (2) changed");
    let (body, _) = broadcast(&mut hall3).await;
    assert_eq!(body, "Task 'Welcome' (2) changed");
}

/// A `rookery neerc-component` child process.
struct ComponentProcess(Child);

impl Drop for ComponentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_contest_service_runs_as_an_external_component() {
    let dir = tempfile::tempdir().unwrap();
    // The server runs no contest service itself; `neerc.localhost` is a component.
    let config = dir.path().join("rookery.toml");
    std::fs::write(
        &config,
        format!(
            "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[listen]\nc2s = \"127.0.0.1:0\"\n\
             s2s = false\nc2s_tls = false\ncomponent = \"127.0.0.1:0\"\n\n[neerc]\nenabled = false\n\n\
             [[component]]\nname = \"neerc.localhost\"\nsecret = \"s3cret\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // The contest's room gets the component as an owner, so that it may read the room.
    let (good, out, err) = rookery(&config, &["contest", "init", "--halls", "2"]);
    assert!(good, "{err}");
    let creds = credentials(&out);
    assert!(err.contains("neerc.localhost"), "{err}");

    // Where the server listens for components: its start-up lines say.
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rookery serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut c2s, mut component) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("c2s (STARTTLS)") {
            c2s = Some(addr.trim().parse::<SocketAddr>().unwrap());
        }
        if let Some(rest) = line.strip_prefix("components") {
            component = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("data directory") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let served = Served {
        child,
        c2s: c2s.expect("the c2s address"),
        ca_pem: std::fs::read_to_string(dir.path().join("data").join("ca.pem")).unwrap(),
    };
    let component = component.expect("the component address");

    // A wrong secret is refused at once, with the server's reason.
    let out = Command::new(BIN)
        .args([
            "neerc-component",
            "--server",
            &component,
            "--name",
            "neerc.localhost",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("neerc"))
        .env("ROOKERY_COMPONENT_SECRET", "wrong")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-authorized"), "{err}");

    let _service = ComponentProcess(
        Command::new(BIN)
            .args([
                "neerc-component",
                "--server",
                &component,
                "--name",
                "neerc.localhost",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("neerc"))
            .env("ROOKERY_COMPONENT_SECRET", "s3cret")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The halls and the jury see the same users as with the built-in service, once the
    // component is connected.
    let mut hall1 = login(&served, "hall1", password(&creds, "hall1")).await;
    let expected = [
        power("jury1", "Jury", true),
        power("hall1", "Halls", false),
        power("hall2", "Halls", false),
    ];
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = hall1
            .iq(stanza(&format!(
                "<iq xmlns='jabber:client' type='get' to='neerc@neerc.localhost'><query xmlns='{NS_USERS}'/></iq>"
            )))
            .await
            .unwrap();
        if r.attr("type") == Some("result") {
            seen = users(&mut hall1).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, expected);

    // The jury creates a task over XMPP; hall1, in the room, hears of it.
    enter(&mut hall1, "hall1").await;
    let mut jury1 = login(&served, "jury1", password(&creds, "jury1")).await;
    let r = jury1
        .iq(stanza(
            "<iq xmlns='jabber:client' type='set' to='neerc@neerc.localhost'>\
             <task xmlns='http://neerc.ifmo.ru/protocol/neerc#task' title='Lights on' type='confirm'>\
             <status for='hall1' type='none'/></task></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let (_, task) = broadcast(&mut hall1).await;
    assert_eq!(task.attr("title"), Some("Lights on"));
    assert_eq!(statuses(&task), [("hall1".to_owned(), "none".to_owned())]);
}
