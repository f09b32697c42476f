//! Inbound XML framing for XMPP streams, as RFC 6120 §4 describes them.
//!
//! A peer's side of an XMPP session is one long XML document: an optional XML declaration,
//! the `<stream:stream>` root element, any number of top-level children (the stanzas and
//! stream-level elements such as `<stream:features/>`), and finally `</stream:stream>`.
//! [`StreamParser`] is fed the bytes as they come off the socket, split anywhere, and turns
//! them into [`StreamEvent`]s: the stream header as soon as the root's start tag is
//! complete, each top-level child as a whole [`Element`] once its end tag arrives, and the
//! end of the stream. It never blocks and never waits for more than it was given.
//!
//! Parsing is done by rxml's push parser, which refuses DTDs (and with them entity
//! declarations), processing instructions, comments, undeclared entities and malformed
//! UTF-8 by design; namespace resolution is done here, so that the stream header's default
//! namespace can be reported and so that limits apply while a start tag is still arriving.
//!
//! # Limits
//!
//! Everything a peer may make us hold is bounded:
//!
//! * [`Limits::max_stanza_bytes`]: the bytes of one top-level element, markup included.
//!   Counted as the bytes are consumed, so an endless stanza is refused once it passes the
//!   limit, not when (if ever) it completes.
//! * [`Limits::max_depth`]: the nesting depth inside a top-level element (which is depth 1).
//! * [`Limits::max_attributes`]: attributes on one element, namespace declarations included.
//! * The stream header (XML declaration and the root start tag) may take at most
//!   [`MAX_HEADER_BYTES`].
//! * One name or attribute value may be at most [`MAX_TOKEN_BYTES`] long. Text has no such
//!   limit of its own: it is taken in pieces and joined, so only the stanza limit applies.
//!
//! Exceeding a limit gives [`FramingError::PolicyViolation`]; anything that is not
//! well-formed, namespace-well-formed, restricted XML gives [`FramingError::NotWellFormed`].
//! These map onto the RFC 6120 stream errors `<policy-violation/>` and
//! `<not-well-formed/>`.
//!
//! The outbound direction is [`serialize`] (one stanza, written for a stream whose default
//! namespace is known) and [`stream_header`] (our own `<stream:stream>` opening).
#![forbid(unsafe_code)]

mod parser;
mod scopes;
mod serialize;

#[cfg(test)]
mod tests;

pub use minidom::Element;
pub use parser::StreamParser;
pub use serialize::{serialize, serialize_into, stream_header};

/// The namespace of the stream elements (`<stream:stream>`, `<stream:features>`,
/// `<stream:error>`), RFC 6120 §4.8.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// The most bytes accepted before the stream header is complete: the XML declaration, any
/// whitespace and the root element's start tag.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The longest element name, attribute name or attribute value accepted, in bytes.
///
/// This is also the size of the buffer rxml keeps for the token being read. Text is not
/// limited by it: long text is handed over in pieces and joined.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Hard limits on what one peer may send; see the [crate documentation](crate#limits).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of one top-level element (stanza), markup included. Default 262 144 (256 KiB).
    pub max_stanza_bytes: usize,
    /// Nesting depth inside a top-level element; the top-level element itself is depth 1.
    /// Default 32.
    pub max_depth: usize,
    /// Attributes on one element, namespace declarations included. Default 64.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// The peer's opening `<stream:stream ...>` tag, RFC 6120 §4.7.
///
/// Nothing here is checked beyond well-formedness: whether the root element really is
/// `stream` in [`NS_STREAMS`], and whether the attributes make sense, is for the caller to
/// decide (and to answer with `<invalid-namespace/>` and the like).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamHeader {
    /// Namespace of the root element; should be [`NS_STREAMS`].
    pub ns: String,
    /// Local name of the root element; should be `stream`.
    pub name: String,
    /// The default namespace declared on the root element (`xmlns='jabber:client'` for
    /// client-to-server streams), if any.
    pub default_ns: Option<String>,
    /// The `to` attribute.
    pub to: Option<String>,
    /// The `from` attribute.
    pub from: Option<String>,
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `version` attribute.
    pub version: Option<String>,
    /// The `xml:lang` attribute.
    pub lang: Option<String>,
}

/// Something complete that the parser found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The root element's start tag is complete.
    Header(StreamHeader),
    /// A complete top-level child of the root: a stanza, or a stream-level element such as
    /// `<stream:features/>`. Its namespace is resolved (a `<message/>` on a client stream
    /// has namespace `jabber:client`); `xml:lang` is kept as the attribute `lang` in the
    /// XML namespace, see [`xml_lang`].
    Stanza(Element),
    /// `</stream:stream>`: the peer closed its stream.
    End,
}

/// Why a stream cannot go on. Each maps onto an RFC 6120 stream error.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FramingError {
    /// XML syntax, well-formedness or namespace errors, a DOCTYPE, a processing
    /// instruction, an entity reference other than the five predefined ones, invalid
    /// UTF-8, an unbound prefix, a duplicate attribute, or text other than whitespace
    /// between stanzas. Answer with the stream error `<not-well-formed/>`.
    #[error("{0}")]
    NotWellFormed(String),
    /// A limit was exceeded: stanza size, nesting depth, attribute count, header size or
    /// token length. Answer with the stream error `<policy-violation/>`.
    #[error("{0}")]
    PolicyViolation(String),
}

/// The `xml:lang` attribute of `el`, if it has one.
///
/// minidom 0.19 keys attributes by namespace and local name, so `xml:lang` is the
/// attribute `lang` in the XML namespace (and `el.attr("xml:lang")` finds nothing). To set
/// it: `el.set_attr(rxml::Namespace::XML, "lang".try_into().unwrap(), value)`.
pub fn xml_lang(el: &Element) -> Option<&str> {
    el.attr_ns(minidom::rxml::Namespace::xml(), "lang")
}
