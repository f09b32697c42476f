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
use rookery_client::{Client, ClientConfig, Security};
use rookery_tests::{TestServer, stanza};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const ROOKERY_DOMAIN: &str = "rookery.test";
const PROSODY_DOMAIN: &str = "prosody.test";
const ROOKERY_S2S: &str = "127.0.0.2:5269";
const PROSODY_S2S: &str = "127.0.0.3:5269";
const PROSODY: &str = "/usr/bin/prosody";
const PROSODYCTL: &str = "/usr/bin/prosodyctl";
/// The longest any one step may take: a first link waits for DNS and dialback both ways.
const TIMEOUT: Duration = Duration::from_secs(20);
const ROSTER: &str = "jabber:iq:roster";

#[tokio::test(flavor = "multi_thread")]
async fn rookery_and_prosody_federate_messages_subscriptions_and_iqs() {
    if let Some(missing) = missing_setup() {
        assert!(
            std::env::var("CI").is_err(),
            "the Prosody interop setup is missing in CI ({missing}): .ci/run should have made it"
        );
        eprintln!("skipped: {missing}");
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
    let prosody = tokio::task::spawn_blocking(|| Prosody::start(&[("bob", "b-pass")]))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    let mut alice = online(rookery_client(&rookery, "alice@rookery.test", "a-pass")).await;
    alice.roster_get().await.unwrap();
    let mut bob = online(prosody.client("bob@prosody.test", "b-pass")).await;
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
    for bin in [PROSODY, PROSODYCTL] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is not installed (apt-get install prosody lua-unbound)"
            ));
        }
    }
    // Prosody reads /etc/hosts only through libunbound (Debian's lua-unbound, which the
    // package merely recommends); without it, rookery.test would not resolve.
    let shebang = std::fs::read_to_string(PROSODY).unwrap_or_default();
    let lua = shebang
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("lua")
        .to_owned();
    let unbound = Command::new(&lua)
        .args(["-e", "require 'lunbound'"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !unbound.is_ok_and(|s| s.success()) {
        return Some(format!(
            "{lua} cannot load lunbound, which Prosody needs to read /etc/hosts (apt-get install lua-unbound)"
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

/// Log in, send initial presence and wait for the server to echo it.
async fn online(config: ClientConfig) -> Client {
    let jid = config.jid.clone();
    let mut c = Client::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{jid} logs in: {e}"));
    c.send_presence().await.expect("initial presence");
    let me = c.jid().to_owned();
    c.recv_where(|e| e.name() == "presence" && e.attr("from") == Some(me.as_str()))
        .await
        .unwrap_or_else(|e| panic!("{me}'s own presence comes back: {e}"));
    c
}

/// A Prosody serving prosody.test, run from a temporary directory; killed on drop, and
/// its log printed if the test panics.
struct Prosody {
    child: Child,
    c2s: SocketAddr,
    dir: TempDir,
}

impl Prosody {
    /// Write the configuration and certificate, create `users` (name, password) and start
    /// Prosody; returns once its c2s and s2s ports accept connections.
    fn start(users: &[(&str, &str)]) -> Prosody {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        std::fs::create_dir(path.join("data")).unwrap();
        let c2s = free_port_on("127.0.0.3");
        self_signed_certificate(path);
        std::fs::write(path.join("prosody.cfg.lua"), config(path, c2s)).unwrap();
        // Prosody refuses to run as root: as root, hand it the directory and switch user.
        let as_root = is_root();
        if as_root {
            run(Command::new("chown")
                .args(["-R", "prosody:prosody"])
                .arg(path));
        }
        let cfg = path.join("prosody.cfg.lua");
        for (user, password) in users {
            // prosodyctl switches to the prosody user by itself when run as root.
            run(Command::new(PROSODYCTL).arg("--config").arg(&cfg).args([
                "register",
                user,
                PROSODY_DOMAIN,
                password,
            ]));
        }
        let mut cmd = if as_root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=prosody",
                "--regid=prosody",
                "--init-groups",
                PROSODY,
            ]);
            c
        } else {
            Command::new(PROSODY)
        };
        let console = std::fs::File::create(path.join("console.log")).unwrap();
        let child = cmd
            .arg("--config")
            .arg(&cfg)
            .arg("-F")
            .current_dir(path)
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("start prosody");
        let c2s = SocketAddr::from(([127, 0, 0, 3], c2s));
        let mut p = Prosody { child, c2s, dir };
        p.wait_for_port(c2s);
        p.wait_for_port(PROSODY_S2S.parse().unwrap());
        p
    }

    /// rookery's test client for a Prosody account, resource "phone": plaintext (Prosody
    /// is told to allow it), so SASL picks SCRAM-SHA-1.
    fn client(&self, jid: &str, password: &str) -> ClientConfig {
        let mut c = ClientConfig::new(self.c2s, jid, password);
        c.security = Security::Plain;
        c.resource = Some("phone".into());
        c.timeout = TIMEOUT;
        c
    }

    fn wait_for_port(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return;
            }
            // (Dropping `self` on the way out prints Prosody's log.)
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Prosody exited ({status}) before listening on {addr}");
            }
            if Instant::now() > deadline {
                panic!(
                    "Prosody did not listen on {addr} within {} s",
                    TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ends of Prosody's log and of its console output.
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["prosody.log", "console.log"] {
            let path = self.dir.path().join(name);
            out.push_str(&format!("--- the end of {} ---\n", path.display()));
            out.push_str(&tail(&path, 16 * 1024));
        }
        out
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Prosody's configuration: prosody.test on 127.0.0.3, s2s with dialback accepted over
/// STARTTLS with a certificate nobody trusts, c2s without TLS on loopback, everything in
/// `dir`, a debug log in `dir/prosody.log`.
fn config(dir: &Path, c2s: u16) -> String {
    let d = dir.display();
    format!(
        r#"-- Written by rookery's interop_prosody_s2s test.
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}"
daemonize = false
interfaces = {{ "127.0.0.3" }}
local_interfaces = {{ "127.0.0.3" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ 5269 }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
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

c2s_require_encryption = false
allow_unencrypted_plain_auth = true
-- rookery's certificate is self-signed: dialback proves its domain.
s2s_require_encryption = false
s2s_secure_auth = false

authentication = "internal_hashed"
storage = "internal"
log = {{ debug = "{d}/prosody.log" }}

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

/// A port of `ip` nobody listens on now.
fn free_port_on(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().unwrap().port()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Run a command to its end; panics with its output if it fails.
fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last `max` bytes of a file.
fn tail(path: &PathBuf, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(missing)\n".to_owned();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

// --- conversation helpers (as in s2s.rs) -----------------------------------------------

fn body(m: &Element) -> String {
    m.get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

/// The condition of an error reply (Prosody's errors need not carry a `<text/>`, so
/// `rookery_tests::error_condition` is too strict here).
fn condition(e: &Element) -> String {
    assert_eq!(e.attr("type"), Some("error"), "{}", String::from(e));
    e.get_child("error", "jabber:client")
        .and_then(|err| {
            err.children()
                .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| panic!("no error condition: {}", String::from(e)))
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
