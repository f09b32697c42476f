//! SASL for XMPP (RFC 6120 §6), server and client sides:
//!
//! * SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677);
//! * their `-PLUS` variants with channel binding, type `tls-exporter` (RFC 9266) or
//!   `tls-server-end-point` (RFC 5929);
//! * PLAIN (RFC 4616); usernames and passwords are prepared with SASLprep (RFC 4013).
//!
//! Passwords are kept only as SCRAM keys ([`ScramKeys`]: salt, iteration count, StoredKey
//! and ServerKey). The SaltedPassword, which would be enough to log in, is never kept.
//!
//! A server runs one [`ScramServer`] per exchange:
//! [`client_first`](ScramServer::client_first) → look the user up →
//! [`server_first`](ScramServer::server_first) (a challenge) →
//! [`client_final`](ScramServer::client_final) (success data). A client runs one
//! [`ScramClient`] the same way.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use sha2::Digest;
use subtle::{Choice, ConstantTimeEq};

/// Iteration count used for new passwords unless configured otherwise, and the smallest
/// count a [`ScramClient`] accepts from a server.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Longest PLAIN field (authzid, authcid or password) [`parse_plain`] accepts, in bytes.
pub const MAX_PLAIN_FIELD: usize = 1024;

/// Length of the random salt made by [`ScramKeys::generate`], in bytes.
pub const SALT_LEN: usize = 16;

/// Random bytes in a nonce part we generate (base64-encoded on the wire).
const NONCE_BYTES: usize = 24;

// ---------------------------------------------------------------------------------------
// Hash functions
// ---------------------------------------------------------------------------------------

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// SHA-1 (SCRAM-SHA-1, RFC 5802).
    Sha1,
    /// SHA-256 (SCRAM-SHA-256, RFC 7677).
    Sha256,
}

impl HashAlgo {
    /// The name used in storage and in mechanism names: `"SHA-1"` or `"SHA-256"`.
    pub fn name(&self) -> &'static str {
        match self {
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Sha256 => "SHA-256",
        }
    }

    /// The inverse of [`HashAlgo::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SHA-1" => Some(HashAlgo::Sha1),
            "SHA-256" => Some(HashAlgo::Sha256),
            _ => None,
        }
    }

    /// Output length in bytes (20 or 32).
    pub fn output_len(&self) -> usize {
        match self {
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HashAlgo::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, data),
            HashAlgo::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, data),
        }
    }

    fn digest(&self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgo::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlgo::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)` of RFC 5802, which is PBKDF2 with HMAC.
    fn hi(&self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            HashAlgo::Sha1 => {
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out)
            }
            HashAlgo::Sha256 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// Overwrite secret bytes before they are dropped (best effort).
fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

// ---------------------------------------------------------------------------------------
// Stored keys
// ---------------------------------------------------------------------------------------

/// What the server stores for one password and one hash function (RFC 5802 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramKeys {
    /// The hash function these keys belong to.
    pub hash: HashAlgo,
    /// The salt (raw bytes, not base64).
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

/// SASLprep a password (RFC 4013, as RFC 5802 §2.2 requires).
fn prep_password(password: &str) -> Result<String, SaslError> {
    stringprep::saslprep(password)
        .map(|s| s.into_owned())
        .map_err(|_| {
            SaslError::MalformedRequest(
                "the password contains characters SASLprep prohibits".into(),
            )
        })
}

impl ScramKeys {
    /// Derive the keys: SASLprep the password, PBKDF2 → SaltedPassword →
    /// ClientKey / StoredKey / ServerKey. The SaltedPassword and ClientKey are dropped.
    ///
    /// Fails when the password contains characters SASLprep prohibits, or when
    /// `iterations` is 0.
    pub fn derive(
        hash: HashAlgo,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        let (mut client_key, keys) =
            Self::derive_with_client_key(hash, password, salt, iterations)?;
        wipe(&mut client_key);
        Ok(keys)
    }

    /// Like [`ScramKeys::derive`] but also returns the ClientKey (the client needs it).
    fn derive_with_client_key(
        hash: HashAlgo,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<(Vec<u8>, Self), SaslError> {
        if iterations == 0 {
            return Err(SaslError::Other(
                "the iteration count must be positive".into(),
            ));
        }
        let mut password = prep_password(password)?.into_bytes();
        let mut salted = hash.hi(&password, salt, iterations);
        wipe(&mut password);
        let client_key = hash.hmac(&salted, b"Client Key");
        let server_key = hash.hmac(&salted, b"Server Key");
        wipe(&mut salted);
        let keys = ScramKeys {
            hash,
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.digest(&client_key),
            server_key,
        };
        Ok((client_key, keys))
    }

    /// Derive keys with a fresh random salt of [`SALT_LEN`] (16) bytes.
    pub fn generate(hash: HashAlgo, password: &str, iterations: u32) -> Result<Self, SaslError> {
        let salt: [u8; SALT_LEN] = rand::random();
        Self::derive(hash, password, &salt, iterations)
    }

    /// Check a plaintext password (from PLAIN) against these keys. The comparison of the
    /// derived StoredKey is constant-time; the cost of PBKDF2 does not depend on the
    /// password.
    pub fn verify_password(&self, password: &str) -> bool {
        match Self::derive(self.hash, password, &self.salt, self.iterations) {
            Ok(k) => bool::from(k.stored_key.ct_eq(&self.stored_key)),
            Err(_) => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Channel binding
// ---------------------------------------------------------------------------------------

/// A channel-binding type this crate supports (RFC 5056 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CbType {
    /// `tls-exporter` (RFC 9266): the TLS 1.3 exporter with label
    /// `EXPORTER-Channel-Binding`, 32 bytes, empty context.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929): the hash of the server's certificate.
    TlsServerEndPoint,
}

impl CbType {
    /// The name used on the wire: `"tls-exporter"` or `"tls-server-end-point"`.
    pub fn name(&self) -> &'static str {
        match self {
            CbType::TlsExporter => "tls-exporter",
            CbType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    /// The inverse of [`CbType::name`]; `None` for types we do not support (such as
    /// `tls-unique`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tls-exporter" => Some(CbType::TlsExporter),
            "tls-server-end-point" => Some(CbType::TlsServerEndPoint),
            _ => None,
        }
    }
}

/// What the server knows about the connection's channel bindings.
#[derive(Clone, Debug, Default)]
pub struct ChannelBindings {
    /// `tls-exporter` data (TLS 1.3 connections only).
    pub tls_exporter: Option<Vec<u8>>,
    /// `tls-server-end-point` data.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The data for one binding type, if this connection can provide it.
    pub fn get(&self, cb: CbType) -> Option<&[u8]> {
        match cb {
            CbType::TlsExporter => self.tls_exporter.as_deref(),
            CbType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        }
    }

    /// The binding types available, in order of preference (for the
    /// `<sasl-channel-binding/>` advertisement of XEP-0440).
    pub fn available(&self) -> Vec<CbType> {
        [CbType::TlsExporter, CbType::TlsServerEndPoint]
            .into_iter()
            .filter(|t| self.get(*t).is_some())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// SASL failure conditions of RFC 6120 §6.5 this crate can produce, each with a human
/// explanation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The message does not follow the mechanism's syntax.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// Wrong password or unknown user, deliberately not told apart.
    #[error("not authorized")]
    NotAuthorized,
    /// The authorization identity is not acceptable.
    #[error("invalid authzid: {0}")]
    InvalidAuthzid(String),
    /// Channel binding was missing, unsupported, misused or did not match.
    #[error("channel binding: {0}")]
    ChannelBinding(String),
    /// Anything else (calls out of order, errors reported by the peer, …).
    #[error("{0}")]
    Other(String),
}

impl SaslError {
    /// The RFC 6120 §6.5 condition element to send in `<failure/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslError::MalformedRequest(_) => "malformed-request",
            SaslError::NotAuthorized | SaslError::ChannelBinding(_) => "not-authorized",
            SaslError::InvalidAuthzid(_) => "invalid-authzid",
            SaslError::Other(_) => "temporary-auth-failure",
        }
    }
}

fn malformed(text: impl Into<String>) -> SaslError {
    SaslError::MalformedRequest(text.into())
}

fn out_of_order(what: &str) -> SaslError {
    SaslError::Other(format!("SCRAM step out of order: {what}"))
}

// ---------------------------------------------------------------------------------------
// Mechanism names
// ---------------------------------------------------------------------------------------

/// The SASL mechanism name: `"SCRAM-SHA-1"`, `"SCRAM-SHA-256-PLUS"`, …
pub fn mechanism_name(hash: HashAlgo, plus: bool) -> &'static str {
    match (hash, plus) {
        (HashAlgo::Sha1, false) => "SCRAM-SHA-1",
        (HashAlgo::Sha1, true) => "SCRAM-SHA-1-PLUS",
        (HashAlgo::Sha256, false) => "SCRAM-SHA-256",
        (HashAlgo::Sha256, true) => "SCRAM-SHA-256-PLUS",
    }
}

/// The inverse of [`mechanism_name`]: the hash and whether it is a `-PLUS` mechanism.
/// `None` for anything but the four SCRAM mechanisms of this crate.
pub fn parse_mechanism(name: &str) -> Option<(HashAlgo, bool)> {
    [HashAlgo::Sha1, HashAlgo::Sha256]
        .into_iter()
        .flat_map(|h| [(h, false), (h, true)])
        .find(|(h, p)| mechanism_name(*h, *p) == name)
}

// ---------------------------------------------------------------------------------------
// SCRAM syntax helpers (RFC 5802 §7)
// ---------------------------------------------------------------------------------------

/// Decode a `saslname`: `=2C` → `,` and `=3D` → `=`; any other `=` is an error, and so
/// are an empty name, `,` and NUL.
fn decode_saslname(s: &str) -> Result<String, SaslError> {
    if s.is_empty() {
        return Err(malformed("empty name"));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['=', ',', '\0']) {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("invalid escape or character in a name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encode a `saslname`: `=` → `=3D`, `,` → `=2C`.
fn encode_saslname(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// The value of attribute `key` (`key=value`), if `field` is that attribute.
fn attr(field: &str, key: u8) -> Option<&str> {
    let b = field.as_bytes();
    (b.len() >= 2 && b[0] == key && b[1] == b'=').then(|| &field[2..])
}

/// A well-formed extension or unknown attribute: `ALPHA "=" value`.
fn is_attr(field: &str) -> bool {
    let b = field.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'='
}

/// `printable` of RFC 5802: %x21-2B / %x2D-7E (no `,`).
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `cb-name` of RFC 5802: 1*(ALPHA / DIGIT / "." / "-").
fn is_cb_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn random_nonce() -> String {
    let bytes: [u8; NONCE_BYTES] = rand::random();
    B64.encode(bytes)
}

fn utf8(msg: &[u8], what: &str) -> Result<String, SaslError> {
    String::from_utf8(msg.to_vec()).map_err(|_| malformed(format!("the {what} is not UTF-8")))
}

/// A per-process secret keying the fake salts of unknown users, so they are stable for a
/// username but cannot be recomputed by a client.
fn unknown_user_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(rand::random)
}

// ---------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------

/// The result of parsing a client-first-message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// The authentication identity after unescaping and SASLprep; the caller applies
    /// nodeprep and looks the user up.
    pub username: String,
    /// The authorization identity of the gs2 header (`a=`), unescaped, if any.
    pub authzid: Option<String>,
}

/// One step of a server-side SASL exchange, for callers driving several mechanisms
/// through one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this challenge and wait for the client's response.
    Continue(Vec<u8>),
    /// Authentication succeeded; send this as the additional data of `<success/>` (for
    /// SCRAM the server-final-message).
    Success(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    Start,
    GotClientFirst,
    SentServerFirst,
    Done,
}

/// The server side of one SCRAM exchange (RFC 5802 §5, RFC 7677).
pub struct ScramServer {
    hash: HashAlgo,
    plus: bool,
    offered_plus: bool,
    bindings: ChannelBindings,
    state: ServerState,
    /// The gs2 header exactly as received, including the trailing comma.
    gs2_header: String,
    /// The binding data the gs2 header asked for (empty without binding).
    cb_data: Vec<u8>,
    client_first_bare: String,
    username: String,
    /// Client nonce + server nonce.
    nonce: String,
    server_first: String,
    /// The user's keys, or fake ones for an unknown user.
    keys: Option<ScramKeys>,
    known_user: bool,
    downgrade: bool,
    unknown_user_iterations: u32,
    #[cfg(test)]
    fixed_server_nonce: Option<String>,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &mechanism_name(self.hash, self.plus))
            .field("state", &self.state)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Start an exchange.
    ///
    /// `plus`: the mechanism chosen was the `-PLUS` one. `offered_plus`: whether we
    /// advertised any `-PLUS` mechanism on this connection (decides how a gs2 `y` flag is
    /// treated). `bindings`: what this TLS connection can provide.
    pub fn new(hash: HashAlgo, plus: bool, offered_plus: bool, bindings: ChannelBindings) -> Self {
        ScramServer {
            hash,
            plus,
            offered_plus,
            bindings,
            state: ServerState::Start,
            gs2_header: String::new(),
            cb_data: Vec::new(),
            client_first_bare: String::new(),
            username: String::new(),
            nonce: String::new(),
            server_first: String::new(),
            keys: None,
            known_user: false,
            downgrade: false,
            unknown_user_iterations: DEFAULT_ITERATIONS,
            #[cfg(test)]
            fixed_server_nonce: None,
        }
    }

    /// The iteration count announced for unknown users (default [`DEFAULT_ITERATIONS`]).
    /// Set it to the count used for new passwords so unknown users look like real ones.
    pub fn with_unknown_user_iterations(mut self, iterations: u32) -> Self {
        self.unknown_user_iterations = iterations.max(1);
        self
    }

    /// Use a fixed server nonce part (test vectors only).
    #[cfg(test)]
    pub(crate) fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.fixed_server_nonce = Some(nonce.to_owned());
        self
    }

    #[cfg(test)]
    fn server_nonce(&self) -> String {
        self.fixed_server_nonce.clone().unwrap_or_else(random_nonce)
    }

    #[cfg(not(test))]
    fn server_nonce(&self) -> String {
        random_nonce()
    }

    /// Parse the client-first-message (`gs2-header client-first-message-bare`).
    ///
    /// Returns the username (after SASLprep; the caller nodepreps it) and the optional
    /// authzid. Errors: a malformed message or gs2 header, the reserved `m=` extension
    /// ([`SaslError::MalformedRequest`]); flag `p` with a mechanism without `-PLUS`, a
    /// `-PLUS` mechanism without flag `p`, flag `y` with a `-PLUS` mechanism, or a binding
    /// type this connection cannot provide, such as `tls-unique`
    /// ([`SaslError::ChannelBinding`]).
    pub fn client_first(&mut self, msg: &[u8]) -> Result<ClientFirst, SaslError> {
        if self.state != ServerState::Start {
            return Err(out_of_order("client-first-message received twice"));
        }
        // Whatever happens, this exchange cannot start again.
        self.state = ServerState::Done;
        let msg = utf8(msg, "client-first-message")?;
        let mut parts = msg.splitn(3, ',');
        let (Some(flag), Some(authz), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "the client-first-message has no complete gs2 header",
            ));
        };

        // gs2-cbind-flag
        match flag {
            "n" | "y" if self.plus => {
                return Err(SaslError::ChannelBinding(format!(
                    "{} requires channel binding (gs2 flag 'p')",
                    mechanism_name(self.hash, true)
                )));
            }
            "n" => {}
            "y" => self.downgrade = self.offered_plus,
            _ => {
                let Some(name) = flag.strip_prefix("p=").filter(|n| is_cb_name(n)) else {
                    return Err(malformed("the gs2 flag must be 'n', 'y' or 'p=<cb-name>'"));
                };
                if !self.plus {
                    return Err(SaslError::ChannelBinding(format!(
                        "channel binding requested with {}, which has no binding; use {}",
                        mechanism_name(self.hash, false),
                        mechanism_name(self.hash, true)
                    )));
                }
                let data = CbType::from_name(name).and_then(|t| self.bindings.get(t));
                let Some(data) = data else {
                    return Err(SaslError::ChannelBinding(format!(
                        "channel binding type '{name}' is not supported on this connection"
                    )));
                };
                self.cb_data = data.to_vec();
            }
        }

        // gs2 authzid
        let authzid = if authz.is_empty() {
            None
        } else {
            let raw =
                attr(authz, b'a').ok_or_else(|| malformed("invalid authzid in the gs2 header"))?;
            let z =
                decode_saslname(raw).map_err(|_| malformed("invalid authzid in the gs2 header"))?;
            Some(z)
        };

        // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
        let mut fields = bare.split(',');
        let first = fields.next().unwrap_or_default();
        if attr(first, b'm').is_some() {
            return Err(malformed(
                "mandatory SCRAM extensions ('m=') are not supported",
            ));
        }
        let user = attr(first, b'n').ok_or_else(|| malformed("no username ('n=')"))?;
        let client_nonce = fields
            .next()
            .and_then(|f| attr(f, b'r'))
            .ok_or_else(|| malformed("no client nonce ('r=')"))?;
        if !is_printable(client_nonce) {
            return Err(malformed(
                "the client nonce is empty or has invalid characters",
            ));
        }
        if !fields.all(is_attr) {
            return Err(malformed("invalid extension in the client-first-message"));
        }
        let username = decode_saslname(user)?;
        let username = stringprep::saslprep(&username)
            .map_err(|_| malformed("the username contains characters SASLprep prohibits"))?
            .into_owned();
        if username.is_empty() {
            return Err(malformed("the username is empty"));
        }

        self.gs2_header = format!("{flag},{authz},");
        self.client_first_bare = bare.to_owned();
        self.nonce = format!("{client_nonce}{}", self.server_nonce());
        self.username = username.clone();
        self.state = ServerState::GotClientFirst;
        Ok(ClientFirst { username, authzid })
    }

    /// Produce the server-first-message (the challenge) from the user's stored keys.
    ///
    /// With `None` (unknown user), or keys for another hash, the exchange continues with
    /// a fake salt, stable per username, and the iteration count of
    /// [`with_unknown_user_iterations`](Self::with_unknown_user_iterations), so a client
    /// cannot tell the user does not exist; [`client_final`](Self::client_final) then
    /// fails with [`SaslError::NotAuthorized`].
    ///
    /// Called out of order it returns an empty message and the exchange fails.
    pub fn server_first(&mut self, keys: Option<ScramKeys>) -> Vec<u8> {
        if self.state != ServerState::GotClientFirst {
            self.state = ServerState::Done;
            return Vec::new();
        }
        let keys = keys.filter(|k| k.hash == self.hash);
        self.known_user = keys.is_some();
        let keys = keys.unwrap_or_else(|| self.fake_keys());
        self.server_first = format!(
            "r={},s={},i={}",
            self.nonce,
            B64.encode(&keys.salt),
            keys.iterations
        );
        self.keys = Some(keys);
        self.state = ServerState::SentServerFirst;
        self.server_first.clone().into_bytes()
    }

    /// Keys for an unknown user: a salt keyed on the username with a per-process secret,
    /// and random StoredKey/ServerKey that no proof can match.
    fn fake_keys(&self) -> ScramKeys {
        let mut input = self.hash.name().as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(self.username.as_bytes());
        let mut salt = HashAlgo::Sha256.hmac(unknown_user_secret(), &input);
        salt.truncate(SALT_LEN);
        let mut stored_key = vec![0u8; self.hash.output_len()];
        let mut server_key = vec![0u8; self.hash.output_len()];
        rand::fill(&mut stored_key[..]);
        rand::fill(&mut server_key[..]);
        ScramKeys {
            hash: self.hash,
            salt,
            iterations: self.unknown_user_iterations,
            stored_key,
            server_key,
        }
    }

    /// Verify the client-final-message: the nonce must equal the combined nonce, `c=` must
    /// be exactly base64(gs2 header + binding data), and the proof must match
    /// (compared in constant time). Returns the server-final-message (`v=…`).
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        if self.state != ServerState::SentServerFirst {
            self.state = ServerState::Done;
            return Err(out_of_order(
                "client-final-message before server-first-message",
            ));
        }
        self.state = ServerState::Done;
        let msg = utf8(msg, "client-final-message")?;
        // client-final-message = client-final-message-without-proof "," proof
        let (without_proof, proof) = msg
            .rsplit_once(',')
            .and_then(|(w, p)| Some((w, attr(p, b'p')?)))
            .ok_or_else(|| {
                malformed("the client-final-message does not end with a proof ('p=')")
            })?;
        let mut fields = without_proof.split(',');
        let c = fields
            .next()
            .and_then(|f| attr(f, b'c'))
            .ok_or_else(|| malformed("no channel binding field ('c=')"))?;
        let r = fields
            .next()
            .and_then(|f| attr(f, b'r'))
            .ok_or_else(|| malformed("no nonce ('r=')"))?;
        if !fields.all(is_attr) {
            return Err(malformed("invalid extension in the client-final-message"));
        }

        let got_cb = B64
            .decode(c)
            .map_err(|_| malformed("the channel binding field is not base64"))?;
        let mut expected_cb = self.gs2_header.as_bytes().to_vec();
        expected_cb.extend_from_slice(&self.cb_data);
        if !bool::from(got_cb.ct_eq(&expected_cb)) {
            return Err(SaslError::ChannelBinding(
                "the channel binding data does not match the gs2 header and this connection".into(),
            ));
        }
        if r != self.nonce {
            return Err(malformed(
                "the nonce does not match the one of this exchange",
            ));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("the proof is not base64"))?;
        let keys = self.keys.as_ref().ok_or_else(|| out_of_order("no keys"))?;
        if proof.len() != self.hash.output_len() {
            return Err(malformed("the proof has the wrong length"));
        }

        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let mut client_signature = self.hash.hmac(&keys.stored_key, auth_message.as_bytes());
        let mut client_key = xor(&proof, &client_signature);
        let matches = self.hash.digest(&client_key).ct_eq(&keys.stored_key);
        wipe(&mut client_key);
        wipe(&mut client_signature);
        if !bool::from(matches & Choice::from(u8::from(self.known_user))) {
            return Err(SaslError::NotAuthorized);
        }
        let server_signature = self.hash.hmac(&keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }

    /// True when the client used gs2 flag `y` although we offered `-PLUS` (a downgrade
    /// suspicion under RFC 5802 §6). The exchange is accepted by policy, since clients
    /// such as slixmpp on TLS 1.3 do this because they only know `tls-unique`; the
    /// caller should log it.
    pub fn downgrade_flag_seen(&self) -> bool {
        self.downgrade
    }

    /// The username parsed from the client-first-message (empty before).
    pub fn username(&self) -> &str {
        &self.username
    }
}

// ---------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------

/// The client side of one SCRAM exchange (RFC 5802 §5, RFC 7677).
pub struct ScramClient {
    hash: HashAlgo,
    username: String,
    password: String,
    authzid: Option<String>,
    cb: Option<(CbType, Vec<u8>)>,
    supports_cb: bool,
    nonce: String,
    client_first_bare: Option<String>,
    server_signature: Option<Vec<u8>>,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &mechanism_name(self.hash, self.cb.is_some()))
            .field("username", &self.username)
            .field("cb", &self.cb.as_ref().map(|(t, _)| t.name()))
            .finish_non_exhaustive()
    }
}

impl Drop for ScramClient {
    fn drop(&mut self) {
        let mut password = std::mem::take(&mut self.password).into_bytes();
        wipe(&mut password);
    }
}

impl ScramClient {
    /// Start an exchange.
    ///
    /// `cb`: `Some((type, data))` for a `-PLUS` mechanism (gs2 flag `p`); `None` for
    /// plain SCRAM (gs2 flag `n`, or `y` after
    /// [`with_client_supports_binding`](Self::with_client_supports_binding)).
    pub fn new(
        hash: HashAlgo,
        username: &str,
        password: &str,
        cb: Option<(CbType, Vec<u8>)>,
    ) -> Self {
        ScramClient {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            authzid: None,
            cb,
            supports_cb: false,
            nonce: random_nonce(),
            client_first_bare: None,
            server_signature: None,
        }
    }

    /// Without binding, send gs2 flag `y`: "I support channel binding but think the server
    /// does not" (RFC 5802 §6). Use it when binding is possible but the server offered no
    /// `-PLUS` mechanism. Has no effect with binding.
    pub fn with_client_supports_binding(mut self) -> Self {
        self.supports_cb = true;
        self
    }

    /// Send gs2 flag `y` (same as
    /// [`with_client_supports_binding`](Self::with_client_supports_binding)); tests use
    /// it to emulate slixmpp, which does so even when `-PLUS` was offered.
    pub fn with_gs2_flag_y(self) -> Self {
        self.with_client_supports_binding()
    }

    /// Ask to act as `authzid` (gs2 `a=`).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(authzid.to_owned());
        self
    }

    /// Use a fixed client nonce (test vectors only).
    #[cfg(test)]
    pub(crate) fn with_nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_owned();
        self
    }

    fn gs2_header(&self) -> String {
        let flag = match (&self.cb, self.supports_cb) {
            (Some((t, _)), _) => format!("p={}", t.name()),
            (None, true) => "y".to_owned(),
            (None, false) => "n".to_owned(),
        };
        match &self.authzid {
            Some(z) => format!("{flag},a={},", encode_saslname(z)),
            None => format!("{flag},,"),
        }
    }

    /// The client-first-message (`gs2-header n=<user>,r=<nonce>`). The username is
    /// SASLprepped when possible and escaped.
    pub fn client_first(&mut self) -> Vec<u8> {
        let user = stringprep::saslprep(&self.username)
            .map(|u| u.into_owned())
            .unwrap_or_else(|_| self.username.clone());
        let bare = format!("n={},r={}", encode_saslname(&user), self.nonce);
        let msg = format!("{}{bare}", self.gs2_header());
        self.client_first_bare = Some(bare);
        self.server_signature = None;
        msg.into_bytes()
    }

    /// Answer the server-first-message with the client-final-message.
    ///
    /// Fails when the message is malformed, uses the reserved `m=` extension, reports an
    /// error (`e=`), does not extend our nonce, or has an iteration count below
    /// [`DEFAULT_ITERATIONS`].
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let bare = self
            .client_first_bare
            .clone()
            .ok_or_else(|| out_of_order("server-first-message before client-first-message"))?;
        let sf = utf8(server_first, "server-first-message")?;
        let mut fields = sf.split(',');
        let first = fields.next().unwrap_or_default();
        if let Some(e) = attr(first, b'e') {
            return Err(SaslError::Other(format!(
                "the server reported an error: {e}"
            )));
        }
        if attr(first, b'm').is_some() {
            return Err(malformed(
                "mandatory SCRAM extensions ('m=') are not supported",
            ));
        }
        let r = attr(first, b'r').ok_or_else(|| malformed("no nonce ('r=')"))?;
        let s = fields
            .next()
            .and_then(|f| attr(f, b's'))
            .ok_or_else(|| malformed("no salt ('s=')"))?;
        let i = fields
            .next()
            .and_then(|f| attr(f, b'i'))
            .ok_or_else(|| malformed("no iteration count ('i=')"))?;
        if !fields.all(is_attr) {
            return Err(malformed("invalid extension in the server-first-message"));
        }
        if !is_printable(r) || !r.starts_with(&self.nonce) || r.len() == self.nonce.len() {
            return Err(malformed(
                "the server nonce does not extend the client nonce",
            ));
        }
        let salt = B64
            .decode(s)
            .map_err(|_| malformed("the salt is not base64"))?;
        if salt.is_empty() {
            return Err(malformed("the salt is empty"));
        }
        if !i.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("invalid iteration count"));
        }
        let iterations: u32 = i
            .parse()
            .map_err(|_| malformed("invalid iteration count"))?;
        if iterations < DEFAULT_ITERATIONS {
            return Err(malformed(format!(
                "iteration count {iterations} is below the minimum of {DEFAULT_ITERATIONS}"
            )));
        }

        let (mut client_key, keys) =
            ScramKeys::derive_with_client_key(self.hash, &self.password, &salt, iterations)?;
        let mut cb = self.gs2_header().into_bytes();
        if let Some((_, data)) = &self.cb {
            cb.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={r}", B64.encode(cb));
        let auth_message = format!("{bare},{sf},{without_proof}");
        let client_signature = self.hash.hmac(&keys.stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        wipe(&mut client_key);
        self.server_signature = Some(self.hash.hmac(&keys.server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Check the server-final-message: `v=` must carry the expected ServerSignature (the
    /// server knows our keys). An `e=` error from the server is reported as
    /// [`SaslError::Other`], a wrong signature as [`SaslError::NotAuthorized`].
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| out_of_order("server-final-message before client-final-message"))?;
        let sf = utf8(server_final, "server-final-message")?;
        let mut fields = sf.split(',');
        let first = fields.next().unwrap_or_default();
        if let Some(e) = attr(first, b'e') {
            return Err(SaslError::Other(format!(
                "the server reported an error: {e}"
            )));
        }
        let v = attr(first, b'v').ok_or_else(|| malformed("no server signature ('v=')"))?;
        if !fields.all(is_attr) {
            return Err(malformed("invalid extension in the server-final-message"));
        }
        let v = B64
            .decode(v)
            .map_err(|_| malformed("the server signature is not base64"))?;
        if bool::from(v.ct_eq(expected)) {
            Ok(())
        } else {
            Err(SaslError::NotAuthorized)
        }
    }
}

// ---------------------------------------------------------------------------------------
// PLAIN (RFC 4616)
// ---------------------------------------------------------------------------------------

/// Parse a PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
///
/// Returns `(authzid, authcid, password)`, the authzid `None` when empty. Rejects a
/// wrong number of fields (which covers NUL inside a field), an empty authcid or
/// password, fields over [`MAX_PLAIN_FIELD`] bytes and invalid UTF-8, all as
/// [`SaslError::MalformedRequest`]. No preparation is applied: the caller nodepreps the
/// authcid, and [`ScramKeys::verify_password`] SASLpreps the password.
pub fn parse_plain(msg: &[u8]) -> Result<(Option<String>, String, String), SaslError> {
    let parts: Vec<&[u8]> = msg.split(|b| *b == 0).collect();
    let [authzid, authcid, password] = parts[..] else {
        return Err(malformed(
            "PLAIN takes exactly authzid, username and password separated by NUL",
        ));
    };
    let field = |bytes: &[u8], what: &str| -> Result<String, SaslError> {
        if bytes.len() > MAX_PLAIN_FIELD {
            return Err(malformed(format!(
                "the {what} is longer than {MAX_PLAIN_FIELD} bytes"
            )));
        }
        utf8(bytes, what)
    };
    let authzid = field(authzid, "authzid")?;
    let authcid = field(authcid, "username")?;
    let password = field(password, "password")?;
    if authcid.is_empty() {
        return Err(malformed("the username is empty"));
    }
    if password.is_empty() {
        return Err(malformed("the password is empty"));
    }
    Ok(((!authzid.is_empty()).then_some(authzid), authcid, password))
}

/// Build a PLAIN message (`[authzid] NUL authcid NUL passwd`).
pub fn plain_message(authzid: Option<&str>, authcid: &str, password: &str) -> Vec<u8> {
    let authzid = authzid.unwrap_or_default();
    let mut msg = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    msg.extend_from_slice(authzid.as_bytes());
    msg.push(0);
    msg.extend_from_slice(authcid.as_bytes());
    msg.push(0);
    msg.extend_from_slice(password.as_bytes());
    msg
}

#[cfg(test)]
mod tests;
