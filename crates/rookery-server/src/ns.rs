//! XML namespaces used by the server, in one place.

pub const CLIENT: &str = "jabber:client";
/// The stream namespace of external components (XEP-0114).
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const ROSTER: &str = "jabber:iq:roster";
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const PING: &str = "urn:xmpp:ping";
pub const VERSION: &str = "jabber:iq:version";
pub const TIME: &str = "urn:xmpp:time";
pub const LAST: &str = "jabber:iq:last";
pub const VCARD: &str = "vcard-temp";
pub const PRIVATE: &str = "jabber:iq:private";
pub const BLOCKING: &str = "urn:xmpp:blocking";
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
pub const OFFLINE: &str = "msgoffline";
pub const REGISTER: &str = "jabber:iq:register";
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
pub const DELAY: &str = "urn:xmpp:delay";
