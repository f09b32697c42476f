//! Interoperability with slixmpp (Debian's python3-slixmpp): two slixmpp clients log in
//! over STARTTLS (slixmpp answers -PLUS offers with the gs2 flag 'y' on TLS 1.3), subscribe,
//! chat, and get offline messages.

use rookery_tests::TestServer;
use std::process::Command;

const PYTHON: &str = "/usr/bin/python3";

fn slixmpp_available() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import slixmpp"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn slixmpp_clients_log_in_subscribe_and_chat() {
    if !slixmpp_available() {
        // CI installs it (.ci/run); a developer machine may not have it.
        assert!(
            std::env::var("CI").is_err(),
            "python3-slixmpp is missing in CI: .ci/run should have installed it"
        );
        eprintln!(
            "skipped: /usr/bin/python3 cannot import slixmpp (apt-get install python3-slixmpp)"
        );
        return;
    }
    let s = TestServer::start().await;
    s.add_user("alice@localhost", "wonderland").await;
    s.add_user("bob@localhost", "builder").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/slixmpp_chat.py");
    let ca = s.data_dir().join("ca.pem");
    let port = s.c2s.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(PYTHON)
            .arg(script)
            .arg("127.0.0.1")
            .arg(port)
            .arg(ca)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "slixmpp conversation failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
