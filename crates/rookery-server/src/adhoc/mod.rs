//! Ad-hoc commands (XEP-0050) as a module API.
//!
//! A module registers a [`CommandDef`] for a JID it serves with
//! [`ModuleContext::command`](crate::module::ModuleContext::command): a node, a name, a
//! [`Permission`] and a handler. The handler gets a [`CommandRequest`] and the state it
//! returned last time, and returns a [`Reply`] (status, notes, actions, form or result,
//! new state) or a [`StanzaError`]. This file does everything else: discovery filtered by
//! permission, sessions bound to (requester, responder, node) with idle expiry and a cap
//! per requester, and every error of XEP-0050 §4.6 with its specific condition.
//!
//! [`simple_form`], [`prefilled_form`], [`immediate`] and [`wizard`] turn the common
//! shapes into a few lines each (Prosody's `new_simple_form` and `new_initial_data_form`).

mod helpers;
mod sessions;

pub use helpers::{immediate, prefilled_form, simple_form, wizard};
pub use rookery_forms::{
    Action, Actions, Command, DataForm, Field, FieldType, FormType, Note, NoteType, Status, Values,
};

use crate::error::{ErrorType, StanzaError};
use crate::server::Server;
use crate::xml::{ElementExt, el};
use futures::future::BoxFuture;
use jid::Jid;
use minidom::Element;
use rookery_forms::{CommandParseError, NS_COMMANDS, NS_DATA};
use serde_json::Value;
use sessions::{Lookup, Session, Sessions};
use std::sync::Arc;
use std::time::Duration;

/// `http://jabber.org/protocol/commands`.
pub const NS: &str = NS_COMMANDS;

/// Which JIDs a command is offered on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum On {
    /// Every hosted domain (`localhost`, …).
    Hosts,
    /// One JID: a service domain, a room, …
    Jid(String),
    /// A service's domain and every bare JID in it (`room@service`): the command sees
    /// which one it was sent to in [`CommandRequest::to`].
    Service(String),
}

impl On {
    fn matches(&self, server: &Server, responder: &str) -> bool {
        match self {
            On::Hosts => server.serves_host(responder),
            On::Jid(j) => j == responder,
            On::Service(domain) => {
                let (node, rest) = responder.split_once('@').unwrap_or(("", responder));
                rest == domain && !node.is_empty() || responder == domain
            }
        }
    }
}

type Predicate = Arc<dyn Fn(&Server, &Jid, &Jid) -> bool + Send + Sync>;

/// Who may see and run a command (Prosody's permission levels plus a predicate).
#[derive(Clone)]
pub enum Permission {
    /// Anyone, local or remote.
    Any,
    /// Users of a hosted domain.
    LocalUser,
    /// An administrator (listed in `admins`) of a hosted domain.
    Admin,
    /// An administrator of the whole server. With one `admins` list this is the same set
    /// as `Admin`, kept apart so commands say what they need.
    GlobalAdmin,
    /// A check of its own: `(server, requester, responder) -> allowed`, e.g. "power user in
    /// room X".
    Custom(Predicate),
}

impl std::fmt::Debug for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Permission::Any => "Any",
            Permission::LocalUser => "LocalUser",
            Permission::Admin => "Admin",
            Permission::GlobalAdmin => "GlobalAdmin",
            Permission::Custom(_) => "Custom",
        })
    }
}

impl Permission {
    /// A predicate permission.
    pub fn custom<F>(f: F) -> Permission
    where
        F: Fn(&Server, &Jid, &Jid) -> bool + Send + Sync + 'static,
    {
        Permission::Custom(Arc::new(f))
    }

    fn allows(&self, server: &Server, requester: &Requester, responder: &Jid) -> bool {
        if requester.privileged {
            return true;
        }
        let from = &requester.jid;
        let local = from.node().is_some() && server.serves_host(from.domain().as_str());
        match self {
            Permission::Any => true,
            Permission::LocalUser => local,
            Permission::Admin | Permission::GlobalAdmin => {
                local && server.is_admin(&from.to_bare().to_string())
            }
            Permission::Custom(f) => f(server, from, responder),
        }
    }
}

/// What a handler is handed.
#[derive(Clone)]
pub struct CommandRequest {
    pub server: Server,
    /// The requester (a full JID for users).
    pub from: Jid,
    /// The responder: the JID the command was sent to.
    pub to: Jid,
    pub node: String,
    /// `Execute` on the first call; afterwards `Next`, `Prev` or `Complete` (an `execute`
    /// is resolved to the stage's default action before the handler sees it).
    pub action: Action,
    /// The requester's `xml:lang`, if any (replies are in English).
    pub lang: Option<String>,
    /// The submitted data form, if any.
    pub form: Option<DataForm>,
    /// The whole `<command/>` element.
    pub payload: Element,
    /// True for the local admin socket, which may run everything.
    pub privileged: bool,
}

impl CommandRequest {
    /// The domain the command was sent to.
    pub fn host(&self) -> String {
        self.to.domain().to_string()
    }
}

/// What a handler returns.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: Status,
    pub notes: Vec<Note>,
    /// Actions offered while executing; `None` offers `complete` only.
    pub actions: Option<Actions>,
    /// A form to fill in (`type='form'`) or a result (`type='result'`).
    pub form: Option<DataForm>,
    /// Other payload elements.
    pub other: Vec<Element>,
    /// Kept for the next stage (ignored once the session ends).
    pub state: Option<Value>,
}

impl Reply {
    fn with_status(status: Status) -> Reply {
        Reply {
            status,
            notes: Vec::new(),
            actions: None,
            form: None,
            other: Vec::new(),
            state: None,
        }
    }
    /// The command is done.
    pub fn completed() -> Reply {
        Self::with_status(Status::Completed)
    }
    /// The command ended without doing anything.
    pub fn canceled() -> Reply {
        Self::with_status(Status::Canceled)
    }
    /// Another stage: show `form` and wait.
    pub fn executing(form: DataForm, actions: Actions, state: Value) -> Reply {
        Reply {
            form: Some(form),
            actions: Some(actions),
            state: Some(state),
            ..Self::with_status(Status::Executing)
        }
    }
    /// Done, with a result form.
    pub fn result(form: DataForm) -> Reply {
        Reply {
            form: Some(form),
            ..Self::completed()
        }
    }
    pub fn info(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::info(text));
        self
    }
    pub fn warn(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::warn(text));
        self
    }
    /// An error note: with `completed`, the command ran but failed (XEP-0050 §3.4.2).
    pub fn error(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::error(text));
        self
    }
}

/// A handler: request and previous state in, reply out.
pub type Handler =
    Arc<dyn Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult> + Send + Sync>;
/// What a handler returns.
pub type HandlerResult = Result<Reply, StanzaError>;

/// A registered command.
#[derive(Clone)]
pub struct CommandDef {
    pub on: On,
    pub node: String,
    pub name: String,
    pub permission: Permission,
    pub handler: Handler,
}

impl CommandDef {
    pub fn new<F, Fut>(on: On, node: &str, name: &str, permission: Permission, f: F) -> Self
    where
        F: Fn(CommandRequest, Option<Value>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HandlerResult> + Send + 'static,
    {
        CommandDef {
            on,
            node: node.to_owned(),
            name: name.to_owned(),
            permission,
            handler: Arc::new(move |r, s| Box::pin(f(r, s))),
        }
    }
}

/// Who sends a command.
#[derive(Clone, Debug)]
pub struct Requester {
    pub jid: Jid,
    /// The local admin socket: every permission.
    pub privileged: bool,
}

/// The ad-hoc state of a server: its open sessions.
#[derive(Default)]
pub struct Adhoc {
    sessions: Sessions,
}

impl Adhoc {
    /// Open sessions, for statistics.
    pub fn open_sessions(&self) -> usize {
        self.sessions.open()
    }
}

fn specific(condition: &str) -> Element {
    el(condition, NS)
}

/// `modify`/`bad-request` with a commands-specific condition.
fn bad(condition: &str, text: impl Into<String>) -> StanzaError {
    StanzaError::bad_request(text).with_app(specific(condition))
}

/// A `bad-payload` error, for handlers that check a submission themselves.
pub fn bad_payload(text: impl Into<String>) -> StanzaError {
    bad("bad-payload", text)
}

fn session_expired() -> StanzaError {
    StanzaError::not_allowed(
        "this command session has ended (completed, canceled or expired); start the command again",
    )
    .with_type(ErrorType::Cancel)
    .with_app(specific("session-expired"))
}

/// The commands offered on `responder` that `requester` may run, sorted by node.
pub fn visible(server: &Server, requester: &Requester, responder: &Jid) -> Vec<CommandDef> {
    let r = responder.to_string();
    let mut v: Vec<CommandDef> = server
        .registry()
        .commands()
        .into_iter()
        .filter(|c| c.on.matches(server, &r) && c.permission.allows(server, requester, responder))
        .collect();
    v.sort_by(|a, b| a.node.cmp(&b.node));
    v
}

fn find(server: &Server, responder: &Jid, node: &str) -> Option<CommandDef> {
    let r = responder.to_string();
    server
        .registry()
        .commands()
        .into_iter()
        .find(|c| c.node == node && c.on.matches(server, &r))
}

/// Whether any command is offered on `responder` (for the disco feature of services).
pub fn offers_commands(server: &Server, responder: &Jid) -> bool {
    let r = responder.to_string();
    server
        .registry()
        .commands()
        .iter()
        .any(|c| c.on.matches(server, &r))
}

/// `disco#items` on node `http://jabber.org/protocol/commands`: the commands the requester
/// may run. `None` when `node` is not the command list.
pub fn disco_items(server: &Server, from: &Jid, to: &Jid, node: &str) -> Option<Element> {
    if node != NS {
        return None;
    }
    let requester = Requester {
        jid: from.clone(),
        privileged: false,
    };
    let mut q = el("query", crate::ns::DISCO_ITEMS).with_attr("node", NS);
    for c in visible(server, &requester, to) {
        q.append_child(
            el("item", crate::ns::DISCO_ITEMS)
                .with_attr("jid", &to.to_string())
                .with_attr("node", &c.node)
                .with_attr("name", &c.name),
        );
    }
    Some(q)
}

/// `disco#info` on the command list node or on a command node. `None` when `node` is
/// neither; `Err(forbidden)` for a command the requester may not run.
pub fn disco_info(
    server: &Server,
    from: &Jid,
    to: &Jid,
    node: &str,
) -> Option<Result<Element, StanzaError>> {
    let info = crate::ns::DISCO_INFO;
    let mut q = el("query", info).with_attr("node", node);
    if node == NS {
        q.append_child(
            el("identity", info)
                .with_attr("category", "automation")
                .with_attr("type", "command-list")
                .with_attr("name", "Commands"),
        );
        q.append_child(el("feature", info).with_attr("var", NS));
        return Some(Ok(q));
    }
    let cmd = find(server, to, node)?;
    let requester = Requester {
        jid: from.clone(),
        privileged: false,
    };
    if !cmd.permission.allows(server, &requester, to) {
        return Some(Err(StanzaError::forbidden(format!(
            "you may not run the command '{}'",
            cmd.name
        ))));
    }
    q.append_child(
        el("identity", info)
            .with_attr("category", "automation")
            .with_attr("type", "command-node")
            .with_attr("name", &cmd.name),
    );
    q.append_child(el("feature", info).with_attr("var", NS));
    q.append_child(el("feature", info).with_attr("var", NS_DATA));
    Some(Ok(q))
}

/// Run one `<command/>` request from `requester` to `responder`; the reply `<command/>`
/// or the stanza error for it.
pub async fn execute(
    server: &Server,
    requester: Requester,
    responder: Jid,
    payload: &Element,
) -> Result<Element, StanzaError> {
    let cmd = Command::from_element(payload).map_err(|e| match e {
        CommandParseError::MalformedAction(_) => bad("malformed-action", e.to_string()),
        CommandParseError::BadForm(_) => bad("bad-payload", e.to_string()),
        CommandParseError::Invalid(_) => StanzaError::bad_request(e.to_string()),
    })?;
    let Some(def) = find(server, &responder, &cmd.node) else {
        return Err(StanzaError::item_not_found(format!(
            "there is no command '{}' here",
            cmd.node
        )));
    };
    if !def.permission.allows(server, &requester, &responder) {
        return Err(StanzaError::forbidden(format!(
            "you may not run the command '{}'",
            def.name
        )));
    }
    let limits = &server.config().limits;
    let ttl = Duration::from_secs(limits.adhoc_session_secs);
    let from = requester.jid.to_string();
    let to = responder.to_string();
    let adhoc = server.adhoc();
    let action = cmd.action.unwrap_or(Action::Execute);

    let (id, state, resolved) = match &cmd.sessionid {
        None => {
            if action != Action::Execute {
                return Err(bad(
                    "bad-sessionid",
                    format!(
                        "the action '{}' continues a session, but no sessionid was given",
                        action.as_str()
                    ),
                ));
            }
            let bare = requester.jid.to_bare().to_string();
            if !requester.privileged
                && adhoc.sessions.count_for(&bare, ttl) >= limits.adhoc_sessions_per_user
            {
                return Err(StanzaError::not_allowed(format!(
                    "you have {} command sessions open already; complete or cancel one first",
                    limits.adhoc_sessions_per_user
                )));
            }
            let id = Sessions::new_id();
            adhoc.sessions.start(&id, &from, &to, &cmd.node);
            (id, None, Action::Execute)
        }
        Some(id) => {
            let session = match adhoc.sessions.take(id, &from, &to, &cmd.node, ttl) {
                Lookup::Found(s) => s,
                Lookup::Ended => return Err(session_expired()),
                Lookup::Unknown => {
                    return Err(bad(
                        "bad-sessionid",
                        format!("there is no open session '{id}' of '{}' for you", cmd.node),
                    ));
                }
                Lookup::Busy => {
                    return Err(StanzaError::new(
                        crate::error::Condition::UnexpectedRequest,
                        "the previous request of this session is still being handled",
                    ));
                }
            };
            if action == Action::Cancel {
                adhoc.sessions.end(id);
                let reply = Command {
                    status: Some(Status::Canceled),
                    sessionid: Some(id.clone()),
                    ..Command::request(&cmd.node, Action::Cancel)
                };
                return Ok(without_action(reply).to_element());
            }
            if !session.actions.allows(action) {
                let offered: Vec<&str> =
                    session.actions.allowed.iter().map(|a| a.as_str()).collect();
                let what = if action == Action::Execute {
                    format!(
                        "'execute' (meaning '{}')",
                        session.actions.execute_means().as_str()
                    )
                } else {
                    format!("'{}'", action.as_str())
                };
                let err = bad(
                    "bad-action",
                    format!(
                        "{what} is not allowed at this stage; allowed: {}, cancel",
                        offered.join(", ")
                    ),
                );
                adhoc.sessions.put(id, *session);
                return Err(err);
            }
            let resolved = if action == Action::Execute {
                session.actions.execute_means()
            } else {
                action
            };
            (id.clone(), Some(*session), resolved)
        }
    };

    let req = CommandRequest {
        server: server.clone(),
        from: requester.jid.clone(),
        to: responder.clone(),
        node: cmd.node.clone(),
        action: resolved,
        lang: cmd.lang.clone(),
        form: cmd.form.clone(),
        payload: payload.clone(),
        privileged: requester.privileged,
    };
    let prev_state = state.as_ref().and_then(|s| s.state.clone());
    let handler = def.handler.clone();
    // The handler runs in its own task so that a panic is contained.
    let outcome = match tokio::spawn(handler(req, prev_state)).await {
        Ok(r) => r,
        Err(join) => {
            tracing::error!(node = %cmd.node, error = %join, "ad-hoc command handler panicked");
            Err(StanzaError::internal("the command failed unexpectedly"))
        }
    };
    match outcome {
        Err(e) => {
            // A submission it could not accept leaves the stage as it was, to be fixed
            // and sent again; any other error ends the session.
            match state {
                Some(s) if e.condition == crate::error::Condition::BadRequest => {
                    adhoc.sessions.put(&id, s)
                }
                _ => adhoc.sessions.end(&id),
            }
            Err(e)
        }
        Ok(reply) => {
            let mut out = Command {
                node: cmd.node.clone(),
                sessionid: Some(id.clone()),
                action: None,
                status: Some(reply.status),
                lang: None,
                actions: None,
                notes: reply.notes,
                form: reply.form,
                other: reply.other,
            };
            if reply.status == Status::Executing {
                let mut actions = reply
                    .actions
                    .unwrap_or_else(|| Actions::new(&[Action::Complete], Action::Complete));
                actions
                    .allowed
                    .retain(|a| matches!(a, Action::Next | Action::Prev | Action::Complete));
                if actions.allowed.is_empty() {
                    actions.allowed.push(Action::Complete);
                }
                if !actions
                    .default
                    .is_some_and(|d| actions.allowed.contains(&d))
                {
                    actions.default = Some(
                        *actions
                            .allowed
                            .iter()
                            .find(|a| **a != Action::Prev)
                            .unwrap_or(&actions.allowed[0]),
                    );
                }
                out.actions = Some(actions.clone());
                let (requester_bare, node) = (requester.jid.to_bare().to_string(), cmd.node);
                adhoc.sessions.put(
                    &id,
                    Session {
                        requester: from,
                        requester_bare,
                        responder: to,
                        node,
                        state: reply.state,
                        actions,
                        last_used: std::time::Instant::now(),
                    },
                );
            } else {
                adhoc.sessions.end(&id);
            }
            Ok(out.to_element())
        }
    }
}

fn without_action(mut c: Command) -> Command {
    c.action = None;
    c
}

/// For a service with its own route: answer the IQs that concern its commands (execution,
/// the command list and command nodes in disco) and return the reply to route back;
/// `None` for any other stanza, which the service handles itself.
pub async fn service_iq(server: &Server, iq: &Element) -> Option<Element> {
    if iq.name() != "iq" {
        return None;
    }
    let from = Jid::new(iq.get_attr("from")?).ok()?;
    let to = Jid::new(iq.get_attr("to")?).ok()?;
    let child = iq.children().next()?;
    if child.is("command", NS) {
        return Some(answer_iq(server, from, to, iq).await);
    }
    if iq.get_attr("type") != Some("get") {
        return None;
    }
    let node = child.get_attr("node")?;
    if child.is("query", crate::ns::DISCO_ITEMS) {
        let q = disco_items(server, &from, &to, node)?;
        return Some(crate::xml::iq_result(iq, Some(q)));
    }
    if child.is("query", crate::ns::DISCO_INFO) {
        return Some(match disco_info(server, &from, &to, node)? {
            Ok(q) => crate::xml::iq_result(iq, Some(q)),
            Err(e) => e.bounce(iq),
        });
    }
    None
}

/// Answer an `<iq type='set'>` carrying a `<command/>`: for services with their own route
/// that serve commands (the server's domain uses the `adhoc` module's IQ handler).
pub async fn answer_iq(server: &Server, from: Jid, to: Jid, iq: &Element) -> Element {
    let Some(payload) = iq.get_child("command", NS) else {
        return StanzaError::bad_request("no <command/> in this IQ").bounce(iq);
    };
    if iq.get_attr("type") != Some("set") {
        return StanzaError::bad_request("commands are executed with an IQ of type 'set'")
            .bounce(iq);
    }
    let requester = Requester {
        jid: from,
        privileged: false,
    };
    match execute(server, requester, to, payload).await {
        Ok(reply) => crate::xml::iq_result(iq, Some(reply)),
        Err(e) => e.bounce(iq),
    }
}
