//! The wire model of XEP-0004 data forms and XEP-0050 `<command/>` payloads.
//!
//! Both sides of ad-hoc commands use it: the server builds forms and checks submissions
//! against them ([`DataForm::check`] turns a submission into typed [`Values`] or a message
//! fit for a `bad-payload` error), and the client and CLI parse and render them.
//! Parsing is lenient where the XEPs ask it (unknown field types are `text-single`,
//! unknown fields are ignored, note type `warning` is read as `warn`) and strict
//! everywhere else, with a message that says what was wrong.

mod command;
mod form;

pub use command::{Action, Actions, Command, CommandParseError, Note, NoteType, Status};
pub use form::{DataForm, Field, FieldType, FormType, Values};

/// The `jabber:x:data` namespace.
pub const NS_DATA: &str = "jabber:x:data";
/// The `http://jabber.org/protocol/commands` namespace.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// What is wrong with a form or command element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests;

/// Set an attribute; `xml:`-prefixed names go to the XML namespace.
pub(crate) fn set_attr(e: &mut minidom::Element, name: &str, value: &str) {
    use minidom::rxml::{Namespace, NcName};
    let (ns, local) = match name.strip_prefix("xml:") {
        Some(l) => (Namespace::XML, l),
        None => (Namespace::NONE, name),
    };
    let local = NcName::try_from(local).expect("attribute names here are literals");
    e.attrs_mut().insert(ns, local, value.to_owned());
}

/// The `xml:lang` of an element.
pub(crate) fn xml_lang(e: &minidom::Element) -> Option<&str> {
    use minidom::rxml::{Namespace, NcName};
    let lang = NcName::try_from("lang").expect("literal");
    e.attrs().get(&Namespace::XML, &lang).map(String::as_str)
}
