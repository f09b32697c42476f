//! Choosing a SASL mechanism and a channel-binding type from what the server offers.
//!
//! These are pure functions over the parsed stream features so they can be tested
//! without a server.

use minidom::Element;
use rookery_sasl::CbType;

use crate::ns;
use crate::tls::TlsInfo;

/// Our preference order when the caller does not force a mechanism.
const PREFERENCE: &[&str] = &[
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
];

/// What the server's stream features say about SASL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SaslOffer {
    /// The `<mechanism/>` names, in the server's order.
    pub(crate) mechanisms: Vec<String>,
    /// XEP-0440 channel-binding types, if the server advertised them at all.
    pub(crate) cb_types: Option<Vec<String>>,
}

impl SaslOffer {
    /// Extract the SASL offer from a `<stream:features/>` element.
    pub(crate) fn from_features(features: &Element) -> SaslOffer {
        let mechanisms = features
            .get_child("mechanisms", ns::SASL)
            .map(|m| {
                m.children()
                    .filter(|c| c.is("mechanism", ns::SASL))
                    .map(|c| c.text().trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let cb_types = features
            .get_child("sasl-channel-binding", ns::SASL_CB)
            .map(|cb| {
                cb.children()
                    .filter(|c| c.is("channel-binding", ns::SASL_CB))
                    .filter_map(|c| c.attr("type").map(str::to_owned))
                    .collect()
            });
        SaslOffer {
            mechanisms,
            cb_types,
        }
    }

    /// Whether the server offers `name` (case-insensitively; SASL names are upper case).
    pub(crate) fn offers(&self, name: &str) -> bool {
        self.mechanisms.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    /// Whether the server offers any `-PLUS` mechanism.
    pub(crate) fn offers_plus(&self) -> bool {
        self.mechanisms
            .iter()
            .any(|m| m.to_ascii_uppercase().ends_with("-PLUS"))
    }

    fn advertises_cb(&self, name: &str) -> bool {
        self.cb_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == name))
    }
}

/// The channel binding to use for a `-PLUS` mechanism on this connection, if any:
/// `tls-exporter` on TLS 1.3, otherwise `tls-server-end-point`; when the server lists its
/// types (XEP-0440) only those are considered.
pub(crate) fn channel_binding(
    tls: Option<&TlsInfo>,
    offer: &SaslOffer,
) -> Option<(CbType, Vec<u8>)> {
    let tls = tls?;
    if tls.tls13
        && let Some(data) = &tls.exporter
        && offer.advertises_cb("tls-exporter")
    {
        return Some((CbType::TlsExporter, data.clone()));
    }
    if let Some(data) = &tls.end_point
        && offer.advertises_cb("tls-server-end-point")
    {
        return Some((CbType::TlsServerEndPoint, data.clone()));
    }
    None
}

/// The best mechanism both sides support: `-PLUS` only with channel-binding data, and
/// `PLAIN` only over TLS.
pub(crate) fn choose(offer: &SaslOffer, encrypted: bool, have_cb: bool) -> Option<&'static str> {
    PREFERENCE.iter().copied().find(|name| {
        offer.offers(name)
            && (!name.ends_with("-PLUS") || have_cb)
            && (*name != "PLAIN" || encrypted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    fn tls(tls13: bool) -> TlsInfo {
        TlsInfo {
            tls13,
            exporter: tls13.then(|| vec![1; 32]),
            end_point: Some(vec![2; 32]),
        }
    }

    const ALL: &str = "<features xmlns='http://etherx.jabber.org/streams'>\
        <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>\
        <mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-256</mechanism>\
        <mechanism>SCRAM-SHA-1-PLUS</mechanism></mechanisms></features>";

    #[test]
    fn parses_mechanisms_and_cb_types() {
        let offer = SaslOffer::from_features(&features(
            "<features xmlns='http://etherx.jabber.org/streams'>\
             <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism> PLAIN </mechanism></mechanisms>\
             <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
             <channel-binding type='tls-server-end-point'/></sasl-channel-binding></features>",
        ));
        assert_eq!(offer.mechanisms, vec!["PLAIN".to_owned()]);
        assert_eq!(
            offer.cb_types,
            Some(vec!["tls-server-end-point".to_owned()])
        );
        assert!(!offer.offers_plus());
    }

    #[test]
    fn preference_order() {
        let offer = SaslOffer::from_features(&features(ALL));
        assert!(offer.offers_plus());
        assert_eq!(choose(&offer, true, true), Some("SCRAM-SHA-256-PLUS"));
        assert_eq!(choose(&offer, true, false), Some("SCRAM-SHA-256"));
        let plain_only = SaslOffer {
            mechanisms: vec!["PLAIN".into()],
            cb_types: None,
        };
        assert_eq!(choose(&plain_only, false, false), None);
        assert_eq!(choose(&plain_only, true, false), Some("PLAIN"));
    }

    #[test]
    fn channel_binding_choice() {
        let offer = SaslOffer::from_features(&features(ALL));
        assert_eq!(channel_binding(None, &offer), None);
        let (ty, _) = channel_binding(Some(&tls(true)), &offer).unwrap();
        assert_eq!(ty, CbType::TlsExporter);
        let (ty, data) = channel_binding(Some(&tls(false)), &offer).unwrap();
        assert_eq!(ty, CbType::TlsServerEndPoint);
        assert_eq!(data, vec![2; 32]);
        let only_endpoint = SaslOffer {
            cb_types: Some(vec!["tls-server-end-point".into()]),
            ..offer.clone()
        };
        let (ty, _) = channel_binding(Some(&tls(true)), &only_endpoint).unwrap();
        assert_eq!(ty, CbType::TlsServerEndPoint);
        let unknown = SaslOffer {
            cb_types: Some(vec!["tls-unique".into()]),
            ..offer
        };
        assert_eq!(channel_binding(Some(&tls(true)), &unknown), None);
    }
}
