//! Parsing complete units: the XML declaration, the stream header and stanzas.
//!
//! The [scanner](crate::scanner) has already found where the unit ends and checked its
//! structure (tags nest and their names match; no comments, processing instructions or
//! DOCTYPEs); here quick-xml splits it into tags, text, CDATA sections and references, and
//! everything else XML and Namespaces in XML require is checked while the [`Element`] tree
//! is built: UTF-8, characters, names, attributes, references and namespace bindings.

use std::borrow::Cow;
use std::cell::RefCell;
use std::mem;

use minidom::rxml::xml_map::Entry;
use minidom::rxml::{AttrMap, Namespace, NcName};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::cache;
use crate::scanner::{
    comments_refused, doctype_refused, is_whitespace, processing_instructions_refused,
};
use crate::scopes::Scopes;
use crate::text::{
    attribute_value, check_chars, normalize_line_endings, resolve_reference, split_qname, utf8,
};
use crate::{Element, FramingError, MAX_TOKEN_BYTES, StreamHeader};

/// The namespace `xml:` is bound to, and that no other prefix may be bound to.
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The namespace of unprefixed attributes, the empty namespace name, for keys of the
/// attribute map.
///
/// Not [`Namespace::NONE`], whose empty name points at address 1: the map compares its
/// keys on every insertion, and with some `memcmp` implementations (glibc's AVX-512 ones)
/// comparing with a dangling pointer costs a microsecond or more even for an empty string,
/// which made up most of the time spent on a stanza. This empty name points into a real
/// string.
fn no_namespace() -> Namespace<'static> {
    Namespace::from(&" "[..0])
}

fn not_well_formed(msg: impl Into<String>) -> FramingError {
    FramingError::NotWellFormed(msg.into())
}

fn policy(msg: impl Into<String>) -> FramingError {
    FramingError::PolicyViolation(msg.into())
}

fn too_long() -> FramingError {
    policy(format!(
        "a name or attribute value is longer than {MAX_TOKEN_BYTES} bytes"
    ))
}

/// Why quick-xml refused `unit`. It checks UTF-8 as it goes (so that it need not be checked
/// twice); the message for that is ours.
fn quick_xml_error(unit: &[u8], e: quick_xml::Error) -> FramingError {
    match utf8(unit) {
        Err(e) => e,
        Ok(_) => not_well_formed(format!("not well-formed XML: {e}")),
    }
}

/// An XML name as written, checked and split at its colon (Namespaces in XML 1.0 §4).
fn checked_qname<'a>(
    qname: &'a str,
    what: &str,
) -> Result<(Option<&'a str>, &'a str), FramingError> {
    if qname.len() > MAX_TOKEN_BYTES {
        return Err(too_long());
    }
    split_qname(qname).ok_or_else(|| {
        not_well_formed(format!(
            "not well-formed XML: '{qname}' is not a valid {what} name"
        ))
    })
}

/// A part of a name checked by [`split_qname`] as an `NcName` (which checks it again).
fn ncname(name: &str) -> Result<NcName, FramingError> {
    NcName::try_from(name)
        .map_err(|_| not_well_formed(format!("not well-formed XML: '{name}' is not a valid name")))
}

/// The attributes of a start tag as written (`raw` is what follows the element name):
/// name and raw value pairs.
struct RawAttributes<'a> {
    raw: &'a str,
    at: usize,
}

impl<'a> RawAttributes<'a> {
    fn new(raw: &'a str) -> Self {
        RawAttributes { raw, at: 0 }
    }

    fn malformed(&self) -> FramingError {
        not_well_formed(format!(
            "not well-formed XML: malformed attributes: {}",
            self.raw.trim()
        ))
    }

    fn skip_whitespace(&mut self) -> usize {
        let skipped = self.raw.as_bytes()[self.at..]
            .iter()
            .take_while(|&&b| is_whitespace(b))
            .count();
        self.at += skipped;
        skipped
    }

    fn next(&mut self) -> Result<Option<(&'a str, &'a str)>, FramingError> {
        let bytes = self.raw.as_bytes();
        let space = self.skip_whitespace();
        if self.at == bytes.len() {
            return Ok(None);
        }
        if space == 0 {
            return Err(self.malformed());
        }
        let name_start = self.at;
        let name_len = bytes[self.at..]
            .iter()
            .position(|&b| b == b'=' || is_whitespace(b))
            .unwrap_or(bytes.len() - self.at);
        self.at += name_len;
        let name = &self.raw[name_start..self.at];
        self.skip_whitespace();
        if bytes.get(self.at) != Some(&b'=') {
            return Err(self.malformed());
        }
        self.at += 1;
        self.skip_whitespace();
        let quote = match bytes.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.malformed()),
        };
        let value_start = self.at + 1;
        let Some(len) = memchr::memchr(quote, &bytes[value_start..]) else {
            return Err(self.malformed());
        };
        self.at = value_start + len + 1;
        Ok(Some((name, &self.raw[value_start..value_start + len])))
    }
}

/// Check a complete XML declaration, `<?xml ...?>`, as the rxml-based parser did: version 1.0, and if
/// given, encoding UTF-8 and standalone yes.
pub(crate) fn declaration(bytes: &[u8]) -> Result<(), FramingError> {
    let text = utf8(bytes)?;
    let inner = text
        .strip_prefix("<?xml")
        .and_then(|t| t.strip_suffix("?>"))
        .ok_or_else(|| not_well_formed("not well-formed XML: malformed XML declaration"))?;
    let mut attrs = RawAttributes::new(inner);
    let mut expected = ["version", "encoding", "standalone"].into_iter();
    let mut first = true;
    while let Some((name, value)) = attrs.next()? {
        if !expected.by_ref().any(|e| e == name) || (first && name != "version") {
            return Err(not_well_formed(format!(
                "not well-formed XML: unexpected '{name}' in the XML declaration"
            )));
        }
        first = false;
        let ok = match name {
            "version" => value == "1.0",
            "encoding" => value.eq_ignore_ascii_case("utf-8"),
            _ => value.eq_ignore_ascii_case("yes"),
        };
        if !ok {
            return Err(not_well_formed(format!(
                "not well-formed XML: {name}='{value}' in the XML declaration: only version 1.0, \
                 encoding UTF-8 and standalone documents are allowed"
            )));
        }
    }
    if first {
        return Err(not_well_formed(
            "not well-formed XML: the XML declaration lacks a version",
        ));
    }
    Ok(())
}

thread_local! {
    /// Open elements and pending text of the stanza being built, lent to one
    /// [`Assembler::stanza`] call at a time.
    static SCRATCH: RefCell<(Vec<Element>, String)> = const { RefCell::new((Vec::new(), String::new())) };
}

/// A start tag, resolved.
struct StartTag<'a> {
    name: &'a str,
    ns: Namespace<'static>,
    attrs: AttrMap,
}

/// Builds headers and stanzas from complete units, keeping the namespace bindings in scope.
#[derive(Debug)]
pub(crate) struct Assembler {
    scopes: Scopes,
    max_attributes: usize,
    /// Prefixed attributes of the start tag being resolved: prefix, local name, value.
    prefixed: Vec<(NcName, NcName, String)>,
    /// Open elements of the stanza being built; index 0 is the stanza itself.
    open: Vec<Element>,
    /// Character data not yet added to the innermost open element.
    text: String,
}

impl Assembler {
    pub(crate) fn new(max_attributes: usize) -> Self {
        Assembler {
            scopes: Scopes::new(),
            max_attributes,
            prefixed: Vec::new(),
            open: Vec::new(),
            text: String::new(),
        }
    }

    /// The root element's start tag, `<stream:stream ...>` or `<stream:stream .../>`.
    /// Its namespace declarations stay in scope for the stanzas (unless `empty`).
    pub(crate) fn header(
        &mut self,
        bytes: &[u8],
        empty: bool,
    ) -> Result<StreamHeader, FramingError> {
        check_chars(bytes)?;
        let mut reader = Reader::from_reader(bytes);
        let tag = match reader.read_event().map_err(|e| quick_xml_error(bytes, e))? {
            Event::Start(tag) | Event::Empty(tag) => tag,
            _ => {
                return Err(not_well_formed(
                    "not well-formed XML: malformed stream header",
                ));
            }
        };
        let StartTag {
            name,
            ns,
            mut attrs,
        } = self.start_tag(&tag)?;
        let default_ns = self.scopes.declared_default_here() && self.scopes.default_ns().is_some();
        let header = StreamHeader {
            ns: ns.as_str().to_owned(),
            name: name.to_owned(),
            default_ns: default_ns.then(|| self.scopes.default_ns().as_str().to_owned()),
            to: attrs.remove(&no_namespace(), "to"),
            from: attrs.remove(&no_namespace(), "from"),
            id: attrs.remove(&no_namespace(), "id"),
            version: attrs.remove(&no_namespace(), "version"),
            lang: attrs.remove(Namespace::xml(), "lang"),
        };
        if empty {
            self.scopes.close();
        }
        Ok(header)
    }

    /// One complete top-level element.
    pub(crate) fn stanza(&mut self, bytes: &[u8]) -> Result<Element, FramingError> {
        // The scratch space for building a stanza is the thread's, lent for the call, so
        // an idle stream holds none.
        SCRATCH.with_borrow_mut(|(open, text)| {
            mem::swap(&mut self.open, open);
            mem::swap(&mut self.text, text);
        });
        let result = self.build(bytes);
        self.open.clear();
        self.text.clear();
        SCRATCH.with_borrow_mut(|(open, text)| {
            mem::swap(&mut self.open, open);
            mem::swap(&mut self.text, text);
        });
        result
    }

    fn build(&mut self, bytes: &[u8]) -> Result<Element, FramingError> {
        check_chars(bytes)?;
        self.prefixed.clear();
        // quick-xml checks that the bytes are UTF-8 as it reads them.
        let mut reader = Reader::from_reader(bytes);
        // The scanner has matched every end tag to its start tag already.
        reader.config_mut().check_end_names = false;
        loop {
            match reader.read_event().map_err(|e| quick_xml_error(bytes, e))? {
                Event::Start(tag) => {
                    self.flush_text();
                    let el = self.element(&tag)?;
                    self.open.push(el);
                }
                Event::Empty(tag) => {
                    self.flush_text();
                    let el = self.element(&tag)?;
                    self.scopes.close();
                    if let Some(stanza) = self.close(el) {
                        return Ok(stanza);
                    }
                }
                Event::End(_) => {
                    self.flush_text();
                    self.scopes.close();
                    let el = self.open.pop().ok_or_else(|| {
                        not_well_formed("not well-formed XML: an end tag without a start tag")
                    })?;
                    if let Some(stanza) = self.close(el) {
                        return Ok(stanza);
                    }
                }
                Event::Text(piece) => {
                    let piece = piece.into_inner();
                    if memchr::memchr(b'>', piece.as_bytes()).is_some() && piece.contains("]]>") {
                        return Err(not_well_formed(
                            "not well-formed XML: unescaped ']]>' in text",
                        ));
                    }
                    self.text.push_str(&normalize_line_endings(&piece));
                }
                Event::CData(piece) => {
                    self.text
                        .push_str(&normalize_line_endings(&piece.into_inner()));
                }
                Event::GeneralRef(reference) => {
                    self.text.push(resolve_reference(&reference)?);
                }
                Event::Comment(_) => return Err(comments_refused()),
                Event::PI(_) | Event::Decl(_) => return Err(processing_instructions_refused()),
                Event::DocType(_) => return Err(doctype_refused()),
                Event::Eof => {
                    return Err(not_well_formed(
                        "not well-formed XML: an incomplete element",
                    ));
                }
            }
        }
    }

    /// Add pending character data to the innermost open element, as one text node.
    fn flush_text(&mut self) {
        if !self.text.is_empty()
            && let Some(el) = self.open.last_mut()
        {
            el.append_text_node(mem::take(&mut self.text));
        }
    }

    /// `el` is complete: add it to its parent, or return it if it is the stanza.
    fn close(&mut self, el: Element) -> Option<Element> {
        match self.open.last_mut() {
            Some(parent) => {
                parent.append_child(el);
                None
            }
            None => Some(el),
        }
    }

    /// Open the scope of a start tag and make its element.
    fn element(&mut self, tag: &BytesStart<'_>) -> Result<Element, FramingError> {
        let StartTag { name, ns, attrs } = self.start_tag(tag)?;
        let mut el = cache::element(name, &ns);
        if !attrs.is_empty() {
            *el.attrs_mut() = attrs;
        }
        Ok(el)
    }

    /// Open the scope of a start tag, declare its namespaces and resolve its names.
    fn start_tag<'t>(&mut self, tag: &'t BytesStart<'_>) -> Result<StartTag<'t>, FramingError> {
        let qname = tag.name().0;
        let (prefix, name) = checked_qname(qname, "element")?;
        self.scopes.open();
        let mut attrs = AttrMap::new();
        let mut raw = RawAttributes::new(tag.attributes_raw());
        let mut count = 0;
        while let Some((attr_qname, raw_value)) = raw.next()? {
            count += 1;
            if count > self.max_attributes {
                return Err(policy(format!(
                    "element <{qname}> has more than {} attributes",
                    self.max_attributes
                )));
            }
            let (attr_prefix, attr_name) = checked_qname(attr_qname, "attribute")?;
            let value = attribute_value(raw_value)?;
            if value.len() > MAX_TOKEN_BYTES {
                return Err(too_long());
            }
            self.attribute(name, attr_prefix, attr_name, value, &mut attrs)?;
        }
        // Prefixed attributes are rare (`xml:lang`, mostly): skip even setting up the loop.
        let prefixed = if self.prefixed.is_empty() {
            None
        } else {
            Some(self.prefixed.drain(..))
        };
        for (attr_prefix, attr_name, value) in prefixed.into_iter().flatten() {
            let Some(ns) = self.scopes.resolve(&attr_prefix) else {
                return Err(not_well_formed(format!(
                    "attribute '{attr_prefix}:{attr_name}' on element <{qname}> uses the \
                     undeclared namespace prefix '{attr_prefix}'"
                )));
            };
            match attrs.entry(ns.clone(), attr_name) {
                Entry::Occupied(e) => {
                    return Err(not_well_formed(format!(
                        "attribute '{attr_prefix}:{}' appears twice on element <{qname}> \
                         (after namespace resolution)",
                        e.key().1
                    )));
                }
                Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        let ns = match prefix {
            None => self.scopes.default_ns().clone(),
            Some(p) => self.scopes.resolve(p).cloned().ok_or_else(|| {
                not_well_formed(format!(
                    "element <{p}:{name}> uses the undeclared namespace prefix '{p}'"
                ))
            })?,
        };
        Ok(StartTag { name, ns, attrs })
    }

    /// One attribute of the start tag of `element`: a namespace declaration, an
    /// unprefixed attribute, or a prefixed one to resolve once all declarations are known.
    fn attribute(
        &mut self,
        element: &str,
        prefix: Option<&str>,
        name: &str,
        value: Cow<'_, str>,
        attrs: &mut AttrMap,
    ) -> Result<(), FramingError> {
        const RESERVED_PREFIX: &str = "not well-formed XML: reserved namespace prefix";
        const RESERVED_URI: &str = "not well-formed XML: reserved namespace URI";
        match prefix {
            None if name == "xmlns" => {
                if value == NS_XML {
                    return Err(not_well_formed(RESERVED_URI));
                }
                self.scopes
                    .declare_default(cache::namespace(&value))
                    .map_err(|_| {
                        not_well_formed(format!("xmlns appears twice on element <{element}>"))
                    })
            }
            Some("xmlns") => {
                if name == "xmlns" || (name == "xml" && value != NS_XML) {
                    return Err(not_well_formed(RESERVED_PREFIX));
                }
                if name != "xml" && value == NS_XML {
                    return Err(not_well_formed(RESERVED_URI));
                }
                if value.is_empty() {
                    return Err(not_well_formed(
                        "not well-formed XML: namespace URI is empty",
                    ));
                }
                self.scopes
                    .declare_prefix(ncname(name)?, cache::namespace(&value))
                    .map_err(|_| {
                        not_well_formed(format!(
                            "xmlns:{name} appears twice on element <{element}>"
                        ))
                    })
            }
            None => match attrs.entry(no_namespace(), ncname(name)?) {
                Entry::Occupied(e) => Err(not_well_formed(format!(
                    "attribute '{}' appears twice on element <{element}>",
                    e.key().1
                ))),
                Entry::Vacant(e) => {
                    e.insert(value.into_owned());
                    Ok(())
                }
            },
            Some(prefix) => {
                self.prefixed
                    .push((ncname(prefix)?, ncname(name)?, value.into_owned()));
                Ok(())
            }
        }
    }
}
