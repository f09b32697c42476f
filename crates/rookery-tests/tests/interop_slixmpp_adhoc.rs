//! Interoperability of our XEP-0050 ad-hoc commands with slixmpp 1.17's xep_0050 plugin
//! (from PyPI, in the virtualenv `.ci/run` creates at `target/interop-venv`): an
//! administrator lists the commands, adds a user with add-user (start_command, a filled
//! form, complete_command) and finds itself in get-online-users-list. The account the
//! script created must then log in.

use rookery_tests::TestServer;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

/// The Python that has slixmpp 1.17: `ROOKERY_INTEROP_PYTHON`, or the CI virtualenv.
fn python() -> PathBuf {
    match std::env::var_os("ROOKERY_INTEROP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin/python")
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slixmpp_admin_adds_a_user_and_lists_online_users() {
    let python = python();
    // Not skipped: a missing interpreter is a broken setup, not a reason to pass.
    assert!(
        python.exists(),
        "{} is missing: run .ci/run, or create the virtualenv with\n  \
         python3 -m venv target/interop-venv && \
         target/interop-venv/bin/pip install slixmpp==1.17.0\n\
         (or point ROOKERY_INTEROP_PYTHON at a Python that has slixmpp 1.17)",
        python.display()
    );

    let s = TestServer::start().await;
    s.add_user("admin@localhost", "root-of-trust").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_adhoc.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .arg("127.0.0.1")
        .arg(s.c2s.port().to_string())
        .arg(s.data_dir().join("ca.pem"))
        .args(["admin@localhost", "root-of-trust"])
        .args(["carol@localhost", "s3cret-from-slixmpp"])
        .kill_on_drop(true)
        .output();
    // The script gives up after 30 s by itself; this only guards against a wedged Python.
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the slixmpp script did not finish within 90 s")
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "slixmpp ad-hoc commands failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // Shown with --nocapture: what slixmpp sent and received at each step.
    println!("slixmpp:\n{stdout}");

    // The command really created the account, with the password slixmpp submitted.
    let carol = s
        .login("carol@localhost", "s3cret-from-slixmpp", "check")
        .await;
    assert_eq!(carol.jid(), "carol@localhost/check");
    carol.close().await.expect("carol logs out");
}
