//! Stream negotiation (RFC 6120 §4–§7): stream headers and features, STARTTLS, SASL,
//! resource binding and — when a server still requires it — RFC 3921 sessions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jid::{FullJid, Jid};
use minidom::Element;
use rookery_sasl::ScramClient;
use rookery_xml::StreamEvent;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::mechanism::{self, SaslOffer};
use crate::tls::{self, TlsInfo};
use crate::xml::{self, child_text};
use crate::{BoxIo, Client, ClientConfig, ClientError, Security, is_iq_response, ns, stream_error};

/// Who we log in as, parsed from [`ClientConfig::jid`].
struct Identity {
    /// The normalised bare JID.
    bare: String,
    /// Its domain: the stream's `to` and the TLS server name.
    domain: String,
    /// Its local part: the SASL authentication identity.
    node: String,
    /// The resource to request.
    resource: Option<String>,
}

impl Identity {
    fn new(config: &ClientConfig) -> Result<Identity, ClientError> {
        let jid = Jid::new(&config.jid)
            .map_err(|e| ClientError::Protocol(format!("invalid JID {:?}: {e}", config.jid)))?;
        let node = jid.node().map(|n| n.as_str().to_owned()).ok_or_else(|| {
            ClientError::Protocol(format!("JID {:?} has no local part", config.jid))
        })?;
        // A full JID in the config stands in for `resource` when that is unset.
        let resource = config
            .resource
            .clone()
            .or_else(|| jid.resource().map(|r| r.as_str().to_owned()))
            .filter(|r| !r.is_empty());
        Ok(Identity {
            bare: jid.to_bare().to_string(),
            domain: jid.domain().as_str().to_owned(),
            node,
            resource,
        })
    }
}

/// How far [`negotiate`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Goal {
    /// Secure, authenticate, bind: a ready session.
    Bind,
    /// Secure and authenticate; stop at SASL success.
    Authenticate,
    /// Secure, then register the account in-band (XEP-0077) instead of authenticating.
    Register,
}

/// Connect to `config.addr` and negotiate the stream up to `goal`.
pub(crate) async fn connect(config: &ClientConfig, goal: Goal) -> Result<Client, ClientError> {
    let id = Identity::new(config)?;
    let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(config.addr))
        .await
        .map_err(|_| ClientError::Timeout(format!("a TCP connection to {}", config.addr)))??;
    tcp.set_nodelay(true)?;
    let io: BoxIo = Box::new(tcp);
    let (io, tls) = match config.security {
        Security::DirectTls => {
            let (io, info) = tls::handshake(io, &id.domain, config, true).await?;
            (io, Some(info))
        }
        Security::StartTls | Security::Plain => (io, None),
    };
    negotiate(Client::new_raw(io, config.timeout), config, &id, tls, goal).await
}

/// Run the negotiation over an already connected (and, for direct TLS, encrypted) client.
async fn negotiate(
    mut client: Client,
    config: &ClientConfig,
    id: &Identity,
    mut tls: Option<TlsInfo>,
    goal: Goal,
) -> Result<Client, ClientError> {
    let mut authenticated = false;
    loop {
        let from = tls.as_ref().map(|_| id.bare.as_str());
        client
            .send_raw(xml::stream_header(&id.domain, from).as_bytes())
            .await?;
        let features = read_features(&mut client).await?;

        if tls.is_none() && config.security == Security::StartTls {
            tls = Some(starttls(&mut client, config, id, &features).await?);
            client.restart_parser();
            continue;
        }

        if goal == Goal::Register {
            register(&mut client, config, id, &features).await?;
            return Ok(client);
        }

        if !authenticated {
            authenticate(&mut client, config, id, &features, tls.as_ref()).await?;
            authenticated = true;
            // Anything the parser holds from the old stream is discarded with it.
            client.restart_parser();
            if goal == Goal::Authenticate {
                return Ok(client);
            }
            continue;
        }

        bind_resource(&mut client, id, &features).await?;
        establish_session(&mut client, &features).await?;
        tracing::debug!(jid = %client.jid, mechanism = %client.mechanism, "session ready");
        return Ok(client);
    }
}

/// Wait for the server's stream header and then its `<stream:features/>`.
async fn read_features(client: &mut Client) -> Result<Element, ClientError> {
    let deadline = Instant::now() + client.timeout;
    let event = tokio::time::timeout_at(deadline, client.next_event())
        .await
        .map_err(|_| ClientError::Timeout("the server's stream header".into()))??;
    match event {
        StreamEvent::Header(header) => {
            if header.version.as_deref().and_then(|v| v.split('.').next()) != Some("1") {
                return Err(ClientError::Protocol(format!(
                    "the server does not speak XMPP 1.0 (version {:?})",
                    header.version
                )));
            }
        }
        StreamEvent::Stanza(el) if el.is("error", ns::STREAMS) => return Err(stream_error(&el)),
        StreamEvent::Stanza(el) => {
            return Err(ClientError::Protocol(format!(
                "expected a stream header, got <{}/>",
                el.name()
            )));
        }
        StreamEvent::End => return Err(ClientError::Closed),
    }
    let features = client
        .next_stanza_until(deadline, "stream features")
        .await?;
    if !features.is("features", ns::STREAMS) {
        return Err(ClientError::Protocol(format!(
            "expected <stream:features/>, got <{}/>",
            features.name()
        )));
    }
    Ok(features)
}

/// Upgrade the connection with STARTTLS (RFC 6120 §5).
async fn starttls(
    client: &mut Client,
    config: &ClientConfig,
    id: &Identity,
    features: &Element,
) -> Result<TlsInfo, ClientError> {
    if features.get_child("starttls", ns::TLS).is_none() {
        return Err(ClientError::Tls(
            "the server does not offer STARTTLS".into(),
        ));
    }
    client.send(Element::bare("starttls", ns::TLS)).await?;
    let deadline = Instant::now() + client.timeout;
    let reply = client
        .next_stanza_until(deadline, "the STARTTLS reply")
        .await?;
    if reply.is("failure", ns::TLS) {
        return Err(ClientError::Tls("the server refused STARTTLS".into()));
    }
    if !reply.is("proceed", ns::TLS) {
        return Err(ClientError::Protocol(format!(
            "expected <proceed/> after <starttls/>, got <{}/>",
            reply.name()
        )));
    }
    let plain = std::mem::replace(&mut client.io, Box::new(tokio::io::empty()));
    let (io, info) = tls::handshake(plain, &id.domain, config, false).await?;
    client.io = io;
    Ok(info)
}

/// One server reply during SASL.
enum SaslStep {
    Challenge(Vec<u8>),
    Success(Vec<u8>),
}

/// Decode SASL element content: empty and `=` both mean "no data".
fn decode_sasl(el: &Element) -> Result<Vec<u8>, ClientError> {
    let text = el.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    BASE64
        .decode(text)
        .map_err(|e| ClientError::Protocol(format!("invalid base64 in <{}/>: {e}", el.name())))
}

/// A SASL element with base64 content (`=` for empty data).
fn sasl_element(name: &str, data: &[u8], mechanism: Option<&str>) -> Element {
    let text = if data.is_empty() {
        "=".to_owned()
    } else {
        BASE64.encode(data)
    };
    let mut builder = Element::builder(name, ns::SASL);
    if let Some(mechanism) = mechanism {
        builder = builder.attr(xml::name("mechanism"), mechanism);
    }
    builder.append(text).build()
}

/// Wait for `<challenge/>`, `<success/>` or `<failure/>`.
async fn sasl_reply(client: &mut Client) -> Result<SaslStep, ClientError> {
    let deadline = Instant::now() + client.timeout;
    let el = client.next_stanza_until(deadline, "the SASL reply").await?;
    if el.is("challenge", ns::SASL) {
        Ok(SaslStep::Challenge(decode_sasl(&el)?))
    } else if el.is("success", ns::SASL) {
        Ok(SaslStep::Success(decode_sasl(&el)?))
    } else if el.is("failure", ns::SASL) {
        let condition = el
            .children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".to_owned());
        let text = child_text(&el, "text", ns::SASL).unwrap_or_default();
        Err(ClientError::Auth { condition, text })
    } else {
        Err(ClientError::Protocol(format!(
            "expected a SASL reply, got <{}/>",
            el.name()
        )))
    }
}

/// Authenticate with SASL (RFC 6120 §6); on success the stream must be restarted.
async fn authenticate(
    client: &mut Client,
    config: &ClientConfig,
    id: &Identity,
    features: &Element,
    tls: Option<&TlsInfo>,
) -> Result<(), ClientError> {
    let offer = SaslOffer::from_features(features);
    let cb = mechanism::channel_binding(tls, &offer);
    let mech = match &config.mechanism {
        Some(forced) => forced.to_ascii_uppercase(),
        None => {
            if features.get_child("mechanisms", ns::SASL).is_none() {
                return Err(ClientError::Protocol(
                    "the server offers no SASL authentication".into(),
                ));
            }
            mechanism::choose(&offer, tls.is_some(), cb.is_some())
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "no usable SASL mechanism among {:?}{}",
                        offer.mechanisms,
                        if tls.is_none() {
                            " (PLAIN needs TLS)"
                        } else {
                            ""
                        }
                    ))
                })?
                .to_owned()
        }
    };
    tracing::debug!(jid = %id.bare, mechanism = %mech, "authenticating");

    if mech == "PLAIN" {
        let message = rookery_sasl::plain_message(None, &id.node, &config.password);
        client
            .send(sasl_element("auth", &message, Some(&mech)))
            .await?;
        match sasl_reply(client).await? {
            SaslStep::Success(_) => {}
            SaslStep::Challenge(_) => {
                return Err(ClientError::Protocol(
                    "the server sent a challenge for PLAIN".into(),
                ));
            }
        }
    } else if let Some((hash, plus)) = rookery_sasl::parse_mechanism(&mech) {
        // RFC 5802 §6: without binding, tell the server whether we could have bound
        // ('y': we could, but it offered no -PLUS) so it can detect a downgrade.
        let supports_cb = !plus && cb.is_some() && !offer.offers_plus();
        let binding = if plus {
            Some(cb.ok_or_else(|| {
                ClientError::Protocol(format!("no channel binding is available for {mech}"))
            })?)
        } else {
            None
        };
        let mut scram = ScramClient::new(hash, &id.node, &config.password, binding);
        if supports_cb {
            scram = scram.with_gs2_flag_y();
        }
        scram_exchange(client, &mech, &mut scram).await?;
    } else {
        // Not a mechanism we implement: still try it (negative tests expect the
        // server's <invalid-mechanism/>), but give up on any challenge.
        client.send(sasl_element("auth", &[], Some(&mech))).await?;
        match sasl_reply(client).await? {
            SaslStep::Success(_) => {}
            SaslStep::Challenge(_) => {
                client.send(Element::bare("abort", ns::SASL)).await?;
                return Err(ClientError::Protocol(format!(
                    "the client does not implement {mech}"
                )));
            }
        }
    }
    client.mechanism = mech;
    Ok(())
}

/// The SCRAM conversation (RFC 5802 / RFC 7677), including verifying the server's
/// signature, which may come in `<success/>` or in a final `<challenge/>`.
async fn scram_exchange(
    client: &mut Client,
    mech: &str,
    scram: &mut ScramClient,
) -> Result<(), ClientError> {
    let first = scram.client_first();
    client
        .send(sasl_element("auth", &first, Some(mech)))
        .await?;
    let server_first = match sasl_reply(client).await? {
        SaslStep::Challenge(data) => data,
        SaslStep::Success(_) => {
            return Err(ClientError::Protocol(
                "SASL success before the SCRAM exchange was complete".into(),
            ));
        }
    };
    let client_final = scram
        .client_final(&server_first)
        .map_err(|e| ClientError::Protocol(format!("bad SCRAM server-first message: {e}")))?;
    client
        .send(sasl_element("response", &client_final, None))
        .await?;
    let mut verified = false;
    loop {
        match sasl_reply(client).await? {
            SaslStep::Challenge(data) if !verified => {
                verify(scram, &data)?;
                verified = true;
                client.send(sasl_element("response", &[], None)).await?;
            }
            SaslStep::Challenge(_) => {
                return Err(ClientError::Protocol(
                    "unexpected SASL challenge after the SCRAM exchange".into(),
                ));
            }
            SaslStep::Success(data) => {
                if !data.is_empty() {
                    if verified {
                        return Err(ClientError::Protocol(
                            "unexpected data in SASL success".into(),
                        ));
                    }
                    verify(scram, &data)?;
                } else if !verified {
                    return Err(ClientError::Protocol(
                        "the server did not prove it knows the password (no SCRAM server-final)"
                            .into(),
                    ));
                }
                return Ok(());
            }
        }
    }
}

fn verify(scram: &ScramClient, server_final: &[u8]) -> Result<(), ClientError> {
    scram
        .verify_server_final(server_final)
        .map_err(|e| ClientError::Protocol(format!("SCRAM server-final rejected: {e}")))
}

/// Bind a resource (RFC 6120 §7) and record the full JID.
async fn bind_resource(
    client: &mut Client,
    id: &Identity,
    features: &Element,
) -> Result<(), ClientError> {
    if features.get_child("bind", ns::BIND).is_none() {
        return Err(ClientError::Bind(
            "the server does not offer resource binding".into(),
        ));
    }
    let mut bind = Element::builder("bind", ns::BIND);
    if let Some(resource) = &id.resource {
        bind = bind.append(Element::builder("resource", ns::BIND).append(resource.as_str()));
    }
    let iq = Element::builder("iq", ns::CLIENT)
        .attr(xml::name("type"), "set")
        .attr(xml::name("id"), "bind1")
        .append(bind)
        .build();
    client.send(iq).await?;
    let deadline = Instant::now() + client.timeout;
    let reply = client
        .recv_where_until(deadline, "the bind result", |el| {
            is_iq_response(el, "bind1")
        })
        .await?;
    if reply.attr("type") == Some("error") {
        return Err(ClientError::Bind(stanza_error_summary(&reply)));
    }
    let jid = reply
        .get_child("bind", ns::BIND)
        .and_then(|b| child_text(b, "jid", ns::BIND))
        .ok_or_else(|| ClientError::Bind("the bind result carries no <jid/>".into()))?;
    let full = FullJid::new(&jid)
        .map_err(|e| ClientError::Bind(format!("the server bound an invalid JID {jid:?}: {e}")))?;
    client.jid = full.to_string();
    Ok(())
}

/// XEP-0077 in-band registration of `id`'s local part with `config.password`, on the
/// not yet authenticated stream.
async fn register(
    client: &mut Client,
    config: &ClientConfig,
    id: &Identity,
    features: &Element,
) -> Result<(), ClientError> {
    if features
        .get_child("register", ns::REGISTER_FEATURE)
        .is_none()
    {
        return Err(ClientError::Protocol(
            "the server does not offer in-band registration".into(),
        ));
    }
    // Ask for the form first (XEP-0077 §3.1): it also tells us early if registration is
    // refused.
    let get = Element::builder("iq", ns::CLIENT)
        .attr(xml::name("type"), "get")
        .append(Element::bare("query", ns::REGISTER))
        .build();
    let form = client.iq(get).await?;
    if form.attr("type") == Some("error") {
        return Err(ClientError::Protocol(format!(
            "registration refused: {}",
            stanza_error_summary(&form)
        )));
    }
    let query = Element::builder("query", ns::REGISTER)
        .append(Element::builder("username", ns::REGISTER).append(id.node.as_str()))
        .append(Element::builder("password", ns::REGISTER).append(config.password.as_str()))
        .build();
    let set = Element::builder("iq", ns::CLIENT)
        .attr(xml::name("type"), "set")
        .append(query)
        .build();
    let reply = client.iq(set).await?;
    if reply.attr("type") == Some("error") {
        return Err(ClientError::Protocol(format!(
            "registration refused: {}",
            stanza_error_summary(&reply)
        )));
    }
    tracing::debug!(jid = %id.bare, "registered in-band");
    Ok(())
}

/// RFC 3921 session establishment, for servers that still advertise it as mandatory.
async fn establish_session(client: &mut Client, features: &Element) -> Result<(), ClientError> {
    let Some(session) = features.get_child("session", ns::SESSION) else {
        return Ok(());
    };
    if session.has_child("optional", ns::SESSION) {
        return Ok(());
    }
    let iq = Element::builder("iq", ns::CLIENT)
        .attr(xml::name("type"), "set")
        .attr(xml::name("id"), "sess1")
        .append(Element::bare("session", ns::SESSION))
        .build();
    let reply = client.iq(iq).await?;
    if reply.attr("type") == Some("error") {
        return Err(ClientError::Protocol(format!(
            "session establishment failed: {}",
            stanza_error_summary(&reply)
        )));
    }
    Ok(())
}

/// "condition: text" of a stanza's `<error/>`.
pub(crate) fn stanza_error_summary(stanza: &Element) -> String {
    let Some(error) = stanza.get_child("error", ns::CLIENT) else {
        return "error without an <error/> element".to_owned();
    };
    let condition = error
        .children()
        .find(|c| c.has_ns(ns::STANZAS) && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned());
    match child_text(error, "text", ns::STANZAS) {
        Some(text) if !text.is_empty() => format!("{condition}: {text}"),
        _ => condition,
    }
}

#[cfg(test)]
pub(crate) async fn negotiate_over(
    io: BoxIo,
    config: &ClientConfig,
    goal: Goal,
) -> Result<Client, ClientError> {
    let id = Identity::new(config)?;
    negotiate(Client::new_raw(io, config.timeout), config, &id, None, goal).await
}
