//! [`StreamParser`]: the [scanner](crate::scanner) finds where each unit (XML declaration,
//! stream header, stanza) ends as the bytes arrive; the [assembler](crate::assemble)
//! parses each complete unit with quick-xml. In between, this module holds the bytes of the
//! unit still arriving, and applies the size limits.

use std::fmt;

use crate::assemble::{Assembler, declaration};
use crate::scanner::{Phase, Scanner, Step};
use crate::{FramingError, Limits, MAX_HEADER_BYTES, StreamEvent};

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
    scanner: Scanner,
    assembler: Assembler,
    /// The bytes of the unit in progress that came in earlier calls to `feed`; empty when
    /// no unit is in progress, or when it began in the current call.
    buf: Vec<u8>,
    /// Whether a unit (XML declaration, stream header or stanza) is in progress.
    in_unit: bool,
    /// Whether the stream header is complete.
    header_done: bool,
    /// Bytes consumed before the stream header was complete, in earlier calls.
    prolog_bytes: usize,
    failed: Option<FramingError>,
}

fn policy(msg: impl Into<String>) -> FramingError {
    FramingError::PolicyViolation(msg.into())
}

impl StreamParser {
    /// A parser for a new stream, expecting an optional XML declaration and then the
    /// stream header.
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            scanner: Scanner::new(limits),
            assembler: Assembler::new(limits.max_attributes),
            buf: Vec::new(),
            in_unit: false,
            header_done: false,
            prolog_bytes: 0,
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
        let phase = self.scanner.phase();
        let complete = match phase {
            Phase::Prolog => self.prolog_bytes == 0,
            Phase::Stream => !self.in_unit && self.scanner.between_stanzas(),
            Phase::Ended => true,
        };
        if complete {
            return Ok(());
        }
        Err(self.fail(FramingError::NotWellFormed(
            match phase {
                Phase::Prolog => "the connection closed before the stream header was complete",
                _ => "the connection closed in the middle of a stanza",
            }
            .into(),
        )))
    }

    /// Capacity of the buffer for a unit arriving in pieces, for tests of memory use.
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = Some(e.clone());
        e
    }

    fn run(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), FramingError> {
        let mut pos = 0;
        // Where the unit in progress begins in `data` (its earlier bytes are in `buf`).
        let mut from = self.in_unit.then_some(0);
        loop {
            let step = match self.scanner.scan(data, &mut pos) {
                Ok(step) => step,
                Err(e) => {
                    // A unit already over its limit is refused for that, as before the
                    // scanner reached the offending byte.
                    self.check_size(from, pos)?;
                    return Err(e);
                }
            };
            match step {
                Step::Exhausted => break,
                Step::Begin(at) => from = Some(at),
                Step::Cancel => {
                    // Just the `<` of the root's end tag, perhaps from the last call.
                    from = None;
                    self.buf.clear();
                }
                Step::Declaration => {
                    self.check_size(from, pos)?;
                    let from = from.take().expect("a unit in progress");
                    self.unit(data, from, pos, |_, unit| declaration(unit))?;
                }
                Step::Header { empty } => {
                    self.check_size(from, pos)?;
                    let from = from.take().expect("a unit in progress");
                    let header = self.unit(data, from, pos, |asm, unit| asm.header(unit, empty))?;
                    self.header_done = true;
                    out.push(StreamEvent::Header(header));
                    if empty {
                        out.push(StreamEvent::End);
                    }
                }
                Step::Stanza => {
                    self.check_size(from, pos)?;
                    let from = from.take().expect("a unit in progress");
                    let stanza = self.unit(data, from, pos, |asm, unit| asm.stanza(unit))?;
                    out.push(StreamEvent::Stanza(stanza));
                }
                Step::End => out.push(StreamEvent::End),
            }
        }
        self.check_size(from, data.len())?;
        if let Some(from) = from {
            self.buf.extend_from_slice(&data[from..]);
        }
        self.in_unit = from.is_some();
        if !self.header_done {
            self.prolog_bytes += data.len();
        }
        self.scanner.advance(data.len());
        Ok(())
    }

    /// Parse the unit made of `buf` and `data[from..end]`, without copying when it lies
    /// wholly in `data`.
    fn unit<R>(
        &mut self,
        data: &[u8],
        from: usize,
        end: usize,
        parse: impl FnOnce(&mut Assembler, &[u8]) -> Result<R, FramingError>,
    ) -> Result<R, FramingError> {
        if self.buf.is_empty() {
            return parse(&mut self.assembler, &data[from..end]);
        }
        self.buf.extend_from_slice(&data[from..end]);
        let result = parse(&mut self.assembler, &self.buf);
        // Freed, not kept: a unit arriving in pieces is at most one per read, and an idle
        // stream then holds no buffer at all.
        self.buf = Vec::new();
        result
    }

    /// Refuse the stream header or the stanza in progress if it is over its limit, with
    /// `data[..end]` of the current call consumed and the unit in progress beginning at
    /// `from`.
    fn check_size(&self, from: Option<usize>, end: usize) -> Result<(), FramingError> {
        if !self.header_done {
            if self.prolog_bytes + end > MAX_HEADER_BYTES {
                return Err(policy(format!(
                    "the stream header is longer than {MAX_HEADER_BYTES} bytes"
                )));
            }
        } else if let Some(from) = from
            && self.buf.len() + end - from > self.limits.max_stanza_bytes
        {
            return Err(policy(format!(
                "a stanza is larger than {} bytes",
                self.limits.max_stanza_bytes
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamParser")
            .field("limits", &self.limits)
            .field("phase", &self.scanner.phase())
            .field("buffered", &self.buf.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
