//! The load tool runs every scenario, small, against a real server (in this process, so
//! the "server PID" is our own).

use rookery_bench::conn::{Mechanism, Target, TlsMode};
use rookery_bench::{Accounts, chat, handshake, idle, login, muc};
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
        tls: TlsMode::None,
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
    for (rate, batch) in [(200, 1), (0, 1), (0, 4)] {
        let p = chat::ChatParams {
            pairs: 3,
            rate,
            messages: 90,
            window: 8,
            batch,
            drain: Duration::from_secs(5),
        };
        let r = chat::run(&target, &accounts, &p, Some(std::process::id()))
            .await
            .unwrap();
        assert_eq!((r.sent, r.delivered, r.lost), (90, 90, 0), "{r:?}");
        assert!(r.latency.p50_us > 0 && r.latency.p99_us >= r.latency.p50_us);
        assert!(r.server_cpu_per_message_us.is_some());
        // At a fixed rate the sends are paced (the 90th is due 89/200 s after the first)
        // and their lag behind schedule is reported.
        assert_eq!(r.send_lag.is_some(), rate > 0, "{r:?}");
        if rate > 0 {
            assert!(r.seconds >= 0.445, "{r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_measured() {
    let (_s, target, accounts) = setup(Mechanism::ScramSha1).await;
    let mut p = idle::IdleParams::idle(6);
    p.concurrency = 3;
    p.settle = Duration::from_millis(100);
    let r = idle::run(&target, &accounts, &p, Some(std::process::id()))
        .await
        .unwrap();
    assert_eq!(r.connections, 6);
    assert!(r.rss_after_kib.unwrap() > 0);
    assert!(r.projected_gib_per_million.is_some());
    assert!(r.active.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_active_pair_chats_among_idle_connections_over_tls() {
    let (_s, mut target, accounts) = setup(Mechanism::ScramSha1).await;
    target.tls = TlsMode::StartTls;
    let mut p = idle::IdleParams::idle(4);
    p.concurrency = 2;
    p.settle = Duration::from_millis(100);
    p.active_pairs = 1;
    p.rate = 40;
    p.active_secs = 1;
    p.drain = Duration::from_secs(5);
    let r = idle::run(&target, &accounts, &p, Some(std::process::id()))
        .await
        .unwrap();
    assert_eq!(r.connections, 4);
    let a = r.active.expect("the active pair's report");
    assert_eq!(
        (a.pairs, a.sent, a.delivered, a.lost),
        (1, 40, 40, 0),
        "{a:?}"
    );
    assert!(a.latency.p99_us >= a.latency.p50_us && a.latency.p50_us > 0);
    // 4 idle connections and one more pair need 6 accounts: 5 idle ones do not fit.
    p.connections = 5;
    let e = idle::run(&target, &accounts, &p, None).await.unwrap_err();
    assert!(e.to_string().contains("need 7 accounts"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_and_handshakes_over_starttls_and_direct_tls() {
    let (s, mut target, accounts) = setup(Mechanism::ScramSha1).await;
    let pid = Some(std::process::id());
    for (mode, addr) in [(TlsMode::StartTls, s.c2s), (TlsMode::Direct, s.c2s_tls)] {
        target.tls = mode;
        target.addr = addr;
        let r = login::run(&target, &accounts, 4, 2, pid).await.unwrap();
        assert_eq!((r.logins, r.failures), (4, 0), "{mode:?}: {r:?}");
        assert!(r.tls.as_deref().unwrap_or("").contains("TLS"), "{r:?}");
        let h = handshake::run(&target, 4, 2, pid).await.unwrap();
        assert_eq!((h.handshakes, h.failures), (4, 0), "{mode:?}: {h:?}");
        assert!(h.server_cpu_per_handshake_ms.is_some());
        assert!(h.tls.is_some());
    }
    target.tls = TlsMode::None;
    target.addr = s.c2s;
    assert!(handshake::run(&target, 1, 1, None).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_fans_every_message_out_to_every_occupant() {
    let (_s, target, accounts) = setup(Mechanism::ScramSha1).await;
    let pid = Some(std::process::id());
    // The first run creates the room (status 201, then the instant-room form); the room is
    // gone when its last occupant leaves, so the second creates it again.
    for (room, rate) in [("tiny", 100), ("tiny-sat", 0)] {
        let mut p = muc::MucParams::new(5, 2, rate, 20);
        p.room = room.into();
        p.window = 3;
        p.drain = Duration::from_secs(5);
        let r = muc::run(&target, &accounts, &p, pid).await.unwrap();
        assert!(r.created, "{r:?}");
        assert_eq!(r.room, format!("{room}@conference.localhost"));
        assert_eq!(
            (r.sent, r.expected, r.delivered, r.lost),
            (20, 100, 100, 0),
            "{r:?}"
        );
        assert!(r.latency.p50_us > 0 && r.latency.p99_us >= r.latency.p50_us);
        assert!(r.server_cpu_per_delivery_us.is_some() && r.server_cpu_per_join_ms.is_some());
    }
    // More senders than occupants is refused before anyone logs in.
    let e = muc::run(&target, &accounts, &muc::MucParams::new(2, 3, 0, 10), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("senders"), "{e}");
}
