//! A jury member using slixmpp 1.17's xep_0050 plugin (the CI virtualenv
//! `target/interop-venv`, see interop_slixmpp_adhoc.rs) creates a task with the contest
//! service's `neerc:create` command; a hall in the room receives it as the protocol's
//! broadcast.

use std::path::PathBuf;
use std::time::Duration;

use rookery_tests::contest::*;
use tokio::process::Command;

fn python() -> PathBuf {
    match std::env::var_os("ROOKERY_INTEROP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin/python")
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_created_from_slixmpp_reaches_the_halls() {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run .ci/run, or set ROOKERY_INTEROP_PYTHON",
        python.display()
    );
    let (s, _admin) = contest(2).await;
    let mut hall2 = online(&s, "hall2").await;
    enter(&mut hall2, ROOM, "hall2").await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_neerc.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .arg("127.0.0.1")
        .arg(s.c2s.port().to_string())
        .arg(s.data_dir().join("ca.pem"))
        .args(["admin@localhost", "pass", "neerc@neerc.localhost"])
        .args(["Check the printers", "Halls"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the slixmpp script did not finish within 90 s")
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "slixmpp failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("slixmpp:\n{stdout}");

    let (m, task) = next_change(&mut hall2).await;
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(task.attr("title"), Some("Check the printers"));
    assert_eq!(
        statuses(&task),
        [st("hall1", "none", None), st("hall2", "none", None)]
    );
}
