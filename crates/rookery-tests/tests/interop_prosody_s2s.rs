//! Interoperability with Prosody (Debian's package) over server-to-server federation.
//!
//! rookery serves `rookery.test` with its s2s listener on 127.0.0.2:5269; a Prosody started
//! by the test serves `prosody.test` with its s2s listener on 127.0.0.3:5269 and c2s on a
//! free port of 127.0.0.3. Neither knows the other's address: each finds it as real servers
//! do, by DNS (no SRV records, so the domain's address on port 5269), which /etc/hosts
//! answers with lines `.ci/run` adds:
//!
//!     127.0.0.2 rookery.test
//!     127.0.0.3 prosody.test
//!
//! Both sides use STARTTLS with self-signed certificates, which neither trusts, so each
//! proves its domain with dialback (XEP-0220). alice@rookery.test and bob@prosody.test both
//! use rookery's test client (bob over plaintext with SCRAM-SHA-1, which Prosody allows on
//! loopback when told to). Without Prosody (and lua-unbound) or those /etc/hosts lines, or
//! when the ports are taken, the test is skipped (it fails under `CI`, where `.ci/run` sets
//! them up).

use minidom::Element;
use rookery_client::{Client, ClientConfig};
use rookery_tests::prosody::{self, Prosody, Setup, condition, online};
use rookery_tests::{TestServer, stanza};
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

const ROOKERY_DOMAIN: &str = "rookery.test";
const PROSODY_DOMAIN: &str = "prosody.test";
const ROOKERY_S2S: &str = "127.0.0.2:5269";
const PROSODY_S2S: &str = "127.0.0.3:5269";
/// The longest any one step may take: a first link waits for DNS and dialback both ways.
const TIMEOUT: Duration = Duration::from_secs(20);
const ROSTER: &str = "jabber:iq:roster";

#[tokio::test(flavor = "multi_thread")]
async fn rookery_and_prosody_federate_messages_subscriptions_and_iqs() {
    if prosody::skip(missing_setup()) {
        return;
    }
    let rookery = TestServer::start_with(|c| {
        c.hosts = vec![ROOKERY_DOMAIN.into()];
        c.admins = vec![format!("admin@{ROOKERY_DOMAIN}")];
        c.listen.s2s = Some(ROOKERY_S2S.parse().unwrap());
        c.s2s.accept_self_signed = true;
    })
    .await;
    rookery.add_user("alice@rookery.test", "a-pass").await;
    let prosody = tokio::task::spawn_blocking(|| start_prosody(&[("bob@prosody.test", "b-pass")]))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    let mut alice = online(rookery_client(&rookery, "alice@rookery.test", "a-pass")).await;
    alice.roster_get().await.unwrap();
    let mut bob = online(prosody.client("bob@prosody.test", "b-pass", "phone")).await;
    // Prosody pushes roster changes only to resources that fetched the roster.
    bob.roster_get().await.unwrap();

    messages_flow_both_ways(&mut alice, &mut bob).await;
    assert_eq!(
        rookery.server.s2s().connected(ROOKERY_DOMAIN),
        vec![PROSODY_DOMAIN],
        "rookery's link to Prosody is up"
    );
    alice_and_bob_subscribe_to_each_other(&mut alice, &mut bob).await;
    iqs_cross_both_ways(&mut alice, &mut bob).await;
}

/// alice writes to bob's bare JID, bob answers her full JID, each on its server's own
/// link (rookery → Prosody, then Prosody → rookery, each verified by dialback).
async fn messages_flow_both_ways(alice: &mut Client, bob: &mut Client) {
    alice
        .send_message("bob@prosody.test", "hello Prosody")
        .await
        .unwrap();
    let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("alice@rookery.test/laptop"));
    assert_eq!(m.attr("type"), Some("chat"));
    assert_eq!(body(&m), "hello Prosody");

    bob.send_message("alice@rookery.test/laptop", "hello rookery")
        .await
        .unwrap();
    let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(m.attr("from"), Some("bob@prosody.test/phone"));
    assert_eq!(body(&m), "hello rookery");

    // Later messages reuse the links, in order.
    for i in 0..10 {
        alice
            .send_message("bob@prosody.test", &format!("a{i}"))
            .await
            .unwrap();
        bob.send_message("alice@rookery.test", &format!("b{i}"))
            .await
            .unwrap();
    }
    for i in 0..10 {
        let m = bob.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(
            body(&m),
            format!("a{i}"),
            "alice's messages arrive in order"
        );
        let m = alice.recv_where(|e| e.name() == "message").await.unwrap();
        assert_eq!(body(&m), format!("b{i}"), "bob's messages arrive in order");
    }
}

/// Presence subscriptions both ways (RFC 6121 §3) end with "both" in both rosters, and
/// presence changes then flow.
async fn alice_and_bob_subscribe_to_each_other(alice: &mut Client, bob: &mut Client) {
    // alice asks to see bob's presence.
    alice
        .send(stanza("<presence type='subscribe' to='bob@prosody.test'/>"))
        .await
        .unwrap();
    pushed(alice, "bob@prosody.test", "none").await;
    let request = bob
        .recv_where(is_presence("subscribe", "alice@rookery.test"))
        .await
        .expect("alice's request reaches bob");
    assert_eq!(request.attr("from"), Some("alice@rookery.test"));

    // bob approves: alice's roster says "to", and bob's presence reaches her.
    bob.send(stanza(
        "<presence type='subscribed' to='alice@rookery.test'/>",
    ))
    .await
    .unwrap();
    pushed(bob, "alice@rookery.test", "from").await;
    pushed(alice, "bob@prosody.test", "to").await;
    alice
        .recv_where(is_presence("available", "bob@prosody.test"))
        .await
        .expect("bob's presence after the approval");

    // bob asks back, and alice approves.
    bob.send(stanza(
        "<presence type='subscribe' to='alice@rookery.test'/>",
    ))
    .await
    .unwrap();
    alice
        .recv_where(is_presence("subscribe", "bob@prosody.test"))
        .await
        .expect("bob's request reaches alice");
    alice
        .send(stanza(
            "<presence type='subscribed' to='bob@prosody.test'/>",
        ))
        .await
        .unwrap();
    pushed(alice, "bob@prosody.test", "both").await;
    pushed(bob, "alice@rookery.test", "both").await;
    bob.recv_where(is_presence("available", "alice@rookery.test"))
        .await
        .expect("alice's presence after the approval");
    assert_eq!(subscription(alice, "bob@prosody.test").await, "both");
    assert_eq!(subscription(bob, "alice@rookery.test").await, "both");

    // Presence changes now flow both ways.
    alice
        .send(stanza("<presence><show>away</show></presence>"))
        .await
        .unwrap();
    let p = bob
        .recv_where(is_presence("available", "alice@rookery.test"))
        .await
        .unwrap();
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
    bob.send(stanza("<presence><show>dnd</show></presence>"))
        .await
        .unwrap();
    let p = alice
        .recv_where(is_presence("available", "bob@prosody.test"))
        .await
        .unwrap();
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "dnd");
}

/// alice asks Prosody itself for its version and pings it, then pings bob's resource,
/// which answers; errors cross both ways; bob asks rookery for its version.
async fn iqs_cross_both_ways(alice: &mut Client, bob: &mut Client) {
    let r = alice
        .iq(stanza(
            "<iq type='get' to='prosody.test'><query xmlns='jabber:iq:version'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("from"), Some("prosody.test"));
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "Prosody"
    );

    let r = alice
        .iq(stanza(
            "<iq type='get' to='prosody.test'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));

    alice
        .send(stanza(
            "<iq type='get' id='p1' to='bob@prosody.test/phone'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    let ping = bob
        .recv_where(|e| e.name() == "iq" && e.attr("id") == Some("p1"))
        .await
        .unwrap();
    assert_eq!(ping.attr("from"), Some("alice@rookery.test/laptop"));
    assert!(ping.has_child("ping", "urn:xmpp:ping"));
    bob.send(stanza(
        "<iq type='result' id='p1' to='alice@rookery.test/laptop'/>",
    ))
    .await
    .unwrap();
    let pong = alice
        .recv_where(|e| e.name() == "iq" && e.attr("id") == Some("p1"))
        .await
        .unwrap();
    assert_eq!(pong.attr("type"), Some("result"));
    assert_eq!(pong.attr("from"), Some("bob@prosody.test/phone"));

    // Errors come back across too: a resource of bob's that is not online, as Prosody
    // answers, and one of alice's, as rookery answers.
    let r = alice
        .iq(stanza(
            "<iq type='get' to='bob@prosody.test/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("from"), Some("bob@prosody.test/gone"));
    assert_eq!(condition(&r), "service-unavailable");
    let r = bob
        .iq(stanza(
            "<iq type='get' to='alice@rookery.test/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("from"), Some("alice@rookery.test/gone"));
    assert_eq!(condition(&r), "service-unavailable");

    let r = bob
        .iq(stanza(
            "<iq type='get' to='rookery.test'><query xmlns='jabber:iq:version'/></iq>",
        ))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("from"), Some("rookery.test"));
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "Rookery"
    );
}

// --- the setup -------------------------------------------------------------------------

/// Why the test cannot run here, if it cannot.
fn missing_setup() -> Option<String> {
    if let Some(missing) = prosody::missing() {
        return Some(missing);
    }
    // Prosody reads /etc/hosts only through libunbound (Debian's lua-unbound, which the
    // package merely recommends); without it, rookery.test would not resolve.
    if !prosody::lua_can_load("lunbound") {
        return Some(format!(
            "{} cannot load lunbound, which Prosody needs to read /etc/hosts (apt-get install lua-unbound)",
            prosody::lua()
        ));
    }
    for (domain, addr) in [(ROOKERY_DOMAIN, ROOKERY_S2S), (PROSODY_DOMAIN, PROSODY_S2S)] {
        let want: SocketAddr = addr.parse().unwrap();
        let found: Vec<SocketAddr> = (domain, 5269)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        if !found.contains(&want) {
            return Some(format!(
                "{domain} does not resolve to {} (add \"{} {domain}\" to /etc/hosts)",
                want.ip(),
                want.ip()
            ));
        }
        if let Err(e) = TcpListener::bind(want) {
            return Some(format!("cannot listen on {want}: {e}"));
        }
    }
    None
}

/// rookery's test client for an account of the rookery server, resource "laptop".
fn rookery_client(s: &TestServer, jid: &str, password: &str) -> ClientConfig {
    let mut c = s.client_config(jid, password);
    c.resource = Some("laptop".into());
    c.timeout = TIMEOUT;
    c
}

/// A Prosody serving prosody.test with `users` (bare JID, password); returns once its
/// c2s and s2s ports accept connections.
fn start_prosody(users: &[(&str, &str)]) -> Prosody {
    let s2s: SocketAddr = PROSODY_S2S.parse().unwrap();
    Prosody::start(
        Setup {
            c2s_ip: s2s.ip(),
            users,
            listening: &[s2s],
        },
        |dir, c2s| {
            self_signed_certificate(dir);
            config(dir, s2s.ip(), c2s)
        },
    )
}

/// Prosody's configuration: prosody.test on 127.0.0.3, s2s with dialback accepted over
/// STARTTLS with a certificate nobody trusts, c2s without TLS on loopback, everything in
/// `dir`, a debug log in `dir/prosody.log` (the shared part is [`prosody::global_config`]).
fn config(dir: &Path, ip: IpAddr, c2s: u16) -> String {
    let d = dir.display();
    let global = prosody::global_config(dir, ip, c2s);
    format!(
        r#"{global}
-- interop_prosody_s2s: federation with rookery.test.
s2s_ports = {{ 5269 }}
-- Let libunbound read /etc/hosts, where the test domains are.
unbound = {{ hoststxt = true }}

modules_enabled = {{
	"roster";
	"saslauth";
	"tls";
	"dialback";
	"disco";
	"ping";
	"version";
	"posix";
}}

-- rookery's certificate is self-signed: dialback proves its domain.
s2s_require_encryption = false
s2s_secure_auth = false

VirtualHost "{PROSODY_DOMAIN}"
ssl = {{ certificate = "{d}/{PROSODY_DOMAIN}.crt"; key = "{d}/{PROSODY_DOMAIN}.key" }}
"#
    )
}

/// A self-signed certificate for prosody.test in `dir`.
fn self_signed_certificate(dir: &Path) {
    let ck =
        rcgen::generate_simple_self_signed(vec![PROSODY_DOMAIN.to_owned()]).expect("a certificate");
    let file = |ext: &str| dir.join(format!("{PROSODY_DOMAIN}.{ext}"));
    std::fs::write(file("crt"), ck.cert.pem()).unwrap();
    std::fs::write(file("key"), ck.signing_key.serialize_pem()).unwrap();
}

// --- conversation helpers (as in s2s.rs) -----------------------------------------------

fn body(m: &Element) -> String {
    m.get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

fn is_presence(ty: &str, from: &str) -> impl Fn(&Element) -> bool {
    let (ty, from) = (ty.to_owned(), from.to_owned());
    move |e: &Element| {
        e.name() == "presence"
            && e.attr("type").unwrap_or("available") == ty
            && e.attr("from")
                .is_some_and(|f| f == from || f.starts_with(&format!("{from}/")))
    }
}

/// Wait for a roster push that shows `contact` with `subscription`, and acknowledge it.
/// (Other pushes stay buffered: servers differ in which intermediate states they push.)
async fn pushed(c: &mut Client, contact: &str, subscription: &str) {
    let (contact, state) = (contact.to_owned(), subscription.to_owned());
    let iq = c
        .recv_where(move |e| {
            e.name() == "iq"
                && e.attr("type") == Some("set")
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .is_some_and(|i| {
                        i.attr("jid") == Some(contact.as_str())
                            && i.attr("subscription") == Some(state.as_str())
                    })
        })
        .await
        .unwrap_or_else(|e| panic!("a roster push with subscription '{subscription}': {e}"));
    let id = iq.attr("id").unwrap_or("").to_owned();
    c.send(stanza(&format!("<iq type='result' id='{id}'/>")))
        .await
        .unwrap();
}

/// The subscription state of `contact` in `c`'s roster (fetched).
async fn subscription(c: &mut Client, contact: &str) -> String {
    let r = c.roster_get().await.unwrap();
    let q = r.get_child("query", ROSTER).expect("a roster");
    q.children()
        .find(|i| i.attr("jid") == Some(contact))
        .and_then(|i| i.attr("subscription"))
        .unwrap_or("absent")
        .to_owned()
}
