//! The load tool runs every scenario, small, against a real server (in this process, so
//! the "server PID" is our own).

use rookery_bench::conn::{Mechanism, Target};
use rookery_bench::{Accounts, chat, idle, login};
use rookery_tests::TestServer;
use std::time::Duration;

async fn setup(mechanism: Mechanism) -> (TestServer, Target, Accounts) {
    let s = TestServer::start_with(|c| {
        c.auth.allow_plaintext_on_loopback = true;
        c.auth.allow_plain = true;
    })
    .await;
    for i in 1..=6 {
        s.add_user(&format!("bench{i}@localhost"), "bench-pass")
            .await;
    }
    let target = Target {
        addr: s.c2s,
        domain: "localhost".into(),
        sources: vec![],
        mechanism,
        timeout: Duration::from_secs(10),
    };
    let accounts = Accounts {
        prefix: "bench".into(),
        password: "bench-pass".into(),
        count: 6,
    };
    (s, target, accounts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_storm_logs_everyone_in() {
    // (rookery offers PLAIN only over TLS; the tool's PLAIN is for other servers.)
    for m in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        let (_s, target, accounts) = setup(m).await;
        let pid = Some(std::process::id());
        let r = login::run(&target, &accounts, 12, 4, pid).await.unwrap();
        assert_eq!((r.logins, r.failures), (12, 0), "{m:?}: {r:?}");
        assert!(r.server_cpu_per_login_ms.is_some());
        assert!(r.latency.max_us > 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_are_counted_as_failures() {
    let (_s, target, mut accounts) = setup(Mechanism::ScramSha1).await;
    accounts.password = "wrong".into();
    let r = login::run(&target, &accounts, 2, 2, None).await.unwrap();
    assert_eq!((r.logins, r.failures), (0, 2));
    assert!(r.first_failure.unwrap().contains("authentication failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_delivers_everything_at_a_rate_and_at_saturation() {
    let (_s, target, accounts) = setup(Mechanism::ScramSha1).await;
    for rate in [200, 0] {
        let p = chat::ChatParams {
            pairs: 3,
            rate,
            messages: 90,
            window: 8,
            drain: Duration::from_secs(5),
        };
        let r = chat::run(&target, &accounts, &p, Some(std::process::id()))
            .await
            .unwrap();
        assert_eq!((r.sent, r.delivered, r.lost), (90, 90, 0), "{r:?}");
        assert!(r.latency.p50_us > 0 && r.latency.p99_us >= r.latency.p50_us);
        assert!(r.server_cpu_per_message_us.is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_measured() {
    let (_s, target, accounts) = setup(Mechanism::ScramSha1).await;
    let r = idle::run(
        &target,
        &accounts,
        6,
        3,
        Duration::from_millis(100),
        Some(std::process::id()),
    )
    .await
    .unwrap();
    assert_eq!(r.connections, 6);
    assert!(r.rss_after_kib.unwrap() > 0);
    assert!(r.projected_gib_per_million.is_some());
}
