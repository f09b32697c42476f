//! A Prosody (Debian's package) for interoperability tests: started as a child process
//! from a temporary directory with a configuration the test writes, its accounts made
//! with `prosodyctl register`, killed when dropped (printing the end of its log if the
//! test panics).
//!
//! Prosody refuses to run as root: as root, the directory is handed to the `prosody` user
//! and Prosody is started through `setpriv` (prosodyctl switches user by itself).
//!
//! A test that needs Prosody calls [`skip`] with what is missing ([`missing`], and its own
//! checks): without Prosody the test is skipped, except under `CI`, where `.ci/run`
//! installs it and the test must run.

use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rookery_client::{Client, ClientConfig, Security};
use tempfile::TempDir;

use crate::Element;

pub const PROSODY: &str = "/usr/bin/prosody";
pub const PROSODYCTL: &str = "/usr/bin/prosodyctl";
/// The longest Prosody may take to listen, and the clients' timeout.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Why Prosody cannot run here (it is not installed), if it cannot.
pub fn missing() -> Option<String> {
    for bin in [PROSODY, PROSODYCTL] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is not installed (apt-get install prosody lua-unbound)"
            ));
        }
    }
    None
}

/// Whether the test must be skipped because of `missing` (printing why). Under `CI` a
/// missing setup fails the test instead: `.ci/run` should have made it.
pub fn skip(missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return false;
    };
    assert!(
        std::env::var("CI").is_err(),
        "the Prosody interop setup is missing in CI ({missing}): .ci/run should have made it"
    );
    eprintln!("skipped: {missing}");
    true
}

/// The Lua interpreter Prosody runs on (its script's `#!` line).
pub fn lua() -> String {
    let shebang = std::fs::read_to_string(PROSODY).unwrap_or_default();
    shebang
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("lua")
        .to_owned()
}

/// Whether Prosody's Lua can load the Lua module `module` (e.g. `lunbound`).
pub fn lua_can_load(module: &str) -> bool {
    Command::new(lua())
        .args(["-e", &format!("require '{module}'")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What a test's Prosody is made of.
pub struct Setup<'a> {
    /// The address its c2s listener is on (on a free port of it).
    pub c2s_ip: IpAddr,
    /// The accounts to create: bare JID and password.
    pub users: &'a [(&'a str, &'a str)],
    /// Other addresses it must listen on before the test goes on (s2s, components).
    pub listening: &'a [SocketAddr],
}

/// A running Prosody; killed on drop, and its log printed if the test panics.
pub struct Prosody {
    child: Child,
    /// Its c2s listener (plaintext, STARTTLS where the configuration offers it).
    pub c2s: SocketAddr,
    dir: TempDir,
}

impl Prosody {
    /// Start a Prosody in a new temporary directory (with an empty `data/`):
    /// `configure(dir, c2s port)` writes whatever files it needs there and returns the
    /// text of `prosody.cfg.lua` (see [`global_config`]); the accounts are created, then
    /// Prosody started. Returns once its c2s port and `setup.listening` accept
    /// connections. Blocking: call it from `spawn_blocking` in async tests.
    pub fn start(setup: Setup<'_>, configure: impl FnOnce(&Path, u16) -> String) -> Prosody {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        std::fs::create_dir(path.join("data")).unwrap();
        let c2s_port = free_port_on(setup.c2s_ip);
        let config = configure(path, c2s_port);
        let cfg = path.join("prosody.cfg.lua");
        std::fs::write(&cfg, config).unwrap();
        // Prosody refuses to run as root: as root, hand it the directory and switch user.
        let as_root = is_root();
        if as_root {
            run(Command::new("chown")
                .args(["-R", "prosody:prosody"])
                .arg(path));
        }
        for (jid, password) in setup.users {
            let (user, host) = jid
                .split_once('@')
                .unwrap_or_else(|| panic!("{jid} is not a user's JID"));
            // prosodyctl switches to the prosody user by itself when run as root.
            run(Command::new(PROSODYCTL)
                .arg("--config")
                .arg(&cfg)
                .args(["register", user, host, password]));
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
        let c2s = SocketAddr::new(setup.c2s_ip, c2s_port);
        let mut p = Prosody { child, c2s, dir };
        p.wait_for_port(c2s);
        for addr in setup.listening {
            p.wait_for_port(*addr);
        }
        p
    }

    /// rookery's test client for a Prosody account, bound to `resource`: plaintext (the
    /// configuration allows it, see [`global_config`]), so SASL picks SCRAM-SHA-1.
    pub fn client(&self, jid: &str, password: &str, resource: &str) -> ClientConfig {
        let mut c = ClientConfig::new(self.c2s, jid, password);
        c.security = Security::Plain;
        c.resource = Some(resource.into());
        c.timeout = TIMEOUT;
        c
    }

    /// The directory Prosody runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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

    /// The ends of Prosody's log (`prosody.log`, as [`global_config`] names it) and of its
    /// console output.
    pub fn logs(&self) -> String {
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

/// The global settings every test's Prosody shares: everything in `dir` (pid file, data,
/// certificates, a debug log in `dir/prosody.log`), in the foreground, c2s on `ip:c2s`
/// without TLS required and with plaintext authentication allowed (SCRAM over loopback),
/// no direct-TLS c2s and no HTTP. Nothing else listens unless the test's configuration,
/// which follows this text, says so (s2s, components), nor is any module enabled.
pub fn global_config(dir: &Path, ip: IpAddr, c2s: u16) -> String {
    let d = dir.display();
    format!(
        r#"-- Written by a rookery test (crates/rookery-tests/src/prosody.rs).
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}"
daemonize = false
interfaces = {{ "{ip}" }}
local_interfaces = {{ "{ip}" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}

c2s_require_encryption = false
allow_unencrypted_plain_auth = true

authentication = "internal_hashed"
storage = "internal"
log = {{ debug = "{d}/prosody.log" }}
"#
    )
}

/// A port of `ip` nobody listens on now.
pub fn free_port_on(ip: IpAddr) -> u16 {
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
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(missing)\n".to_owned();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

// --- clients ---------------------------------------------------------------------------

/// Log in, send initial presence and wait for the server to echo it.
pub async fn online(config: ClientConfig) -> Client {
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

/// The condition of an error reply (Prosody's errors need not carry a `<text/>`, so
/// [`crate::error_condition`] is too strict for them).
pub fn condition(e: &Element) -> String {
    assert_eq!(e.attr("type"), Some("error"), "{}", String::from(e));
    e.get_child("error", "jabber:client")
        .and_then(|err| {
            err.children()
                .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| panic!("no error condition: {}", String::from(e)))
}
