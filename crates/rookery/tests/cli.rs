//! The `rookery` binary as an operator uses it: check-config, user commands with and
//! without a running server, and durability across `kill -9`.

use rookery_client::{Client, ClientConfig, ClientError, Security};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rookery");

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("rookery.toml");
    std::fs::write(
        &path,
        format!(
            "hosts = [\"localhost\"]\nadmins = [\"admin@localhost\"]\ndata_dir = \"{}\"\n\n[listen]\nc2s = \"127.0.0.1:0\"\ns2s = false\nc2s_tls = \"127.0.0.1:0\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

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

/// A `rookery serve` child process and the c2s address it printed.
struct Served {
    child: Child,
    c2s: SocketAddr,
    ca_pem: String,
    /// What it prints later (e.g. after restarting itself).
    later: std::sync::mpsc::Receiver<String>,
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
    let (tx, later) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Served {
        child,
        c2s: c2s.expect("serve prints its c2s address"),
        ca_pem: std::fs::read_to_string(data.join("ca.pem")).unwrap(),
        later,
    }
}

fn client(s: &Served, jid: &str, pw: &str) -> ClientConfig {
    let mut c = ClientConfig::new(s.c2s, jid, pw);
    c.security = Security::StartTls;
    c.ca_pem = Some(s.ca_pem.clone());
    c.timeout = Duration::from_secs(5);
    c
}

#[test]
fn check_config_reports_every_mistake_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "hosts = [\"localhost\"]\nlistn = 3\n[limits]\nmax_stanza_size = \"big\"\n",
    )
    .unwrap();
    let (ok, _, err) = rookery(&path, &["check-config"]);
    assert!(!ok, "a bad configuration is refused");
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("bad.toml:4:"), "{err}");

    let good = write_config(dir.path());
    let (ok, out, err) = rookery(&good, &["check-config"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn serve_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "hosts = []\n").unwrap();
    let (ok, _, err) = rookery(&path, &["serve"]);
    assert!(!ok);
    assert!(err.contains("bad.toml:1:"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_managed_with_and_without_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // No server yet: the CLI works on the store directly.
    let (ok, _, err) = rookery(
        &config,
        &["user", "add", "alice@localhost", "--password", "wonderland"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = rookery(
        &config,
        &["user", "add", "alice@localhost", "--password", "again"],
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = rookery(
        &config,
        &["user", "add", "eve@elsewhere", "--password", "x"],
    );
    assert!(!ok && err.contains("does not serve"), "{err}");

    let mut served = serve(&config, &dir.path().join("data"));
    let mut alice = Client::connect(client(&served, "alice@localhost", "wonderland"))
        .await
        .expect("alice logs in");

    // With the server running, the CLI goes through its admin socket.
    let (ok, _, err) = rookery(
        &config,
        &["user", "add", "bob@localhost", "--password", "builder"],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = rookery(&config, &["user", "list", "localhost"]);
    assert!(ok);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["alice@localhost", "bob@localhost"]
    );
    let (ok, out, _) = rookery(&config, &["status"]);
    assert!(ok && out.contains("alice@localhost/"), "{out}");
    Client::connect(client(&served, "bob@localhost", "builder"))
        .await
        .expect("bob logs in at once");

    let (ok, _, err) = rookery(
        &config,
        &["user", "passwd", "bob@localhost", "--password", "rebuilt"],
    );
    assert!(ok, "{err}");
    assert!(
        Client::authenticate_only(client(&served, "bob@localhost", "builder"))
            .await
            .is_err()
    );

    // Deleting alice ends her session.
    let (ok, _, err) = rookery(&config, &["user", "del", "alice@localhost"]);
    assert!(ok, "{err}");
    match alice.recv().await {
        Err(ClientError::Stream { condition, .. }) => assert_eq!(condition, "not-authorized"),
        other => panic!("alice's session should end, got {other:?}"),
    }
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_server_confirmed_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    assert!(
        rookery(
            &config,
            &["user", "add", "alice@localhost", "--password", "pw"]
        )
        .0
    );
    assert!(
        rookery(
            &config,
            &["user", "add", "bob@localhost", "--password", "pw"]
        )
        .0
    );

    let mut served = serve(&config, &data);
    let mut alice = Client::connect(client(&served, "alice@localhost", "pw"))
        .await
        .unwrap();
    let r = alice
        .iq("<iq type='set' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    alice.send_message("bob@localhost", "kept").await.unwrap();
    // A round trip after the message: the message was handled before the ping's answer.
    alice
        .iq(
            "<iq type='get' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();

    served.child.kill().unwrap(); // SIGKILL
    served.child.wait().unwrap();

    let mut served = serve(&config, &data);
    let mut alice = Client::connect(client(&served, "alice@localhost", "pw"))
        .await
        .unwrap();
    let r = alice
        .iq(
            "<iq type='get' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    let item = r
        .get_child("query", "jabber:iq:roster")
        .unwrap()
        .get_child("item", "jabber:iq:roster")
        .unwrap();
    assert_eq!(item.attr("name"), Some("Bob"));
    let mut bob = Client::connect(client(&served, "bob@localhost", "pw"))
        .await
        .unwrap();
    bob.send_presence().await.unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "kept");
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

/// `rookery` with environment variables, as an operator's shell would run it.
fn rookery_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run rookery");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_adhoc_commands_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let mut served = serve(&config, &data);
    assert!(
        rookery(
            &config,
            &[
                "user",
                "add",
                "admin@localhost",
                "--password",
                "s3cret-admin"
            ]
        )
        .0
    );

    // Over the admin socket, with a bare XEP-0133 name and --field values.
    let (ok, out, err) = rookery(
        &config,
        &[
            "admin",
            "run",
            "add-user",
            "--field",
            "accountjid=carol@localhost",
            "--field",
            "password=c-pass",
            "--field",
            "password-verify=c-pass",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("created the account carol@localhost"), "{out}");
    let (ok, out, _) = rookery(&config, &["admin", "list"]);
    assert!(
        ok && out.contains("http://jabber.org/protocol/admin#shutdown"),
        "{out}"
    );
    // A business failure is an error note and a failing exit code.
    let (ok, out, err) = rookery(
        &config,
        &[
            "admin",
            "run",
            "add-user",
            "--field",
            "accountjid=carol@localhost",
            "--field",
            "password=x",
            "--field",
            "password-verify=x",
        ],
    );
    assert!(!ok, "{out}{err}");
    assert!(format!("{out}{err}").contains("already exists"));

    // Over XMPP as the administrator, the password from the environment, never echoed.
    let server = served.c2s.to_string();
    let env = [
        ("ROOKERY_ACCOUNT", "admin@localhost"),
        ("ROOKERY_PASSWORD", "s3cret-admin"),
    ];
    let (ok, out, err) = rookery_env(
        &config,
        &["adhoc", "list", "localhost", "--server", &server],
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("http://jabber.org/protocol/admin#add-user"),
        "{out}"
    );
    let (ok, out, err) = rookery_env(
        &config,
        &[
            "adhoc",
            "run",
            "localhost",
            "get-registered-users-list",
            "--server",
            &server,
            "--field",
            "max_items=25",
        ],
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("admin@localhost") && out.contains("carol@localhost"),
        "{out}"
    );
    assert!(!out.contains("s3cret-admin") && !err.contains("s3cret-admin"));
    // A table is printed with its column headers.
    let (ok, out, err) = rookery_env(
        &config,
        &[
            "adhoc",
            "run",
            "localhost",
            "urn:rookery:admin#sessions",
            "--server",
            &server,
        ],
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Address") && out.contains("admin@localhost/"),
        "{out}"
    );

    // Carol is no administrator.
    let carol = [
        ("ROOKERY_ACCOUNT", "carol@localhost"),
        ("ROOKERY_PASSWORD", "c-pass"),
    ];
    let (ok, out, err) = rookery_env(
        &config,
        &["adhoc", "run", "localhost", "add-user", "--server", &server],
        &carol,
    );
    assert!(!ok);
    assert!(format!("{out}{err}").contains("forbidden"), "{out}{err}");

    // restart: the process starts again by itself, on new ports, with the same data.
    let mut carol_before = Client::connect(client(&served, "carol@localhost", "c-pass"))
        .await
        .unwrap();
    let (ok, out, err) = rookery(&config, &["admin", "run", "restart", "--field", "delay=0"]);
    assert!(ok, "{out}{err}");
    match carol_before.recv().await {
        Err(ClientError::Stream { condition, .. }) => assert_eq!(condition, "system-shutdown"),
        other => panic!("the old session should end with system-shutdown, got {other:?}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new_c2s: SocketAddr = loop {
        let line = served
            .later
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the restarted server prints its addresses");
        if let Some(addr) = line.trim().strip_prefix("c2s (STARTTLS)") {
            break addr.trim().parse().unwrap();
        }
    };
    served.c2s = new_c2s;
    Client::connect(client(&served, "carol@localhost", "c-pass"))
        .await
        .unwrap();

    // shutdown: the process ends.
    let (ok, out, err) = rookery(&config, &["admin", "run", "shutdown", "--field", "delay=0"]);
    assert!(ok, "{out}{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not shut down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
