//! Inbound XML framing for XMPP streams (RFC 6120 §4): bytes from a socket, in pieces of
//! any size, become a stream header, whole top-level stanzas and the stream's end.
//!
//! Parsing is rxml's push parser, which refuses DTDs, processing instructions, undeclared
//! entities, unbound prefixes and bad UTF-8 by design. On top of it this layer enforces
//! the limits rxml does not know: the bytes of one stanza, its nesting depth and the
//! attributes of one element. A stanza over the size limit is refused while it is still
//! arriving, so nothing unbounded is ever buffered.
#![forbid(unsafe_code)]

pub use minidom::Element;
use minidom::rxml::{self, AttrMap, Namespace, NcName, Parse, WithOptions};

/// The streams namespace of RFC 6120.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// Hard limits on what one peer may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of one top-level stanza, markup included.
    pub max_stanza_bytes: usize,
    /// Nesting depth inside a stanza; the stanza element itself is depth 1.
    pub max_depth: usize,
    /// Attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// The opening `<stream:stream>` of the peer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamHeader {
    /// Namespace of the root element (should be [`NS_STREAMS`]).
    pub ns: String,
    /// Local name of the root element (should be `stream`).
    pub name: String,
    /// The default namespace declared on it (`jabber:client` for c2s).
    pub default_ns: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`
    pub lang: Option<String>,
}

/// What the parser found in the bytes fed so far.
#[derive(Debug)]
pub enum StreamEvent {
    Header(StreamHeader),
    Stanza(Element),
    /// `</stream:stream>`
    End,
}

/// Why the stream cannot go on; each maps to an RFC 6120 stream error.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FramingError {
    /// Syntax, well-formedness or namespace errors → `not-well-formed`.
    #[error("{0}")]
    NotWellFormed(String),
    /// A limit was exceeded → `policy-violation`.
    #[error("{0}")]
    PolicyViolation(String),
}

/// The most bytes accepted before the root element's start tag is complete.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// An incremental stream parser.
pub struct StreamParser {
    limits: Limits,
    parser: rxml::Parser,
    /// Open elements of the current stanza (index 0 is the stanza).
    stack: Vec<Element>,
    /// Bytes consumed by the current stanza so far.
    stanza_bytes: usize,
    /// Raw bytes seen before the root element opened (to read its namespace declarations).
    header_raw: Vec<u8>,
    root_open: bool,
    ended: bool,
    poisoned: Option<FramingError>,
}

fn new_parser() -> rxml::Parser {
    // Long enough for any name or attribute value we accept; text is split into chunks.
    let opts = rxml::parser::Options {
        max_token_length: 64 * 1024,
        ..Default::default()
    };
    let mut p = rxml::Parser::with_options(opts);
    // Text is handed over as it arrives, so the stanza size is counted as bytes come in:
    // at most one token (64 KiB) is ever held inside rxml without being counted.
    p.set_text_buffering(false);
    p
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            parser: new_parser(),
            stack: Vec::new(),
            stanza_bytes: 0,
            header_raw: Vec::new(),
            root_open: false,
            ended: false,
            poisoned: None,
        }
    }

    /// Start over for a new stream (after STARTTLS or SASL success).
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
    }

    fn fail(&mut self, e: FramingError) -> Result<(), FramingError> {
        self.poisoned = Some(e.clone());
        Err(e)
    }

    /// Feed bytes as they were read; complete events are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if !self.root_open {
            if self.header_raw.len() + data.len() > MAX_HEADER_BYTES {
                return self.fail(FramingError::PolicyViolation(
                    "the stream header is too long".into(),
                ));
            }
            self.header_raw.extend_from_slice(data);
        }
        let mut buf = data;
        loop {
            match self.parser.parse(&mut buf, false) {
                Ok(Some(ev)) => {
                    if let Err(e) = self.event(ev, out) {
                        return self.fail(e);
                    }
                }
                Ok(None) => return Ok(()),
                Err(rxml::error::EndOrError::NeedMoreData) => return Ok(()),
                Err(rxml::error::EndOrError::Error(e)) => {
                    return self.fail(FramingError::NotWellFormed(format!("invalid XML: {e}")));
                }
            }
        }
    }

    /// The peer closed the connection.
    pub fn eof(&mut self) -> Result<(), FramingError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if !self.stack.is_empty() {
            return self.fail(FramingError::NotWellFormed(
                "the connection closed in the middle of a stanza".into(),
            ));
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), FramingError> {
        if self.stanza_bytes > self.limits.max_stanza_bytes {
            return Err(FramingError::PolicyViolation(format!(
                "a stanza exceeds the limit of {} bytes",
                self.limits.max_stanza_bytes
            )));
        }
        Ok(())
    }

    fn event(&mut self, ev: rxml::Event, out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        if self.ended {
            return Err(FramingError::NotWellFormed(
                "data after the end of the stream".into(),
            ));
        }
        match ev {
            rxml::Event::XmlDeclaration(..) => Ok(()),
            rxml::Event::StartElement(m, (ns, name), attrs) => {
                if !self.root_open {
                    self.root_open = true;
                    let header = self.header(ns, name, attrs);
                    self.header_raw = Vec::new();
                    out.push(StreamEvent::Header(header));
                    return Ok(());
                }
                if self.stack.is_empty() {
                    self.stanza_bytes = 0;
                }
                self.stanza_bytes += m.len();
                self.check_size()?;
                if self.stack.len() + 1 > self.limits.max_depth {
                    return Err(FramingError::PolicyViolation(format!(
                        "elements are nested deeper than {} levels",
                        self.limits.max_depth
                    )));
                }
                if attrs.len() > self.limits.max_attributes {
                    return Err(FramingError::PolicyViolation(format!(
                        "an element has more than {} attributes",
                        self.limits.max_attributes
                    )));
                }
                let mut el = Element::bare(name.as_str(), ns.as_str());
                *el.attrs_mut() = attrs;
                self.stack.push(el);
                Ok(())
            }
            rxml::Event::EndElement(m) => {
                let Some(el) = self.stack.pop() else {
                    self.ended = true;
                    out.push(StreamEvent::End);
                    return Ok(());
                };
                self.stanza_bytes += m.len();
                self.check_size()?;
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(el);
                    }
                    None => out.push(StreamEvent::Stanza(el)),
                }
                Ok(())
            }
            rxml::Event::Text(m, text) => {
                if !self.stack.is_empty() {
                    self.stanza_bytes += m.len();
                    self.check_size()?;
                }
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_text(text);
                        Ok(())
                    }
                    None if text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) => Ok(()),
                    None => Err(FramingError::NotWellFormed(
                        "text is not allowed between stanzas".into(),
                    )),
                }
            }
        }
    }

    fn header(&self, ns: Namespace<'static>, name: NcName, attrs: AttrMap) -> StreamHeader {
        let get = |n: &str| -> Option<String> {
            let key = NcName::try_from(n).ok()?;
            attrs.get(&Namespace::NONE, &key).cloned()
        };
        let lang = NcName::try_from("lang")
            .ok()
            .and_then(|k| attrs.get(&Namespace::XML, &k).cloned());
        StreamHeader {
            ns: ns.as_str().to_owned(),
            name: name.as_str().to_owned(),
            default_ns: default_namespace(&self.header_raw),
            to: get("to"),
            from: get("from"),
            id: get("id"),
            version: get("version"),
            lang,
        }
    }
}

/// The `xmlns='…'` declaration on the root start tag, read from the raw bytes rxml has
/// already checked for well-formedness.
fn default_namespace(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    // Skip the XML declaration, then take the root start tag.
    let mut rest: &str = &text;
    loop {
        let i = rest.find('<')?;
        rest = &rest[i..];
        if rest.starts_with("<?") {
            rest = &rest[rest.find("?>")? + 2..];
        } else {
            break;
        }
    }
    let tag = &rest[..rest.find('>')?];
    // Walk attributes: name = quoted value.
    let mut s = tag.trim_start_matches('<');
    s = s.trim_start_matches(|c: char| !c.is_whitespace() && c != '/');
    loop {
        s = s.trim_start();
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        s = s[eq + 1..].trim_start();
        let quote = s.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let end = s[1..].find(quote)? + 1;
        let value = &s[1..end];
        if name == "xmlns" {
            return Some(unescape(value));
        }
        s = &s[end + 1..];
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape_into(s: &str, out: &mut Vec<u8>) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            b'\r' => b"&#xD;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[last..]);
}

fn escape_text_into(s: &str, out: &mut Vec<u8>) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[last..]);
}

/// Serialise one stanza for a stream whose default namespace is `stream_ns`.
pub fn serialize(el: &Element, stream_ns: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    serialize_into(el, stream_ns, &mut buf);
    buf
}

/// Like [`serialize`], appending to `buf`. Namespaces are declared only where they change,
/// as the default namespace (no prefixes).
pub fn serialize_into(el: &Element, stream_ns: &str, buf: &mut Vec<u8>) {
    write_element(el, stream_ns, buf);
}

fn write_element(el: &Element, parent_ns: &str, buf: &mut Vec<u8>) {
    let ns = el.ns();
    buf.push(b'<');
    buf.extend_from_slice(el.name().as_bytes());
    if ns != parent_ns {
        buf.extend_from_slice(b" xmlns='");
        escape_into(&ns, buf);
        buf.push(b'\'');
    }
    for ((ans, name), value) in el.attrs().iter() {
        buf.push(b' ');
        if *ans == Namespace::XML {
            buf.extend_from_slice(b"xml:");
        } else if !ans.is_none() {
            // Attributes in other namespaces are rare in XMPP; they are dropped rather than
            // written wrongly.
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b"='");
        escape_into(value, buf);
        buf.push(b'\'');
    }
    let mut nodes = el.nodes().peekable();
    if nodes.peek().is_none() {
        buf.extend_from_slice(b"/>");
        return;
    }
    buf.push(b'>');
    for node in nodes {
        match node {
            minidom::Node::Element(child) => write_element(child, &ns, buf),
            minidom::Node::Text(t) => escape_text_into(t, buf),
        }
    }
    buf.extend_from_slice(b"</");
    buf.extend_from_slice(el.name().as_bytes());
    buf.push(b'>');
}

/// The stream header we send, with attributes in the given order.
pub fn stream_header(default_ns: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    escape_into(default_ns, &mut out);
    out.extend_from_slice(b"' xmlns:stream='");
    out.extend_from_slice(NS_STREAMS.as_bytes());
    out.push(b'\'');
    for (k, v) in attrs {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"='");
        escape_into(v, &mut out);
        out.push(b'\'');
    }
    out.push(b'>');
    String::from_utf8(out).expect("built from strings")
}

#[cfg(test)]
mod tests;
