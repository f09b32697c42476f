//! The XEP-0050 `<command/>` element.

use crate::form::DataForm;
use crate::{NS_COMMANDS, NS_DATA, ParseError};
use minidom::Element;

/// What the requester asks for (XEP-0050 §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Execute,
    Next,
    Prev,
    Complete,
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Execute => "execute",
            Action::Next => "next",
            Action::Prev => "prev",
            Action::Complete => "complete",
            Action::Cancel => "cancel",
        }
    }
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "execute" => Action::Execute,
            "next" => Action::Next,
            "prev" => Action::Prev,
            "complete" => Action::Complete,
            "cancel" => Action::Cancel,
            _ => return None,
        })
    }
}

/// Where a session stands (set by the responder only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Executing,
    Completed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Executing => "executing",
            Status::Completed => "completed",
            Status::Canceled => "canceled",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "executing" => Status::Executing,
            "completed" => Status::Completed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }
}

/// The actions a stage allows, and which one `execute` means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actions {
    /// Some of `Prev`, `Next`, `Complete`.
    pub allowed: Vec<Action>,
    pub default: Option<Action>,
}

impl Actions {
    pub fn new(allowed: &[Action], default: Action) -> Actions {
        Actions {
            allowed: allowed.to_vec(),
            default: Some(default),
        }
    }
    /// What `execute` means at this stage (XEP-0050 §3.4): the `execute` attribute, else
    /// `next`.
    pub fn execute_means(&self) -> Action {
        self.default.unwrap_or(Action::Next)
    }
    /// Whether `action` may be sent now (`cancel` always may; `execute` when it means an
    /// allowed action).
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::Cancel => true,
            Action::Execute => self.allowed.contains(&self.execute_means()),
            a => self.allowed.contains(&a),
        }
    }
}

/// The kind of a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteType {
    Info,
    Warn,
    Error,
}

impl NoteType {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Info => "info",
            NoteType::Warn => "warn",
            NoteType::Error => "error",
        }
    }
}

/// A `<note/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteType,
    pub text: String,
}

impl Note {
    pub fn info(t: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Info,
            text: t.into(),
        }
    }
    pub fn warn(t: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Warn,
            text: t.into(),
        }
    }
    pub fn error(t: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Error,
            text: t.into(),
        }
    }
}

/// A `<command xmlns='http://jabber.org/protocol/commands'/>`, request or reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub node: String,
    pub sessionid: Option<String>,
    pub action: Option<Action>,
    pub status: Option<Status>,
    pub lang: Option<String>,
    pub actions: Option<Actions>,
    pub notes: Vec<Note>,
    /// The data form payload, if any.
    pub form: Option<DataForm>,
    /// Other payload elements.
    pub other: Vec<Element>,
}

impl Command {
    /// A request for `node`.
    pub fn request(node: &str, action: Action) -> Command {
        Command {
            node: node.to_owned(),
            sessionid: None,
            action: Some(action),
            status: None,
            lang: None,
            actions: None,
            notes: Vec::new(),
            form: None,
            other: Vec::new(),
        }
    }

    pub fn to_element(&self) -> Element {
        let mut c = Element::bare("command", NS_COMMANDS);
        crate::set_attr(&mut c, "node", self.node.as_str());
        if let Some(s) = &self.sessionid {
            crate::set_attr(&mut c, "sessionid", s.as_str());
        }
        if let Some(a) = self.action {
            crate::set_attr(&mut c, "action", a.as_str());
        }
        if let Some(s) = self.status {
            crate::set_attr(&mut c, "status", s.as_str());
        }
        if let Some(l) = &self.lang {
            crate::set_attr(&mut c, "xml:lang", l.as_str());
        }
        if let Some(acts) = &self.actions {
            let mut a = Element::bare("actions", NS_COMMANDS);
            if let Some(d) = acts.default {
                crate::set_attr(&mut a, "execute", d.as_str());
            }
            for x in &acts.allowed {
                a.append_child(Element::bare(x.as_str(), NS_COMMANDS));
            }
            c.append_child(a);
        }
        for n in &self.notes {
            let mut note = Element::builder("note", NS_COMMANDS)
                .append(n.text.as_str())
                .build();
            crate::set_attr(&mut note, "type", n.kind.as_str());
            c.append_child(note);
        }
        if let Some(f) = &self.form {
            c.append_child(f.to_element());
        }
        for o in &self.other {
            c.append_child(o.clone());
        }
        c
    }

    /// Parse a `<command/>`. An unknown `action` is an error of its own
    /// ([`CommandParseError::MalformedAction`]) because XEP-0050 gives it its own condition.
    pub fn from_element(e: &Element) -> Result<Command, CommandParseError> {
        if !e.is("command", NS_COMMANDS) {
            return Err(CommandParseError::Invalid(ParseError(format!(
                "expected <command xmlns='{NS_COMMANDS}'/>"
            ))));
        }
        let node = e
            .attr("node")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                CommandParseError::Invalid(ParseError("the command has no 'node'".into()))
            })?
            .to_owned();
        let action = match e.attr("action") {
            None => None,
            Some(a) => Some(
                Action::parse(a).ok_or_else(|| CommandParseError::MalformedAction(a.to_owned()))?,
            ),
        };
        let sessionid = e.attr("sessionid").map(str::to_owned);
        if sessionid.as_deref() == Some("") {
            return Err(CommandParseError::Invalid(ParseError(
                "the 'sessionid' is empty".into(),
            )));
        }
        let mut cmd = Command {
            node,
            sessionid,
            action,
            status: e.attr("status").and_then(Status::parse),
            lang: crate::xml_lang(e).map(str::to_owned),
            actions: None,
            notes: Vec::new(),
            form: None,
            other: Vec::new(),
        };
        for c in e.children() {
            if c.is("actions", NS_COMMANDS) {
                let default = match c.attr("execute") {
                    None => None,
                    Some(a) => Some(Action::parse(a).ok_or_else(|| {
                        CommandParseError::Invalid(ParseError(format!(
                            "unknown default action '{a}'"
                        )))
                    })?),
                };
                let allowed = c
                    .children()
                    .filter(|a| a.ns() == NS_COMMANDS)
                    .filter_map(|a| Action::parse(a.name()))
                    .collect();
                cmd.actions = Some(Actions { allowed, default });
            } else if c.is("note", NS_COMMANDS) {
                let kind = match c.attr("type").unwrap_or("info") {
                    "warn" | "warning" => NoteType::Warn,
                    "error" => NoteType::Error,
                    _ => NoteType::Info,
                };
                cmd.notes.push(Note {
                    kind,
                    text: c.text(),
                });
            } else if c.is("x", NS_DATA) && cmd.form.is_none() {
                cmd.form = Some(DataForm::from_element(c).map_err(CommandParseError::BadForm)?);
            } else {
                cmd.other.push(c.clone());
            }
        }
        Ok(cmd)
    }
}

/// Why a `<command/>` could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandParseError {
    /// The `action` attribute is not one of the five actions.
    MalformedAction(String),
    /// The data form payload is broken.
    BadForm(ParseError),
    /// Anything else (no node, empty sessionid, …).
    Invalid(ParseError),
}

impl std::fmt::Display for CommandParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandParseError::MalformedAction(a) => write!(
                f,
                "'{a}' is not an action; use execute, next, prev, complete or cancel"
            ),
            CommandParseError::BadForm(e) => write!(f, "the submitted form is invalid: {e}"),
            CommandParseError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CommandParseError {}
