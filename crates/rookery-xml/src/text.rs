//! Characters, references and the XML 1.0 normalisations, for the parser of complete
//! units. Each function has a fast path that costs one pass and no allocation when there
//! is nothing to do, which is nearly always.

use std::borrow::Cow;

use memchr::{memchr, memchr3};

use crate::FramingError;

fn not_well_formed(msg: impl Into<String>) -> FramingError {
    FramingError::NotWellFormed(msg.into())
}

/// [`CLASS`]: may start an XML name (an ASCII letter or `_`).
pub(crate) const NAME_START: u8 = 1;
/// [`CLASS`]: may continue an XML name (also digits, `-` and `.`).
pub(crate) const NAME: u8 = 2;
/// [`CLASS`]: `:`, between the prefix and the local part of a name.
pub(crate) const COLON: u8 = 4;
/// [`CLASS`]: part of a non-ASCII character; names with one are checked by the full rules.
pub(crate) const NON_ASCII: u8 = 8;
/// [`CLASS`]: needs attention in an attribute value: `&`, `<`, tab, line feed, carriage
/// return.
const VALUE_SPECIAL: u8 = 16;
/// [`CLASS`]: XML whitespace.
pub(crate) const WHITESPACE: u8 = 32;

/// What each byte may be, so that the loops over names and values take one table lookup
/// per byte.
pub(crate) static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphabetic() || b == b'_' {
            NAME_START | NAME
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            NAME
        } else if b == b':' {
            COLON
        } else if b >= 0x80 {
            NON_ASCII
        } else if b == b' ' {
            WHITESPACE
        } else if b == b'\t' || b == b'\n' || b == b'\r' {
            WHITESPACE | VALUE_SPECIAL
        } else if b == b'&' || b == b'<' {
            VALUE_SPECIAL
        } else {
            0
        };
        i += 1;
    }
    table
}

pub(crate) fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// Check a qualified XML name (Namespaces in XML 1.0 §4) and split it at its colon into
/// prefix and local part; `None` if it is not one.
pub(crate) fn split_qname(name: &str) -> Option<(Option<&str>, &str)> {
    let bytes = name.as_bytes();
    let mut seen = 0;
    let mut colon = None;
    for (i, &b) in bytes.iter().enumerate() {
        let c = class(b);
        if c & (NAME | COLON | NON_ASCII) == 0 || (c == COLON && colon.is_some()) {
            return None;
        }
        if c == COLON {
            colon = Some(i);
        }
        seen |= c;
    }
    let (prefix, local) = match colon {
        Some(i) => (Some(&name[..i]), &name[i + 1..]),
        None => (None, name),
    };
    let valid = |part: &str| {
        if seen & NON_ASCII != 0 {
            minidom::rxml::strings::validate_ncname(part).is_ok()
        } else {
            part.as_bytes()
                .first()
                .is_some_and(|&b| class(b) & NAME_START != 0)
        }
    };
    (valid(local) && prefix.is_none_or(valid)).then_some((prefix, local))
}

/// The bytes of a complete unit as a string, or why they are not UTF-8.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, FramingError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let bad = &bytes[e.valid_up_to()..];
        let len = e.error_len().unwrap_or(bad.len()).max(1);
        // A lead byte followed by something other than a continuation byte: the
        // unexpected byte is the one after the valid part of the sequence.
        let byte = match bad.get(len) {
            Some(&next) if (0xc2..=0xf4).contains(&bad[0]) => next,
            _ => bad[0],
        };
        not_well_formed(format!("invalid UTF-8: unexpected byte 0x{byte:02x}"))
    })
}

/// Whether `c` may appear in an XML 1.0 document (`Char`, XML 1.0 §2.2).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{d7ff}' | '\u{e000}'..='\u{fffd}') || c >= '\u{10000}'
}

fn invalid_char(c: char) -> FramingError {
    not_well_formed(format!(
        "not well-formed XML: character U+{:04X} is not allowed in XML",
        c as u32
    ))
}

/// Refuse characters XML cannot carry: C0 controls other than tab, line feed and carriage
/// return, and U+FFFE and U+FFFF (surrogates are not UTF-8). `bytes` may still turn out
/// not to be UTF-8; that is for the caller to check.
pub(crate) fn check_chars(bytes: &[u8]) -> Result<(), FramingError> {
    let is_control = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
    // Branch-free over blocks, so that the compiler can vectorise it.
    let has_control = bytes
        .chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | is_control(b)));
    if has_control && let Some(&b) = bytes.iter().find(|&&b| is_control(b)) {
        return Err(invalid_char(char::from(b)));
    }
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
    let mut from = 0;
    while let Some(i) = memchr(0xef, &bytes[from..]) {
        let at = from + i;
        if let [0xef, 0xbf, last @ (0xbe | 0xbf), ..] = bytes[at..] {
            return Err(invalid_char(if last == 0xbe {
                '\u{fffe}'
            } else {
                '\u{ffff}'
            }));
        }
        from = at + 1;
    }
    Ok(())
}

pub(crate) fn undeclared_entity() -> FramingError {
    not_well_formed(
        "undeclared entity reference: only &lt; &gt; &amp; &quot; &apos; and character \
         references are allowed (RFC 6120 §11.1)",
    )
}

/// The character a reference stands for; `name` is what comes between `&` and `;`.
pub(crate) fn resolve_reference(name: &str) -> Result<char, FramingError> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        _ => match name.strip_prefix('#') {
            Some(number) => character_reference(number),
            None if name.is_empty() => Err(not_well_formed(
                "not well-formed XML: empty entity reference",
            )),
            None => Err(undeclared_entity()),
        },
    }
}

/// `&#number;` or `&#xhex;`.
fn character_reference(number: &str) -> Result<char, FramingError> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    let bad = || {
        not_well_formed(format!(
            "not well-formed XML: invalid character reference &#{number};"
        ))
    };
    // `u32::from_str_radix` would also take a sign.
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(bad());
    }
    let value = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
    let c = char::from_u32(value).ok_or_else(bad)?;
    if !is_xml_char(c) {
        return Err(invalid_char(c));
    }
    Ok(c)
}

/// Character data with its line endings normalised (XML 1.0 §2.11): `\r\n` and a lone `\r`
/// become `\n`.
pub(crate) fn normalize_line_endings(s: &str) -> Cow<'_, str> {
    let Some(first) = memchr(b'\r', s.as_bytes()) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut at = first;
    loop {
        out.push_str(&rest[..at]);
        out.push('\n');
        rest = &rest[at + 1..];
        if rest.starts_with('\n') {
            rest = &rest[1..];
        }
        match memchr(b'\r', rest.as_bytes()) {
            Some(i) => at = i,
            None => {
                out.push_str(rest);
                return Cow::Owned(out);
            }
        }
    }
}

/// An attribute value as written between its quotes, with references expanded and
/// whitespace normalised (XML 1.0 §3.3.3): a literal tab, line feed, carriage return or
/// CRLF becomes one space; a character reference such as `&#10;` is kept as it is.
pub(crate) fn attribute_value(raw: &str) -> Result<Cow<'_, str>, FramingError> {
    let bytes = raw.as_bytes();
    let special = |&b: &u8| class(b) & VALUE_SPECIAL != 0;
    let Some(first) = bytes.iter().position(special) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = first;
    out.push_str(&raw[..i]);
    while i < bytes.len() {
        match bytes[i] {
            b'\t' | b'\n' => {
                out.push(' ');
                i += 1;
            }
            b'\r' => {
                out.push(' ');
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
            }
            b'<' => {
                return Err(not_well_formed(
                    "not well-formed XML: '<' in an attribute value",
                ));
            }
            b'&' => {
                let Some(len) = memchr3(b';', b'&', b'<', &bytes[i + 1..])
                    .filter(|&len| bytes[i + 1 + len] == b';')
                else {
                    return Err(not_well_formed(
                        "not well-formed XML: '&' in an attribute value that starts no \
                         reference",
                    ));
                };
                out.push(resolve_reference(&raw[i + 1..i + 1 + len])?);
                i += len + 2;
            }
            _ => {
                let len = bytes[i..]
                    .iter()
                    .position(special)
                    .unwrap_or(bytes.len() - i);
                out.push_str(&raw[i..i + len]);
                i += len;
            }
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        assert_eq!(normalize_line_endings("a\r\nb\rc\n\r"), "a\nb\nc\n\n");
        assert!(matches!(
            normalize_line_endings("plain\n"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn attribute_values() {
        assert_eq!(
            attribute_value("a\tb\r\nc\rd\ne&#10;&#9;&#13;&amp;").unwrap(),
            "a b c d e\n\t\r&"
        );
        assert!(matches!(
            attribute_value("plain").unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(attribute_value("a&b").is_err());
        assert!(attribute_value("a<b").is_err());
        assert!(attribute_value("&#1;").is_err());
        assert!(attribute_value("&#-1;").is_err());
        assert!(attribute_value("&#x+1;").is_err());
        assert!(attribute_value("&#xD800;").is_err());
        assert!(attribute_value("&#x110000;").is_err());
        assert!(attribute_value("&#99999999999;").is_err());
        assert!(attribute_value("&#X41;").is_err());
        assert_eq!(attribute_value("&#x41;&#66;").unwrap(), "AB");
    }

    #[test]
    fn characters() {
        assert!(check_chars("tab\t lf\n cr\r ok \u{7f} \u{fffd} \u{10000}".as_bytes()).is_ok());
        for bad in ["\u{0}", "a\u{1}", "\u{1f}", "\u{fffe}", "x\u{ffff}"] {
            assert!(check_chars(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn qualified_names() {
        assert_eq!(split_qname("a"), Some((None, "a")));
        assert_eq!(
            split_qname("stream:stream"),
            Some((Some("stream"), "stream"))
        );
        assert_eq!(split_qname("_x-1.2"), Some((None, "_x-1.2")));
        assert_eq!(split_qname("ж:ё"), Some((Some("ж"), "ё")));
        for bad in [
            "", ":", "a:", ":a", "a:b:c", "1a", "a:1", "-a", "a b", "a=", "ж:1", "\u{d7}",
        ] {
            assert_eq!(split_qname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn utf8_errors_name_the_byte() {
        let msg = |b: &[u8]| match utf8(b) {
            Err(FramingError::NotWellFormed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(b"a\xff").contains("0xff"));
        assert!(msg(b"a\xc3\x28").contains("0x28"));
    }
}
