//! Interoperability with slixmpp's XEP-0114 component (`ComponentXMPP`): a slixmpp echo
//! component connects with its secret and answers a Rookery client's messages.

use rookery_tests::TestServer;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PYTHON: &str = "/usr/bin/python3";
const ECHO: &str = "echo.localhost";
const SECRET: &str = "slixmpp component secret";

fn slixmpp_available() -> bool {
    std::process::Command::new(PYTHON)
        .args(["-c", "import slixmpp.componentxmpp"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn body(m: &minidom::Element) -> String {
    m.get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slixmpp_component_echoes_a_client() {
    if !slixmpp_available() {
        assert!(
            std::env::var("CI").is_err(),
            "python3-slixmpp is missing in CI: .ci/run should have installed it"
        );
        eprintln!(
            "skipped: /usr/bin/python3 cannot import slixmpp (apt-get install python3-slixmpp)"
        );
        return;
    }
    let s = TestServer::start_with(|c| {
        c.components.push(rookery_config::Component {
            name: ECHO.into(),
            secret: SECRET.into(),
        })
    })
    .await;
    s.add_user("alice@localhost", "a-pass").await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_component.py"
    );
    let mut child = Command::new(PYTHON)
        .arg(script)
        .arg("127.0.0.1")
        .arg(s.component_addr().port().to_string())
        .arg(ECHO)
        .arg(SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line == "READY";
            said.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "the slixmpp component did not connect\nstdout:\n{}\nstderr:\n{}",
            said.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut alice = s.online("alice@localhost", "a-pass", "laptop").await;
    for text in ["hello from Rookery", "quit"] {
        alice.send_message(ECHO, text).await.unwrap();
        let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(body(&m), text, "{}", String::from(&m));
        assert_eq!(m.attr("from"), Some(ECHO));
    }

    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
    {
        said.push(line);
    }
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the slixmpp component exits")
        .unwrap();
    assert!(
        out.status.success() && said.last().map(String::as_str) == Some("OK"),
        "the slixmpp component failed\nstdout:\n{}\nstderr:\n{}",
        said.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
