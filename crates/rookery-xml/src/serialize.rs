//! Outbound XML: stanzas and our stream header.
//!
//! Namespaces are written the way XMPP peers expect them: elements are unprefixed and
//! carry `xmlns='…'` only where their namespace differs from the one they inherit, with
//! one exception: elements in [`NS_STREAMS`] (`<stream:features/>`, `<stream:error/>`)
//! use the `stream:` prefix that [`stream_header`] binds. Attributes in namespaces other
//! than the XML namespace get a prefix declared on their element.

use std::io::Write as _;

use minidom::rxml::Namespace;
use minidom::{Element, Node};

use crate::NS_STREAMS;

/// Serialise one stanza for sending on a stream whose default namespace is `stream_ns`
/// (`jabber:client`, `jabber:server`; use `""` to write it standalone, with its namespace).
///
/// The top element carries no `xmlns` when its namespace is `stream_ns`, nor do
/// descendants in their parent's namespace; other namespaces are declared where they
/// change. Text and attribute values are escaped; characters XML cannot carry at all
/// (control characters other than tab, newline and carriage return, U+FFFE, U+FFFF)
/// become U+FFFD. The result parses back, inside a stream, to an equal element.
pub fn serialize(el: &Element, stream_ns: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    serialize_into(el, stream_ns, &mut buf);
    buf
}

/// Like [`serialize`], appending to `buf` (which may already hold other output).
pub fn serialize_into(el: &Element, stream_ns: &str, buf: &mut Vec<u8>) {
    write_element(el, stream_ns, buf);
}

/// The opening of the stream we send:
/// `<?xml version='1.0'?><stream:stream xmlns='{default_ns}' xmlns:stream='…' k='v'…>`,
/// with `attrs` (`id`, `from`, `to`, `version`, `xml:lang`, …) written in the order given
/// and their values escaped. The names are written as given.
pub fn stream_header(default_ns: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = Vec::with_capacity(128 + attrs.len() * 32);
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    escape(default_ns, Escape::Attribute, &mut out);
    out.extend_from_slice(b"' xmlns:stream='");
    out.extend_from_slice(NS_STREAMS.as_bytes());
    out.push(b'\'');
    for (name, value) in attrs {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"='");
        escape(value, Escape::Attribute, &mut out);
        out.push(b'\'');
    }
    out.push(b'>');
    String::from_utf8(out).expect("escaping splits strings only at ASCII characters")
}

fn write_element(el: &Element, inherited_ns: &str, buf: &mut Vec<u8>) {
    buf.push(b'<');
    let declared_ns;
    let default_ns = if el.has_ns(inherited_ns) {
        buf.extend_from_slice(el.name().as_bytes());
        inherited_ns
    } else if el.has_ns(NS_STREAMS) {
        buf.extend_from_slice(b"stream:");
        buf.extend_from_slice(el.name().as_bytes());
        inherited_ns
    } else {
        declared_ns = el.ns();
        buf.extend_from_slice(el.name().as_bytes());
        buf.extend_from_slice(b" xmlns='");
        escape(&declared_ns, Escape::Attribute, buf);
        buf.push(b'\'');
        &declared_ns
    };

    // Attributes in namespaces of their own need prefixes: ns0, ns1, … on this element.
    let mut prefixed: Vec<&Namespace<'static>> = Vec::new();
    for ((ns, _), _) in el.attrs().iter() {
        if ns.is_some() && *ns != Namespace::XML && !prefixed.contains(&ns) {
            let _ = write!(buf, " xmlns:ns{}='", prefixed.len());
            escape(ns, Escape::Attribute, buf);
            buf.push(b'\'');
            prefixed.push(ns);
        }
    }
    for ((ns, name), value) in el.attrs().iter() {
        if ns.is_none() && name.as_str() == "xmlns" {
            // Set by hand as if it were an attribute; the namespace is written above.
            continue;
        }
        buf.push(b' ');
        if *ns == Namespace::XML {
            buf.extend_from_slice(b"xml:");
        } else if ns.is_some() {
            let index = prefixed.iter().position(|p| *p == ns).unwrap_or_default();
            let _ = write!(buf, "ns{index}:");
        }
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"='");
        escape(value, Escape::Attribute, buf);
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
            Node::Element(child) => write_element(child, default_ns, buf),
            Node::Text(text) => escape(text, Escape::Text, buf),
        }
    }
    buf.extend_from_slice(b"</");
    if !el.has_ns(inherited_ns) && el.has_ns(NS_STREAMS) {
        buf.extend_from_slice(b"stream:");
    }
    buf.extend_from_slice(el.name().as_bytes());
    buf.push(b'>');
}

#[derive(Clone, Copy)]
enum Escape {
    Text,
    Attribute,
}

/// Which bytes need more than copying. Control characters are in both tables (tab and
/// newline are fine as they are in text, but an attribute value would turn them into
/// spaces); 0xEF starts U+FFFE and U+FFFF.
const fn special_bytes(attribute: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    if !attribute {
        table[b'\t' as usize] = false;
        table[b'\n' as usize] = false;
    }
    table[b'&' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    if attribute {
        table[b'"' as usize] = true;
        table[b'\'' as usize] = true;
    }
    table[0xEF] = true;
    table
}

const TEXT_SPECIAL: [bool; 256] = special_bytes(false);
const ATTRIBUTE_SPECIAL: [bool; 256] = special_bytes(true);
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Append `s` to `buf`, escaped for text content or a single- or double-quoted attribute
/// value.
fn escape(s: &str, context: Escape, buf: &mut Vec<u8>) {
    let special = match context {
        Escape::Text => &TEXT_SPECIAL,
        Escape::Attribute => &ATTRIBUTE_SPECIAL,
    };
    let bytes = s.as_bytes();
    buf.reserve(bytes.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !special[b as usize] {
            i += 1;
            continue;
        }
        let (replacement, width): (&[u8], usize) = match b {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'"' => (b"&quot;", 1),
            b'\'' => (b"&apos;", 1),
            b'\t' => (b"&#9;", 1),
            b'\n' => (b"&#10;", 1),
            b'\r' => (b"&#13;", 1),
            0xEF => {
                if bytes[i + 1..].starts_with(&[0xBF, 0xBE])
                    || bytes[i + 1..].starts_with(&[0xBF, 0xBF])
                {
                    (REPLACEMENT, 3)
                } else {
                    i += 1;
                    continue;
                }
            }
            _ => (REPLACEMENT, 1),
        };
        buf.extend_from_slice(&bytes[copied..i]);
        buf.extend_from_slice(replacement);
        i += width;
        copied = i;
    }
    buf.extend_from_slice(&bytes[copied..]);
}
