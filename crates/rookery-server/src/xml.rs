//! Small conveniences over `minidom::Element` so handlers read like the XML they build.

use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// A new empty element `<name xmlns='ns'/>`.
pub fn el(name: &str, ns: &str) -> Element {
    Element::bare(name, ns)
}

/// Escape text for XML character data and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The empty namespace name of unprefixed attributes, as an attribute map key.
///
/// Not `Namespace::NONE`: its empty name points at address 1, and glibc's AVX-512 `memcmp`
/// (which the map's key comparisons reach even for empty strings) takes a microsecond or
/// more to compare zero bytes there — several times a stanza's whole routing cost. This
/// one points into a real string.
pub fn no_ns() -> Namespace<'static> {
    Namespace::from(&" "[..0])
}

fn split_name(name: &str) -> (Namespace<'static>, NcName) {
    let (ns, local) = match name.strip_prefix("xml:") {
        Some(local) => (Namespace::XML, local),
        None => (no_ns(), name),
    };
    let local =
        NcName::try_from(local).unwrap_or_else(|_| panic!("invalid attribute name {name:?}"));
    (ns, local)
}

/// Attribute helpers; names are plain (`to`) or `xml:`-prefixed (`xml:lang`).
pub trait ElementExt: Sized {
    fn put_attr(&mut self, name: &str, value: &str);
    fn remove_attr(&mut self, name: &str) -> Option<String>;
    fn get_attr(&self, name: &str) -> Option<&str>;
    /// All attributes as (`name` or `xml:name`, value) pairs.
    fn attr_pairs(&self) -> Vec<(String, String)>;
    fn with_attr(self, name: &str, value: &str) -> Self;
    fn with_text(self, text: &str) -> Self;
    fn with_child(self, child: Element) -> Self;
    /// The first child element, whatever its name.
    fn first_child(&self) -> Option<&Element>;
    /// The text of the named child in the same namespace as `self`, if present.
    fn child_text(&self, name: &str, ns: &str) -> Option<String>;
}

impl ElementExt for Element {
    fn put_attr(&mut self, name: &str, value: &str) {
        let (ns, local) = split_name(name);
        self.attrs_mut().insert(ns, local, value.to_owned());
    }
    fn remove_attr(&mut self, name: &str) -> Option<String> {
        let (ns, local) = split_name(name);
        self.attrs_mut().remove(&ns, &local)
    }
    fn get_attr(&self, name: &str) -> Option<&str> {
        // Looked up by `&str`: no name to validate or allocate on this hot path.
        match name.strip_prefix("xml:") {
            Some(local) => self.attrs().get(&Namespace::XML, local),
            None => self.attrs().get(&no_ns(), name),
        }
        .map(String::as_str)
    }
    fn attr_pairs(&self) -> Vec<(String, String)> {
        self.attrs()
            .iter()
            .map(|((ns, name), v)| {
                let key = if *ns == Namespace::XML {
                    format!("xml:{}", name.as_str())
                } else {
                    name.as_str().to_owned()
                };
                (key, v.clone())
            })
            .collect()
    }
    fn with_attr(mut self, name: &str, value: &str) -> Self {
        self.put_attr(name, value);
        self
    }
    fn with_text(mut self, text: &str) -> Self {
        self.append_text(text);
        self
    }
    fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }
    fn first_child(&self) -> Option<&Element> {
        self.children().next()
    }
    fn child_text(&self, name: &str, ns: &str) -> Option<String> {
        self.get_child(name, ns).map(|c| c.text())
    }
}

/// The `type` attribute of an IQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

impl IqType {
    pub fn parse(s: Option<&str>) -> Option<IqType> {
        Some(match s? {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        })
    }
}

/// An IQ result answering `request`, with an optional payload.
pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut reply = el("iq", crate::ns::CLIENT).with_attr("type", "result");
    if let Some(id) = request.get_attr("id") {
        reply.put_attr("id", id);
    }
    if let Some(from) = request.get_attr("from") {
        reply.put_attr("to", from);
    }
    if let Some(to) = request.get_attr("to") {
        reply.put_attr("from", to);
    }
    if let Some(p) = payload {
        reply.append_child(p);
    }
    reply
}
