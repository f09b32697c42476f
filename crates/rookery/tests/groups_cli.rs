//! `rookery group …` as an operator uses it: on the data directory alone, and through the
//! admin socket of a running server whose users then see the group in their rosters.

use rookery_client::{Client, ClientConfig, Security};
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
            "hosts = [\"localhost\", \"example.test\"]\ndata_dir = \"{}\"\n\n[listen]\nc2s = \"127.0.0.1:0\"\ns2s = false\nc2s_tls = false\n",
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

#[test]
fn groups_are_managed_on_the_data_directory_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());

    ok(
        &config,
        &["user", "add", "alice@localhost", "--password", "pw"],
    );
    ok(
        &config,
        &[
            "group",
            "add",
            "halls",
            "--name",
            "Halls",
            "--show-in-roster",
        ],
    );
    ok(&config, &["group", "add", "jury"]);
    let (good, _, err) = rookery(&config, &["group", "add", "halls"]);
    assert!(!good && err.contains("already exists"), "{err}");
    let (good, _, err) = rookery(&config, &["group", "add", "a@b"]);
    assert!(!good && err.contains("not a valid group id"), "{err}");

    assert_eq!(
        ok(&config, &["group", "list"]),
        ["halls\tHalls\tshown", "jury\tjury\thidden"]
    );
    // Each host has its own groups.
    assert!(ok(&config, &["group", "list", "--host", "example.test"]).is_empty());
    let (good, _, err) = rookery(&config, &["group", "list", "--host", "elsewhere.example"]);
    assert!(!good && err.contains("does not serve"), "{err}");

    assert_eq!(
        ok(
            &config,
            &[
                "group",
                "member-add",
                "halls",
                "bob@localhost",
                "alice@localhost"
            ]
        ),
        ["bob@localhost", "alice@localhost"]
    );
    let (good, _, err) = rookery(&config, &["group", "member-add", "halls", "not@valid@jid"]);
    assert!(!good && err.contains("not a user's bare JID"), "{err}");
    let (good, _, err) = rookery(&config, &["group", "member-add", "nope", "bob@localhost"]);
    assert!(!good && err.contains("there is no group nope"), "{err}");
    assert_eq!(
        ok(&config, &["group", "members", "halls"]),
        ["alice@localhost", "bob@localhost"]
    );

    assert_eq!(
        ok(&config, &["group", "member-del", "halls", "bob@localhost"]),
        ["bob@localhost"]
    );
    // Deleting an account takes it out of its groups.
    ok(&config, &["user", "del", "alice@localhost"]);
    assert!(ok(&config, &["group", "members", "halls"]).is_empty());

    ok(&config, &["group", "del", "jury"]);
    let (good, _, err) = rookery(&config, &["group", "del", "jury"]);
    assert!(!good && err.contains("there is no group jury"), "{err}");
    assert_eq!(ok(&config, &["group", "list"]), ["halls\tHalls\tshown"]);
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

async fn login(s: &Served, jid: &str, pw: &str) -> Client {
    let mut c = ClientConfig::new(s.c2s, jid, pw);
    c.security = Security::StartTls;
    c.ca_pem = Some(s.ca_pem.clone());
    c.timeout = Duration::from_secs(5);
    Client::connect(c)
        .await
        .unwrap_or_else(|e| panic!("{jid} logs in: {e}"))
}

/// The JIDs in a user's roster, with their groups.
async fn roster(c: &mut Client) -> Vec<(String, Vec<String>)> {
    let r = c.roster_get().await.unwrap();
    r.get_child("query", "jabber:iq:roster")
        .unwrap()
        .children()
        .map(|i| {
            (
                i.attr("jid").unwrap().to_owned(),
                i.children().map(|g| g.text()).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_applies_groups_made_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    ok(
        &config,
        &["user", "add", "alice@localhost", "--password", "a"],
    );
    ok(
        &config,
        &["user", "add", "bob@localhost", "--password", "b"],
    );
    // Made before the server starts, kept in the store.
    ok(
        &config,
        &[
            "group",
            "add",
            "halls",
            "--name",
            "Halls",
            "--show-in-roster",
        ],
    );
    ok(
        &config,
        &["group", "member-add", "halls", "alice@localhost"],
    );

    let served = serve(&config, &dir.path().join("data"));
    // Through the admin socket now.
    ok(&config, &["group", "member-add", "halls", "bob@localhost"]);
    let mut alice = login(&served, "alice@localhost", "a").await;
    assert_eq!(
        roster(&mut alice).await,
        [("bob@localhost".to_owned(), vec!["Halls".to_owned()])]
    );

    ok(
        &config,
        &[
            "group",
            "add",
            "staff",
            "--name",
            "Staff",
            "--show-in-roster",
        ],
    );
    ok(
        &config,
        &[
            "group",
            "member-add",
            "staff",
            "alice@localhost",
            "bob@localhost",
        ],
    );
    assert_eq!(
        roster(&mut alice).await,
        [(
            "bob@localhost".to_owned(),
            vec!["Halls".to_owned(), "Staff".to_owned()]
        )]
    );
    ok(&config, &["group", "member-del", "halls", "bob@localhost"]);
    ok(&config, &["group", "del", "staff"]);
    assert!(roster(&mut alice).await.is_empty());
}
