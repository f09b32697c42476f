//! Finding where the units of a stream begin and end, as its bytes arrive split anywhere.
//!
//! A *unit* is something [`StreamParser`](crate::StreamParser) parses in one go once all of
//! its bytes are there: the XML declaration, the root element's start tag (the stream
//! header), or one top-level child of the root (a stanza). Between units there is only
//! whitespace, which is dropped, and the root's end tag, which the scanner recognises by
//! itself.
//!
//! The scanner looks at every byte once and keeps only a little state across calls (which
//! kind of markup it is in, which quote it is inside, the names of the open elements), so
//! feeding a stream one byte at a time costs no more than feeding it whole. It jumps over
//! text, attribute values and CDATA sections with `memchr`. It checks what it must to find
//! boundaries reliably, and what is cheap to refuse at once: the syntax of start tags
//! (attributes are `name='value'` or `name="value"`, separated by whitespace, with no `<`),
//! end tags that do not match their start tags, comments, processing instructions,
//! DOCTYPEs, text outside the stanzas, nesting deeper than [`Limits::max_depth`] and more
//! attributes than [`Limits::max_attributes`]. Everything else about a unit (the full rules
//! for names, references, UTF-8, characters, namespaces) is checked when the complete unit
//! is parsed.
//!
//! [`Limits::max_depth`]: crate::Limits::max_depth
//! [`Limits::max_attributes`]: crate::Limits::max_attributes

use memchr::{memchr, memchr2};

use crate::text::{COLON, NAME, NAME_START, NON_ASCII, WHITESPACE, class};
use crate::{FramingError, Limits};

/// A boundary the scanner found, or the end of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// All bytes given have been scanned.
    Exhausted,
    /// A unit may begin with the `<` at this index of the bytes being scanned. Whether it
    /// does is known only from the next byte: see [`Step::Cancel`].
    Begin(usize),
    /// The `<` reported by [`Step::Begin`] starts no unit after all: it opens the root's
    /// end tag.
    Cancel,
    /// The XML declaration is complete; it ends just before the current position.
    Declaration,
    /// The root element's start tag is complete; it ends just before the current position.
    /// `empty` if it was written `<stream:stream .../>`.
    Header { empty: bool },
    /// A top-level element is complete; it ends just before the current position.
    Stanza,
    /// The root element's end tag is complete.
    End,
}

/// Where in the document the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the root element's start tag is complete.
    Prolog,
    /// Inside the root element.
    Stream,
    /// After the root element's end tag.
    Ended,
}

/// What kind of markup the next byte belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data, or whitespace between units.
    Text,
    /// Just after `<`.
    Open,
    /// Just after `<!`.
    Bang,
    /// Just after `<!-`.
    BangDash,
    /// After `<![` and this many bytes of `CDATA[`.
    CDataOpen(u8),
    /// Inside a CDATA section, after this many `]` (at most two are counted).
    CData(u8),
    /// After `<?` at the very start of the stream and this many bytes of `xml`.
    DeclOpen(u8),
    /// Inside the XML declaration; `true` just after a `?`.
    Decl(bool),
    /// In the name of a start tag.
    StartName,
    /// In a start tag after its name.
    StartTag(Tag),
    /// In the name of an end tag, after this many bytes of the expected name.
    EndName(usize),
    /// In an end tag after its name: only whitespace may come before `>`.
    EndTail,
}

/// Where in a start tag, after the element name (XML 1.0 §3.1, `STag` and `EmptyElemTag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// Just after the element name or an attribute value: whitespace, `/` or `>`.
    AfterItem,
    /// After whitespace: an attribute name, more whitespace, `/` or `>`.
    Space,
    /// In an attribute name.
    Name,
    /// Whitespace after an attribute name, before `=`.
    AfterName,
    /// After `=`, before the opening quote.
    Eq,
    /// Inside an attribute value quoted with this byte.
    Value(u8),
    /// After the `/` of `/>`.
    Slash,
}

const CDATA_OPEN: &[u8] = b"CDATA[";

fn not_well_formed(msg: impl Into<String>) -> FramingError {
    FramingError::NotWellFormed(msg.into())
}

pub(crate) fn comments_refused() -> FramingError {
    not_well_formed("comments are not allowed in XMPP (RFC 6120 §11.1)")
}

pub(crate) fn processing_instructions_refused() -> FramingError {
    not_well_formed("processing instructions are not allowed in XMPP (RFC 6120 §11.1)")
}

pub(crate) fn doctype_refused() -> FramingError {
    not_well_formed(
        "a DOCTYPE or other markup declaration (<!...>) is not allowed in XMPP \
         (RFC 6120 §11.1)",
    )
}

fn data_after_end() -> FramingError {
    not_well_formed("data after the end of the stream")
}

/// A byte for an error message.
fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// XML's whitespace (`S` in XML 1.0 §2.3).
pub(crate) fn is_whitespace(b: u8) -> bool {
    class(b) & WHITESPACE != 0
}

/// A byte that may start an XML name. Non-ASCII bytes are let through here; the name is
/// checked properly when its unit is parsed.
fn is_name_start(b: u8) -> bool {
    class(b) & (NAME_START | COLON | NON_ASCII) != 0
}

/// A byte that may continue an XML name (non-ASCII: as for [`is_name_start`]).
fn is_name_byte(b: u8) -> bool {
    class(b) & (NAME | COLON | NON_ASCII) != 0
}

/// The resumable boundary scanner; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    phase: Phase,
    max_depth: usize,
    max_attributes: usize,
    /// Stream offset of the first byte of the current call's input.
    offset: u64,
    /// Whether the XML declaration has been read (only then may whitespace come before the
    /// stream header).
    declared: bool,
    /// Attributes of the start tag being read so far.
    attributes: usize,
    /// Names of the open elements, the root's first, one after the other.
    names: Vec<u8>,
    /// Where each open element's name starts in `names`.
    starts: Vec<usize>,
}

impl Scanner {
    pub(crate) fn new(limits: Limits) -> Self {
        Scanner {
            state: State::Text,
            phase: Phase::Prolog,
            max_depth: limits.max_depth,
            max_attributes: limits.max_attributes,
            offset: 0,
            declared: false,
            attributes: 0,
            names: Vec::new(),
            starts: Vec::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the stream may end here: between stanzas (or after the root's end tag),
    /// not inside any markup.
    pub(crate) fn between_stanzas(&self) -> bool {
        self.state == State::Text && self.starts.len() <= 1
    }

    /// Inside a top-level element of the stream.
    fn in_stanza(&self) -> bool {
        self.starts.len() >= 2
    }

    /// All of the current call's input was scanned; the next call continues the stream.
    pub(crate) fn advance(&mut self, len: usize) {
        self.offset += len as u64;
    }

    /// Scan `data` from `*pos` up to the next boundary, or to its end, and leave `*pos`
    /// just after the last byte scanned.
    pub(crate) fn scan(&mut self, data: &[u8], pos: &mut usize) -> Result<Step, FramingError> {
        while *pos < data.len() {
            match self.state {
                State::Text if self.in_stanza() => match memchr(b'<', &data[*pos..]) {
                    Some(i) => {
                        *pos += i + 1;
                        self.state = State::Open;
                    }
                    None => *pos = data.len(),
                },
                State::Text => {
                    // Outside the stanzas only whitespace may appear, and in the prolog
                    // only after the XML declaration.
                    let rest = &data[*pos..];
                    let i = rest
                        .iter()
                        .position(|&b| !is_whitespace(b))
                        .unwrap_or(rest.len());
                    if i > 0 && self.phase == Phase::Prolog && !self.declared {
                        return Err(self.stray_text());
                    }
                    *pos += i;
                    match rest.get(i) {
                        None => {}
                        Some(b'<') if self.phase != Phase::Ended => {
                            let at = *pos;
                            *pos += 1;
                            self.state = State::Open;
                            return Ok(Step::Begin(at));
                        }
                        Some(_) => return Err(self.stray_text()),
                    }
                }
                State::Open => {
                    if let Some(step) = self.open(data[*pos], pos)? {
                        return Ok(step);
                    }
                }
                State::Bang => {
                    match data[*pos] {
                        b'-' => self.state = State::BangDash,
                        b'[' if self.in_stanza() => self.state = State::CDataOpen(0),
                        b'[' => {
                            return Err(not_well_formed(
                                "not well-formed XML: a CDATA section outside a stanza",
                            ));
                        }
                        _ => return Err(doctype_refused()),
                    }
                    *pos += 1;
                }
                State::BangDash => {
                    if data[*pos] == b'-' {
                        return Err(comments_refused());
                    }
                    return Err(not_well_formed(
                        "not well-formed XML: malformed comment start",
                    ));
                }
                State::CDataOpen(n) => {
                    if data[*pos] != CDATA_OPEN[usize::from(n)] {
                        return Err(not_well_formed(
                            "not well-formed XML: malformed CDATA section start",
                        ));
                    }
                    *pos += 1;
                    self.state = if usize::from(n) + 1 == CDATA_OPEN.len() {
                        State::CData(0)
                    } else {
                        State::CDataOpen(n + 1)
                    };
                }
                State::CData(brackets) => {
                    let b = data[*pos];
                    if b == b'>' && brackets == 2 {
                        *pos += 1;
                        self.state = State::Text;
                    } else if b == b']' {
                        *pos += 1;
                        self.state = State::CData((brackets + 1).min(2));
                    } else {
                        self.state = State::CData(0);
                        match memchr(b']', &data[*pos..]) {
                            Some(i) => *pos += i,
                            None => *pos = data.len(),
                        }
                    }
                }
                State::DeclOpen(n) => {
                    let b = data[*pos];
                    if n < 3 {
                        if b != b"xml"[usize::from(n)] {
                            return Err(processing_instructions_refused());
                        }
                        self.state = State::DeclOpen(n + 1);
                    } else if is_whitespace(b) {
                        self.state = State::Decl(false);
                    } else if is_name_byte(b) {
                        // `<?xml-stylesheet ...?>` and the like.
                        return Err(processing_instructions_refused());
                    } else {
                        return Err(not_well_formed(
                            "not well-formed XML: malformed XML declaration",
                        ));
                    }
                    *pos += 1;
                }
                State::Decl(question) => {
                    let b = data[*pos];
                    *pos += 1;
                    if b == b'>' && question {
                        self.state = State::Text;
                        self.declared = true;
                        return Ok(Step::Declaration);
                    }
                    if b == b'<' {
                        return Err(not_well_formed(
                            "not well-formed XML: malformed XML declaration",
                        ));
                    }
                    self.state = State::Decl(b == b'?');
                }
                State::StartName => {
                    let rest = &data[*pos..];
                    let len = rest
                        .iter()
                        .position(|&b| !is_name_byte(b))
                        .unwrap_or(rest.len());
                    self.names.extend_from_slice(&rest[..len]);
                    *pos += len;
                    if len < rest.len() {
                        self.state = State::StartTag(Tag::AfterItem);
                    }
                }
                State::StartTag(tag) => {
                    if let Some(step) = self.start_tag(data, pos, tag)? {
                        return Ok(step);
                    }
                }
                State::EndName(matched) => {
                    let start = *self.starts.last().expect("an open element");
                    let expected = &self.names[start..];
                    let rest = &data[*pos..];
                    let n = (expected.len() - matched).min(rest.len());
                    if rest[..n] != expected[matched..matched + n] {
                        return Err(self.mismatched_end_tag());
                    }
                    *pos += n;
                    if matched + n < expected.len() {
                        self.state = State::EndName(matched + n);
                    } else {
                        self.state = State::EndTail;
                        // Only whitespace or `>` may follow the name: anything else means
                        // the name goes on.
                        if let Some(&b) = rest.get(n)
                            && !is_whitespace(b)
                            && b != b'>'
                        {
                            return Err(self.mismatched_end_tag());
                        }
                    }
                }
                State::EndTail => {
                    let b = data[*pos];
                    *pos += 1;
                    if b == b'>' {
                        self.state = State::Text;
                        if let Some(step) = self.end_tag_complete() {
                            return Ok(step);
                        }
                    } else if !is_whitespace(b) {
                        return Err(not_well_formed(format!(
                            "not well-formed XML: {} in an end tag",
                            describe(b)
                        )));
                    }
                }
            }
        }
        Ok(Step::Exhausted)
    }

    /// The byte `b` after a `<`, at `*pos`.
    fn open(&mut self, b: u8, pos: &mut usize) -> Result<Option<Step>, FramingError> {
        match b {
            b'/' => {
                if self.starts.is_empty() {
                    return Err(not_well_formed(
                        "not well-formed XML: an end tag before the stream header",
                    ));
                }
                *pos += 1;
                self.state = State::EndName(0);
                if self.starts.len() == 1 {
                    return Ok(Some(Step::Cancel));
                }
            }
            b'!' => {
                *pos += 1;
                self.state = State::Bang;
            }
            b'?' => {
                // The `<` is at `*pos - 1`, in this call or (if `*pos` is 0) the last.
                let at_start = self.offset + *pos as u64 == 1;
                if !at_start || self.phase != Phase::Prolog {
                    return Err(processing_instructions_refused());
                }
                *pos += 1;
                self.state = State::DeclOpen(0);
            }
            _ if is_name_start(b) => {
                if self.phase == Phase::Stream && self.starts.len() > self.max_depth {
                    return Err(FramingError::PolicyViolation(format!(
                        "elements are nested deeper than {} levels",
                        self.max_depth
                    )));
                }
                self.starts.push(self.names.len());
                self.attributes = 0;
                self.state = State::StartName;
            }
            _ => {
                return Err(not_well_formed(format!(
                    "not well-formed XML: '<' followed by {}",
                    describe(b)
                )));
            }
        }
        Ok(None)
    }

    /// The rest of a start tag after its name, up to and including its `>`, from `tag`;
    /// attribute values are skipped with `memchr`. Returns the boundary the tag makes, if
    /// it is complete and makes one.
    fn start_tag(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        mut tag: Tag,
    ) -> Result<Option<Step>, FramingError> {
        let mut i = *pos;
        let result = loop {
            if let Tag::Value(quote) = tag {
                match memchr2(quote, b'<', &data[i..]) {
                    Some(len) if data[i + len] == quote => {
                        i += len + 1;
                        tag = Tag::AfterItem;
                    }
                    Some(len) => {
                        i += len;
                        break Err(not_well_formed(
                            "not well-formed XML: '<' in an attribute value",
                        ));
                    }
                    None => {
                        i = data.len();
                        break Ok(None);
                    }
                }
            }
            let Some(&b) = data.get(i) else {
                break Ok(None);
            };
            i += 1;
            let space = is_whitespace(b);
            tag = match tag {
                Tag::Name if is_name_byte(b) => Tag::Name,
                Tag::Name | Tag::AfterName if b == b'=' => Tag::Eq,
                Tag::Name | Tag::AfterName if space => Tag::AfterName,
                Tag::Eq if b == b'\'' || b == b'"' => Tag::Value(b),
                Tag::Eq if space => Tag::Eq,
                Tag::AfterItem | Tag::Space if space => Tag::Space,
                Tag::AfterItem | Tag::Space if b == b'/' => Tag::Slash,
                Tag::AfterItem | Tag::Space | Tag::Slash if b == b'>' => {
                    self.state = State::Text;
                    *pos = i;
                    return Ok(self.start_tag_complete(tag == Tag::Slash));
                }
                Tag::Space if is_name_start(b) => {
                    self.attributes += 1;
                    if self.attributes > self.max_attributes {
                        break Err(FramingError::PolicyViolation(format!(
                            "element <{}> has more than {} attributes",
                            String::from_utf8_lossy(self.open_name()),
                            self.max_attributes
                        )));
                    }
                    Tag::Name
                }
                Tag::AfterItem if is_name_start(b) => {
                    break Err(not_well_formed(
                        "not well-formed XML: whitespace is required before an attribute name",
                    ));
                }
                Tag::Eq => {
                    break Err(not_well_formed(
                        "not well-formed XML: an attribute value must be quoted",
                    ));
                }
                _ => {
                    break Err(not_well_formed(format!(
                        "not well-formed XML: {} in a start tag",
                        describe(b)
                    )));
                }
            };
        };
        *pos = i;
        self.state = State::StartTag(tag);
        result
    }

    /// The name of the innermost open element, as written.
    fn open_name(&self) -> &[u8] {
        let start = *self.starts.last().expect("an open element");
        &self.names[start..]
    }

    fn mismatched_end_tag(&self) -> FramingError {
        not_well_formed(format!(
            "not well-formed XML: the end tag does not match the start tag <{}>",
            String::from_utf8_lossy(self.open_name())
        ))
    }

    /// The `>` of a start tag (`empty`: of `/>`): the boundary it makes, if any.
    fn start_tag_complete(&mut self, empty: bool) -> Option<Step> {
        if self.phase == Phase::Prolog {
            if empty {
                self.pop();
                self.phase = Phase::Ended;
            } else {
                self.phase = Phase::Stream;
            }
            return Some(Step::Header { empty });
        }
        if empty {
            self.pop();
            if self.starts.len() == 1 {
                self.shrink();
                return Some(Step::Stanza);
            }
        }
        None
    }

    /// The `>` of an end tag: the boundary it makes, if any.
    fn end_tag_complete(&mut self) -> Option<Step> {
        self.pop();
        match self.starts.len() {
            0 => {
                self.phase = Phase::Ended;
                Some(Step::End)
            }
            1 => {
                self.shrink();
                Some(Step::Stanza)
            }
            _ => None,
        }
    }

    fn pop(&mut self) {
        if let Some(start) = self.starts.pop() {
            self.names.truncate(start);
        }
    }

    /// Forget the names of a stanza that is complete if they took much memory.
    fn shrink(&mut self) {
        // What is left is the root's name.
        if self.names.capacity() > 4096 {
            self.names.shrink_to(256);
        }
        if self.starts.capacity() > 256 {
            self.starts.shrink_to(64);
        }
    }

    /// The error for a byte other than `<` (or whitespace where that is allowed) outside
    /// the stanzas.
    fn stray_text(&self) -> FramingError {
        match self.phase {
            Phase::Prolog => not_well_formed(
                "not well-formed XML: text before the stream header (only whitespace, and only \
                 after an XML declaration, may appear there)",
            ),
            Phase::Stream => {
                not_well_formed("text between stanzas: only whitespace may appear there")
            }
            Phase::Ended => data_after_end(),
        }
    }
}
