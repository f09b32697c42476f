//! [`StreamParser`]: rxml's raw push parser, namespace resolution, limits, and the
//! assembly of top-level elements.

use std::fmt;

use minidom::rxml::error::EndOrError;
use minidom::rxml::xml_map::Entry;
use minidom::rxml::{
    self, AttrMap, Namespace, NcName, Options, Parse, RawEvent, RawParser, WithOptions,
};

use crate::scopes::Scopes;
use crate::{
    Element, FramingError, Limits, MAX_HEADER_BYTES, MAX_TOKEN_BYTES, StreamEvent, StreamHeader,
};

/// Where in the stream we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the root element's start tag is complete.
    Prolog,
    /// Inside the root element: stanzas and whitespace.
    Stream,
    /// After `</stream:stream>`.
    Ended,
}

/// An element whose start tag is still being read.
struct StartTag {
    prefix: Option<NcName>,
    name: NcName,
    /// Unprefixed attributes; prefixed ones wait in [`StreamParser::prefixed`] until all of
    /// the tag's declarations are known.
    attrs: AttrMap,
    /// Attributes seen so far, namespace declarations included.
    count: usize,
}

/// Incremental parser for the XML stream a peer sends (RFC 6120 §4).
///
/// Feed it whatever the socket gave; it appends every event completed by those bytes.
/// Memory stays bounded by the [`Limits`]: at most one stanza is held, and it is refused
/// as soon as it grows past [`Limits::max_stanza_bytes`].
///
/// ```
/// use rookery_xml::{Limits, StreamEvent, StreamParser};
///
/// let mut parser = StreamParser::new(Limits::default());
/// let mut events = Vec::new();
/// parser.feed(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
///     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>",
///     &mut events).unwrap();
/// parser.feed(b"<presence/></stream:stream>", &mut events).unwrap();
/// assert!(matches!(&events[0], StreamEvent::Header(h) if h.to.as_deref() == Some("example.org")));
/// assert!(matches!(&events[1], StreamEvent::Stanza(p) if p.is("presence", "jabber:client")));
/// assert!(matches!(events[2], StreamEvent::End));
/// ```
pub struct StreamParser {
    limits: Limits,
    raw: RawParser,
    scopes: Scopes,
    phase: Phase,
    tag: Option<StartTag>,
    /// Prefixed attributes of the start tag being read: prefix, local name, value.
    prefixed: Vec<(NcName, NcName, String)>,
    /// Open elements of the current stanza; index 0 is the stanza itself.
    open: Vec<Element>,
    /// Bytes of the XML declaration and the root start tag so far.
    prolog_bytes: usize,
    /// Bytes of the current stanza that rxml has reported in events.
    stanza_bytes: usize,
    /// Bytes rxml has taken from our input but not yet reported in an event: the token it
    /// is in the middle of.
    unaccounted: usize,
    /// How many of the last bytes consumed are whitespace.
    trailing_ws: usize,
    failed: Option<FramingError>,
}

fn raw_parser() -> RawParser {
    let mut raw = RawParser::with_options(Options {
        max_token_length: MAX_TOKEN_BYTES,
        ..Options::default()
    });
    // Hand text over as soon as it is read rather than holding it back in rxml's buffer:
    // then every byte of a stanza is counted as it arrives, and whitespace between stanzas
    // does not linger as pending input (but for a trailing CR, see `eof`).
    raw.set_text_buffering(false);
    raw
}

fn not_well_formed(msg: impl Into<String>) -> FramingError {
    FramingError::NotWellFormed(msg.into())
}

fn policy(msg: impl Into<String>) -> FramingError {
    FramingError::PolicyViolation(msg.into())
}

/// Translate rxml's refusal into a stream error with a message a peer's developer can act on.
fn xml_error(e: rxml::Error) -> FramingError {
    match e {
        rxml::Error::RestrictedXml("long name or reference") => policy(format!(
            "a name or attribute value is longer than {MAX_TOKEN_BYTES} bytes"
        )),
        rxml::Error::RestrictedXml("processing instructions") => {
            not_well_formed("processing instructions are not allowed in XMPP (RFC 6120 §11.1)")
        }
        rxml::Error::RestrictedXml("comments") => {
            not_well_formed("comments are not allowed in XMPP (RFC 6120 §11.1)")
        }
        // `<!` followed by anything but `[CDATA[` or `--`: in practice a DOCTYPE.
        rxml::Error::InvalidSyntax("malformed cdata or comment section start") => not_well_formed(
            "a DOCTYPE or other markup declaration (<!...>) is not allowed in XMPP \
             (RFC 6120 §11.1)",
        ),
        rxml::Error::UndeclaredEntity => not_well_formed(
            "undeclared entity reference: only &lt; &gt; &amp; &quot; &apos; and character \
             references are allowed (RFC 6120 §11.1)",
        ),
        rxml::Error::InvalidUtf8Byte(b) => {
            not_well_formed(format!("invalid UTF-8: unexpected byte 0x{b:02x}"))
        }
        other => not_well_formed(format!("not well-formed XML: {other}")),
    }
}

/// XML's whitespace (`S` in XML 1.0 §2.3): all a peer may send between stanzas.
fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn qualified(prefix: &Option<NcName>, name: &NcName) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}:{name}"),
        None => name.to_string(),
    }
}

impl StreamParser {
    /// A parser for a new stream, expecting an optional XML declaration and then the
    /// stream header.
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            raw: raw_parser(),
            scopes: Scopes::new(),
            phase: Phase::Prolog,
            tag: None,
            prefixed: Vec::new(),
            open: Vec::new(),
            prolog_bytes: 0,
            stanza_bytes: 0,
            unaccounted: 0,
            trailing_ws: 0,
            failed: None,
        }
    }

    /// Start over for a new stream (after STARTTLS or SASL success, RFC 6120 §5.4.3.3 and
    /// §6.4.6): forget everything, including a previous error, and expect a new XML
    /// declaration and stream header.
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
    }

    /// Feed the next bytes read from the socket. They may end anywhere: inside a tag, a
    /// reference or a multi-byte UTF-8 character. Every event they complete is appended to
    /// `out`.
    ///
    /// On error, events completed before the offending bytes have still been appended; the
    /// parser is then poisoned and returns the same error from every later call, until
    /// [`reset`](Self::reset).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.run(data, out).map_err(|e| self.fail(e))
    }

    /// The peer closed the connection. Fine between stanzas (even without
    /// `</stream:stream>`) or before anything was sent; [`FramingError::NotWellFormed`] if
    /// the stream header or a stanza was cut off.
    pub fn eof(&mut self) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let complete = match self.phase {
            Phase::Prolog => self.prolog_bytes + self.unaccounted == 0,
            // rxml holds back a trailing carriage return (it might start a CRLF); whitespace
            // left pending is harmless, anything else is the start of a tag.
            Phase::Stream => {
                self.tag.is_none() && self.open.is_empty() && self.unaccounted <= self.trailing_ws
            }
            Phase::Ended => true,
        };
        if complete {
            return Ok(());
        }
        Err(self.fail(not_well_formed(match self.phase {
            Phase::Prolog => "the connection closed before the stream header was complete",
            _ => "the connection closed in the middle of a stanza",
        })))
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = Some(e.clone());
        e
    }

    fn run(&mut self, mut data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        loop {
            let before = data;
            let result = self.raw.parse(&mut data, false);
            let consumed = &before[..before.len() - data.len()];
            self.unaccounted += consumed.len();
            self.note_trailing_whitespace(consumed);
            match result {
                Ok(Some(ev)) => self.event(ev, out)?,
                // Only at end of input, which we never claim in `feed`.
                Ok(None) => return Ok(()),
                Err(EndOrError::NeedMoreData) => return self.check_size(),
                Err(EndOrError::Error(e)) => return Err(xml_error(e)),
            }
        }
    }

    fn note_trailing_whitespace(&mut self, consumed: &[u8]) {
        let ws = consumed
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        self.trailing_ws = if ws == consumed.len() {
            self.trailing_ws + ws
        } else {
            ws
        };
    }

    /// Refuse the header or stanza being read once it is over its limit, counting the
    /// bytes rxml is still holding.
    fn check_size(&self) -> Result<(), FramingError> {
        match self.phase {
            Phase::Prolog if self.prolog_bytes + self.unaccounted > MAX_HEADER_BYTES => {
                Err(policy(format!(
                    "the stream header is longer than {MAX_HEADER_BYTES} bytes"
                )))
            }
            Phase::Stream
                if self.stanza_bytes + self.unaccounted > self.limits.max_stanza_bytes =>
            {
                Err(policy(format!(
                    "a stanza is larger than {} bytes",
                    self.limits.max_stanza_bytes
                )))
            }
            _ => Ok(()),
        }
    }

    /// Attribute `len` bytes of an event to the header or the current stanza, and check
    /// the limit before the event is acted on (so a stanza whose last bytes take it over
    /// the limit is not delivered).
    fn count(&mut self, len: usize) -> Result<(), FramingError> {
        match self.phase {
            Phase::Prolog => self.prolog_bytes += len,
            Phase::Stream if self.tag.is_some() || !self.open.is_empty() => {
                self.stanza_bytes += len
            }
            // Whitespace between stanzas, the root's end tag.
            _ => {}
        }
        self.check_size()
    }

    fn event(&mut self, ev: RawEvent, out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        let len = ev.metrics().len();
        self.unaccounted = self.unaccounted.saturating_sub(len);
        match ev {
            RawEvent::XmlDeclaration(..) => self.count(len)?,
            RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                match self.phase {
                    Phase::Prolog => self.count(len)?,
                    Phase::Stream => {
                        // Not yet inside the tag: a new stanza starts from zero.
                        self.stanza_bytes += len;
                        self.check_size()?;
                        if self.open.len() >= self.limits.max_depth {
                            return Err(policy(format!(
                                "elements are nested deeper than {} levels",
                                self.limits.max_depth
                            )));
                        }
                    }
                    // rxml refuses a second root element before we see it.
                    Phase::Ended => {
                        return Err(not_well_formed("data after the end of the stream"));
                    }
                }
                self.scopes.open();
                self.tag = Some(StartTag {
                    prefix,
                    name,
                    attrs: AttrMap::new(),
                    count: 0,
                });
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                self.count(len)?;
                self.attribute(prefix, name, value)?;
            }
            RawEvent::ElementHeadClose(_) => {
                self.count(len)?;
                self.start_tag_complete(out)?;
            }
            RawEvent::ElementFoot(_) => {
                self.count(len)?;
                self.scopes.close();
                match self.open.pop() {
                    Some(el) => match self.open.last_mut() {
                        Some(parent) => {
                            parent.append_child(el);
                        }
                        None => {
                            self.stanza_bytes = 0;
                            out.push(StreamEvent::Stanza(el));
                        }
                    },
                    None => {
                        self.phase = Phase::Ended;
                        out.push(StreamEvent::End);
                    }
                }
            }
            RawEvent::Text(_, text) => {
                self.count(len)?;
                match self.open.last_mut() {
                    // Consecutive pieces of text join into one text node.
                    Some(el) => el.append_text(text),
                    None if is_xml_whitespace(&text) => {}
                    None => {
                        return Err(not_well_formed(
                            "text between stanzas: only whitespace may appear there",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn attribute(
        &mut self,
        prefix: Option<NcName>,
        name: NcName,
        value: String,
    ) -> Result<(), FramingError> {
        let Some(tag) = self.tag.as_mut() else {
            return Err(not_well_formed("attribute outside a start tag"));
        };
        tag.count += 1;
        if tag.count > self.limits.max_attributes {
            return Err(policy(format!(
                "element <{}> has more than {} attributes",
                qualified(&tag.prefix, &tag.name),
                self.limits.max_attributes
            )));
        }
        let element = &tag.name;
        match prefix {
            None if name.as_str() == "xmlns" => self.scopes.declare_default(value).map_err(|_| {
                not_well_formed(format!("xmlns appears twice on element <{element}>"))
            }),
            Some(prefix) if prefix.as_str() == "xmlns" => {
                let msg = format!("xmlns:{name} appears twice on element <{element}>");
                self.scopes
                    .declare_prefix(name, value)
                    .map_err(|_| not_well_formed(msg))
            }
            None => match tag.attrs.entry(Namespace::NONE, name) {
                Entry::Occupied(e) => Err(not_well_formed(format!(
                    "attribute '{}' appears twice on element <{element}>",
                    e.key().1
                ))),
                Entry::Vacant(e) => {
                    e.insert(value);
                    Ok(())
                }
            },
            Some(prefix) => {
                self.prefixed.push((prefix, name, value));
                Ok(())
            }
        }
    }

    /// The `>` or `/>` of a start tag: resolve its names now that all of its
    /// declarations are known, then open the element (or report the stream header).
    fn start_tag_complete(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        let Some(StartTag {
            prefix,
            name,
            mut attrs,
            ..
        }) = self.tag.take()
        else {
            return Err(not_well_formed("end of a start tag that was never opened"));
        };
        for (attr_prefix, attr_name, value) in self.prefixed.drain(..) {
            let Some(ns) = self.scopes.resolve(&attr_prefix) else {
                return Err(not_well_formed(format!(
                    "attribute '{attr_prefix}:{attr_name}' on element <{}> uses the undeclared \
                     namespace prefix '{attr_prefix}'",
                    qualified(&prefix, &name)
                )));
            };
            match attrs.entry(ns.clone(), attr_name) {
                Entry::Occupied(e) => {
                    return Err(not_well_formed(format!(
                        "attribute '{attr_prefix}:{}' appears twice on element <{}> \
                         (after namespace resolution)",
                        e.key().1,
                        qualified(&prefix, &name)
                    )));
                }
                Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        let ns = match &prefix {
            None => self.scopes.default_ns(),
            Some(p) => self.scopes.resolve(p).ok_or_else(|| {
                not_well_formed(format!(
                    "element <{p}:{name}> uses the undeclared namespace prefix '{p}'"
                ))
            })?,
        };
        if self.phase == Phase::Prolog {
            let header = StreamHeader {
                ns: ns.as_str().to_owned(),
                name: name.as_str().to_owned(),
                default_ns: (self.scopes.declared_default_here()
                    && self.scopes.default_ns().is_some())
                .then(|| self.scopes.default_ns().as_str().to_owned()),
                to: attrs.remove(&Namespace::NONE, "to"),
                from: attrs.remove(&Namespace::NONE, "from"),
                id: attrs.remove(&Namespace::NONE, "id"),
                version: attrs.remove(&Namespace::NONE, "version"),
                lang: attrs.remove(Namespace::xml(), "lang"),
            };
            self.phase = Phase::Stream;
            out.push(StreamEvent::Header(header));
        } else {
            let mut el = Element::bare(name.as_str(), ns.as_str());
            *el.attrs_mut() = attrs;
            self.open.push(el);
        }
        Ok(())
    }
}

impl fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamParser")
            .field("limits", &self.limits)
            .field("phase", &self.phase)
            .field("depth", &self.open.len())
            .field("stanza_bytes", &self.stanza_bytes)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
