//! Rookery's TOML configuration.
//!
//! `rookery serve` without a configuration file runs with [`Config::default`];
//! `rookery serve --config FILE` and `rookery check-config --config FILE` read a
//! file with [`Config::load`]. Every problem in the file — TOML syntax, unknown
//! keys or tables, wrong types, out-of-range numbers, malformed addresses,
//! missing TLS files — is reported at once as a [`ConfigErrors`], one
//! `file:line:column: message` line per problem, so the operator can fix the
//! whole file in one go. The server must refuse to start when there is any.
//!
//! [`EXAMPLE`] is the annotated example file shipped with Rookery; it documents
//! every key with its default and allowed range.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, TableLike};

/// The annotated example configuration (`rookery.example.toml`).
///
/// Every key appears with its default value (TLS certificate and key are
/// commented out), so it parses to exactly [`Config::default`].
pub const EXAMPLE: &str = include_str!("../../../rookery.example.toml");

/// The complete server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Hosts served (virtual hosting). Default `["localhost"]`.
    ///
    /// Each is a domain, stored lowercased; it must not be empty, contain
    /// whitespace, `@` or `/`, have empty labels, or exceed 1023 bytes. At least
    /// one is required and duplicates are rejected.
    pub hosts: Vec<String>,
    /// Bare JIDs (`user@host`) with admin rights, stored lowercased. Default `[]`.
    pub admins: Vec<String>,
    /// Directory for the database, generated certificates and the admin socket.
    /// Default `rookery-data`; relative paths are relative to the current directory.
    pub data_dir: PathBuf,
    /// Listening sockets (`[listen]`).
    pub listen: Listen,
    /// TLS certificate (`[tls]`).
    pub tls: Tls,
    /// Resource limits and timeouts (`[limits]`).
    pub limits: Limits,
    /// Authentication (`[auth]`).
    pub auth: Auth,
    /// Built-in modules (`[modules]`).
    pub modules: Modules,
    /// Logging (`[log]`).
    pub log: Log,
    /// Multi-user chat (`[muc]`).
    pub muc: Muc,
    /// The NEERC contest service (`[neerc]`).
    pub neerc: Neerc,
    /// External components, XEP-0114 (`[[component]]`). Default none.
    pub components: Vec<Component>,
    /// Server-to-server federation (`[s2s]`).
    pub s2s: S2s,
}

/// Server-to-server federation (`[s2s]`, RFC 6120 with SASL EXTERNAL as XEP-0178 says, and
/// XEP-0220 dialback). Federation is on while `[listen] s2s` is set: peers verify us by
/// connecting back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2s {
    /// Accept peers whose certificate does not validate (self-signed, private CA), with
    /// dialback as the only proof of identity: for a LAN. Default `false`. It never lets
    /// SASL EXTERNAL succeed with a certificate that does not validate.
    pub accept_self_signed: bool,
    /// Extra trusted CA certificates (PEM), besides the system's: a peer's certificate
    /// that chains to one of them and names the peer's domain authenticates it with SASL
    /// EXTERNAL (no dialback), and validates it when we connect. Default `None`; the file
    /// must exist.
    pub ca_file: Option<PathBuf>,
    /// Seconds an outgoing connection has to connect, negotiate TLS and be authenticated
    /// before what waits for it bounces `remote-server-timeout`. Default 10; 1 to 300.
    pub connect_timeout_secs: u64,
    /// Close a server-to-server connection after this many seconds without a stanza;
    /// 0 never closes idle connections. Default 600; 0 to 86400.
    pub idle_timeout_secs: u64,
    /// Static addresses of peers (`[s2s.hosts]`): domain (lowercased) → `"host:port"`,
    /// used instead of DNS. Default none.
    pub hosts: std::collections::BTreeMap<String, String>,
}

impl Default for S2s {
    fn default() -> Self {
        S2s {
            accept_self_signed: false,
            ca_file: None,
            connect_timeout_secs: 10,
            idle_timeout_secs: 600,
            hosts: Default::default(),
        }
    }
}

/// Listening sockets (`[listen]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Client-to-server with STARTTLS. Default `127.0.0.1:5222`; `c2s = false`
    /// in the file disables it (`None`).
    pub c2s: Option<SocketAddr>,
    /// Client-to-server with direct TLS (XEP-0368). Default `127.0.0.1:5223`;
    /// `c2s_tls = false` disables it (`None`).
    pub c2s_tls: Option<SocketAddr>,
    /// Unix socket for `rookery` admin commands. `None` (the default) means
    /// `<data_dir>/admin.sock`; see [`Config::admin_socket_path`].
    pub admin_socket: Option<PathBuf>,
    /// External components (XEP-0114). Default `127.0.0.1:5347`; `component = false`
    /// disables it (`None`). Bound only when at least one `[[component]]` is configured.
    pub component: Option<SocketAddr>,
    /// Server-to-server (federation). Default `127.0.0.1:5269`; `s2s = false` disables
    /// federation in both directions (`None`).
    pub s2s: Option<SocketAddr>,
}

/// One external component (`[[component]]`, XEP-0114): the domain it serves and the
/// secret of its handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct Component {
    /// The component's domain (e.g. `echo.example.org`), stored lowercased. It must not be
    /// a hosted domain, a built-in service's domain or another component's.
    pub name: String,
    /// The shared secret of the handshake. Must not be empty.
    pub secret: String,
}

impl fmt::Debug for Component {
    // The secret stays out of logs and debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// TLS certificate and private key (`[tls]`), both PEM files.
///
/// Both or neither must be set; when set, both files must exist. When neither
/// is set the server uses a certificate it generates itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Certificate chain (PEM). Default `None`.
    pub cert: Option<PathBuf>,
    /// Private key (PEM). Default `None`.
    pub key: Option<PathBuf>,
}

/// Resource limits and timeouts (`[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest stanza accepted, in bytes. Default 262144; 10000 to 16 MiB.
    pub max_stanza_size: usize,
    /// Deepest element nesting accepted in a stanza. Default 32; 4 to 256.
    pub max_depth: usize,
    /// Most attributes accepted on one element. Default 64; 16 to 4096.
    pub max_attributes: usize,
    /// Stanzas queued to one session before it is considered stalled.
    /// Default 1000; 10 to 1000000.
    pub outbound_queue: usize,
    /// Close a c2s stream after this many seconds without any data.
    /// Default 300; 0 (never) to 86400.
    pub idle_timeout_secs: u64,
    /// Seconds a new connection has to complete authentication and resource
    /// binding. Default 60; 1 to 3600.
    pub handshake_timeout_secs: u64,
    /// Offline messages stored per user. Default 1000; 0 to 1000000
    /// (0 stores none).
    pub max_offline_messages: u64,
    /// Failed authentications allowed per IP address per minute.
    /// Default 10; 1 to 100000.
    pub auth_failures_per_minute: u32,
    /// Seconds an ad-hoc command session may stay idle before it expires.
    /// Default 600; 10 to 86400.
    pub adhoc_session_secs: u64,
    /// Ad-hoc command sessions one requester may have open at once.
    /// Default 10; 1 to 1000.
    pub adhoc_sessions_per_user: usize,
    /// A user online but silent for this many seconds counts as idle (XEP-0133).
    /// Default 600; 1 to 86400.
    pub idle_user_secs: u64,
}

/// Authentication (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Account backend: `"internal"` (Rookery's own store, SCRAM keys) or `"external"`
    /// (a program speaking ejabberd's extauth protocol; then only PLAIN over TLS is
    /// offered). Default `"internal"`.
    pub backend: String,
    /// SCRAM iterations for new passwords. Default 4096; 4096 to 1000000.
    pub scram_iterations: u32,
    /// Allow SASL and everything else without TLS on connections from
    /// loopback addresses (for tests and benchmarks). Default false.
    pub allow_plaintext_on_loopback: bool,
    /// Offer the PLAIN mechanism (over TLS only). Default true.
    pub allow_plain: bool,
    /// In-band registration (XEP-0077). Default false.
    pub registration: bool,
    /// Delay before answering a failed authentication, in milliseconds.
    /// Default 1000; 0 to 10000.
    pub failure_delay_ms: u64,
    /// The external authentication program and its arguments (`backend = "external"`).
    /// Default `[]`; required with the external backend, and only allowed with it.
    pub extauth_program: Vec<String>,
    /// How many copies of the external program run, each answering one request at a
    /// time. Default 1; 1 to 64.
    pub extauth_pool_size: usize,
    /// Seconds the external program has to answer a request before it is killed and
    /// restarted. Default 10; 1 to 300.
    pub extauth_timeout_secs: u64,
}

/// Built-in modules (`[modules]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modules {
    /// Names of modules that are disabled (e.g. `["version", "last"]`).
    /// Default `[]`. Names are not checked here; the server knows its modules.
    pub disabled: Vec<String>,
    /// Whether the software version module (XEP-0092) reveals the operating
    /// system. Default false.
    pub version_show_os: bool,
}

/// Multi-user chat, XEP-0045 (`[muc]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Muc {
    /// Whether the MUC service runs. Default true.
    pub enabled: bool,
    /// The service's domain is `<subdomain>.<host>` for each host. Default `conference`.
    pub subdomain: String,
    /// Who may create rooms: `"users"` (any local user) or `"admins"`. Default `users`.
    pub create: String,
    /// Messages kept for history on join, per room, at most. Default 50.
    pub max_history: usize,
    /// Occupants per room, at most (the owner may set a lower limit). Default 1000.
    pub max_occupants: usize,
    /// Longest subject, in characters. Default 1024.
    pub max_subject_chars: usize,
}

/// The NEERC contest service (`[neerc]`): tasks and users of a contest room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neerc {
    /// Whether the service runs. Default true.
    pub enabled: bool,
    /// The service's domain is `<subdomain>.<host>` for each host. Default `neerc`.
    pub subdomain: String,
    /// The MUC room served when the service JID has no local part. Default `neerc`.
    pub default_room: String,
    /// Accept any status change of an assigned user, as the original service did,
    /// instead of enforcing the task state machine. Default false.
    pub lax_status: bool,
    /// The contest system's clock file (`<clock time length status/>`), watched for
    /// changes. Without one, the jury sets the clock by command.
    pub clock_file: Option<PathBuf>,
    /// How often the clock file is looked at, in milliseconds. Default 1000.
    pub clock_poll_ms: u64,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// One of `error`, `warn`, `info`, `debug`, `trace`. Default `info`.
    pub level: String,
}

const DEFAULT_C2S: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5222));
const DEFAULT_C2S_TLS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5223));
const DEFAULT_COMPONENT: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5347));
const DEFAULT_S2S: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5269));

impl Default for Config {
    fn default() -> Self {
        Config {
            hosts: vec!["localhost".to_owned()],
            admins: Vec::new(),
            data_dir: PathBuf::from("rookery-data"),
            listen: Listen::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            auth: Auth::default(),
            modules: Modules::default(),
            log: Log::default(),
            muc: Muc::default(),
            neerc: Neerc::default(),
            components: Vec::new(),
            s2s: S2s::default(),
        }
    }
}

impl Default for Neerc {
    fn default() -> Self {
        Neerc {
            enabled: true,
            subdomain: "neerc".to_owned(),
            default_room: "neerc".to_owned(),
            lax_status: false,
            clock_file: None,
            clock_poll_ms: 1000,
        }
    }
}

impl Default for Muc {
    fn default() -> Self {
        Muc {
            enabled: true,
            subdomain: "conference".to_owned(),
            create: "users".to_owned(),
            max_history: 50,
            max_occupants: 1000,
            max_subject_chars: 1024,
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            c2s: Some(DEFAULT_C2S),
            c2s_tls: Some(DEFAULT_C2S_TLS),
            admin_socket: None,
            component: Some(DEFAULT_COMPONENT),
            s2s: Some(DEFAULT_S2S),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_size: 262_144,
            max_depth: 32,
            max_attributes: 64,
            outbound_queue: 1000,
            idle_timeout_secs: 300,
            handshake_timeout_secs: 60,
            max_offline_messages: 1000,
            auth_failures_per_minute: 10,
            adhoc_session_secs: 600,
            adhoc_sessions_per_user: 10,
            idle_user_secs: 600,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            backend: "internal".to_owned(),
            scram_iterations: 4096,
            allow_plaintext_on_loopback: false,
            allow_plain: true,
            registration: false,
            failure_delay_ms: 1000,
            extauth_program: Vec::new(),
            extauth_pool_size: 1,
            extauth_timeout_secs: 10,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// Parses and validates TOML text; `origin` is the file name used in messages.
    ///
    /// Keys that are absent keep their defaults. On failure every problem found
    /// is returned, sorted by position.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        let doc = match Document::parse(text) {
            Ok(doc) => doc,
            Err(err) => {
                let offset = err.span().map_or(0, |span| span.start);
                let (line, column) = position(text, offset);
                return Err(ConfigErrors(vec![ConfigError {
                    origin: origin.to_owned(),
                    line,
                    column,
                    message: format!("TOML syntax error: {}", err.message()),
                }]));
            }
        };
        let mut checker = Checker::default();
        let config = checker.config(doc.as_table());
        if checker.problems.is_empty() {
            return Ok(config);
        }
        checker.problems.sort_by_key(|(offset, _)| *offset);
        Err(ConfigErrors(
            checker
                .problems
                .into_iter()
                .map(|(offset, message)| {
                    let (line, column) = position(text, offset);
                    ConfigError {
                        origin: origin.to_owned(),
                        line,
                        column,
                        message,
                    }
                })
                .collect(),
        ))
    }

    /// Reads, parses and validates a configuration file.
    ///
    /// Messages name the file as `path` is written. A file that cannot be read
    /// is reported as a single error without a position.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, &origin),
            Err(err) => Err(ConfigErrors(vec![ConfigError {
                origin,
                line: 0,
                column: 0,
                message: format!("cannot read configuration file: {err}"),
            }])),
        }
    }

    /// The admin socket path: `listen.admin_socket`, or `<data_dir>/admin.sock`.
    pub fn admin_socket_path(&self) -> PathBuf {
        match &self.listen.admin_socket {
            Some(path) => path.clone(),
            None => self.data_dir.join("admin.sock"),
        }
    }
}

/// One problem in a configuration file.
///
/// Displays as `origin:line:column: message`, or `origin: message` when the
/// problem has no position (`line` is 0, e.g. the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, as given to [`Config::from_toml`] or [`Config::load`].
    pub origin: String,
    /// 1-based line; 0 when the problem has no position.
    pub line: usize,
    /// 1-based column in characters; 0 when the problem has no position.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file (never empty when returned
/// by this crate). Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based (line, column) of a byte offset; columns count characters.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let bytes = &text.as_bytes()[..offset.min(text.len())];
    let line_start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = 1 + bytes.iter().filter(|&&b| b == b'\n').count();
    // Count characters by skipping UTF-8 continuation bytes.
    let column = 1 + bytes[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count();
    (line, column)
}

const TOP_KEYS: &[&str] = &[
    "hosts",
    "admins",
    "data_dir",
    "listen",
    "tls",
    "limits",
    "auth",
    "modules",
    "log",
    "muc",
    "neerc",
    "component",
    "s2s",
];
const LISTEN_KEYS: &[&str] = &["c2s", "c2s_tls", "admin_socket", "component", "s2s"];
const S2S_KEYS: &[&str] = &[
    "accept_self_signed",
    "ca_file",
    "connect_timeout_secs",
    "idle_timeout_secs",
    "hosts",
];
const COMPONENT_KEYS: &[&str] = &["name", "secret"];
const TLS_KEYS: &[&str] = &["cert", "key"];
const LIMITS_KEYS: &[&str] = &[
    "max_stanza_size",
    "max_depth",
    "max_attributes",
    "outbound_queue",
    "idle_timeout_secs",
    "handshake_timeout_secs",
    "max_offline_messages",
    "auth_failures_per_minute",
    "adhoc_session_secs",
    "adhoc_sessions_per_user",
    "idle_user_secs",
];
const AUTH_KEYS: &[&str] = &[
    "backend",
    "scram_iterations",
    "allow_plaintext_on_loopback",
    "allow_plain",
    "registration",
    "failure_delay_ms",
    "extauth_program",
    "extauth_pool_size",
    "extauth_timeout_secs",
];
const MODULES_KEYS: &[&str] = &["disabled", "version_show_os"];
const LOG_KEYS: &[&str] = &["level"];
const MUC_KEYS: &[&str] = &[
    "enabled",
    "subdomain",
    "create",
    "max_history",
    "max_occupants",
    "max_subject_chars",
];
const MUC_CREATE: &[&str] = &["users", "admins"];
const NEERC_KEYS: &[&str] = &[
    "enabled",
    "subdomain",
    "default_room",
    "lax_status",
    "clock_file",
    "clock_poll_ms",
];
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
const AUTH_BACKENDS: &[&str] = &["internal", "external"];

/// Longest domain accepted in `hosts`, in bytes.
const MAX_DOMAIN_LEN: usize = 1023;

/// One key/value pair of a table, with the byte offsets used in messages.
struct Entry<'t> {
    /// The key as written (unquoted).
    name: &'t str,
    /// Where the key starts.
    key_at: usize,
    /// Where the value (or table header) starts.
    value_at: usize,
    item: &'t Item,
}

/// A `[table]` being checked: its dotted name (`None` for the top level),
/// the keys it accepts, and its entries.
struct Section<'t> {
    name: Option<&'static str>,
    known: &'static [&'static str],
    entries: Vec<Entry<'t>>,
}

impl Section<'_> {
    /// The dotted path of `key` in this section, e.g. `listen.c2s`.
    fn path(&self, key: &str) -> String {
        match self.name {
            Some(section) => format!("{section}.{key}"),
            None => key.to_owned(),
        }
    }
}

fn entries(table: &dyn TableLike) -> Vec<Entry<'_>> {
    table
        .iter()
        .map(|(name, item)| {
            let key_at = table
                .key(name)
                .and_then(|key| key.span())
                .map_or(0, |span| span.start);
            let value_at = match item {
                // A `[header]` table spans its header; an implicit or dotted
                // table has no header of its own, so point at its key.
                Item::Table(table) if !table.is_implicit() && !table.is_dotted() => {
                    item.span().map_or(key_at, |span| span.start)
                }
                Item::Table(_) => key_at,
                _ => item.span().map_or(key_at, |span| span.start),
            };
            Entry {
                name,
                key_at,
                value_at,
                item,
            }
        })
        .collect()
}

/// How an item's type is named in messages.
fn found(item: &Item) -> &'static str {
    match item {
        Item::Value(toml_edit::Value::InlineTable(_)) => "table",
        _ => item.type_name(),
    }
}

/// Collects problems as (byte offset, message) while building a [`Config`].
#[derive(Default)]
struct Checker {
    problems: Vec<(usize, String)>,
}

impl Checker {
    fn report(&mut self, at: usize, message: String) {
        self.problems.push((at, message));
    }

    fn wrong_type(&mut self, path: &str, entry: &Entry<'_>, expected: &str) {
        let message = format!("{path}: expected {expected}, found {}", found(entry.item));
        self.report(entry.value_at, message);
    }

    fn unknown(&mut self, section: &Section<'_>, entry: &Entry<'_>) {
        let suggestion = suggest(entry.name, section.known);
        let is_table = match entry.item {
            Item::Table(table) => !table.is_dotted(),
            Item::ArrayOfTables(_) => true,
            _ => false,
        };
        let message = if is_table {
            let mut message = format!("unknown table [{}]", section.path(entry.name));
            if let Some(known) = suggestion {
                message.push_str(&format!(" (did you mean [{}]?)", section.path(known)));
            }
            message
        } else {
            let place = match section.name {
                Some(name) => format!("[{name}]"),
                None => "top level".to_owned(),
            };
            let mut message = format!("unknown key {:?} in {place}", entry.name);
            if let Some(known) = suggestion {
                message.push_str(&format!(" (did you mean {known:?}?)"));
            }
            message
        };
        let at = if is_table {
            entry.value_at
        } else {
            entry.key_at
        };
        self.report(at, message);
    }

    /// The sub-table for a known section key, or a type error.
    fn section<'t>(
        &mut self,
        name: &'static str,
        known: &'static [&'static str],
        entry: &Entry<'t>,
    ) -> Option<Section<'t>> {
        let table = match entry.item {
            Item::ArrayOfTables(_) => None,
            item => item.as_table_like(),
        };
        match table {
            Some(table) => Some(Section {
                name: Some(name),
                known,
                entries: entries(table),
            }),
            None => {
                self.wrong_type(name, entry, "a table");
                None
            }
        }
    }

    fn string<'t>(&mut self, path: &str, entry: &Entry<'t>) -> Option<&'t str> {
        let value = entry.item.as_str();
        if value.is_none() {
            self.wrong_type(path, entry, "a string");
        }
        value
    }

    fn non_empty<'t>(&mut self, path: &str, entry: &Entry<'t>) -> Option<&'t str> {
        let value = self.string(path, entry)?;
        if value.is_empty() {
            self.report(entry.value_at, format!("{path}: must not be empty"));
            return None;
        }
        Some(value)
    }

    /// Report `file` unless it exists and is not a directory.
    fn existing_file(&mut self, path: &str, file: &Path, at: usize) {
        let message = match std::fs::metadata(file) {
            Ok(meta) if meta.is_dir() => {
                format!("{path}: {:?} is a directory, not a file", file.display())
            }
            Ok(_) => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                format!("{path}: file {:?} does not exist", file.display())
            }
            Err(err) => format!("{path}: cannot access {:?}: {err}", file.display()),
        };
        self.report(at, message);
    }

    fn boolean(&mut self, path: &str, entry: &Entry<'_>) -> Option<bool> {
        let value = entry.item.as_bool();
        if value.is_none() {
            self.wrong_type(path, entry, "a boolean");
        }
        value
    }

    /// An integer within `range`, converted to the field's type.
    fn integer<T: TryFrom<i64>>(
        &mut self,
        path: &str,
        entry: &Entry<'_>,
        range: RangeInclusive<i64>,
    ) -> Option<T> {
        let Some(value) = entry.item.as_integer() else {
            self.wrong_type(path, entry, "an integer");
            return None;
        };
        if !range.contains(&value) {
            let message = format!(
                "{path}: {value} is out of range (allowed: {} to {})",
                range.start(),
                range.end()
            );
            self.report(entry.value_at, message);
            return None;
        }
        T::try_from(value).ok()
    }

    /// The strings of an array with their offsets; elements of other types
    /// are reported and left out.
    fn strings<'t>(&mut self, path: &str, entry: &Entry<'t>) -> Option<Vec<(&'t str, usize)>> {
        let Some(array) = entry.item.as_array() else {
            self.wrong_type(path, entry, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, value) in array.iter().enumerate() {
            let at = value.span().map_or(entry.value_at, |span| span.start);
            match value.as_str() {
                Some(s) => out.push((s, at)),
                None => self.report(
                    at,
                    format!(
                        "{path}[{i}]: expected a string, found {}",
                        match value {
                            toml_edit::Value::InlineTable(_) => "table",
                            other => other.type_name(),
                        }
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A listening address: a socket address string, or `false` to disable.
    fn listener(
        &mut self,
        path: &str,
        entry: &Entry<'_>,
        example: &str,
    ) -> Option<Option<SocketAddr>> {
        match entry.item.as_value() {
            Some(toml_edit::Value::Boolean(b)) if !*b.value() => Some(None),
            Some(toml_edit::Value::String(s)) => match s.value().parse::<SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    let message = format!(
                        "{path}: {:?} is not a socket address (expected e.g. {example:?})",
                        s.value()
                    );
                    self.report(entry.value_at, message);
                    None
                }
            },
            Some(toml_edit::Value::Boolean(_)) => {
                let message = format!(
                    "{path}: expected a socket address such as {example:?}, or false to disable, found true"
                );
                self.report(entry.value_at, message);
                None
            }
            _ => {
                self.wrong_type(path, entry, "a socket address string or false");
                None
            }
        }
    }

    /// Validates the whole document, returning the configuration built from
    /// the valid parts (meaningful only when no problem was reported).
    fn config(&mut self, root: &dyn TableLike) -> Config {
        let mut config = Config::default();
        let mut components = Vec::new();
        let top = Section {
            name: None,
            known: TOP_KEYS,
            entries: entries(root),
        };
        for entry in &top.entries {
            let path = top.path(entry.name);
            match entry.name {
                "hosts" => self.hosts(&path, entry, &mut config.hosts),
                "admins" => self.admins(&path, entry, &mut config.admins),
                "data_dir" => {
                    if let Some(dir) = self.non_empty(&path, entry) {
                        config.data_dir = PathBuf::from(dir);
                    }
                }
                "listen" => {
                    if let Some(section) = self.section("listen", LISTEN_KEYS, entry) {
                        self.listen(&section, &mut config.listen);
                    }
                }
                "tls" => {
                    if let Some(section) = self.section("tls", TLS_KEYS, entry) {
                        self.tls(&section, &mut config.tls);
                    }
                }
                "limits" => {
                    if let Some(section) = self.section("limits", LIMITS_KEYS, entry) {
                        self.limits(&section, &mut config.limits);
                    }
                }
                "auth" => {
                    if let Some(section) = self.section("auth", AUTH_KEYS, entry) {
                        self.auth(&section, &mut config.auth);
                    }
                }
                "modules" => {
                    if let Some(section) = self.section("modules", MODULES_KEYS, entry) {
                        self.modules(&section, &mut config.modules);
                    }
                }
                "log" => {
                    if let Some(section) = self.section("log", LOG_KEYS, entry) {
                        self.log(&section, &mut config.log);
                    }
                }
                "muc" => {
                    if let Some(section) = self.section("muc", MUC_KEYS, entry) {
                        self.muc(&section, &mut config.muc);
                    }
                }
                "neerc" => {
                    if let Some(section) = self.section("neerc", NEERC_KEYS, entry) {
                        self.neerc(&section, &mut config.neerc);
                    }
                }
                "component" => components = self.components(entry),
                "s2s" => {
                    if let Some(section) = self.section("s2s", S2S_KEYS, entry) {
                        self.s2s(&section, &mut config.s2s);
                    }
                }
                _ => self.unknown(&top, entry),
            }
        }
        // Checked once every section is read: names must not collide with the hosts and
        // service domains, whichever order the file gives them in.
        self.component_names(&config, &components);
        config.components = components.into_iter().map(|(c, _)| c).collect();
        config
    }

    fn hosts(&mut self, path: &str, entry: &Entry<'_>, out: &mut Vec<String>) {
        let Some(list) = self.strings(path, entry) else {
            return;
        };
        if entry.item.as_array().is_some_and(|a| a.is_empty()) {
            let message = format!("{path}: at least one host is required");
            self.report(entry.value_at, message);
            return;
        }
        let mut seen = HashSet::new();
        out.clear();
        for (i, (host, at)) in list.into_iter().enumerate() {
            match domain(host) {
                Ok(host) => {
                    if seen.insert(host.clone()) {
                        out.push(host);
                    } else {
                        self.report(at, format!("{path}[{i}]: duplicate host {host:?}"));
                    }
                }
                Err(why) => {
                    let message = format!("{path}[{i}]: {host:?} is not a valid domain ({why})");
                    self.report(at, message);
                }
            }
        }
    }

    fn admins(&mut self, path: &str, entry: &Entry<'_>, out: &mut Vec<String>) {
        let Some(list) = self.strings(path, entry) else {
            return;
        };
        let mut seen = HashSet::new();
        out.clear();
        for (i, (jid, at)) in list.into_iter().enumerate() {
            match bare_jid(jid) {
                Ok(jid) => {
                    if seen.insert(jid.clone()) {
                        out.push(jid);
                    } else {
                        self.report(at, format!("{path}[{i}]: duplicate admin {jid:?}"));
                    }
                }
                Err(why) => {
                    let message = format!(
                        "{path}[{i}]: {jid:?} is not a bare JID like \"admin@example.org\" ({why})"
                    );
                    self.report(at, message);
                }
            }
        }
    }

    fn listen(&mut self, section: &Section<'_>, out: &mut Listen) {
        let mut c2s_tls_at = None;
        let mut component_at = None;
        let mut s2s_at = None;
        for entry in &section.entries {
            let path = section.path(entry.name);
            match entry.name {
                "c2s" => {
                    if let Some(addr) = self.listener(&path, entry, "127.0.0.1:5222") {
                        out.c2s = addr;
                    }
                }
                "c2s_tls" => {
                    if let Some(addr) = self.listener(&path, entry, "127.0.0.1:5223") {
                        out.c2s_tls = addr;
                        c2s_tls_at = Some(entry.value_at);
                    }
                }
                "admin_socket" => {
                    if let Some(socket) = self.non_empty(&path, entry) {
                        out.admin_socket = Some(PathBuf::from(socket));
                    }
                }
                "component" => {
                    if let Some(addr) = self.listener(&path, entry, "127.0.0.1:5347") {
                        out.component = addr;
                        component_at = Some(entry.value_at);
                    }
                }
                "s2s" => {
                    if let Some(addr) = self.listener(&path, entry, "127.0.0.1:5269") {
                        out.s2s = addr;
                        s2s_at = Some(entry.value_at);
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
        // Port 0 asks the OS for any free port, so it never clashes.
        if let (Some(plain), Some(tls), Some(at)) = (out.c2s, out.c2s_tls, c2s_tls_at)
            && plain == tls
            && plain.port() != 0
        {
            let message = format!("listen.c2s_tls: {tls} is already used by listen.c2s");
            self.report(at, message);
        }
        if let (Some(component), Some(at)) = (out.component, component_at)
            && component.port() != 0
        {
            for (name, other) in [("listen.c2s", out.c2s), ("listen.c2s_tls", out.c2s_tls)] {
                if other == Some(component) {
                    let message =
                        format!("listen.component: {component} is already used by {name}");
                    self.report(at, message);
                }
            }
        }
        if let (Some(s2s), Some(at)) = (out.s2s, s2s_at)
            && s2s.port() != 0
        {
            let others = [
                ("listen.c2s", out.c2s),
                ("listen.c2s_tls", out.c2s_tls),
                ("listen.component", out.component),
            ];
            for (name, other) in others {
                if other == Some(s2s) {
                    let message = format!("listen.s2s: {s2s} is already used by {name}");
                    self.report(at, message);
                }
            }
        }
    }

    /// `[s2s]`: federation settings and the static host map `[s2s.hosts]`.
    fn s2s(&mut self, section: &Section<'_>, out: &mut S2s) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "accept_self_signed" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.accept_self_signed = v;
                    }
                }
                "ca_file" => {
                    if let Some(v) = self.non_empty(path, entry) {
                        let file = PathBuf::from(v);
                        self.existing_file(path, &file, entry.value_at);
                        out.ca_file = Some(file);
                    }
                }
                "connect_timeout_secs" => {
                    if let Some(v) = self.integer(path, entry, 1..=300) {
                        out.connect_timeout_secs = v;
                    }
                }
                "idle_timeout_secs" => {
                    if let Some(v) = self.integer(path, entry, 0..=86_400) {
                        out.idle_timeout_secs = v;
                    }
                }
                "hosts" => {
                    let Some(table) = entry.item.as_table_like() else {
                        self.wrong_type(path, entry, "a table of \"domain\" = \"host:port\"");
                        continue;
                    };
                    for host in entries(table) {
                        let key_path = format!("s2s.hosts.{}", host.name);
                        let name = match domain(host.name) {
                            Ok(d) => d,
                            Err(why) => {
                                let message = format!(
                                    "{key_path}: {:?} is not a valid domain ({why})",
                                    host.name
                                );
                                self.report(host.key_at, message);
                                continue;
                            }
                        };
                        let Some(addr) = self.non_empty(&key_path, &host) else {
                            continue;
                        };
                        if !is_host_port(addr) {
                            let message = format!(
                                "{key_path}: {addr:?} is not \"host:port\" (e.g. \"192.168.1.20:5269\" or \"xmpp.example.org:5269\")"
                            );
                            self.report(host.value_at, message);
                            continue;
                        }
                        if out.hosts.insert(name.clone(), addr.to_owned()).is_some() {
                            self.report(
                                host.key_at,
                                format!("{key_path}: duplicate domain {name:?}"),
                            );
                        }
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }

    /// `[[component]]` entries, each with where its name was given (for later checks).
    fn components(&mut self, entry: &Entry<'_>) -> Vec<(Component, usize)> {
        let Item::ArrayOfTables(array) = entry.item else {
            self.wrong_type("component", entry, "an array of tables ([[component]])");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, table) in array.iter().enumerate() {
            let at = table.span().map_or(entry.value_at, |span| span.start);
            let section = Section {
                name: Some("component"),
                known: COMPONENT_KEYS,
                entries: entries(table),
            };
            let (mut name, mut secret) = (None, None);
            for entry in &section.entries {
                let path = format!("component[{i}].{}", entry.name);
                match entry.name {
                    "name" => {
                        let Some(v) = self.non_empty(&path, entry) else {
                            continue;
                        };
                        match domain(v) {
                            Ok(d) => name = Some((d, entry.value_at)),
                            Err(why) => {
                                let message =
                                    format!("{path}: {v:?} is not a valid domain ({why})");
                                self.report(entry.value_at, message);
                            }
                        }
                    }
                    "secret" => {
                        if let Some(v) = self.non_empty(&path, entry) {
                            secret = Some(v.to_owned());
                        }
                    }
                    _ => self.unknown(&section, entry),
                }
            }
            for (key, missing) in [("name", name.is_none()), ("secret", secret.is_none())] {
                let given = section.entries.iter().any(|e| e.name == key);
                if missing && !given {
                    self.report(at, format!("component[{i}]: {key} is required"));
                }
            }
            if let (Some((name, name_at)), Some(secret)) = (name, secret) {
                out.push((Component { name, secret }, name_at));
            }
        }
        out
    }

    /// A component's name must be its own: not a hosted domain, not a built-in service's
    /// domain, not another component's.
    fn component_names(&mut self, config: &Config, components: &[(Component, usize)]) {
        let mut seen = HashSet::new();
        for (i, (c, at)) in components.iter().enumerate() {
            let path = format!("component[{i}].name");
            let name = &c.name;
            if !seen.insert(name.as_str()) {
                self.report(*at, format!("{path}: duplicate component {name:?}"));
            } else if config.hosts.contains(name) {
                let message = format!("{path}: {name:?} is a hosted domain (hosts)");
                self.report(*at, message);
            } else if let Some(service) = config.hosts.iter().find_map(|h| {
                let muc = config.muc.enabled && *name == format!("{}.{h}", config.muc.subdomain);
                let neerc =
                    config.neerc.enabled && *name == format!("{}.{h}", config.neerc.subdomain);
                muc.then_some("[muc]").or(neerc.then_some("[neerc]"))
            }) {
                let message =
                    format!("{path}: {name:?} is the domain of the built-in service {service}");
                self.report(*at, message);
            }
        }
    }

    fn tls(&mut self, section: &Section<'_>, out: &mut Tls) {
        // (path, key offset, value offset) of each file given.
        let mut cert = None;
        let mut key = None;
        for entry in &section.entries {
            let path = section.path(entry.name);
            let slot = match entry.name {
                "cert" => &mut cert,
                "key" => &mut key,
                _ => {
                    self.unknown(section, entry);
                    continue;
                }
            };
            if let Some(file) = self.non_empty(&path, entry) {
                *slot = Some((PathBuf::from(file), entry.key_at, entry.value_at));
            }
        }
        for (name, file) in [("tls.cert", &cert), ("tls.key", &key)] {
            let Some((file, _, at)) = file else { continue };
            match std::fs::metadata(file) {
                Ok(meta) if meta.is_dir() => {
                    let message =
                        format!("{name}: {:?} is a directory, not a file", file.display());
                    self.report(*at, message);
                }
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let message = format!("{name}: file {:?} does not exist", file.display());
                    self.report(*at, message);
                }
                Err(err) => {
                    let message = format!("{name}: cannot access {:?}: {err}", file.display());
                    self.report(*at, message);
                }
            }
        }
        match (&cert, &key) {
            (Some((_, at, _)), None) => self.report(
                *at,
                "tls.cert is set but tls.key is not (set both or neither)".to_owned(),
            ),
            (None, Some((_, at, _))) => self.report(
                *at,
                "tls.key is set but tls.cert is not (set both or neither)".to_owned(),
            ),
            _ => {}
        }
        out.cert = cert.map(|(file, _, _)| file);
        out.key = key.map(|(file, _, _)| file);
    }

    fn limits(&mut self, section: &Section<'_>, out: &mut Limits) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "max_stanza_size" => {
                    if let Some(v) = self.integer(path, entry, 10_000..=16 * 1024 * 1024) {
                        out.max_stanza_size = v;
                    }
                }
                "max_depth" => {
                    if let Some(v) = self.integer(path, entry, 4..=256) {
                        out.max_depth = v;
                    }
                }
                "max_attributes" => {
                    if let Some(v) = self.integer(path, entry, 16..=4096) {
                        out.max_attributes = v;
                    }
                }
                "outbound_queue" => {
                    if let Some(v) = self.integer(path, entry, 10..=1_000_000) {
                        out.outbound_queue = v;
                    }
                }
                "idle_timeout_secs" => {
                    if let Some(v) = self.integer(path, entry, 0..=86_400) {
                        out.idle_timeout_secs = v;
                    }
                }
                "handshake_timeout_secs" => {
                    if let Some(v) = self.integer(path, entry, 1..=3600) {
                        out.handshake_timeout_secs = v;
                    }
                }
                "max_offline_messages" => {
                    if let Some(v) = self.integer(path, entry, 0..=1_000_000) {
                        out.max_offline_messages = v;
                    }
                }
                "auth_failures_per_minute" => {
                    if let Some(v) = self.integer(path, entry, 1..=100_000) {
                        out.auth_failures_per_minute = v;
                    }
                }
                "adhoc_session_secs" => {
                    if let Some(v) = self.integer(path, entry, 10..=86_400) {
                        out.adhoc_session_secs = v;
                    }
                }
                "adhoc_sessions_per_user" => {
                    if let Some(v) = self.integer(path, entry, 1..=1000) {
                        out.adhoc_sessions_per_user = v;
                    }
                }
                "idle_user_secs" => {
                    if let Some(v) = self.integer(path, entry, 1..=86_400) {
                        out.idle_user_secs = v;
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }

    fn auth(&mut self, section: &Section<'_>, out: &mut Auth) {
        // Where the keys checked together below were given.
        let (mut backend_at, mut program_at, mut plain_at) = (None, None, None);
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "backend" => {
                    if let Some(backend) = self.string(path, entry) {
                        if AUTH_BACKENDS.contains(&backend) {
                            out.backend = backend.to_owned();
                            backend_at = Some(entry.value_at);
                        } else {
                            let message = format!(
                                "{path}: unknown backend {backend:?} (supported: {})",
                                quoted_list(AUTH_BACKENDS)
                            );
                            self.report(entry.value_at, message);
                        }
                    }
                }
                "scram_iterations" => {
                    if let Some(v) = self.integer(path, entry, 4096..=1_000_000) {
                        out.scram_iterations = v;
                    }
                }
                "allow_plaintext_on_loopback" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.allow_plaintext_on_loopback = v;
                    }
                }
                "allow_plain" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.allow_plain = v;
                        plain_at = Some(entry.value_at);
                    }
                }
                "registration" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.registration = v;
                    }
                }
                "failure_delay_ms" => {
                    if let Some(v) = self.integer(path, entry, 0..=10_000) {
                        out.failure_delay_ms = v;
                    }
                }
                "extauth_program" => {
                    let program = self.extauth_program(path, entry);
                    program_at = Some((entry.value_at, program.is_some()));
                    if let Some(program) = program {
                        out.extauth_program = program;
                    }
                }
                "extauth_pool_size" => {
                    if let Some(v) = self.integer(path, entry, 1..=64) {
                        out.extauth_pool_size = v;
                    }
                }
                "extauth_timeout_secs" => {
                    if let Some(v) = self.integer(path, entry, 1..=300) {
                        out.extauth_timeout_secs = v;
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
        self.extauth_consistent(out, backend_at, program_at, plain_at);
    }

    /// `auth.extauth_program`: the program (an existing file when given as a path) and
    /// its arguments.
    fn extauth_program(&mut self, path: &str, entry: &Entry<'_>) -> Option<Vec<String>> {
        let list = self.strings(path, entry)?;
        let Some(&(program, at)) = list.first() else {
            return Some(Vec::new());
        };
        if program.trim().is_empty() {
            self.report(at, format!("{path}[0]: the program must not be empty"));
            return None;
        }
        // A bare name is looked up in PATH when it starts; a path must exist now.
        if program.contains('/') {
            let file = Path::new(program);
            match std::fs::metadata(file) {
                Ok(meta) if meta.is_dir() => {
                    let message = format!("{path}[0]: {program:?} is a directory, not a program");
                    self.report(at, message);
                    return None;
                }
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let message = format!("{path}[0]: program {program:?} does not exist");
                    self.report(at, message);
                    return None;
                }
                Err(err) => {
                    let message = format!("{path}[0]: cannot access {program:?}: {err}");
                    self.report(at, message);
                    return None;
                }
            }
        }
        Some(list.into_iter().map(|(s, _)| s.to_owned()).collect())
    }

    /// The external backend needs its program and PLAIN; the program needs the backend.
    /// `program_at` is where the program was given and whether it was valid (an invalid
    /// one is reported already).
    fn extauth_consistent(
        &mut self,
        auth: &Auth,
        backend_at: Option<usize>,
        program_at: Option<(usize, bool)>,
        plain_at: Option<usize>,
    ) {
        let external = auth.backend == "external";
        match (external, backend_at, program_at) {
            (_, _, Some((_, false))) => {}
            (true, Some(at), None) => self.report(
                at,
                "auth.backend = \"external\" needs auth.extauth_program = \
                 [\"/path/to/program\", \"arguments\"...]"
                    .to_owned(),
            ),
            (true, _, Some((at, _))) if auth.extauth_program.is_empty() => self.report(
                at,
                "auth.extauth_program: the external backend needs a program".to_owned(),
            ),
            (false, _, Some((at, _))) if !auth.extauth_program.is_empty() => self.report(
                at,
                "auth.extauth_program is only used with auth.backend = \"external\"".to_owned(),
            ),
            _ => {}
        }
        if let (true, Some(at)) = (external && !auth.allow_plain, plain_at) {
            self.report(
                at,
                "auth.allow_plain = false leaves no mechanism with auth.backend = \"external\" \
                 (SCRAM needs keys stored by this server)"
                    .to_owned(),
            );
        }
    }

    fn modules(&mut self, section: &Section<'_>, out: &mut Modules) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "disabled" => {
                    let Some(list) = self.strings(path, entry) else {
                        continue;
                    };
                    let mut seen = HashSet::new();
                    out.disabled.clear();
                    for (i, (name, at)) in list.into_iter().enumerate() {
                        if name.trim().is_empty() {
                            self.report(at, format!("{path}[{i}]: module name must not be empty"));
                        } else if !seen.insert(name) {
                            self.report(at, format!("{path}[{i}]: duplicate module {name:?}"));
                        } else {
                            out.disabled.push(name.to_owned());
                        }
                    }
                }
                "version_show_os" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.version_show_os = v;
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }

    fn muc(&mut self, section: &Section<'_>, out: &mut Muc) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "enabled" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.enabled = v;
                    }
                }
                "subdomain" => {
                    let Some(v) = self.non_empty(path, entry) else {
                        continue;
                    };
                    let valid = v.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                    if valid {
                        out.subdomain = v.to_ascii_lowercase();
                    } else {
                        let message = format!(
                            "{path}: {v:?} is not a domain label (letters, digits and '-', \
                             labels separated by '.')"
                        );
                        self.report(entry.value_at, message);
                    }
                }
                "create" => {
                    let Some(v) = self.string(path, entry) else {
                        continue;
                    };
                    if MUC_CREATE.contains(&v) {
                        out.create = v.to_owned();
                    } else {
                        let message =
                            format!("{path}: {v:?} is not one of {}", quoted_list(MUC_CREATE));
                        self.report(entry.value_at, message);
                    }
                }
                "max_history" => {
                    if let Some(v) = self.integer(path, entry, 0..=10_000) {
                        out.max_history = v;
                    }
                }
                "max_occupants" => {
                    if let Some(v) = self.integer(path, entry, 1..=100_000) {
                        out.max_occupants = v;
                    }
                }
                "max_subject_chars" => {
                    if let Some(v) = self.integer(path, entry, 1..=65_536) {
                        out.max_subject_chars = v;
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }

    fn neerc(&mut self, section: &Section<'_>, out: &mut Neerc) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "enabled" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.enabled = v;
                    }
                }
                "subdomain" => {
                    let Some(v) = self.non_empty(path, entry) else {
                        continue;
                    };
                    let valid = v.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                    if valid {
                        out.subdomain = v.to_ascii_lowercase();
                    } else {
                        let message = format!(
                            "{path}: {v:?} is not a domain label (letters, digits and '-', \
                             labels separated by '.')"
                        );
                        self.report(entry.value_at, message);
                    }
                }
                "default_room" => {
                    let Some(v) = self.non_empty(path, entry) else {
                        continue;
                    };
                    let valid = v
                        .chars()
                        .all(|c| !c.is_whitespace() && !c.is_control() && !"@/\"&'<>:".contains(c));
                    if valid {
                        out.default_room = v.to_lowercase();
                    } else {
                        let message = format!(
                            "{path}: {v:?} is not a room name (a JID local part: no spaces \
                             and none of @ / \\ \" & ' < > :)"
                        );
                        self.report(entry.value_at, message);
                    }
                }
                "lax_status" => {
                    if let Some(v) = self.boolean(path, entry) {
                        out.lax_status = v;
                    }
                }
                "clock_file" => {
                    if let Some(v) = self.non_empty(path, entry) {
                        out.clock_file = Some(PathBuf::from(v));
                    }
                }
                "clock_poll_ms" => {
                    if let Some(v) = self.integer(path, entry, 10..=60_000) {
                        out.clock_poll_ms = v;
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }

    fn log(&mut self, section: &Section<'_>, out: &mut Log) {
        for entry in &section.entries {
            let path = section.path(entry.name);
            let path = path.as_str();
            match entry.name {
                "level" => {
                    let Some(level) = self.string(path, entry) else {
                        continue;
                    };
                    if LOG_LEVELS.contains(&level) {
                        out.level = level.to_owned();
                    } else {
                        let mut message = format!(
                            "{path}: {level:?} is not a log level (expected one of {})",
                            quoted_list(LOG_LEVELS)
                        );
                        if let Some(known) = suggest(level, LOG_LEVELS) {
                            message.push_str(&format!("; did you mean {known:?}?"));
                        }
                        self.report(entry.value_at, message);
                    }
                }
                _ => self.unknown(section, entry),
            }
        }
    }
}

/// `"a", "b", "c"`
fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `s` is an address to connect to: `host:port` with a non-zero port, where host is
/// a name, an IPv4 address or a bracketed IPv6 address.
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !host.contains(':')
        && domain(host).is_ok()
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// Checks a domain name and returns it lowercased, or why it is invalid.
fn domain(host: &str) -> Result<String, &'static str> {
    if host.is_empty() {
        return Err("empty");
    }
    if host.len() > MAX_DOMAIN_LEN {
        return Err("longer than 1023 bytes");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    if host.contains('@') {
        return Err("contains '@'");
    }
    if host.contains('/') {
        return Err("contains '/'");
    }
    if host.split('.').any(str::is_empty) {
        return Err("has an empty label: leading, trailing or doubled '.'");
    }
    Ok(host.to_lowercase())
}

/// Checks the shape `user@host` of a bare JID and returns it lowercased.
fn bare_jid(jid: &str) -> Result<String, &'static str> {
    if jid.contains('/') {
        return Err("contains '/': a resource is not allowed");
    }
    let Some((user, host)) = jid.split_once('@') else {
        return Err("no '@'");
    };
    if host.contains('@') {
        return Err("more than one '@'");
    }
    if user.is_empty() {
        return Err("empty user part");
    }
    if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("user part contains whitespace or control characters");
    }
    if domain(host).is_err() {
        return Err("invalid host part");
    }
    Ok(jid.to_lowercase())
}

/// The known name closest to `input`, if it is close enough to be a likely typo.
fn suggest(input: &str, known: &[&'static str]) -> Option<&'static str> {
    let normalize = |s: &str| -> Vec<char> {
        s.chars()
            .map(|c| if c == '-' { '_' } else { c })
            .flat_map(char::to_lowercase)
            .collect()
    };
    let input = normalize(input);
    known
        .iter()
        .map(|&candidate| {
            let candidate_chars = normalize(candidate);
            let distance = edit_distance(&input, &candidate_chars);
            let limit = (input.len().max(candidate_chars.len()) / 3).max(1);
            (distance, limit, candidate)
        })
        .filter(|(distance, limit, _)| distance <= limit)
        .min_by_key(|(distance, _, _)| *distance)
        .map(|(_, _, candidate)| candidate)
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests;
