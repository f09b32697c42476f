//! SASL EXTERNAL between servers (RFC 6120 §6, XEP-0178): the TLS certificate proves the
//! initiating server's domain, with no dialback.
//!
//! The receiving server offers EXTERNAL after STARTTLS, beside dialback, only when the
//! peer's client certificate validates for the domain its header names
//! ([`super::tls::Trust::check`]). The initiating server sends
//! `<auth mechanism='EXTERNAL'>` with its domain (base64) as authorization identity; on
//! `<success/>` both restart the stream and the pair is authenticated. On `<failure/>` the
//! initiating server falls back to dialback (see `outgoing.rs`).

use super::conn::S2sConn;
use super::outgoing::Failure;
use super::{NS_DIALBACK_FEATURE, describe};
use crate::ns;
use crate::xml::{ElementExt, escape};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;

/// The features of a secured incoming stream: dialback, and EXTERNAL when `external`;
/// nothing once the stream is authenticated by SASL.
pub(super) fn features(external: bool, authenticated: bool) -> String {
    if authenticated {
        return "<stream:features/>".to_owned();
    }
    let mechanisms = if external {
        format!(
            "<mechanisms xmlns='{}'><mechanism>EXTERNAL</mechanism></mechanisms>",
            ns::SASL
        )
    } else {
        String::new()
    };
    format!(
        "<stream:features>{mechanisms}<dialback xmlns='{NS_DIALBACK_FEATURE}'><errors/></dialback></stream:features>"
    )
}

/// Why an `<auth/>` fails: a SASL condition and a text for people.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub condition: &'static str,
    pub text: String,
}

impl Refusal {
    pub(super) fn new(condition: &'static str, text: impl Into<String>) -> Self {
        Refusal {
            condition,
            text: text.into(),
        }
    }

    /// `<failure/>` with the condition and the text.
    pub(super) fn to_xml(&self) -> String {
        format!(
            "<failure xmlns='{}'><{}/><text xml:lang='en'>{}</text></failure>",
            ns::SASL,
            self.condition,
            escape(&self.text)
        )
    }
}

/// `<success/>`, without additional data.
pub(super) fn success() -> String {
    format!("<success xmlns='{}'/>", ns::SASL)
}

/// The domain an `<auth/>` asks to be authenticated as: its authorization identity if it
/// gives one (it must then be the stream's `from`), else the stream's `from`.
pub(super) fn requested_domain(
    auth: &Element,
    stream_from: Option<&str>,
) -> Result<String, Refusal> {
    let mechanism = auth.get_attr("mechanism").unwrap_or("");
    if mechanism != "EXTERNAL" {
        return Err(Refusal::new(
            "invalid-mechanism",
            format!("'{mechanism}' is not offered; servers authenticate with EXTERNAL or dialback"),
        ));
    }
    let data = auth.text();
    let data = data.trim();
    let authzid = if data.is_empty() || data == "=" {
        None
    } else {
        let bytes = STANDARD
            .decode(data)
            .map_err(|_| Refusal::new("incorrect-encoding", "the data is not base64"))?;
        let s = String::from_utf8(bytes).map_err(|_| {
            Refusal::new(
                "incorrect-encoding",
                "the authorization identity is not UTF-8",
            )
        })?;
        Some(s.to_lowercase())
    };
    match (authzid, stream_from) {
        (Some(id), Some(from)) if id != from => Err(Refusal::new(
            "invalid-authzid",
            format!("this stream is from {from}; it cannot be authenticated as {id}"),
        )),
        (Some(id), _) => Ok(id),
        (None, Some(from)) => Ok(from.to_owned()),
        (None, None) => Err(Refusal::new(
            "invalid-authzid",
            "the stream header has no 'from' and no authorization identity was given",
        )),
    }
}

/// Whether stream features offer EXTERNAL.
pub(super) fn offers_external(features: &Element) -> bool {
    features.get_child("mechanisms", ns::SASL).is_some_and(|m| {
        m.children()
            .any(|c| c.is("mechanism", ns::SASL) && c.text().trim() == "EXTERNAL")
    })
}

/// How an EXTERNAL attempt of ours ended, when the stream survived it.
pub(super) enum Outcome {
    /// `<success/>`: the stream was restarted and is authenticated.
    Authenticated,
    /// `<failure/>`: the condition and text, for the log.
    Refused(String),
}

/// As the initiating server `local`, authenticate to `remote` with EXTERNAL on a secured
/// stream whose features offered it.
pub(super) async fn authenticate(
    conn: &mut S2sConn,
    local: &str,
    remote: &str,
) -> Result<Outcome, Failure> {
    let lost = |end| {
        Failure::not_found(format!(
            "{remote} ended the stream during SASL EXTERNAL: {}",
            describe(&end)
        ))
    };
    let io = |e: std::io::Error| Failure::not_found(format!("connection to {remote} failed: {e}"));
    let auth = format!(
        "<auth xmlns='{}' mechanism='EXTERNAL'>{}</auth>",
        ns::SASL,
        STANDARD.encode(local)
    );
    conn.send_raw(auth.as_bytes()).await.map_err(io)?;
    let answer = conn.next_element().await.map_err(lost)?;
    if answer.is("failure", ns::SASL) {
        return Ok(Outcome::Refused(failure_text(&answer)));
    }
    if answer.is("error", ns::STREAMS) {
        return Err(Failure::not_found(format!(
            "{remote} sent a stream error: {}",
            super::stream_error_text(&answer)
        )));
    }
    if !answer.is("success", ns::SASL) {
        return Err(Failure::not_found(format!(
            "{remote} answered SASL EXTERNAL with <{}/>",
            answer.name()
        )));
    }
    // RFC 6120 §6.4.6: a new stream, on which nothing more is to negotiate.
    conn.reset();
    conn.send_header(local, Some(remote), None)
        .await
        .map_err(io)?;
    let header = conn.next_header().await.map_err(lost)?;
    if header.default_ns.as_deref() != Some(super::NS_SERVER) {
        return Err(Failure::not_found(format!(
            "{remote} did not open a server-to-server stream after SASL"
        )));
    }
    let features = conn.next_element().await.map_err(lost)?;
    if !features.is("features", ns::STREAMS) {
        return Err(Failure::not_found(format!(
            "{remote} sent <{}/> instead of stream features after SASL",
            features.name()
        )));
    }
    Ok(Outcome::Authenticated)
}

/// The condition and text of a `<failure/>`.
fn failure_text(e: &Element) -> String {
    let condition = e
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "failure".to_owned());
    match e.children().find(|c| c.name() == "text") {
        Some(t) => format!("{condition} ({})", t.text()),
        None => condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(data: &str) -> Element {
        format!(
            "<auth xmlns='{}' mechanism='EXTERNAL'>{data}</auth>",
            ns::SASL
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn the_identity_is_the_stream_domain_unless_an_authzid_names_it() {
        let from = Some("a.test");
        assert_eq!(requested_domain(&auth(""), from), Ok("a.test".into()));
        assert_eq!(requested_domain(&auth("="), from), Ok("a.test".into()));
        let a = STANDARD.encode("A.test");
        assert_eq!(requested_domain(&auth(&a), from), Ok("a.test".into()));
        assert_eq!(requested_domain(&auth(&a), None), Ok("a.test".into()));

        let other = STANDARD.encode("b.test");
        let r = requested_domain(&auth(&other), from).unwrap_err();
        assert_eq!(r.condition, "invalid-authzid");
        assert_eq!(
            requested_domain(&auth("!!"), from).unwrap_err().condition,
            "incorrect-encoding"
        );
        assert_eq!(
            requested_domain(&auth(""), None).unwrap_err().condition,
            "invalid-authzid"
        );
        let plain: Element = format!("<auth xmlns='{}' mechanism='PLAIN'/>", ns::SASL)
            .parse()
            .unwrap();
        assert_eq!(
            requested_domain(&plain, from).unwrap_err().condition,
            "invalid-mechanism"
        );
    }

    #[test]
    fn features_offer_external_beside_dialback_and_nothing_after_sasl() {
        let stream = format!(
            "<stream:stream xmlns:stream='{}' xmlns='jabber:server'>{}</stream:stream>",
            ns::STREAMS,
            features(true, false)
        );
        let stream: Element = stream.parse().unwrap();
        let offered = stream.get_child("features", ns::STREAMS).unwrap();
        assert!(offers_external(offered));
        assert!(offered.has_child("dialback", NS_DIALBACK_FEATURE));
        assert!(!features(false, false).contains("EXTERNAL"));
        assert_eq!(features(true, true), "<stream:features/>");
    }

    #[test]
    fn failures_explain_themselves() {
        let xml = Refusal::new("not-authorized", "no <certificate>").to_xml();
        assert_eq!(
            xml,
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>\
             <text xml:lang='en'>no &lt;certificate&gt;</text></failure>"
        );
        let e: Element = xml.parse().unwrap();
        assert_eq!(failure_text(&e), "not-authorized (no <certificate>)");
    }
}
