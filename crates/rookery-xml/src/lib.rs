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
//! # How
//!
//! Parsing happens in two steps:
//!
//! 1. A resumable byte scanner (`scanner.rs`) looks at each byte once as it arrives and
//!    finds where the XML declaration, the stream header's start tag and each top-level
//!    element end. It keeps only a little state across reads (where in a tag it is, which
//!    quote or CDATA section it is inside, the names of the open elements, whose end tags
//!    it matches) and jumps over text, attribute values and CDATA sections with `memchr`,
//!    so that a peer dripping bytes one at a time causes no more work than one sending
//!    them all at once. It refuses at once what it can see: comments, processing
//!    instructions, DOCTYPEs, malformed tags, mismatched end tags, text outside the
//!    stanzas, too deep nesting, too many attributes. Only the bytes of the unit still
//!    arriving are buffered; one that lies wholly within one read is parsed in place, and
//!    the buffer a large stanza needed is freed once it is parsed.
//! 2. Each complete unit is then parsed in one go with [quick-xml](https://docs.rs/quick-xml)
//!    (`assemble.rs`), and everything else well-formedness and namespace-well-formedness
//!    require is checked while its [`Element`] is built: UTF-8, characters XML cannot
//!    carry (also as character references), names, the five predefined entities and
//!    character references (anything else is an undeclared entity, since DTDs are
//!    refused), prefixes, namespace declarations and duplicate attributes. Line endings
//!    and attribute values are normalised as XML 1.0 §2.11 and §3.3.3 say. Namespaces are
//!    resolved here (`scopes.rs`) rather than by quick-xml, so that the stream header's
//!    declarations stay in scope for the stanzas and its default namespace can be
//!    reported.
//!
//! So an error inside a stanza that the scanner does not look for (invalid UTF-8, an
//! unknown entity, an unbound prefix) is reported when the stanza is complete, not as soon
//! as its bytes arrive; until then the stanza is bounded by the limits below.
//!
//! The elements are minidom's, whose attribute maps and names are rxml types; rxml itself
//! no longer parses anything.
//!
//! Only restricted XML is accepted, as RFC 6120 §11 requires and as before: an optional XML
//! declaration at the very start (version 1.0; if given, encoding UTF-8 and standalone
//! yes), whitespace only after it, and no comments, processing instructions or DTDs.
//!
//! # Limits
//!
//! Everything a peer may make us hold is bounded:
//!
//! * [`Limits::max_stanza_bytes`]: the bytes of one top-level element, markup included.
//!   Counted as the bytes arrive, so an endless stanza (or an endless start tag) is refused
//!   at the end of the read that takes it past the limit, not when (if ever) it completes.
//!   This is also the most that is ever buffered.
//! * [`Limits::max_depth`]: the nesting depth inside a top-level element (which is depth 1),
//!   checked as each start tag opens.
//! * [`Limits::max_attributes`]: attributes on one element, namespace declarations included;
//!   checked as the start tag arrives.
//! * The stream header (XML declaration, whitespace and the root start tag) may take at
//!   most [`MAX_HEADER_BYTES`].
//! * One name or attribute value may be at most [`MAX_TOKEN_BYTES`] long, checked when the
//!   stanza is complete. Text has no such limit of its own: only the stanza limit applies.
//!
//! Exceeding a limit gives [`FramingError::PolicyViolation`]; anything that is not
//! well-formed, namespace-well-formed, restricted XML gives [`FramingError::NotWellFormed`].
//! These map onto the RFC 6120 stream errors `<policy-violation/>` and
//! `<not-well-formed/>`.
//!
//! The outbound direction is [`serialize`] (one stanza, written for a stream whose default
//! namespace is known) and [`stream_header`] (our own `<stream:stream>` opening).
#![forbid(unsafe_code)]

mod assemble;
mod cache;
mod parser;
mod scanner;
mod scopes;
mod serialize;
mod text;

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

/// The longest element name, attribute name or attribute value accepted, in bytes (an
/// attribute value after references are expanded).
///
/// Text is not limited by it, only by [`Limits::max_stanza_bytes`].
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
