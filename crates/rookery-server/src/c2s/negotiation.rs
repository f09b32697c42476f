//! Stream negotiation (RFC 6120 §4–§7) as explicit steps: header → features → STARTTLS →
//! SASL → reset → bind. Resets happen in [`Conn::reset`] only.

use super::{Conn, End, policy};
use crate::accounts::PasswordCheck;
use crate::error::{StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, el};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jid::BareJid;
use minidom::Element;
use rookery_sasl::{HashAlgo, ScramServer};
use rookery_xml::{StreamEvent, StreamHeader};
use std::time::{Duration, Instant};

/// The outcome of negotiation: who authenticated.
pub(crate) struct Authenticated {
    pub jid: BareJid,
}

/// Negotiate until the client is authenticated and has its post-SASL stream open (features
/// with bind sent). Ends with a stream error or the peer's close otherwise.
pub(crate) async fn negotiate(server: &Server, conn: &mut Conn) -> Result<Authenticated, End> {
    let limit = Duration::from_secs(server.config().limits.handshake_timeout_secs.max(1));
    match tokio::time::timeout(limit, negotiate_steps(server, conn)).await {
        Ok(r) => r,
        Err(_) => Err(End::Stream(StreamError::new(
            StreamCondition::ConnectionTimeout,
            format!(
                "authentication was not completed within {} seconds",
                limit.as_secs()
            ),
        ))),
    }
}

async fn negotiate_steps(server: &Server, conn: &mut Conn) -> Result<Authenticated, End> {
    let cfg = server.config();
    // An external backend is sent plaintext passwords: TLS always, even on loopback.
    let external = server.auth_backend().is_external();
    let loopback_plain =
        cfg.auth.allow_plaintext_on_loopback && conn.peer.ip().is_loopback() && !external;
    let mut attempts = 0u32;
    loop {
        open_stream(server, conn).await?;
        if !conn.secure && !loopback_plain {
            // STARTTLS is required before anything else.
            let features = el("features", ns::STREAMS)
                .with_child(el("starttls", ns::TLS).with_child(el("required", ns::TLS)));
            send_features(conn, features).await?;
            let e = next_element(conn).await?;
            if !e.is("starttls", ns::TLS) {
                return Err(StreamError::new(
                    StreamCondition::PolicyViolation,
                    "STARTTLS is required before authentication on this server",
                )
                .into());
            }
            conn.send_raw(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes())
                .await?;
            conn.start_tls(server).await?;
            conn.reset();
            continue;
        }
        // SASL.
        let offered_plus = !external
            && (conn.bindings.tls_exporter.is_some()
                || conn.bindings.tls_server_end_point.is_some());
        let mechs = mechanisms(server, conn, offered_plus);
        let mut features = el("features", ns::STREAMS);
        if !conn.secure && server.tls().is_some() {
            features.append_child(el("starttls", ns::TLS));
        }
        let mut mech_el = el("mechanisms", ns::SASL);
        for m in &mechs {
            mech_el.append_child(el("mechanism", ns::SASL).with_text(m));
        }
        features.append_child(mech_el);
        if offered_plus {
            let mut cb = el("sasl-channel-binding", ns::SASL_CB);
            if conn.bindings.tls_exporter.is_some() {
                cb.append_child(
                    el("channel-binding", ns::SASL_CB).with_attr("type", "tls-exporter"),
                );
            }
            cb.append_child(
                el("channel-binding", ns::SASL_CB).with_attr("type", "tls-server-end-point"),
            );
            features.append_child(cb);
        }
        if cfg.auth.registration && (conn.secure || loopback_plain) {
            features.append_child(el("register", ns::REGISTER_FEATURE));
        }
        send_features(conn, features).await?;
        loop {
            let e = next_element(conn).await?;
            if e.is("starttls", ns::TLS) && !conn.secure && server.tls().is_some() {
                conn.send_raw(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes())
                    .await?;
                conn.start_tls(server).await?;
                conn.reset();
                break;
            }
            if e.is("iq", ns::CLIENT) && cfg.auth.registration {
                // XEP-0077 in-band registration before authentication.
                let reply = crate::modules::register::pre_auth(server, &conn.host, e).await;
                conn.send_stanza(reply).await?;
                continue;
            }
            if !e.is("auth", ns::SASL) {
                return Err(StreamError::new(
                    StreamCondition::NotAuthorized,
                    format!("<{}/> is not allowed before authentication", e.name()),
                )
                .into());
            }
            match authenticate(server, conn, &mechs, offered_plus, e).await? {
                Some(jid) => {
                    conn.reset();
                    conn.jid = Some(jid.to_string());
                    tracing::info!(peer = %conn.peer, %jid, "c2s authenticated");
                    open_stream(server, conn).await?;
                    let features = el("features", ns::STREAMS)
                        .with_child(el("bind", ns::BIND))
                        .with_child(
                            el("session", ns::SESSION).with_child(el("optional", ns::SESSION)),
                        )
                        .with_child(el("ver", ns::ROSTER_VER))
                        .with_child(el("sub", ns::PRE_APPROVAL));
                    send_features(conn, features).await?;
                    return Ok(Authenticated { jid });
                }
                None => {
                    attempts += 1;
                    if attempts >= 5 {
                        return Err(policy("too many failed authentication attempts").into());
                    }
                }
            }
        }
    }
}

/// Read the client's stream header, check it, answer with ours.
async fn open_stream(server: &Server, conn: &mut Conn) -> Result<(), End> {
    let header = match conn.next_event().await? {
        Some(StreamEvent::Header(h)) => h,
        Some(_) => {
            return Err(StreamError::new(
                StreamCondition::NotWellFormed,
                "expected a stream header",
            )
            .into());
        }
        None => return Err(End::Closed),
    };
    if let Err(e) = check_header(server, conn, &header) {
        return Err(e.into());
    }
    conn.send_header().await?;
    Ok(())
}

fn check_header(server: &Server, conn: &mut Conn, h: &StreamHeader) -> Result<(), StreamError> {
    if let Some(to) = &h.to {
        let to = to.to_lowercase();
        if conn.host.is_empty() || conn.host == to {
            conn.host = to;
        }
    }
    if h.ns != ns::STREAMS || h.name != "stream" {
        return Err(StreamError::new(
            StreamCondition::InvalidNamespace,
            format!(
                "the root element must be <stream xmlns='{}'>, not <{} xmlns='{}'>",
                ns::STREAMS,
                h.name,
                h.ns
            ),
        ));
    }
    if h.default_ns.as_deref() != Some(ns::CLIENT) {
        return Err(StreamError::new(
            StreamCondition::InvalidNamespace,
            format!(
                "the stream's default namespace must be '{}' on this port",
                ns::CLIENT
            ),
        ));
    }
    match h.to.as_deref() {
        None => {
            return Err(StreamError::new(
                StreamCondition::HostUnknown,
                "the stream header has no 'to' address",
            ));
        }
        Some(to) if !server.serves_host(&to.to_lowercase()) => {
            conn.host = server.config().hosts[0].clone();
            return Err(StreamError::new(
                StreamCondition::HostUnknown,
                format!("this server does not serve {to}"),
            ));
        }
        _ => {}
    }
    match h.version.as_deref() {
        Some(v) if v.split('.').next() == Some("1") => Ok(()),
        Some(v) => Err(StreamError::new(
            StreamCondition::UnsupportedVersion,
            format!("XMPP version {v} is not supported; this server speaks 1.0"),
        )),
        None => Err(StreamError::new(
            StreamCondition::UnsupportedVersion,
            "the stream header has no version; pre-1.0 streams are not supported",
        )),
    }
}

async fn send_features(conn: &mut Conn, features: Element) -> Result<(), End> {
    // Serialised with the stream prefix, as clients expect <stream:features>.
    let inner: Vec<u8> = features
        .children()
        .flat_map(|c| rookery_xml::serialize(c, ns::CLIENT))
        .collect();
    let mut out = b"<stream:features>".to_vec();
    out.extend_from_slice(&inner);
    out.extend_from_slice(b"</stream:features>");
    conn.send_raw(&out).await?;
    Ok(())
}

/// The next top-level element; the peer's close ends negotiation.
pub(crate) async fn next_element(conn: &mut Conn) -> Result<Element, End> {
    match conn.next_event().await? {
        Some(StreamEvent::Stanza(e)) => Ok(e),
        Some(StreamEvent::End) | None => Err(End::Closed),
        Some(StreamEvent::Header(_)) => Err(StreamError::new(
            StreamCondition::NotWellFormed,
            "a second stream header was sent without a stream reset",
        )
        .into()),
    }
}

fn mechanisms(server: &Server, conn: &Conn, offered_plus: bool) -> Vec<String> {
    let mut v = Vec::new();
    if server.auth_backend().is_external() {
        // SCRAM needs keys stored here; the external program only checks passwords.
        if conn.secure && server.config().auth.allow_plain {
            v.push("PLAIN".to_owned());
        }
        return v;
    }
    for hash in [HashAlgo::Sha256, HashAlgo::Sha1] {
        if offered_plus {
            v.push(rookery_sasl::mechanism_name(hash, true).to_owned());
        }
    }
    for hash in [HashAlgo::Sha256, HashAlgo::Sha1] {
        v.push(rookery_sasl::mechanism_name(hash, false).to_owned());
    }
    if conn.secure && server.config().auth.allow_plain {
        v.push("PLAIN".to_owned());
    }
    v
}

fn sasl_failure(condition: &str, text: &str) -> Vec<u8> {
    format!(
        "<failure xmlns='{}'><{condition}/><text xml:lang='en'>{}</text></failure>",
        ns::SASL,
        crate::xml::escape(text)
    )
    .into_bytes()
}

fn decode_b64(e: &Element) -> Result<Vec<u8>, ()> {
    let t = e.text();
    let t = t.trim();
    if t.is_empty() || t == "=" {
        return Ok(Vec::new());
    }
    B64.decode(t).map_err(|_| ())
}

/// One SASL exchange. `Ok(Some(jid))` on success, `Ok(None)` after a failure was sent.
async fn authenticate(
    server: &Server,
    conn: &mut Conn,
    mechs: &[String],
    offered_plus: bool,
    auth: Element,
) -> Result<Option<BareJid>, End> {
    let ip = conn.peer.ip();
    let mech = auth.get_attr("mechanism").unwrap_or("").to_owned();
    if !mechs.contains(&mech) {
        let text = format!(
            "mechanism '{mech}' is not offered; use one of {}",
            mechs.join(", ")
        );
        conn.send_raw(&sasl_failure("invalid-mechanism", &text))
            .await?;
        return Ok(None);
    }
    if !server.auth_allowed(ip) {
        tracing::warn!(peer = %conn.peer, "authentication refused: too many failures from this address");
        let text = "too many failed attempts from your address; wait a minute and try again";
        conn.send_raw(&sasl_failure("temporary-auth-failure", text))
            .await?;
        return Ok(None);
    }
    let Ok(initial) = decode_b64(&auth) else {
        conn.send_raw(&sasl_failure(
            "incorrect-encoding",
            "the initial response is not valid base64",
        ))
        .await?;
        return Ok(None);
    };
    let started = Instant::now();
    let result = if mech == "PLAIN" {
        let r = plain(server, conn, &initial).await;
        if r.is_ok() {
            conn.send_raw(format!("<success xmlns='{}'/>", ns::SASL).as_bytes())
                .await?;
        }
        r
    } else {
        scram(server, conn, &mech, offered_plus, initial).await?
    };
    match result {
        Ok(jid) => {
            server.note_login(&jid);
            Ok(Some(jid))
        }
        Err((condition, text, user)) => {
            tracing::info!(peer = %conn.peer, user = %user, mechanism = %mech, reason = %text, "authentication failed");
            // A failure before any credential was checked (no user named yet: a malformed
            // message, a channel-binding type we cannot provide) is no guess at a
            // password: it is answered at once and not counted, so that clients which try
            // -PLUS with tls-unique (slixmpp) fall back to plain SCRAM quickly.
            // Nor is a temporary failure (the store or the external program could not
            // answer): the password was not judged.
            let guess = !user.is_empty() && condition != "temporary-auth-failure";
            let over = guess && server.auth_failed(ip);
            if guess {
                // A uniform delay makes guessing slow and hides timing differences.
                let delay = Duration::from_millis(server.config().auth.failure_delay_ms);
                tokio::time::sleep(delay.saturating_sub(started.elapsed())).await;
            }
            conn.send_raw(&sasl_failure(condition, &text)).await?;
            if over {
                return Err(
                    policy("too many failed authentication attempts from your address").into(),
                );
            }
            Ok(None)
        }
    }
}

type AuthFailure = (&'static str, String, String);

fn user_jid(server: &Server, host: &str, username: &str) -> Result<BareJid, AuthFailure> {
    let bad = || {
        (
            "not-authorized",
            "wrong username or password".to_owned(),
            username.to_owned(),
        )
    };
    if !server.serves_host(host) {
        return Err(bad());
    }
    BareJid::new(&format!("{username}@{host}")).map_err(|_| bad())
}

async fn plain(server: &Server, conn: &Conn, msg: &[u8]) -> Result<BareJid, AuthFailure> {
    let (authzid, authcid, password) = rookery_sasl::parse_plain(msg)
        .map_err(|e| ("malformed-request", e.to_string(), String::new()))?;
    let jid = user_jid(server, &conn.host, &authcid)?;
    check_authzid(authzid.as_deref(), &jid)?;
    let node = jid.node().map(|n| n.as_str()).unwrap_or_default();
    match server.accounts().check_password(&jid, &password).await {
        Ok(PasswordCheck::Valid) => Ok(jid),
        Ok(PasswordCheck::Disabled) => Err(account_disabled(node)),
        Ok(PasswordCheck::Invalid) => Err((
            "not-authorized",
            "wrong username or password".into(),
            authcid,
        )),
        Err(e) => Err(("temporary-auth-failure", e.to_string(), authcid)),
    }
}

/// A disabled account (XEP-0133 disable-user) is refused with RFC 6120's
/// `account-disabled`, after its credentials were checked and before `<success/>`.
fn account_disabled(user: &str) -> AuthFailure {
    (
        "account-disabled",
        "this account has been disabled by an administrator".into(),
        user.to_owned(),
    )
}

fn check_authzid(authzid: Option<&str>, jid: &BareJid) -> Result<(), AuthFailure> {
    match authzid {
        None | Some("") => Ok(()),
        Some(z) if BareJid::new(z).map(|b| b == *jid).unwrap_or(false) => Ok(()),
        Some(z) => Err((
            "invalid-authzid",
            format!("you may not act as {z}"),
            jid.to_string(),
        )),
    }
}

async fn scram(
    server: &Server,
    conn: &mut Conn,
    mech: &str,
    offered_plus: bool,
    initial: Vec<u8>,
) -> Result<Result<BareJid, AuthFailure>, End> {
    let (hash, plus) = rookery_sasl::parse_mechanism(mech).expect("offered mechanism");
    let mut s = ScramServer::new(hash, plus, offered_plus, conn.bindings.clone());
    let first = match s.client_first(&initial) {
        Ok(f) => f,
        Err(e) => return Ok(Err((e.condition(), e.to_string(), String::new()))),
    };
    let jid = user_jid(server, &conn.host, &first.username).ok();
    if let Some(j) = &jid
        && let Err(f) = check_authzid(first.authzid.as_deref(), j)
    {
        return Ok(Err(f));
    }
    let mut disabled = false;
    let keys = match &jid {
        Some(j) => {
            let node = j.node().map(|n| n.as_str()).unwrap_or_default();
            match server
                .stores()
                .accounts
                .login_credential(&conn.host, node, hash.name())
                .await
            {
                Ok(c) => c.map(|(c, off)| {
                    disabled = off;
                    crate::accounts::keys_from_credential(c)
                }),
                Err(e) => {
                    return Ok(Err((
                        "temporary-auth-failure",
                        format!("database error: {e}"),
                        first.username,
                    )));
                }
            }
        }
        None => None,
    };
    let challenge = s.server_first(keys);
    conn.send_raw(
        format!(
            "<challenge xmlns='{}'>{}</challenge>",
            ns::SASL,
            B64.encode(&challenge)
        )
        .as_bytes(),
    )
    .await?;
    let resp = next_element(conn).await?;
    if resp.is("abort", ns::SASL) {
        return Ok(Err((
            "aborted",
            "authentication aborted by the client".into(),
            first.username,
        )));
    }
    if !resp.is("response", ns::SASL) {
        return Err(StreamError::new(
            StreamCondition::NotAuthorized,
            format!("expected a SASL <response/>, got <{}/>", resp.name()),
        )
        .into());
    }
    let Ok(data) = decode_b64(&resp) else {
        return Ok(Err((
            "incorrect-encoding",
            "the response is not valid base64".into(),
            first.username,
        )));
    };
    match s.client_final(&data) {
        Ok(server_final) => {
            let Some(jid) = jid else {
                return Ok(Err((
                    "not-authorized",
                    "wrong username or password".into(),
                    first.username,
                )));
            };
            if disabled {
                let node = jid.node().map(|n| n.as_str()).unwrap_or_default();
                return Ok(Err(account_disabled(node)));
            }
            if s.downgrade_flag_seen() {
                tracing::info!(peer = %conn.peer, %jid, "client used gs2 flag 'y' although -PLUS was offered; accepted (it may support no binding type we offer)");
            }
            conn.send_raw(
                format!(
                    "<success xmlns='{}'>{}</success>",
                    ns::SASL,
                    B64.encode(&server_final)
                )
                .as_bytes(),
            )
            .await?;
            Ok(Ok(jid))
        }
        Err(e) => Ok(Err((e.condition(), e.to_string(), first.username))),
    }
}
