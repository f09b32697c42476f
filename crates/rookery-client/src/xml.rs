//! Small helpers over [`minidom::Element`] and the stream header.

use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// An attribute name; panics on an invalid one, so only call it with literals.
pub(crate) fn name(s: &str) -> NcName {
    NcName::try_from(s).unwrap_or_else(|_| panic!("invalid XML attribute name {s:?}"))
}

/// Set (or replace) an unqualified attribute.
pub(crate) fn set_attr(el: &mut Element, attr: &str, value: &str) {
    el.set_attr(Namespace::NONE, name(attr), value);
}

/// Our opening stream header to `domain`; `from` is included once the stream is
/// encrypted (RFC 6120 §4.7.1).
pub(crate) fn stream_header(domain: &str, from: Option<&str>) -> String {
    let mut attrs: Vec<(&str, &str)> = Vec::with_capacity(4);
    if let Some(from) = from {
        attrs.push(("from", from));
    }
    attrs.extend([("to", domain), ("version", "1.0"), ("xml:lang", "en")]);
    rookery_xml::stream_header(crate::ns::CLIENT, &attrs)
}

/// The trimmed text of the first child named `name` in `ns`, if any.
pub(crate) fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns).map(|c| c.text().trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_format() {
        assert_eq!(
            stream_header("localhost", None),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' \
             xml:lang='en'>"
        );
        assert!(stream_header("a'b", Some("x@y")).contains(" from='x@y' to='a&apos;b' "));
    }

    #[test]
    fn set_attr_replaces() {
        let mut el = Element::bare("iq", "jabber:client");
        set_attr(&mut el, "id", "1");
        set_attr(&mut el, "id", "2");
        assert_eq!(el.attr("id"), Some("2"));
    }
}
