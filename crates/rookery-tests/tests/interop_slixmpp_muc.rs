//! Interoperability of our multi-user chat service (XEP-0045) with slixmpp 1.17's xep_0045
//! plugin (from PyPI, in the virtualenv `.ci/run` creates at `target/interop-venv`): one
//! user creates an instant room, another enters, they exchange groupchat messages (with
//! the room's XEP-0359 stanza-id), the owner makes the other an admin and takes it back,
//! kicks him, bans him, and leaves, each client seeing each change as slixmpp reports it.

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
async fn slixmpp_users_meet_in_a_room_and_the_owner_moderates() {
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
    s.add_user("alice@localhost", "wonderland").await;
    s.add_user("bob@localhost", "builder").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/slixmpp_muc.py");
    let out = Command::new(&python)
        .arg(script)
        .arg("127.0.0.1")
        .arg(s.c2s.port().to_string())
        .arg(s.data_dir().join("ca.pem"))
        .arg("lounge@conference.localhost")
        .args(["alice@localhost", "wonderland"])
        .args(["bob@localhost", "builder"])
        .kill_on_drop(true)
        .output();
    // The script gives up after 60 s by itself; this only guards against a wedged Python.
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the slixmpp script did not finish within 120 s")
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "slixmpp multi-user chat failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // Shown with --nocapture: what each client saw at each step.
    println!("slixmpp:\n{stdout}");
}
