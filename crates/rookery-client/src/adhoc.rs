//! The requester side of XEP-0050 ad-hoc commands.
//!
//! [`Client::list_commands`] asks an entity which commands it offers (a XEP-0030
//! `disco#items` query on the commands node), [`Client::execute`] starts a command and
//! returns a [`CommandSession`] that walks through its stages (`next`, `prev`, `complete`,
//! `cancel`), and [`Client::send_command`] sends any `<command/>` as it is. A refusal
//! arrives as [`AdhocError::Stanza`], which carries the RFC 6120 condition as well as the
//! XEP-0050 specific one (`bad-payload`, `session-expired`, …).
//!
//! ```no_run
//! # async fn demo(client: &mut rookery_client::Client) -> Result<(), rookery_client::adhoc::AdhocError> {
//! for item in client.list_commands("localhost").await? {
//!     println!("{} {}", item.node, item.name.as_deref().unwrap_or(""));
//! }
//! let mut session = client.execute("localhost", "ping").await?;
//! while session.is_executing() {
//!     let form = session.form.as_ref().map(|f| f.to_submission());
//!     session.execute_default(client, form).await?;
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;

use minidom::Element;
use rookery_forms::Status;
use rookery_forms::{Action, Actions, Command, DataForm, FormType, NS_COMMANDS, Note, NoteType};

use crate::{Client, ClientError, ns, xml};

/// The XEP-0030 items namespace.
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// A command an entity offers: one `<item/>` of its commands node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandItem {
    /// The JID that executes the command (the entity that was asked).
    pub jid: String,
    /// The command's node, to pass to [`Client::execute`].
    pub node: String,
    /// The human-readable name, if the entity gave one.
    pub name: Option<String>,
}

/// The XEP-0050 specific error conditions (§4.6), sent as a child of `<error/>` next to
/// the RFC 6120 condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandCondition {
    /// The responding entity does not support the requested action.
    BadAction,
    /// The requested `xml:lang` is not supported.
    BadLocale,
    /// The submitted payload is invalid (e.g. a required field is missing).
    BadPayload,
    /// The `sessionid` is unknown or belongs to someone else.
    BadSessionid,
    /// The `action` attribute is not one of the defined actions.
    MalformedAction,
    /// The session has expired.
    SessionExpired,
}

impl CommandCondition {
    /// The element name, e.g. `bad-payload`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandCondition::BadAction => "bad-action",
            CommandCondition::BadLocale => "bad-locale",
            CommandCondition::BadPayload => "bad-payload",
            CommandCondition::BadSessionid => "bad-sessionid",
            CommandCondition::MalformedAction => "malformed-action",
            CommandCondition::SessionExpired => "session-expired",
        }
    }

    /// The condition named by an element name; `None` for anything else.
    pub fn parse(s: &str) -> Option<CommandCondition> {
        Some(match s {
            "bad-action" => CommandCondition::BadAction,
            "bad-locale" => CommandCondition::BadLocale,
            "bad-payload" => CommandCondition::BadPayload,
            "bad-sessionid" => CommandCondition::BadSessionid,
            "malformed-action" => CommandCondition::MalformedAction,
            "session-expired" => CommandCondition::SessionExpired,
            _ => return None,
        })
    }
}

impl fmt::Display for CommandCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `<iq type='error'/>` reply, read from its `<error/>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaError {
    /// The error `type`: `auth`, `cancel`, `continue`, `modify` or `wait` (empty when
    /// the responder left it out).
    pub error_type: String,
    /// The RFC 6120 defined condition, e.g. `bad-request`; `undefined-condition` when
    /// none is present.
    pub condition: String,
    /// The XEP-0050 specific condition, if present.
    pub command_condition: Option<CommandCondition>,
    /// The human-readable `<text/>`, if present.
    pub text: Option<String>,
}

impl StanzaError {
    /// Read an `<error/>` element (the child of an `<iq type='error'/>`).
    pub fn from_element(error: &Element) -> StanzaError {
        let condition = error
            .children()
            .find(|c| c.has_ns(ns::STANZAS) && c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".to_owned());
        let command_condition = error
            .children()
            .filter(|c| c.has_ns(NS_COMMANDS))
            .find_map(|c| CommandCondition::parse(c.name()));
        let text = error
            .get_child("text", ns::STANZAS)
            .map(|t| t.text())
            .filter(|t| !t.trim().is_empty());
        StanzaError {
            error_type: error.attr("type").unwrap_or_default().to_owned(),
            condition,
            command_condition,
            text,
        }
    }

    /// The error of an `<iq type='error'/>`; `None` for any other stanza or an error
    /// reply without an `<error/>` child.
    pub fn from_iq(iq: &Element) -> Option<StanzaError> {
        if iq.attr("type") != Some("error") {
            return None;
        }
        iq.children()
            .find(|c| c.name() == "error")
            .map(StanzaError::from_element)
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.condition)?;
        if let Some(c) = self.command_condition {
            write!(f, "/{c}")?;
        }
        if !self.error_type.is_empty() {
            write!(f, " (type {})", self.error_type)?;
        }
        if let Some(t) = &self.text {
            write!(f, ": {t}")?;
        }
        Ok(())
    }
}

/// Why an ad-hoc command request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdhocError {
    /// The connection failed (timeout, stream error, closed stream, …).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The reply could not be understood (no `<command/>`, a broken form, a changed
    /// `sessionid`, …).
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The responder answered with a stanza error.
    #[error("the command was refused: {0}")]
    Stanza(StanzaError),
    /// An action was asked of a session that is over (`completed` or `canceled`); nothing
    /// was sent.
    #[error("the command session is already {}", .0.as_str())]
    SessionEnded(Status),
}

impl AdhocError {
    /// The stanza error, if this is one.
    pub fn stanza_error(&self) -> Option<&StanzaError> {
        match self {
            AdhocError::Stanza(e) => Some(e),
            _ => None,
        }
    }
}

/// A running (or finished) command: where it runs and the latest reply of the responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSession {
    /// The responder's JID.
    pub to: String,
    /// The command's node.
    pub node: String,
    /// The session id the responder assigned (absent only if a one-stage command
    /// completed without one).
    pub sessionid: Option<String>,
    /// Where the session stands.
    pub status: Status,
    /// The notes of the latest reply.
    pub notes: Vec<Note>,
    /// The actions the latest stage allows, as sent by the responder.
    pub actions: Option<Actions>,
    /// The data form of the latest reply: a form to fill in while executing, a result
    /// once completed.
    pub form: Option<DataForm>,
    /// Other payload elements of the latest reply.
    pub other: Vec<Element>,
}

impl CommandSession {
    /// A session from the responder's reply to the first `execute` of `node` at `to`.
    ///
    /// This and [`request`](Self::request) / [`apply`](Self::apply) let a session run
    /// over another transport than a [`Client`].
    pub fn from_reply(to: &str, node: &str, reply: Command) -> Result<CommandSession, AdhocError> {
        let mut session = CommandSession {
            to: to.to_owned(),
            node: node.to_owned(),
            sessionid: None,
            status: Status::Executing,
            notes: Vec::new(),
            actions: None,
            form: None,
            other: Vec::new(),
        };
        session.apply(reply)?;
        Ok(session)
    }

    /// The `<command/>` that asks for `action` in this session, with `form` as a
    /// submission (a form of another type is turned into one with its current values).
    /// `prev` and `cancel` never carry a form.
    pub fn request(&self, action: Action, form: Option<DataForm>) -> Command {
        let mut cmd = Command::request(&self.node, action);
        cmd.sessionid = self.sessionid.clone();
        if !matches!(action, Action::Prev | Action::Cancel) {
            cmd.form = form.map(|f| match f.kind {
                FormType::Submit => f,
                _ => f.to_submission(),
            });
        }
        cmd
    }

    /// Take the responder's reply to a [`request`](Self::request) as the latest stage.
    /// On error the session is left as it was.
    pub fn apply(&mut self, reply: Command) -> Result<(), AdhocError> {
        if reply.node != self.node {
            return Err(AdhocError::Malformed(format!(
                "the reply is for node '{}', not '{}'",
                reply.node, self.node
            )));
        }
        let status = reply
            .status
            .ok_or_else(|| AdhocError::Malformed("the reply has no (known) 'status'".to_owned()))?;
        let sessionid = match (&self.sessionid, reply.sessionid) {
            (Some(ours), Some(theirs)) if *ours != theirs => {
                return Err(AdhocError::Malformed(format!(
                    "the responder changed the session id from '{ours}' to '{theirs}'"
                )));
            }
            (ours, theirs) => theirs.or_else(|| ours.clone()),
        };
        if status == Status::Executing && sessionid.is_none() {
            return Err(AdhocError::Malformed(
                "an executing command has no 'sessionid'".to_owned(),
            ));
        }
        self.sessionid = sessionid;
        self.status = status;
        self.notes = reply.notes;
        self.actions = reply.actions;
        self.form = reply.form;
        self.other = reply.other;
        Ok(())
    }

    /// Send `action` with `form` (see [`request`](Self::request)) and take the reply as
    /// the latest stage. Refused locally once the session is over.
    pub async fn send_action(
        &mut self,
        client: &mut Client,
        action: Action,
        form: Option<DataForm>,
    ) -> Result<(), AdhocError> {
        if self.status != Status::Executing {
            return Err(AdhocError::SessionEnded(self.status));
        }
        let reply = client
            .send_command(&self.to, &self.request(action, form))
            .await?;
        self.apply(reply)
    }

    /// Go to the next stage, submitting `form`.
    pub async fn next(
        &mut self,
        client: &mut Client,
        form: Option<DataForm>,
    ) -> Result<(), AdhocError> {
        self.send_action(client, Action::Next, form).await
    }

    /// Go back to the previous stage.
    pub async fn prev(&mut self, client: &mut Client) -> Result<(), AdhocError> {
        self.send_action(client, Action::Prev, None).await
    }

    /// Finish the command, submitting `form`.
    pub async fn complete(
        &mut self,
        client: &mut Client,
        form: Option<DataForm>,
    ) -> Result<(), AdhocError> {
        self.send_action(client, Action::Complete, form).await
    }

    /// Cancel the command.
    pub async fn cancel(&mut self, client: &mut Client) -> Result<(), AdhocError> {
        self.send_action(client, Action::Cancel, None).await
    }

    /// Send `execute`, which the responder takes as the stage's default action,
    /// submitting `form`.
    pub async fn execute_default(
        &mut self,
        client: &mut Client,
        form: Option<DataForm>,
    ) -> Result<(), AdhocError> {
        self.send_action(client, Action::Execute, form).await
    }

    /// Whether the command waits for the next action.
    pub fn is_executing(&self) -> bool {
        self.status == Status::Executing
    }

    /// Whether the command has completed (successfully or not: see
    /// [`has_error_notes`](Self::has_error_notes)).
    pub fn is_completed(&self) -> bool {
        self.status == Status::Completed
    }

    /// Whether the command was canceled.
    pub fn is_canceled(&self) -> bool {
        self.status == Status::Canceled
    }

    /// Whether the latest reply carries a `<note type='error'/>` (a completed command
    /// that failed, XEP-0050 §6.5).
    pub fn has_error_notes(&self) -> bool {
        self.notes.iter().any(|n| n.kind == NoteType::Error)
    }

    /// The actions that may be sent now, in the order prev, next, complete, then cancel
    /// (always allowed while executing). Without an `<actions/>` element the stage is a
    /// single one: `complete` and `cancel`. Empty once the session is over.
    pub fn allowed_actions(&self) -> Vec<Action> {
        if !self.is_executing() {
            return Vec::new();
        }
        let mut out: Vec<Action> = match &self.actions {
            None => vec![Action::Complete],
            Some(a) => [Action::Prev, Action::Next, Action::Complete]
                .into_iter()
                .filter(|x| a.allowed.contains(x))
                .collect(),
        };
        out.push(Action::Cancel);
        out
    }

    /// The stage's default action: the `execute` attribute of `<actions/>`, or `complete`
    /// for a single-stage command without `<actions/>`. `None` when the responder named
    /// no default, or once the session is over.
    pub fn default_action(&self) -> Option<Action> {
        if !self.is_executing() {
            return None;
        }
        match &self.actions {
            None => Some(Action::Complete),
            Some(a) => a.default,
        }
    }
}

impl Client {
    /// The commands `jid` offers (a `disco#items` query on the
    /// `http://jabber.org/protocol/commands` node). Items that name another JID than
    /// `jid` are left out.
    pub async fn list_commands(&mut self, jid: &str) -> Result<Vec<CommandItem>, AdhocError> {
        let mut query = Element::bare("query", NS_DISCO_ITEMS);
        xml::set_attr(&mut query, "node", NS_COMMANDS);
        let iq = Element::builder("iq", ns::CLIENT)
            .attr(xml::name("type"), "get")
            .attr(xml::name("to"), jid)
            .append(query)
            .build();
        let reply = self.iq(iq).await?;
        command_items(jid, &reply)
    }

    /// Send `cmd` as it is in an `<iq type='set'/>` to `to` and return the reply's
    /// `<command/>`.
    pub async fn send_command(&mut self, to: &str, cmd: &Command) -> Result<Command, AdhocError> {
        let iq = Element::builder("iq", ns::CLIENT)
            .attr(xml::name("type"), "set")
            .attr(xml::name("to"), to)
            .append(cmd.to_element())
            .build();
        let reply = self.iq(iq).await?;
        command_reply(&reply)
    }

    /// Start the command `node` at `to`.
    pub async fn execute(&mut self, to: &str, node: &str) -> Result<CommandSession, AdhocError> {
        let reply = self
            .send_command(to, &Command::request(node, Action::Execute))
            .await?;
        CommandSession::from_reply(to, node, reply)
    }
}

/// The stanza error of an error reply, or `Malformed` if it has no `<error/>`.
fn error_reply(iq: &Element) -> AdhocError {
    match StanzaError::from_iq(iq) {
        Some(e) => AdhocError::Stanza(e),
        None => AdhocError::Malformed("an error reply without <error/>".to_owned()),
    }
}

/// The `<command/>` of a reply to a command request.
pub(crate) fn command_reply(iq: &Element) -> Result<Command, AdhocError> {
    if iq.attr("type") == Some("error") {
        return Err(error_reply(iq));
    }
    let el = iq
        .get_child("command", NS_COMMANDS)
        .ok_or_else(|| AdhocError::Malformed("the reply has no <command/>".to_owned()))?;
    Command::from_element(el).map_err(|e| AdhocError::Malformed(e.to_string()))
}

/// The command items of a `disco#items` reply from `responder`.
pub(crate) fn command_items(responder: &str, iq: &Element) -> Result<Vec<CommandItem>, AdhocError> {
    if iq.attr("type") == Some("error") {
        return Err(error_reply(iq));
    }
    let query = iq
        .get_child("query", NS_DISCO_ITEMS)
        .ok_or_else(|| AdhocError::Malformed("the reply has no disco#items <query/>".to_owned()))?;
    let responder_jid = jid::Jid::new(responder).ok();
    let same = |item_jid: &str| match (&responder_jid, jid::Jid::new(item_jid)) {
        (Some(a), Ok(b)) => *a == b,
        _ => item_jid == responder,
    };
    Ok(query
        .children()
        .filter(|c| c.is("item", NS_DISCO_ITEMS))
        .filter_map(|c| {
            let jid = c.attr("jid")?;
            let node = c.attr("node").filter(|n| !n.is_empty())?;
            same(jid).then(|| CommandItem {
                jid: jid.to_owned(),
                node: node.to_owned(),
                name: c.attr("name").map(str::to_owned),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rookery_forms::{Field, FieldType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
    }

    const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

    #[test]
    fn stanza_error_with_the_command_condition() {
        let iq = el(&format!(
            "<iq xmlns='jabber:client' type='error' id='1'>\
             <command xmlns='{NS_COMMANDS}' node='add-user'/>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/>\
             <bad-payload xmlns='{NS_COMMANDS}'/>\
             <text xmlns='{STANZAS}' xml:lang='en'>'Password' (password) is required</text>\
             </error></iq>"
        ));
        let e = StanzaError::from_iq(&iq).unwrap();
        assert_eq!(
            e,
            StanzaError {
                error_type: "modify".into(),
                condition: "bad-request".into(),
                command_condition: Some(CommandCondition::BadPayload),
                text: Some("'Password' (password) is required".into()),
            }
        );
        assert_eq!(
            e.to_string(),
            "bad-request/bad-payload (type modify): 'Password' (password) is required"
        );
        match command_reply(&iq) {
            Err(err @ AdhocError::Stanza(_)) => {
                assert_eq!(err.stanza_error(), Some(&e));
                assert_eq!(
                    err.to_string(),
                    "the command was refused: bad-request/bad-payload (type modify): \
                     'Password' (password) is required"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_command_condition_is_read() {
        for c in [
            CommandCondition::BadAction,
            CommandCondition::BadLocale,
            CommandCondition::BadPayload,
            CommandCondition::BadSessionid,
            CommandCondition::MalformedAction,
            CommandCondition::SessionExpired,
        ] {
            let error = el(&format!(
                "<error xmlns='jabber:client' type='cancel'><not-allowed xmlns='{STANZAS}'/>\
                 <{} xmlns='{NS_COMMANDS}'/></error>",
                c.as_str()
            ));
            let e = StanzaError::from_element(&error);
            assert_eq!(e.command_condition, Some(c));
            assert_eq!(e.condition, "not-allowed");
            assert_eq!(e.to_string(), format!("not-allowed/{c} (type cancel)"));
        }
        assert_eq!(CommandCondition::parse("bad-request"), None);
    }

    #[test]
    fn stanza_error_without_extras() {
        let e = StanzaError::from_element(&el(&format!(
            "<error xmlns='jabber:client' type='cancel'><item-not-found xmlns='{STANZAS}'/>\
             <unknown-thing xmlns='{NS_COMMANDS}'/><text xmlns='{STANZAS}'> </text></error>"
        )));
        assert_eq!(e.condition, "item-not-found");
        assert_eq!(e.command_condition, None);
        assert_eq!(e.text, None);
        assert_eq!(e.to_string(), "item-not-found (type cancel)");

        // Neither type nor condition: still a readable message.
        let e = StanzaError::from_element(&el("<error xmlns='jabber:client'/>"));
        assert_eq!(e.to_string(), "undefined-condition");

        // Not an error, or an error without <error/>.
        assert_eq!(
            StanzaError::from_iq(&el("<iq xmlns='jabber:client' type='result'/>")),
            None
        );
        let bare = el("<iq xmlns='jabber:client' type='error' id='x'/>");
        assert!(matches!(
            command_reply(&bare),
            Err(AdhocError::Malformed(m)) if m.contains("without <error/>")
        ));
    }

    #[test]
    fn disco_items_of_the_responder_only() {
        let iq = el(&format!(
            "<iq xmlns='jabber:client' type='result' from='localhost' id='1'>\
             <query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'>\
             <item jid='localhost' node='add-user' name='Add a user'/>\
             <item jid='elsewhere.example' node='stolen' name='Not ours'/>\
             <item jid='localhost' name='No node'/>\
             <item jid='localhost' node='uptime'/>\
             <item node='no-jid'/>\
             <other xmlns='urn:example' jid='localhost' node='x'/>\
             </query></iq>"
        ));
        let items = command_items("localhost", &iq).unwrap();
        assert_eq!(
            items,
            vec![
                CommandItem {
                    jid: "localhost".into(),
                    node: "add-user".into(),
                    name: Some("Add a user".into()),
                },
                CommandItem {
                    jid: "localhost".into(),
                    node: "uptime".into(),
                    name: None,
                },
            ]
        );
        // JIDs are compared as JIDs, not as strings.
        let iq = el(&format!(
            "<iq xmlns='jabber:client' type='result' id='1'>\
             <query xmlns='{NS_DISCO_ITEMS}'><item jid='bot@example.org/a' node='n'/>\
             <item jid='bot@example.org/b' node='m'/></query></iq>"
        ));
        let items = command_items("bot@example.org/a", &iq).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].node, "n");
        // No commands at all.
        let empty = el(&format!(
            "<iq xmlns='jabber:client' type='result' id='1'><query xmlns='{NS_DISCO_ITEMS}'/></iq>"
        ));
        assert!(command_items("localhost", &empty).unwrap().is_empty());
    }

    #[test]
    fn disco_items_errors() {
        let iq = el(&format!(
            "<iq xmlns='jabber:client' type='error' id='1'><error type='cancel'>\
             <service-unavailable xmlns='{STANZAS}'/></error></iq>"
        ));
        match command_items("localhost", &iq) {
            Err(AdhocError::Stanza(e)) => assert_eq!(e.condition, "service-unavailable"),
            other => panic!("unexpected {other:?}"),
        }
        let iq = el("<iq xmlns='jabber:client' type='result' id='1'/>");
        assert!(matches!(
            command_items("localhost", &iq),
            Err(AdhocError::Malformed(_))
        ));
    }

    #[test]
    fn command_replies() {
        let ok = el(&format!(
            "<iq xmlns='jabber:client' type='result' id='1'>\
             <command xmlns='{NS_COMMANDS}' node='uptime' sessionid='s1' status='completed'>\
             <note type='info'>up 3 s</note></command></iq>"
        ));
        let c = command_reply(&ok).unwrap();
        assert_eq!(c.node, "uptime");
        assert_eq!(c.status, Some(Status::Completed));
        assert_eq!(c.notes, vec![Note::info("up 3 s")]);

        let none = el("<iq xmlns='jabber:client' type='result' id='1'/>");
        assert!(
            matches!(command_reply(&none), Err(AdhocError::Malformed(m)) if m.contains("no <command/>"))
        );
        let broken = el(&format!(
            "<iq xmlns='jabber:client' type='result' id='1'>\
             <command xmlns='{NS_COMMANDS}' node='n' status='executing' sessionid='s'>\
             <x xmlns='jabber:x:data' type='form'><field type='text-single'/></x>\
             </command></iq>"
        ));
        assert!(
            matches!(command_reply(&broken), Err(AdhocError::Malformed(m)) if m.contains("'var'"))
        );
    }

    fn stage(node: &str, sessionid: Option<&str>, status: Status) -> Command {
        let mut c = Command::request(node, Action::Execute);
        c.action = None;
        c.sessionid = sessionid.map(str::to_owned);
        c.status = Some(status);
        c
    }

    #[test]
    fn session_follows_the_replies() {
        let mut first = stage("config", Some("s1"), Status::Executing);
        first.actions = Some(Actions::new(&[Action::Next], Action::Next));
        first.form = Some(
            DataForm::form("Configure")
                .with_form_type("urn:example")
                .with_field(Field::fixed("Pick one"))
                .with_field(
                    Field::list_single("service", "Service", &[("", "httpd")]).with_value("httpd"),
                ),
        );
        let mut s = CommandSession::from_reply("responder@domain", "config", first).unwrap();
        assert!(s.is_executing() && !s.is_completed() && !s.is_canceled());
        assert_eq!(s.sessionid.as_deref(), Some("s1"));
        assert_eq!(s.allowed_actions(), vec![Action::Next, Action::Cancel]);
        assert_eq!(s.default_action(), Some(Action::Next));

        // The layout becomes a submission with its values; fixed fields stay behind.
        let req = s.request(Action::Next, s.form.clone());
        assert_eq!(req.node, "config");
        assert_eq!(req.sessionid.as_deref(), Some("s1"));
        assert_eq!(req.action, Some(Action::Next));
        let sub = req.form.unwrap();
        assert_eq!(sub.kind, FormType::Submit);
        assert_eq!(sub.value("service"), Some("httpd"));
        assert_eq!(sub.form_type(), Some("urn:example"));
        assert!(sub.fields.iter().all(|f| f.kind != FieldType::Fixed));
        // A submission goes as it is; prev and cancel carry none.
        let given = DataForm::submit().set("service", &["jabberd"]);
        assert_eq!(
            s.request(Action::Complete, Some(given.clone())).form,
            Some(given.clone())
        );
        assert_eq!(s.request(Action::Prev, Some(given.clone())).form, None);
        assert_eq!(s.request(Action::Cancel, Some(given)).form, None);

        // Stage two: prev and complete, complete by default.
        let mut second = stage("config", Some("s1"), Status::Executing);
        second.actions = Some(Actions::new(
            &[Action::Complete, Action::Prev],
            Action::Complete,
        ));
        s.apply(second).unwrap();
        assert_eq!(
            s.allowed_actions(),
            vec![Action::Prev, Action::Complete, Action::Cancel]
        );
        assert_eq!(s.default_action(), Some(Action::Complete));
        assert_eq!(s.form, None);

        // A reply that changes the session id is refused and changes nothing.
        let before = s.clone();
        let err = s
            .apply(stage("config", Some("s2"), Status::Completed))
            .unwrap_err();
        assert!(err.to_string().contains("'s1' to 's2'"), "{err}");
        assert_eq!(s, before);
        // So is one for another node, or one without a status.
        assert!(
            s.apply(stage("other", Some("s1"), Status::Completed))
                .is_err()
        );
        let mut no_status = stage("config", Some("s1"), Status::Completed);
        no_status.status = None;
        assert!(s.apply(no_status).is_err());
        assert_eq!(s, before);

        // The last reply may leave the session id out.
        let mut done = stage("config", None, Status::Completed);
        done.notes.push(Note::error("it failed"));
        s.apply(done).unwrap();
        assert!(s.is_completed() && s.has_error_notes());
        assert_eq!(s.sessionid.as_deref(), Some("s1"));
        assert!(s.allowed_actions().is_empty());
        assert_eq!(s.default_action(), None);
    }

    #[test]
    fn single_stage_and_sessionless_replies() {
        // No <actions/>: a single stage, where execute means complete.
        let s = CommandSession::from_reply(
            "localhost",
            "announce",
            stage("announce", Some("a1"), Status::Executing),
        )
        .unwrap();
        assert_eq!(s.allowed_actions(), vec![Action::Complete, Action::Cancel]);
        assert_eq!(s.default_action(), Some(Action::Complete));
        // <actions/> without a default: no default.
        let mut no_default = stage("n", Some("x"), Status::Executing);
        no_default.actions = Some(Actions {
            allowed: vec![Action::Next, Action::Prev],
            default: None,
        });
        let s = CommandSession::from_reply("localhost", "n", no_default).unwrap();
        assert_eq!(s.default_action(), None);
        assert_eq!(
            s.allowed_actions(),
            vec![Action::Prev, Action::Next, Action::Cancel]
        );
        // A one-shot command may complete without a session id, but an executing one
        // must have one.
        let s = CommandSession::from_reply("localhost", "n", stage("n", None, Status::Completed))
            .unwrap();
        assert!(s.is_completed() && !s.has_error_notes());
        assert!(matches!(
            CommandSession::from_reply("localhost", "n", stage("n", None, Status::Executing)),
            Err(AdhocError::Malformed(_))
        ));
    }

    /// The responder's end of an in-process pipe.
    struct Responder {
        io: DuplexStream,
        seen: String,
    }

    impl Responder {
        /// The next whole `<iq>…</iq>` the client sent.
        async fn next_iq(&mut self) -> Element {
            loop {
                if let Some(end) = self.seen.find("</iq>") {
                    let raw: String = self.seen.drain(..end + 5).collect();
                    let start = raw.find("<iq").unwrap();
                    let mut text = raw[start..].to_owned();
                    // The client relies on the stream's default namespace.
                    text = text.replacen("<iq", "<iq xmlns='jabber:client'", 1);
                    return text.parse().unwrap();
                }
                let mut buf = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut buf))
                    .await
                    .expect("the client sent nothing")
                    .unwrap();
                assert!(n > 0, "the client hung up");
                self.seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
        }

        async fn reply(&mut self, to: &Element, payload: &str) {
            let id = to.attr("id").unwrap();
            let ty = if payload.starts_with("<error") {
                "error"
            } else {
                "result"
            };
            self.io
                .write_all(format!("<iq type='{ty}' id='{id}'>{payload}</iq>").as_bytes())
                .await
                .unwrap();
        }
    }

    async fn connected() -> (Client, Responder) {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        b.write_all(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>",
        )
        .await
        .unwrap();
        let mut client = Client::new_raw(Box::new(a), Duration::from_secs(5));
        assert!(matches!(
            client.next_event().await.unwrap(),
            rookery_xml::StreamEvent::Header(_)
        ));
        (
            client,
            Responder {
                io: b,
                seen: String::new(),
            },
        )
    }

    #[tokio::test]
    async fn a_two_stage_command_over_a_stream() {
        let (mut client, mut r) = connected().await;

        let responder = async {
            let iq = r.next_iq().await;
            assert_eq!(iq.attr("type"), Some("get"));
            assert_eq!(iq.attr("to"), Some("localhost"));
            let q = iq.get_child("query", NS_DISCO_ITEMS).unwrap();
            assert_eq!(q.attr("node"), Some(NS_COMMANDS));
            r.reply(
                &iq,
                &format!(
                    "<query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'>\
                     <item jid='localhost' node='add-user' name='Add a user'/></query>"
                ),
            )
            .await;

            let iq = r.next_iq().await;
            assert_eq!(iq.attr("type"), Some("set"));
            let c = Command::from_element(iq.get_child("command", NS_COMMANDS).unwrap()).unwrap();
            assert_eq!(
                (c.node.as_str(), c.action, c.sessionid),
                ("add-user", Some(Action::Execute), None)
            );
            r.reply(
                &iq,
                &format!(
                    "<command xmlns='{NS_COMMANDS}' node='add-user' sessionid='S' status='executing'>\
                     <actions execute='complete'><complete/></actions>\
                     <x xmlns='jabber:x:data' type='form'><title>Add</title>\
                     <field var='jid' type='jid-single'><required/></field>\
                     <field var='password' type='text-private'/></x></command>"
                ),
            )
            .await;

            // A bad submission: refused, and the session goes on.
            let iq = r.next_iq().await;
            let c = Command::from_element(iq.get_child("command", NS_COMMANDS).unwrap()).unwrap();
            assert_eq!(c.action, Some(Action::Complete));
            assert_eq!(c.sessionid.as_deref(), Some("S"));
            assert_eq!(c.form.as_ref().unwrap().kind, FormType::Submit);
            r.reply(
                &iq,
                &format!(
                    "<error type='modify'><bad-request xmlns='{STANZAS}'/>\
                     <bad-payload xmlns='{NS_COMMANDS}'/><text xmlns='{STANZAS}'>jid is required</text></error>"
                ),
            )
            .await;

            let iq = r.next_iq().await;
            let c = Command::from_element(iq.get_child("command", NS_COMMANDS).unwrap()).unwrap();
            assert_eq!(c.action, Some(Action::Execute));
            let form = c.form.unwrap();
            assert_eq!(form.value("jid"), Some("bob@localhost"));
            assert_eq!(form.value("password"), Some("pw"));
            r.reply(
                &iq,
                &format!(
                    "<command xmlns='{NS_COMMANDS}' node='add-user' sessionid='S' status='completed'>\
                     <note type='info'>created bob@localhost</note></command>"
                ),
            )
            .await;
        };

        let requester = async {
            let items = client.list_commands("localhost").await.unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].name.as_deref(), Some("Add a user"));

            let mut s = client.execute("localhost", "add-user").await.unwrap();
            assert_eq!(s.default_action(), Some(Action::Complete));
            assert_eq!(s.form.as_ref().unwrap().title.as_deref(), Some("Add"));

            let err = s.complete(&mut client, s.form.clone()).await.unwrap_err();
            let e = err.stanza_error().unwrap();
            assert_eq!(e.command_condition, Some(CommandCondition::BadPayload));
            assert!(s.is_executing());

            let form = DataForm::submit()
                .set("jid", &["bob@localhost"])
                .set("password", &["pw"]);
            s.execute_default(&mut client, Some(form)).await.unwrap();
            assert!(s.is_completed());
            assert_eq!(s.notes, vec![Note::info("created bob@localhost")]);

            // Nothing more may be sent in a finished session.
            assert!(matches!(
                s.cancel(&mut client).await,
                Err(AdhocError::SessionEnded(Status::Completed))
            ));
        };
        tokio::join!(responder, requester);
        client
            .expect_silence(Duration::from_millis(20))
            .await
            .unwrap();
    }
}
