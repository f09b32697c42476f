//! Stanza routing between two local users: `Server::route` from the router's entry down to
//! the receiving session's outbound queue.
//!
//! `cargo bench -p rookery-server --bench routing` (add `-- --quick` for a short run).
//!
//! A [`Server`] over a temporary SQLite store, built-in modules loaded, no listeners. Three
//! sessions are bound the way `c2s/session.rs` binds them (`sm().bind` plus the
//! `SessionBound` event, which loads blocklists) and made available (`state.presence`):
//! alice and bob, and carol, who has a blocklist, so the blocking filter is not on its
//! empty-cache shortcut. Each iteration routes one chat message from alice to bob and
//! takes it out of bob's queue.
//!
//! * `route_message/full_jid`: to `bob@localhost/phone` (a resource lookup).
//! * `route_message/bare_jid`: to `bob@localhost` (RFC 6121 §8.5.2.1.1 target selection:
//!   bob has two available resources at the same priority, both get a copy).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jid::FullJid;
use minidom::Element;
use rookery_server::module::Event;
use rookery_server::sm::SessionHandle;
use rookery_server::{Config, Server};

const HOST: &str = "localhost";

/// A bound, available session.
struct Session {
    handle: Arc<SessionHandle>,
}

impl Session {
    /// Take every queued stanza out; returns how many there were.
    fn drain(&self) -> usize {
        let mut out = Vec::new();
        let n = self.handle.outbox.take(&mut out, usize::MAX);
        black_box(out);
        n
    }
}

fn element(xml: &str) -> Element {
    xml.parse().expect("valid XML")
}

/// Bind `jid` as `c2s/session.rs` does, then mark it available at priority 0.
async fn online(server: &Server, jid: &str) -> Session {
    let full: FullJid = jid.parse().expect("full JID");
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let queue = server.config().limits.outbound_queue;
    let handle = Arc::new(SessionHandle::new(full.clone(), peer, queue));
    assert!(server.sm().bind(handle.clone()).is_none());
    server
        .registry()
        .fire(server, Event::SessionBound { jid: full })
        .await;
    {
        let mut st = handle.state.lock().unwrap();
        st.presence = Some(element(&format!(
            "<presence xmlns='jabber:client' from='{jid}'/>"
        )));
        st.priority = 0;
    }
    Session { handle }
}

fn bench_route(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        hosts: vec![HOST.into()],
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };

    let (server, bob, bob_tablet, _others) = rt.block_on(async {
        let server = Server::open(config).await.expect("server opens");
        server
            .stores()
            .blocklist
            .block(HOST, "carol", &["mallory@example.net".to_owned()])
            .await
            .expect("block");
        let alice = online(&server, "alice@localhost/laptop").await;
        let carol = online(&server, "carol@localhost/desk").await;
        let bob = online(&server, "bob@localhost/phone").await;
        let bob_tablet = online(&server, "bob@localhost/tablet").await;
        (server, bob, bob_tablet, [alice, carol])
    });

    let message = |to: &str| {
        element(&format!(
            "<message xmlns='jabber:client' from='alice@localhost/laptop' to='{to}' \
             id='msg-000042' type='chat'><body>Are we still on for lunch tomorrow? I booked \
             the table by the window.</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/>\
             <request xmlns='urn:xmpp:receipts'/></message>"
        ))
    };
    let cases = [
        ("full_jid", message("bob@localhost/phone"), 1),
        ("bare_jid", message("bob@localhost"), 2),
    ];

    // Check the delivery counts once before measuring.
    for (name, msg, copies) in &cases {
        rt.block_on(server.route(msg.clone()));
        let got = bob.drain() + bob_tablet.drain();
        assert_eq!(got, *copies, "{name}: copies delivered");
    }

    let mut group = c.benchmark_group("route_message");
    group.throughput(Throughput::Elements(1));
    for (name, msg, copies) in &cases {
        let (server, bob, bob_tablet) = (&server, &bob, &bob_tablet);
        group.bench_with_input(BenchmarkId::from_parameter(name), msg, |b, msg| {
            // The clone is made outside the measurement: the router owns what it routes.
            b.to_async(&rt).iter_batched(
                || msg.clone(),
                |msg| async move {
                    server.route(msg).await;
                    let got = bob.drain() + bob_tablet.drain();
                    debug_assert_eq!(got, *copies);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    rt.block_on(server.shutdown());
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
